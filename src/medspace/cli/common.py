"""What every `medspace` command shares: consoles, common options, and one-line errors."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from medspace.connect.errors import ConnectError
from medspace.deid.errors import DeidError
from medspace.ledger.errors import LedgerError
from medspace.model.errors import ModelError
from medspace.store.errors import StoreError

# Piped output (CI logs, files) gets room for the tables instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", 120)))
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_STORE = Path(os.environ.get("MEDSPACE_STORE", "medspace-node.duckdb"))
StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="The node's DuckDB store file (env MEDSPACE_STORE).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]
ERRORS: tuple[type[Exception], ...] = (ConnectError, StoreError, ModelError, DeidError, LedgerError)


def clear_errors(fn: F) -> F:
    """Turn medspace's typed errors into one clear line on stderr and exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ERRORS as e:
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]
