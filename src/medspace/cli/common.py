"""What every `medspace` command shares: consoles, common options, exit statuses and one-line errors.

Exit statuses (the README lists them too):

- 0 the command did what was asked;
- 1 a finding: a check ran to its end and found a problem (a proof bundle that does not verify, a log that does
  not re-derive, a policy file with an error under `deid policy check`);
- 2 a usage or input error: bad arguments (typer's own), a missing or unwritable path, a malformed file or URL,
  an unreachable server, a locked store; one line on stderr says which;
- 70 an internal error (a bug): one line naming the exception's class, the traceback with MEDSPACE_DEBUG=1;
- 130 interrupted (Ctrl-C).

No line printed here ever carries a value from a record: messages name paths, positions, fields and exception
classes; the OS's own reason ("permission denied") is the only free text added.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from medspace.client.hub import ClientError
from medspace.compute.errors import ComputeError
from medspace.connect.errors import ConnectError
from medspace.deid.errors import DeidError
from medspace.hub.errors import HubError
from medspace.ledger.errors import LedgerError
from medspace.model.errors import ModelError
from medspace.node.errors import NodeError
from medspace.policy.errors import PolicyError
from medspace.private_files import os_reason
from medspace.store.errors import StoreError

# Piped output (CI logs, files) gets room for the tables instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", 120)))
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_STORE = Path(os.environ.get("MEDSPACE_STORE", "medspace-node.duckdb"))
StoreOpt = Annotated[Path, typer.Option("--store", "-s", help="The node's DuckDB store file (env MEDSPACE_STORE).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for machines instead of tables.")]

EXIT_OK = 0
EXIT_FINDING = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70  # EX_SOFTWARE in sysexits.h
EXIT_INTERRUPTED = 130  # what a shell reports for SIGINT
EXIT_CODES = (EXIT_OK, EXIT_FINDING, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED)
DEBUG_ENV = "MEDSPACE_DEBUG"


class InputError(Exception):
    """A usage or input error the command line found itself (exit status 2); the message is the whole line."""


class Finding(Exception):
    """A check ran to its end and found a problem (exit status 1); the message is the whole line."""


ERRORS: tuple[type[Exception], ...] = (ConnectError, StoreError, ModelError, DeidError, LedgerError, PolicyError,
                                       HubError, NodeError, ComputeError, ClientError, InputError)

# typer's (click's) own signals pass through untouched: they carry usage errors (exit 2) and explicit exits.
# typer >= 0.29 vendors click, older versions use it; BadParameter's ancestry names the right ClickException.
_SIGNALS: tuple[type[BaseException], ...] = (
    typer.Exit, typer.Abort, *(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"),
)


def debug() -> bool:
    """Whether MEDSPACE_DEBUG asks for tracebacks instead of one-line internal errors."""
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _fspath(name: Any) -> str:
    return os.fsdecode(name) if isinstance(name, str | bytes | os.PathLike) else str(name)


def os_error_line(e: OSError, verb: str | None = None, path: Path | str | None = None) -> str:
    """One line for an OSError: the path it names (else `path`), what was tried (`verb`) and the OS's reason."""
    where = _fspath(e.filename) if e.filename is not None else (str(path) if path is not None else None)
    if where is not None and e.filename2 is not None:
        where += f" -> {_fspath(e.filename2)}"
    reason = os_reason(e)
    if where is None:
        return f"cannot {verb}: {reason}" if verb else reason
    return f"cannot {verb} {where}: {reason}" if verb else f"{where}: {reason}"


def _bare_url(url: Any) -> str:
    """scheme://host:port/path of an httpx URL: no user, password or query (they may hold credentials)."""
    port = f":{url.port}" if url.port is not None else ""
    host = f"[{url.host}]" if ":" in url.host else url.host
    return f"{url.scheme}://{host}{port}{url.path}"


