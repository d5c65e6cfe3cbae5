"""Value parsers: any string either parses or raises ValueFormatError (never RecursionError, OverflowError...)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from medspace.model.errors import ValueFormatError
from medspace.model.values import (
    parse_fhir_date,
    parse_fhir_datetime,
    parse_float,
    parse_hl7_date,
    parse_hl7_ts,
)

PARSERS: list[Callable[[str], Any]] = [parse_fhir_date, parse_fhir_datetime, parse_hl7_ts, parse_hl7_date,
                                       parse_float]

# Strings built from the characters dates are made of, so that near-misses are tried, not just noise.
date_like = st.text(alphabet="0123456789-T:+Z.  \n٣", max_size=32)
fhir_shaped = st.builds(
    lambda y, mo, d, rest: f"{y:04d}-{mo:02d}-{d:02d}{rest}",
    st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32),
    st.sampled_from(["", "T", "T10", "T10:", "T10:00", "T25:00", "T10:00:00", "T10:00:00.5", "T10:00:00Z",
                     "T10:00:00+14:00", "T00:00:00-14:00", "T10:00:00+0800", "T10:00:00.123456789+05:30", "X"]),
)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40) | date_like | fhir_shaped)
@example("2024-01-01T10")
@example("2024-01-01T")
@example("T")
@example("0001-01-01T00:00:00+14:00")
@example("9999-12-31T23:59:59-14:00")
@example("0001-01-01T00:00+14:00")
@example("00010101000000+1400")
@example("99991231235959-1400")
def test_any_string_parses_or_raises_value_format_error(text: str) -> None:
    for parse in PARSERS:
        try:
            parse(text)
        except ValueFormatError as e:
            if len(text) >= 6 and any(c.isdigit() for c in text):
                assert text not in str(e)  # errors never echo the value


def test_the_t_without_a_time_no_longer_recurses() -> None:
    for bad in ("2024-01-01T10", "2024-01-01T", "2024-01T10:00", "2024-01-01T10:00:61", "T"):
        with pytest.raises(ValueFormatError):
            parse_fhir_date(bad)
        with pytest.raises(ValueFormatError):
            parse_fhir_datetime(bad)


def test_valid_forms_still_parse() -> None:
    assert parse_fhir_date("2024") == date(2024, 1, 1)
    assert parse_fhir_date("2024-02") == date(2024, 2, 1)
    assert parse_fhir_datetime("2024-02-29") == datetime(2024, 2, 29)
    assert parse_fhir_datetime("2024-01-01T10:00Z") == datetime(2024, 1, 1, 10, 0)
    assert parse_fhir_datetime("2024-01-01T10:00:00.25-02:00") == datetime(2024, 1, 1, 12, 0, 0, 250000)
    assert parse_fhir_date("2024-01-01T01:00:00+08:00") == date(2023, 12, 31)  # the UTC date
    assert parse_hl7_ts("2024") == datetime(2024, 1, 1)


def test_out_of_range_in_utc_is_a_format_error_not_an_overflow() -> None:
    for bad in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00+01:00"):
        with pytest.raises(ValueFormatError):
            parse_fhir_datetime(bad)
    with pytest.raises(ValueFormatError):
        parse_hl7_ts("00010101000000+1400")


def test_non_ascii_digits_and_trailing_newlines_are_refused() -> None:
    for bad in ("٢٠٢٤-01-01", "2024-01-01\n", "2024-01-01T10:00:00Z\n"):
        with pytest.raises(ValueFormatError):
            parse_fhir_datetime(bad)
    with pytest.raises(ValueFormatError):
        parse_hl7_ts("٢٠٢٤0101")
