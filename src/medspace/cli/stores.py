"""Opening the node's store from a command: it must exist unless `--create` is given, a busy store says who
holds it (and `--wait SECONDS` waits for it), and string-size limits for the commands that ingest."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from medspace.store import Store

CreateOpt = Annotated[bool, typer.Option("--create", help="Make a new store if there is none at --store.")]
WaitOpt = Annotated[float, typer.Option(
    "--wait", min=0, metavar="SECONDS",
    help="If another process holds the store, keep trying to open it for up to this many seconds.")]
MaxValueOpt = Annotated[int | None, typer.Option(
    "--max-value-chars", min=1, metavar="N",
    help="Longest string stored in a field; a longer value quarantines its record (default 65,536).")]
MaxTextOpt = Annotated[int | None, typer.Option(
    "--max-text-chars", min=1, metavar="N",
    help="Longest free text (notes, attachments) stored; a longer one quarantines its record (default 16 Mi).")]


def _context() -> Any:
    """The running command's click context, or None. Typer >= 0.29 vendors click: the context stack is that of
    the click typer uses, found from its Context class."""
    core = next(c.__module__ for c in typer.Context.__mro__ if c.__module__.endswith(".core"))
    return importlib.import_module(f"{core.rpartition('.')[0]}.globals").get_current_context(silent=True)


def _command() -> str:
    """The running command, e.g. `medspace ingest` (never its arguments: they may hold paths or URLs)."""
    ctx = _context()
    return str(ctx.command_path) if ctx is not None else "medspace"


def open_store(path: Path, *, create: bool = False, read_only: bool = False, wait: float = 0.0,
               can_create: bool = False) -> Store:
    """Open the store at `path` for a command. `can_create`: the command takes `--create` (its error for a
    missing store says so); a store this opening makes is removed again if the command then fails."""
    from medspace.store import Store, StoreBusyError, StoreOpenError

    if not path.exists() and not (create and not read_only):
        hint = "add --create to make a new one" if can_create else "check --store (medspace ingest --create makes one)"
        raise StoreOpenError(f"no store at {path}; {hint}")
    try:
        return Store(path, read_only=read_only, create=create, wait=wait, command=_command())
    except StoreBusyError as e:
        if wait > 0:
            raise
        raise StoreBusyError(f"{e}; add --wait SECONDS to wait for it", who=e.who, pid=e.pid,
                             command=e.command) from None


def set_string_limits(max_value_chars: int | None, max_text_chars: int | None) -> None:
    """Put `--max-value-chars` / `--max-text-chars` in force (an option not given keeps its default)."""
    if max_value_chars is None and max_text_chars is None:
        return
    from medspace.connect import Limits, set_limits
    from medspace.connect.base import limits

    now = limits()
    old = set_limits(Limits(value_chars=max_value_chars or now.value_chars,
                            text_chars=max_text_chars or now.text_chars))
    # The limits are the process's: a command run in-process (tests, a host program) must not leave its own.
    ctx = _context()
    if ctx is not None:
        ctx.call_on_close(lambda: set_limits(old))