def _network_line(e: BaseException) -> str | None:
    """A line for an httpx error, or None; httpx is not imported just to ask (start-up time)."""
    httpx = sys.modules.get("httpx")
    if httpx is None:
        return None
    if isinstance(e, httpx.InvalidURL | httpx.UnsupportedProtocol):
        return f"invalid URL: {e}"
    if isinstance(e, httpx.HTTPStatusError):
        return f"HTTP {e.response.status_code} from {_bare_url(e.request.url)}"
    if isinstance(e, httpx.RequestError):
        try:
            url = _bare_url(e.request.url)
        except RuntimeError:  # no request attached
            url = "the server"
        return f"cannot reach {url} ({type(e).__name__})"
    if isinstance(e, httpx.HTTPError | httpx.StreamError):
        return f"network error ({type(e).__name__})"
    return None


def _database_line(e: BaseException) -> str | None:
    """A line for a database file that cannot be opened or is not a database (SQLite, DuckDB I/O), or None."""
    sqlite3 = sys.modules.get("sqlite3")
    if sqlite3 is not None and type(e) in (sqlite3.OperationalError, sqlite3.DatabaseError):
        return f"database: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    duckdb = sys.modules.get("duckdb")
    if duckdb is not None and isinstance(e, duckdb.IOException):
        return f"database: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    return None


def _say(line: str) -> None:
    # soft_wrap: one line stays one line whatever the terminal's width
    err.print(f"[red]error:[/red] {escape(line)}", highlight=False, soft_wrap=True)


def fail(e: BaseException) -> NoReturn:
    """Turn an exception escaping a command into one line on stderr and the documented exit status."""
    if isinstance(e, _SIGNALS):
        raise e
    if isinstance(e, Finding):
        _say(str(e))
        raise typer.Exit(EXIT_FINDING) from None
    if isinstance(e, ERRORS):
        _say(str(e))
        raise typer.Exit(EXIT_USAGE) from None
    if isinstance(e, KeyboardInterrupt):
        err.print("interrupted", highlight=False)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if not isinstance(e, Exception):  # SystemExit, GeneratorExit: not ours to translate
        raise e
    if debug():
        raise e
    if isinstance(e, BrokenPipeError) and e.filename is None:
        raise e  # stdout closed early (`medspace ... | head`): typer quiets the streams and exits
    line = _network_line(e) or _database_line(e)
    if line is None and isinstance(e, OSError):
        line = os_error_line(e)
    if line is not None:
        _say(line)
        raise typer.Exit(EXIT_USAGE) from None
    name = type(e).__name__ if type(e).__module__ == "builtins" else f"{type(e).__module__}.{type(e).__name__}"
    _say(f"internal error ({name}); run with {DEBUG_ENV}=1 for the traceback")
    raise typer.Exit(EXIT_INTERNAL) from None


def clear_errors(fn: F) -> F:
    """Turn any error of a command into one clear line on stderr and its documented exit status (see `fail`)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BaseException as e:  # `fail` re-raises what is not ours to translate
            fail(e)

    return wrapper  # type: ignore[return-value]


class MedspaceGroup(TyperGroup):
    """The top-level command group: every subcommand, decorated or not, ends in one line, never a traceback."""

    def invoke(self, ctx: Any) -> Any:
        """Run the subcommand; errors become one line and an exit status (see `fail`)."""
        try:
            return super().invoke(ctx)
        except BaseException as e:  # `fail` re-raises what is not ours to translate
            fail(e)


def _first_missing(path: Path) -> Path | None:
    """The outermost of `path` and its parents that does not exist yet (what mkdir(parents=True) would create)."""
    missing = None
    for p in (path, *path.parents):
        try:
            if os.path.lexists(p):
                break
        except (OSError, ValueError):
            break
        missing = p
    return missing


def _remove(p: Path) -> None:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        elif os.path.lexists(p):
            p.unlink()
    except (OSError, ValueError):  # cleaning up must never hide the error that made it necessary
        pass


@contextmanager
def writing(*paths: Path, verb: str = "write") -> Iterator[None]:
    """Around code that creates `paths` (files or directories, parents included): if it fails, remove what it
    created, and an OSError becomes one line naming the path and the OS's reason (exit status 2)."""
    fresh = [m for m in (_first_missing(p) for p in paths) if m is not None]
    try:
        yield
    except BaseException as e:
        for p in fresh:
            _remove(p)
        if isinstance(e, OSError) and not isinstance(e, BrokenPipeError) and not debug():
            raise InputError(os_error_line(e, verb, paths[0] if paths else None)) from e
        raise

