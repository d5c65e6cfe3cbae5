"""Parsing of the values connectors meet: dates and times in FHIR, HL7 v2 and CSV forms, numbers."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from medspace.model.errors import ValueFormatError

# ASCII digits only (`\d` would take any Unicode digit), and fullmatch, so that no trailing newline slips
# through.
_FHIR_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", re.ASCII)
_FHIR_DT = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?", re.ASCII
)
_HL7_TS = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?", re.ASCII)


def parse_fhir_date(text: str) -> date:
    """A FHIR `date` (YYYY, YYYY-MM or YYYY-MM-DD; partial dates take the first day) or the date part
    of a `dateTime`."""
    if not isinstance(text, str):
        raise ValueFormatError(f"expected a date string, got {type(text).__name__}")
    if "T" in text:
        return parse_fhir_datetime(text).date()
    m = _FHIR_DATE.fullmatch(text)
    if not m:
        raise ValueFormatError("not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)")
    try:
        return date(int(m.group(1)), int(m.group(2) or 1), int(m.group(3) or 1))
    except ValueError as e:
        raise ValueFormatError(f"impossible date: {e}") from None


def parse_fhir_datetime(text: str) -> datetime:
    """A FHIR `dateTime` or `instant` as a naive UTC datetime (a bare date means its midnight)."""
    if not isinstance(text, str):
        raise ValueFormatError(f"expected a dateTime string, got {type(text).__name__}")
    if len(text) >= 16 and text[10:11] == "T" and text[4:5] == "-":
        # Fast path (C parser) for the common full form; FHIR's partial forms take the regex below.
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            off = dt.utcoffset()
            if not off:
                return dt.replace(tzinfo=None)
            try:
                return dt.replace(tzinfo=None) - off
            except OverflowError:
                raise ValueFormatError("dateTime out of range in UTC") from None
    m = _FHIR_DT.fullmatch(text)
    if not m:
        if "T" in text:
            # Not a partial date either: handing it to parse_fhir_date would come straight back here.
            raise ValueFormatError("not a FHIR dateTime (YYYY-MM-DDThh:mm[:ss[.fff]][Z|+hh:mm])")
        return datetime.combine(parse_fhir_date(text), datetime.min.time())
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0),
                      int(float(frac) * 1_000_000) if frac else 0)
    except ValueError as e:
        raise ValueFormatError(f"impossible dateTime: {e}") from None
    return _to_utc(dt, tz)


def _to_utc(dt: datetime, tz: str | None) -> datetime:
    if not tz or tz == "Z":
        return dt
    sign = 1 if tz[0] == "+" else -1
    try:
        return dt - sign * timedelta(hours=int(tz[1:3]), minutes=int(tz[-2:]))
    except OverflowError:
        # 0001-01-01T00:00+14:00 is a valid local time whose UTC instant the datetime type cannot hold.
        raise ValueFormatError("date/time out of range in UTC") from None


def parse_hl7_ts(text: str) -> datetime:
    """An HL7 v2 DTM/TS value (YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]) as a naive UTC datetime."""
    m = _HL7_TS.fullmatch(text.strip())
    if not m:
        raise ValueFormatError("not an HL7 timestamp (YYYY[MM[DD[HHMM[SS]]]][+ZZZZ])")
    y, mo, d, h, mi, s, frac, tz = m.groups()
    try:
        dt = datetime(int(y), int(mo or 1), int(d or 1), int(h or 0), int(mi or 0), int(s or 0),
                      int(float(frac) * 1_000_000) if frac else 0)
    except ValueError as e:
        raise ValueFormatError(f"impossible HL7 timestamp: {e}") from None
    if tz:
        tz = f"{tz[:3]}:{tz[3:]}"
    return _to_utc(dt, tz)


def parse_hl7_date(text: str) -> date:
    """An HL7 v2 DT value (or the date part of a TS)."""
    return parse_hl7_ts(text).date()


def parse_float(text: object) -> float:
    """A number from a JSON number or a decimal string."""
    if isinstance(text, bool):
        raise ValueFormatError("expected a number, got a boolean")
    if isinstance(text, int | float):
        return float(text)
    if isinstance(text, str):
        try:
            return float(text.strip())
        except ValueError:
            pass
    raise ValueFormatError(f"not a number (got {type(text).__name__})")
