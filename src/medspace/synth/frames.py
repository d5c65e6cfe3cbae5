"""Column frames: the generator's in-memory tables, one numpy array per column, and their formatting.

A frame is a dict of equal-length arrays. Model fields keep the model's names; internal columns
start with an underscore (`_p` is the patient's position, `_enc` the encounter's, -1 for none).
Missing values are None (object arrays), NaN (floats) or NaT (dates and timestamps).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

Arr = npt.NDArray[Any]
Frame = dict[str, Arr]


def obj(items: list[Any] | tuple[Any, ...]) -> Arr:
    """An object array holding exactly these items (no nested-sequence guessing)."""
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


def pick(rng: np.random.Generator, weights: list[float] | tuple[float, ...] | Arr, n: int) -> Arr:
    """n draws of indices with the given (unnormalised) weights."""
    w = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(w), size=n, p=w / w.sum())


def take(frame: Frame, idx: Arr) -> Frame:
    """The rows at the given positions (or boolean mask)."""
    return {k: v[idx] for k, v in frame.items()}


def concat(blocks: list[Frame]) -> Frame:
    """Blocks with the same columns, one after the other."""
    if not blocks:
        return {}
    keys = list(blocks[0])
    return {k: np.concatenate([b[k] for b in blocks]) for k in keys}


def sort_by_patient(frame: Frame) -> Frame:
    """The frame ordered by patient, keeping the order of each patient's rows."""
    if not frame:
        return frame
    return take(frame, np.argsort(frame["_p"], kind="stable"))


def texts(col: Arr) -> list[Any]:
    """A column as Python values, NaN floats as None."""
    if col.dtype.kind == "f":
        return [None if v != v else v for v in col.tolist()]
    return list(col.tolist())


def iso_dates(col: Arr) -> list[str | None]:
    """Dates as YYYY-MM-DD strings (None where NaT)."""
    s = np.datetime_as_string(col.astype("datetime64[D]"), unit="D")
    return [None if v == "NaT" else v for v in s.tolist()]


def iso_datetimes(col: Arr, tz: str) -> list[str | None]:
    """Timestamps as FHIR dateTimes with the hospital's UTC offset (None where NaT)."""
    s = np.datetime_as_string(col.astype("datetime64[s]"), unit="s")
    return [None if v == "NaT" else v + tz for v in s.tolist()]


def hl7_timestamps(col: Arr, tz: str) -> list[str]:
    """Timestamps as HL7 v2 DTM values YYYYMMDDHHMMSS+ZZZZ ("" where NaT)."""
    s = np.datetime_as_string(col.astype("datetime64[s]"), unit="s")
    z = tz.replace(":", "")
    return ["" if v == "NaT" else f"{v[:4]}{v[5:7]}{v[8:10]}{v[11:13]}{v[14:16]}{v[17:19]}{z}" for v in s.tolist()]


def hl7_dates(col: Arr) -> list[str]:
    """Dates as HL7 v2 DT values YYYYMMDD ("" where NaT)."""
    s = np.datetime_as_string(col.astype("datetime64[D]"), unit="D")
    return ["" if v == "NaT" else v.replace("-", "") for v in s.tolist()]
