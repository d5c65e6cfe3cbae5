"""What every package that keeps secrets in files shares: the rule that only the owner may access them, and
the OS's reason for a failed file operation in the words the command line uses."""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path


def shared_with_others(mode: int) -> bool:
    """Whether a file's mode lets group or others access it (refused for keys and tokens, as ssh does)."""
    return os.name == "posix" and bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def loose_mode_message(what: str, path: Path | str) -> str:
    """The one line that refuses a secret file others may access, with the command that fixes it."""
    return f"{what} {path} is accessible by group or others; run `chmod 600 {shlex.quote(str(path))}`"


def os_reason(e: OSError) -> str:
    """The OS's reason for a failed file operation, lower-cased ("permission denied"); a FileExistsError met
    where a directory belongs says so."""
    if isinstance(e, FileExistsError) and e.filename is not None:
        p = Path(os.fsdecode(e.filename))
        if p.exists() and not p.is_dir():  # mkdir(parents=True) met a file where a directory belongs
            return "exists and is not a directory"
    # pyarrow and friends give no strerror, but a message whose first line is the useful part
    text = e.strerror or (str(e).strip().splitlines() or [type(e).__name__])[0]
    return text[:1].lower() + text[1:]
