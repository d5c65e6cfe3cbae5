from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medspace.model import canonical_system, code_valid, normalise_code
from medspace.model.codes import loinc_valid, verhoeff_valid
from medspace.model.errors import ValueFormatError
from medspace.model.values import parse_fhir_date, parse_fhir_datetime, parse_hl7_ts


def test_canonical_system_aliases() -> None:
    assert canonical_system("http://loinc.org") == "LOINC"
    assert canonical_system("LN") == "LOINC"
    assert canonical_system("http://snomed.info/sct") == "SNOMED"
    assert canonical_system("urn:oid:2.16.840.1.113883.6.90") == "ICD-10-CM"
    assert canonical_system("WHOATC") == "ATC"
    assert canonical_system("http://example.org/local") is None
    assert canonical_system(None) is None


@pytest.mark.parametrize(
    ("system", "code", "ok"),
    [
        ("LOINC", "4548-4", True), ("LOINC", "4548-5", False), ("LOINC", "abc", False),
        ("SNOMED", "44054006", True), ("SNOMED", "44054007", False),
        ("ICD-10", "E11.9", True), ("ICD-10", "E119", True), ("ICD-10", "U07.1", True), ("ICD-10", "11.9", False),
        ("ATC", "A10BA02", True), ("ATC", "A10BA2", False),
        ("RxNorm", "860975", True), ("RxNorm", "86O975", False),
        ("FOO", "1", False),
    ],
)
def test_code_valid(system: str, code: str, ok: bool) -> None:
    assert code_valid(system, code) is ok


def test_normalise_icd() -> None:
    assert normalise_code("ICD-10", "e119") == "E11.9"
    assert normalise_code("ICD-10", "B20") == "B20"
    assert normalise_code("ATC", "a10ba02") == "A10BA02"


@given(st.integers(min_value=1, max_value=10**9))
def test_verhoeff_detects_single_digit_change(n: int) -> None:
    # Append the check digit that makes the number valid, then any single-digit change must be caught.
    s = str(n)
    check = next(d for d in "0123456789" if verhoeff_valid(s + d))
    good = s + check
    for i in range(len(good)):
        for d in "0123456789":
            if d != good[i]:
                assert not verhoeff_valid(good[:i] + d + good[i + 1:])


@given(st.integers(min_value=1, max_value=9_999_999))
def test_loinc_has_exactly_one_check_digit(n: int) -> None:
    assert sum(loinc_valid(f"{n}-{d}") for d in range(10)) == 1


def test_dates() -> None:
    assert parse_fhir_date("2020") == date(2020, 1, 1)
    assert parse_fhir_date("2020-02-29") == date(2020, 2, 29)
    assert parse_fhir_datetime("2020-01-02T03:04:05+08:00") == datetime(2020, 1, 1, 19, 4, 5)
    assert parse_hl7_ts("20200102030405") == datetime(2020, 1, 2, 3, 4, 5)
    assert parse_hl7_ts("202001020304-0500") == datetime(2020, 1, 2, 8, 4)
    for bad in ("2020-13-01", "2021-02-29", "20-01-01", "yesterday"):
        with pytest.raises(ValueFormatError) as e:
            parse_fhir_date(bad)
        assert bad not in str(e.value)  # errors never echo the value
