"""Small files kept beside a store (`<store>.writer.json`, `<store>.stats.json`): named, written atomically,
removed with a store that a failed run made."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

WRITER_SUFFIX = ".writer.json"  # who is writing to the store, while a medspace writer holds it
SNAPSHOT_SUFFIX = ".stats.json"  # the store's statistics as of its last committed batch


def sidecar(store: Path, suffix: str) -> Path:
    """The path of a file kept beside the store."""
    return store.with_name(store.name + suffix)


def write_atomic(path: Path, text: str, *, like: Path) -> None:
    """Write a file whole or not at all (a reader never sees half of it), as readable as `like` is."""
    try:
        mode = like.stat().st_mode & 0o666
    except OSError:
        mode = 0o600
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def remove_store_files(store: Path) -> None:
    """Remove a store file with its write-ahead log and the files kept beside it."""
    for p in (store, store.with_name(store.name + ".wal"), sidecar(store, WRITER_SUFFIX),
              sidecar(store, SNAPSHOT_SUFFIX)):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
