"""Who holds a store. DuckDB lets one process write a file, or any number read it, never both; its lock
error names only the holder's PID and executable. While a medspace writer holds a store it keeps a
small lock-info file beside it (PID, command, since when), so that a second opener can say who it is."""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from medspace.store.errors import StoreBusyError
from medspace.store.sidecar import WRITER_SUFFIX, sidecar, write_atomic

_HELD = re.compile(r"[Cc]onflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")
_claims: dict[str, int] = {}  # store file -> Store objects of this process holding it for writing
_claims_lock = threading.Lock()


def is_lock_error(message: str) -> bool:
    """Whether a DuckDB error says another process holds the file's lock."""
    return "Could not set lock on file" in message or "onflicting lock" in message


def default_command() -> str:
    """The command to record when the caller names none: the program's name (never its arguments,
    which may hold paths or URLs)."""
    return Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"


def claim(store: Path, command: str) -> None:
    """Record this process as the store's writer (once DuckDB has given it the write lock)."""
    key = str(store.resolve())
    with _claims_lock:
        n = _claims.get(key, 0)
        _claims[key] = n + 1
        if n:
            return
    info = {"pid": os.getpid(), "command": command, "since": datetime.now().isoformat(timespec="seconds")}
    # The lock-info file is a courtesy to the next opener: a store in a directory that takes no new
    # file still opens, it only cannot say who holds it.
    with contextlib.suppress(OSError):
        write_atomic(sidecar(store, WRITER_SUFFIX), json.dumps(info), like=store)


def release(store: Path) -> None:
    """This process no longer writes the store: remove its lock-info file (when the last writer closes)."""
    key = str(store.resolve())
    with _claims_lock:
        n = _claims.get(key, 0) - 1
        if n > 0:
            _claims[key] = n
            return
        _claims.pop(key, None)
    path = sidecar(store, WRITER_SUFFIX)
    info = read_info(store)
    if info is not None and info.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            path.unlink()


def read_info(store: Path) -> dict[str, Any] | None:
    """The lock-info file beside a store, if there is a readable one."""
    try:
        data = json.loads(sidecar(store, WRITER_SUFFIX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("pid"), int) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """The process holding a store, as far as it can be told."""

    pid: int | None
    program: str | None  # the executable's name, from DuckDB's message
    command: str | None  # what a medspace writer recorded, e.g. "medspace ingest"
    since: str | None  # when it started writing (ISO 8601)

    def describe(self) -> str:
        """Who it is, in a few words."""
        if self.command:
            since = f", writing since {self.since.replace('T', ' ')}" if self.since else ""
            return f"{self.command} (PID {self.pid}{since})"
        if self.pid is not None:
            return f"PID {self.pid}" + (f" ({self.program})" if self.program else "")
        return "another process"


def holder(store: Path, message: str) -> Holder:
    """Who holds a store, from DuckDB's lock error and the lock-info file (ignored when stale: its
    process is not the one DuckDB names, or is gone)."""
    m = _HELD.search(message)
    pid = int(m["pid"]) if m else None
    program = Path(m["program"]).name if m and m["program"] else None
    info = read_info(store)
    if info is not None and (info["pid"] == pid or (pid is None and _alive(info["pid"]))):
        return Holder(info["pid"], program, str(info.get("command") or "") or None, info.get("since"))
    return Holder(pid, program, None, None)


def busy_error(store: Path, message: str, waited: float) -> StoreBusyError:
    """One line saying who holds the store (never DuckDB's own message)."""
    h = holder(store, message)
    after = f"; waited {waited:g} s" if waited > 0 else ""
    who = h.describe()
    return StoreBusyError(f"store {store} is in use by {who}{after}", who=who, pid=h.pid, command=h.command)
