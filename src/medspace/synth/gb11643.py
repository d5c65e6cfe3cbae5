"""GB 11643-1999 citizen identity numbers (the 18-character Chinese resident ID).

Layout: a 6-digit administrative area code, the 8-digit birth date (YYYYMMDD), a 3-digit
sequence number whose parity gives the sex (odd male, even female) and an ISO 7064 MOD 11-2
check character, ``"10X98765432"[sum(w_i * d_i) mod 11]``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

WEIGHTS: tuple[int, ...] = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
_W = np.array(WEIGHTS, dtype=np.int64)
_POW = 10 ** np.arange(16, -1, -1, dtype=np.int64)  # place values of the 17 body digits
_SHAPE = re.compile(r"^[1-9][0-9]{5}(18|19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9X]$")


def check_char(body: str) -> str:
    """The check character of a 17-digit body."""
    if len(body) != 17 or not body.isdigit():
        raise ValueError("a GB 11643 body is 17 digits")
    return CHECK_CHARS[sum(w * int(d) for w, d in zip(WEIGHTS, body, strict=True)) % 11]


def make(area: str | int, birth: date, seq: int) -> str:
    """A resident ID from its area code, birth date and sequence number (odd male, even female)."""
    if not 0 <= seq <= 999:
        raise ValueError("the sequence number has 3 digits")
    body = f"{int(area):06d}{birth:%Y%m%d}{seq:03d}"
    return body + check_char(body)


def is_valid(rid: str) -> bool:
    """True if a string is a well-formed resident ID with a real birth date and a correct check character."""
    if not isinstance(rid, str) or not _SHAPE.match(rid):
        return False
    try:
        date(int(rid[6:10]), int(rid[10:12]), int(rid[12:14]))
    except ValueError:
        return False
    return check_char(rid[:17]) == rid[17]


def sex_of(rid: str) -> str:
    """The administrative sex a resident ID encodes: "male" (odd sequence) or "female" (even)."""
    return "male" if int(rid[16]) % 2 else "female"


def birth_date_of(rid: str) -> date:
    """The birth date a resident ID encodes."""
    return date(int(rid[6:10]), int(rid[10:12]), int(rid[12:14]))


def bodies(areas: npt.NDArray[Any], births: npt.NDArray[Any], seqs: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    """The 17-digit bodies (as integers) of many IDs: area codes, datetime64[D] births, sequences."""
    b = births.astype("datetime64[D]")
    year = b.astype("datetime64[Y]").astype(np.int64) + 1970
    month = b.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (b - b.astype("datetime64[M]")).astype(np.int64) + 1
    ymd = year * 10_000 + month * 100 + day
    return np.asarray(areas, dtype=np.int64) * 10**11 + ymd * 1_000 + np.asarray(seqs, dtype=np.int64)


def make_many(body: npt.NDArray[np.int64]) -> list[str]:
    """Resident IDs for 17-digit bodies, check characters computed for all of them at once."""
    digits = (body[:, None] // _POW[None, :]) % 10
    checks = np.array(list(CHECK_CHARS))[(digits @ _W) % 11]
    return [f"{b:017d}{c}" for b, c in zip(body.tolist(), checks.tolist(), strict=True)]
