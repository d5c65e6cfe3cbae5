"""What every package that keeps secrets in files shares: the rule that only the owner may access them, reading
such a file, and the OS's reason for a failed file operation in the words the command line uses."""

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


class PrivateFileError(Exception):
    """A secret file that cannot be used, in one line naming the file and why. ``os_error`` is the OS's error
    when opening or reading failed; ``shared`` is set for a file group or others may access."""

    def __init__(self, message: str, path: Path, *, os_error: OSError | None = None, shared: bool = False) -> None:
        super().__init__(message)
        self.path = path
        self.os_error = os_error
        self.shared = shared


def read_private_file(path: Path, what: str, max_bytes: int) -> bytes:
    """At most ``max_bytes + 1`` bytes of a regular file only its owner may access (``what`` names it in errors:
    "the token file"), so a caller can tell a file that is too large; anything else is a PrivateFileError."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as e:
        raise PrivateFileError(f"cannot read {what} {path}: {os_reason(e)}", path, os_error=e) from None
    try:
        # fstat of the open file, not stat of the path: the file checked is the file read
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise PrivateFileError(f"{what} {path} is not a regular file", path)
        if shared_with_others(mode):
            raise PrivateFileError(loose_mode_message(what, path), path, shared=True)
        return os.read(fd, max_bytes + 1)
    except OSError as e:
        raise PrivateFileError(f"cannot read {what} {path}: {os_reason(e)}", path, os_error=e) from None
    finally:
        os.close(fd)
