"""Generalisation hierarchies: builders, coarsening, encoding, coverage errors that never show a value."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.deid.errors import HierarchyError
from medspace.deid.hierarchy import (
    ICD10,
    ICD10_CHAPTERS,
    Dates,
    Hierarchy,
    Intervals,
    Prefix,
    Suppress,
    Table,
    fit_all,
    spec_from_options,
)


def labels(h: Hierarchy) -> list[list[str | None]]:
    return [h.labels_at(lvl).to_pylist() for lvl in range(h.levels)]


def test_intervals_nest_and_top_code_at_every_level() -> None:
    h = Intervals((5, 10, 20), top=90).fit("age", pa.array([3, 17, 34, 89, 90, 95, None, 42]))
    assert h.levels == 5
    ages = [3, 17, 34, 89, 90, 95, 42]
    assert h.generalise(ages, 0).to_pylist() == ["3", "17", "34", "89", "90+", "90+", "42"]
    assert h.generalise(ages, 1).to_pylist() == ["0-4", "15-19", "30-34", "85-89", "90+", "90+", "40-44"]
    assert h.generalise(ages, 2).to_pylist() == ["0-9", "10-19", "30-39", "80-89", "90+", "90+", "40-49"]
    # the 20-year bin 80-99 is cut at the top code
    assert h.generalise(ages, 3).to_pylist() == ["0-19", "0-19", "20-39", "80-89", "90+", "90+", "40-59"]
    assert set(h.generalise(ages, 4).to_pylist()) == {"*"}
    # null is an "unknown" class below the top and joins everyone at the top
    assert h.generalise([None], 2).to_pylist() == [None]
    assert h.generalise([None], 4).to_pylist() == ["*"]


def test_intervals_for_reals_and_negative_numbers() -> None:
    h = Intervals((0.5, 1.0)).fit("x", np.array([-0.2, 0.3, 0.7, 1.4]))
    assert h.generalise([-0.2, 0.3, 0.7, 1.4], 1).to_pylist() == ["[-0.5, 0)", "[0, 0.5)", "[0.5, 1)", "[1, 1.5)"]
    assert h.generalise([-0.2, 0.7], 2).to_pylist() == ["[-1, 0)", "[0, 1)"]


@pytest.mark.parametrize("widths", [(10, 5), (5, 12), (0, 5), (-5,)])
def test_intervals_refuse_widths_that_do_not_nest(widths: tuple[int, ...]) -> None:
    with pytest.raises(HierarchyError):
        Intervals(widths)


def test_intervals_refuse_text() -> None:
    with pytest.raises(HierarchyError, match="age"):
        Intervals().fit("age", ["thirty"])


def test_dates_from_date32_iso_text_and_timestamps() -> None:
    spec = Dates(("month", "quarter", "year", "5-year", "decade"))
    days = pa.array([dt.date(2020, 3, 5), dt.date(2019, 12, 31), None])
    h = spec.fit("admitted", days)
    assert labels(h)[1:] == [["2019-12", "2020-03", None], ["2019-Q4", "2020-Q1", None], ["2019", "2020", None],
                             ["2015-2019", "2020-2024", None], ["2010-2019", "2020-2029", None], ["*"]]
    assert h.generalise(["2020-03-05"], 1).to_pylist() == ["2020-03"]
    stamps = pa.array([dt.datetime(2020, 3, 5, 23, 59), dt.datetime(2019, 12, 31, 1, 0)])
    assert h.generalise(stamps, 3).to_pylist() == ["2020", "2019"]
    assert spec.fit("t", stamps).labels_at(0).to_pylist() == ["2019-12-31", "2020-03-05"]


def test_dates_refuse_bad_text_without_showing_it() -> None:
    with pytest.raises(HierarchyError) as e:
        Dates().fit("birth_date", ["2020-13-45"])
    assert "2020-13-45" not in str(e.value) and "birth_date" in str(e.value)
    with pytest.raises(HierarchyError):
        Dates(("year", "month"))


def test_prefix_area_codes_and_zip() -> None:
    h = Prefix((6, 4, 2, 0)).fit("area", ["110101", "110102", "310115", None])
    assert labels(h) == [["110101", "110102", "310115", None], ["1101**", "3101**", None], ["11****", "31****", None],
                         ["*"]]
    z = Prefix((5, 3, 0)).fit("zip", ["02139", "02141", "9410"])
    assert z.generalise(["02139", "02141", "9410"], 1).to_pylist() == ["021**", "021**", "941*"]
    with pytest.raises(HierarchyError):
        Prefix((4, 4, 0))


def test_icd10_categories_and_chapter_boundaries() -> None:
    codes = ["A00.0", "B99", "C00.1", "D48.9", "D49.2", "D50.0", "E11.9", "e119", "H59.8", "H60.0", "U07.1", "V01.0",
             "Y98", "Z00.0", "C7A.0", "S72.0", "T98.3"]
    h = ICD10().fit("diagnosis", codes)
    assert h.levels == 4
    chapters = [lab.split(":")[0] for lab in h.generalise(codes, 2).to_pylist()]
    assert chapters == ["I", "I", "II", "II", "II", "III", "IV", "IV", "VII", "VIII", "XXII", "XX", "XX", "XXI", "II",
                        "XIX", "XIX"]
    assert h.generalise(["E11.9", "e119"], 1).to_pylist() == ["E11", "E11"]
    assert len({roman for _, _, roman in ICD10_CHAPTERS}) == 22


def test_icd10_refuses_non_codes_without_showing_them() -> None:
    with pytest.raises(HierarchyError) as e:
        ICD10().fit("diagnosis", ["E11.9", "diabetes"])
    assert "diabetes" not in str(e.value) and "1 distinct" in str(e.value)


def test_table_from_arx_csv_and_coverage() -> None:
    spec = Table.from_csv("Male;*\nFemale;*\n")
    h = spec.fit("sex", ["Male", "Female", "Male"])
    np.testing.assert_array_equal(h.encode(np.array(["Female", "Male"])), [1, 0])
    with pytest.raises(HierarchyError) as e:
        h.encode(["Male", "Unknown", "Unknown"])
    assert "Unknown" not in str(e.value)
    assert "sex" in str(e.value) and "1 distinct" in str(e.value) and "2 row" in str(e.value)


def test_table_must_coarsen_level_by_level() -> None:
    with pytest.raises(HierarchyError, match="not a coarsening"):
        Table((("a", "x", "p"), ("b", "x", "q"))).fit("attr")
    with pytest.raises(HierarchyError, match="different numbers of levels"):
        Table((("a", "x"), ("b", "x", "*")))
    with pytest.raises(HierarchyError, match="not distinct"):
        Table((("a", "x"), ("a", "y"))).fit("attr")


def test_table_reads_numbers_as_text() -> None:
    h = Table((("39", "35-39", "*"), ("40", "40-44", "*"))).fit("age")
    assert h.generalise(np.array([39, 40]), 1).to_pylist() == ["35-39", "40-44"]


def test_suppress_and_encoding_of_arrow_inputs() -> None:
    col = pa.chunked_array([["b", "a"], ["b", None]])
    h = Suppress().fit("marital_status", col)
    assert labels(h) == [["a", "b", None], ["*"]]
    np.testing.assert_array_equal(h.encode(col), [1, 0, 1, 2])
    dictionary = pa.array(["a", "b", "a"]).dictionary_encode()
    np.testing.assert_array_equal(h.encode(dictionary), [0, 1, 0])
    assert h.map(0, 1).tolist() == [0, 0, 0]


def test_level_checks() -> None:
    h = Suppress().fit("x", ["a"])
    with pytest.raises(HierarchyError):
        h.labels_at(2)
    with pytest.raises(HierarchyError):
        h.map(1, 0)


def test_spec_from_options_matches_policy_files() -> None:
    assert spec_from_options("intervals", {"widths": [5, 10, 20], "top": 90}) == Intervals((5, 10, 20), 90)
    assert spec_from_options("prefix", {"keep": [6, 4, 2, 0]}) == Prefix((6, 4, 2, 0))
    assert spec_from_options("dates", {"levels": ["month", "year"]}) == Dates(("month", "year"))
    assert isinstance(spec_from_options("icd10", {}), ICD10)
    assert isinstance(spec_from_options("suppress", {}), Suppress)
    assert spec_from_options("table", {"rows": [["a", "*"]]}) == Table((("a", "*"),))
    with pytest.raises(HierarchyError, match="takes no option 'width'"):
        spec_from_options("intervals", {"width": 5})
    with pytest.raises(HierarchyError, match="unknown hierarchy"):
        spec_from_options("ranges", {})
    with pytest.raises(HierarchyError, match="needs keep"):
        spec_from_options("prefix", {})
    with pytest.raises(HierarchyError):
        spec_from_options("table", {})


def test_table_spec_from_file(tmp_path: object) -> None:
    from pathlib import Path
    p = Path(str(tmp_path)) / "h.csv"
    p.write_text("White,*\nBlack,*\n", "utf-8")
    h = spec_from_options("table", {"file": str(p), "delimiter": ","}).fit("race", ["Black"])
    assert h.generalise(["White"], 1).to_pylist() == ["*"]


def test_fit_all_passes_hierarchies_through() -> None:
    t = pa.table({"age": [30, 41], "sex": ["F", "M"]})
    h_sex = Suppress().fit("sex", t["sex"])
    out = fit_all(t, {"age": Intervals(), "sex": h_sex})
    assert out["sex"] is h_sex and out["age"].levels == 5
    with pytest.raises(HierarchyError):
        fit_all(t, {"zip": Suppress()})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-50, 400)), min_size=1, max_size=80),
       st.sampled_from([(1,), (5, 10, 20), (3, 6), (2, 4, 8, 16)]), st.one_of(st.none(), st.integers(0, 300)))
def test_intervals_property_every_level_coarsens_and_encodes_back(values: list[int | None], widths: tuple[int, ...],
                                                                 top: int | None) -> None:
    h = Intervals(widths, top).fit("v", pa.array(values, pa.int64()))
    codes = h.encode(pa.array(values, pa.int64()))
    assert h.values.take(pa.array(codes)).to_pylist() == values
    for lvl in range(1, h.levels):
        lower = h.generalise(pa.array(values, pa.int64()), lvl - 1).to_pylist()
        upper = h.generalise(pa.array(values, pa.int64()), lvl).to_pylist()
        seen: dict[object, set[object]] = defaultdict(set)
        for a, b in zip(lower, upper, strict=True):
            seen[a].add(b)
        assert all(len(v) == 1 for v in seen.values())  # a class never splits going up
    assert set(h.generalise(pa.array(values, pa.int64()), h.top).to_pylist()) == {"*"}
    for v, lab in zip(values, h.generalise(pa.array(values, pa.int64()), 1).to_pylist(), strict=True):
        if v is None:
            assert lab is None
        elif top is not None and v >= top:
            assert lab == f"{top}+"
        else:
            lo = v // widths[0] * widths[0]
            assert lab == f"{lo}-{min(lo + widths[0], top if top is not None else lo + widths[0]) - 1}"
