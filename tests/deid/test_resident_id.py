"""GB 11643 resident IDs: validation and what an ID embeds."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from medspace.deid.resident_id import CHECK_CHARS, WEIGHTS, check_char, is_valid, parse


def _make(area: int, birth: date, seq: int) -> str:
    body = f"{area:06d}{birth:%Y%m%d}{seq:03d}"
    return body + CHECK_CHARS[sum(int(w) * int(d) for w, d in zip(WEIGHTS, body, strict=True)) % 11]


def test_published_example() -> None:
    # The example of GB 11643-1999 Annex A: 11010519491231002X (female, born 1949-12-31, Beijing Chaoyang).
    r = parse(["11010519491231002X"])
    assert r.valid.tolist() == [True]
    assert r.area.to_pylist() == ["110105"]
    assert r.birth_date.to_pylist() == [date(1949, 12, 31)]
    assert r.sex.to_pylist() == ["female"]
    assert check_char("11010519491231002") == "X"


def test_rejects_bad_check_shape_and_impossible_dates() -> None:
    good = _make(440305, date(1990, 7, 1), 17)
    wrong_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    feb31 = "440305" + "19900231" + "017"
    feb31 += CHECK_CHARS[sum(int(w) * int(d) for w, d in zip(WEIGHTS, feb31, strict=True)) % 11]
    values = [good, wrong_check, feb31, good[:17], "0" + good[1:], None, "", "44030519900701017a"]
    assert parse(values).valid.tolist() == [True, False, False, False, False, False, False, False]
    assert is_valid(good) and not is_valid(feb31)


def test_leap_day_and_lower_case_x() -> None:
    rid = "11010519491231002x"
    assert is_valid(rid)
    leap = _make(110105, date(2000, 2, 29), 2)
    assert parse([leap]).birth_date.to_pylist() == [date(2000, 2, 29)]


@given(st.integers(110000, 829999), st.dates(date(1900, 1, 1), date(2025, 12, 31)), st.integers(0, 999))
def test_round_trip(area: int, birth: date, seq: int) -> None:
    rid = _make(area, birth, seq)
    r = parse([rid])
    assert r.valid[0]
    assert r.area.to_pylist() == [f"{area:06d}"]
    assert r.birth_date.to_pylist() == [birth]
    assert r.sex.to_pylist() == ["male" if seq % 2 else "female"]


@given(st.text(max_size=20))
def test_never_raises(s: str) -> None:
    parse([s])
