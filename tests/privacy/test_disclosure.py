"""Disclosure control: small cells, dominance, complementary suppression, and the LP verifier's verdict on it."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import replace

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from medspace.privacy.disclosure import (
    TOTAL,
    Axis,
    DisclosureRules,
    ProtectedTable,
    Reason,
    augment,
    feasible_intervals,
    protect_counts,
    protect_sums,
)
from medspace.privacy.errors import DisclosureError, InputError, ProtectionError, RulesError

PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reasons_at(pt: ProtectedTable, pos: tuple[int, ...]) -> set[Reason]:
    return next((set(s.reasons) for s in pt.suppressions() if s.position == pos), set())


def assert_protected(pt: ProtectedTable) -> None:
    """The verifier's verdict: every sensitive cell covers its range, no suppressed cell is pinned down."""
    audit = pt.verify()
    assert audit.ok, audit.violations
    assert not audit.determined, audit.determined


# --- primary rules ------------------------------------------------------------------------------------------


def test_small_cells_are_suppressed_zeros_and_large_cells_published() -> None:
    t = np.array([[20, 3, 15, 0], [12, 30, 9, 11], [8, 14, 25, 1], [7, 6, 10, 40]])
    pt = protect_counts(t)
    counts = pt.true_values()
    for pos in itertools.product(*(range(n) for n in pt.shape)):
        small = 0 < counts[pos] < 5
        assert (Reason.SMALL_CELL in reasons_at(pt, pos)) == small
        if small:
            assert pt.suppressed[pos]
        if counts[pos] == 0:
            assert not pt.suppressed[pos]  # true zeros are published, never used as complements
    assert pt.summary()["small_cell"] == 2
    assert_protected(pt)


def test_min_cell_is_configurable_and_margins_can_be_primary() -> None:
    t = np.array([[2, 1], [30, 40]])  # row 0 totals 3: the margin itself is a small cell
    pt = protect_counts(t, rules=DisclosureRules(min_cell=3))
    assert Reason.SMALL_CELL in reasons_at(pt, (0, 0))
    assert Reason.SMALL_CELL in reasons_at(pt, (0, 1))
    assert Reason.SMALL_CELL not in reasons_at(pt, (0, 2))  # 3 is not < 3
    pt5 = protect_counts(t)
    assert Reason.SMALL_CELL in reasons_at(pt5, (0, 2))
    assert_protected(pt)
    assert_protected(pt5)


def test_zeros_can_be_made_primary() -> None:
    t = np.array([[0, 6, 8], [10, 12, 9], [7, 11, 20]])
    pt = protect_counts(t, rules=DisclosureRules(publish_zeros=False))
    assert reasons_at(pt, (0, 0)) == {Reason.ZERO}
    low, high = pt.required_range()
    assert (low[0, 0], high[0, 0]) == (0.0, 5.0)  # an attacker cannot rule out that the cell holds 5 people
    assert_protected(pt)
    _lo, hi = feasible_intervals(pt.true_values(), pt.suppressed, np.eye(4, dtype=bool) & pt.suppressed)
    assert hi[0] >= 5


def test_hide_presence_decides_the_lower_requirement() -> None:
    t = np.array([[20, 3, 15], [12, 30, 9], [8, 14, 25]])
    strict = protect_counts(t).required_range()
    loose = protect_counts(t, rules=DisclosureRules(hide_presence=False)).required_range()
    assert (strict[0][0, 1], strict[1][0, 1]) == (3.0, 2.0)  # interval must contain [0, 5]
    assert (loose[0][0, 1], loose[1][0, 1]) == (1.0, 2.0)  # interval must contain [2, 5]
    assert_protected(protect_counts(t, rules=DisclosureRules(hide_presence=False)))


# --- complementary suppression --------------------------------------------------------------------------------


def test_primary_only_suppression_is_broken_by_subtraction_and_fixed_by_complements() -> None:
    t = np.array([[20, 3, 15], [12, 30, 9], [8, 14, 25]])
    aug = augment(t)
    naive = np.zeros(aug.shape, dtype=bool)
    naive[0, 1] = True  # suppress only the small cell: row total minus the row's other cells gives it back
    lo, hi = feasible_intervals(aug, naive)
    assert lo[0] == hi[0] == 3

    pt = protect_counts(t)
    assert pt.summary()["complementary"] >= 3
    lo, hi = feasible_intervals(pt.true_values(), pt.suppressed)
    where = list(np.flatnonzero(pt.suppressed.ravel())).index(np.ravel_multi_index((0, 1), pt.shape))
    assert lo[where] <= 0 and hi[where] >= 5
    assert_protected(pt)


def test_cheapest_cube_is_taken() -> None:
    # cubes through (0, 1): {(0,0),(2,0),(2,1)} costs 20 + 8 + 14 = 42, every other cube costs more
    t = np.array([[20, 3, 15], [12, 30, 9], [8, 14, 25]])
    pt = protect_counts(t)
    assert set(map(tuple, np.argwhere(pt.suppressed))) == {(0, 0), (0, 1), (2, 0), (2, 1)}
    cells = protect_counts(t, rules=DisclosureRules(cost="cells"))
    assert int(cells.suppressed.sum()) == 4


def test_margin_is_suppressed_when_the_line_has_no_other_cell() -> None:
    t = np.array([[3], [10], [12]])  # every row line holds one cell: its total equals it
    pt = protect_counts(t)
    mask = np.ma.getmaskarray(pt.published())
    assert mask[1, 1] and Reason.COMPLEMENTARY in reasons_at(pt, (1, 1))  # row 1's total
    assert mask[0, 1]  # row 0's total is the small cell itself
    assert_protected(pt)


def test_one_dimensional_tables() -> None:
    pt = protect_counts(np.array([3, 10, 12]))
    assert pt.published().mask.tolist() == [True, True, False, False]
    assert_protected(pt)
    lone = protect_counts(np.array([3, 0, 0]))  # the total equals the small cell and is small itself
    assert lone.published().mask.tolist() == [True, False, False, True]
    assert reasons_at(lone, (3,)) == {Reason.SMALL_CELL}
    assert_protected(lone)


def test_small_margin_needs_several_cubes() -> None:
    t = np.array([[1, 2, 0], [10, 12, 9], [7, 11, 20]])  # row 0 totals 3, made of two small cells
    pt = protect_counts(t)
    assert Reason.SMALL_CELL in reasons_at(pt, (0, 3))
    assert_protected(pt)


@st.composite
def count_tables(draw: st.DrawFn, ndim: int) -> tuple[np.ndarray, DisclosureRules]:
    side = 5 if ndim == 2 else 3
    shape = draw(st.tuples(*[st.integers(1, side)] * ndim))
    values = st.one_of(st.integers(0, 6), st.integers(0, 40))
    table = draw(hnp.arrays(np.int64, shape, elements=values))
    rules = DisclosureRules(
        min_cell=draw(st.integers(2, 6)),
        publish_zeros=draw(st.booleans()),
        hide_presence=draw(st.booleans()),
        cost=draw(st.sampled_from(["value", "cells"])),
    )
    return table, rules


@PROPERTY
@given(count_tables(2))
def test_lp_finds_no_disclosed_cell_in_random_2d_tables(case: tuple[np.ndarray, DisclosureRules]) -> None:
    table, rules = case
    pt = protect_counts(table, rules=rules)
    primary = pt.true_values()
    small = (primary > 0) & (primary < rules.min_cell)
    assert pt.suppressed[small].all()
    assert_protected(pt)


@PROPERTY
@given(count_tables(3))
def test_lp_finds_no_disclosed_cell_in_random_3d_tables(case: tuple[np.ndarray, DisclosureRules]) -> None:
    table, rules = case
    pt = protect_counts(table, rules=rules)
    assert_protected(pt)


def test_four_dimensional_table() -> None:
    rng = np.random.default_rng(7)
    pt = protect_counts(rng.poisson(4, size=(3, 2, 2, 3)))
    assert pt.summary()["small_cell"] > 0
    assert_protected(pt)


def test_same_input_same_pattern() -> None:
    rng = np.random.default_rng(3)
    t = rng.poisson(5, size=(6, 5, 3))
    a, b = protect_counts(t), protect_counts(t.copy())
    assert np.array_equal(a.suppressed, b.suppressed) and np.array_equal(a.reasons, b.reasons)


def test_long_format_row_order_does_not_matter() -> None:
    rng = np.random.default_rng(11)
    n = 400
    rows = {"site": rng.choice(["A", "B", "C", "D"], n), "age": rng.integers(0, 6, n), "sex": rng.choice(["F", "M"], n)}
    first = protect_counts(rows, by=["site", "age", "sex"])
    perm = rng.permutation(n)
    second = protect_counts({k: v[perm] for k, v in rows.items()}, by=["site", "age", "sex"])
    assert np.array_equal(first.suppressed, second.suppressed)
    assert first.axes == second.axes


# --- long format and release ------------------------------------------------------------------------------------


def test_duckdb_group_by_input_and_cube_margins() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE enc AS SELECT ['A','B','C'][1 + (i * 7) % 3] AS site, (i * 13) % 5 AS band, "
                "CASE WHEN i % 11 = 0 THEN 'X' ELSE 'Y' END AS flag FROM range(300) r(i)")
    grouped = con.sql("SELECT site, band, flag, count(*) AS n FROM enc GROUP BY ALL").to_arrow_table()
    pt = protect_counts(grouped, by=["site", "band", "flag"], count="n")
    out = pt.to_arrow()
    assert out.column_names == ["site", "band", "flag", "count", "grouping"]
    # every published value, margins included, is what DuckDB's GROUP BY CUBE gives
    cube = {(s, b, f, g): n for s, b, f, g, n in con.execute(
        "SELECT site, band, flag, grouping(site, band, flag), count(*) FROM enc GROUP BY CUBE(site, band, flag)"
    ).fetchall()}
    rows = out.to_pylist()
    assert len(rows) == 4 * 6 * 3
    for r in rows:
        key = (r["site"], r["band"], r["flag"], r["grouping"])
        if r["count"] is not None:
            assert r["count"] == cube.get(key, 0)
    assert sum(r["count"] is None for r in rows) == int(pt.suppressed.sum()) > 0
    assert_protected(pt)


def test_relation_input_and_given_categories_bring_in_empty_cells() -> None:
    con = duckdb.connect()
    rel = con.sql("SELECT * FROM (VALUES ('F', 1, 12), ('M', 1, 3), ('F', 2, 9)) t(sex, band, n)")
    pt = protect_counts(rel, by=["sex", "band"], count="n", categories={"band": [1, 2, 3]})
    assert pt.axes[1] == Axis("band", (1, 2, 3))
    assert pt.true_values()[1, 2] == 0 and not pt.suppressed[1, 2]
    assert_protected(pt)


def test_published_output_hides_values_and_reasons() -> None:
    t = np.array([[20, 3, 15], [12, 30, 9], [8, 14, 25]])
    pt = protect_counts(t, axes=[Axis("age", ("<40", "40-65", ">65")), Axis("ward", ("a", "b", "c"))])
    table = pt.to_arrow()
    assert table.column_names == ["age", "ward", "count", "grouping"]  # no reason or status column
    rows = {(r["age"], r["ward"]): r["count"] for r in table.to_pylist()}
    assert rows[("<40", "b")] is None and rows[("40-65", "b")] == 30
    assert rows[(None, None)] == 136
    masked = pt.published()
    assert masked.dtype == np.int64 and masked.mask.sum() == pt.suppressed.sum()
    report = pt.report()
    assert report["counts"]["small_cell"] == 1
    assert {"labels": ["<40", "b"], "reasons": ["small_cell"]} in report["cells"]
    assert "3" not in str(report["cells"])  # labels and reasons only, never a value
    assert pt.suppressions()[0].labels[0] == "<40"
    assert all(lb is not TOTAL for lb in pt.suppressions()[0].labels)


# --- dominance ---------------------------------------------------------------------------------------------------


def one_cell(values: Sequence[float], who: Sequence[str] | None = None,
             rules: DisclosureRules | None = None) -> ProtectedTable:
    data: dict[str, list[object]] = {"g": ["x"] * len(values), "v": list(values)}
    if who is not None:
        data["pid"] = list(who)
    return protect_sums(data, by=["g"], value="v", contributor="pid" if who else None,
                        rules=rules or DisclosureRules(min_cell=1))


def test_nk_rule_by_hand() -> None:
    pt = one_cell([50, 40, 10])  # two largest: 90 % > 85 %
    assert Reason.DOMINANCE_NK in reasons_at(pt, (0,))
    low, high = pt.required_range("sum")
    assert high[0] == pytest.approx(100 / 85 * 90 - 100)  # 5.88: the sum must look like it could be 105.88
    assert low[0] == pytest.approx(100 / 85 * 90 - 100)
    assert Reason.DOMINANCE_NK in reasons_at(pt, (1,))  # the total of a one-cell line is the same cell
    assert not one_cell([50, 30, 20]).suppressed.any()  # 80 % is fine
    assert not one_cell([50, 35, 15]).suppressed.any()  # exactly 85 % is not more than 85 %
    three = one_cell([50, 30, 15, 5], rules=DisclosureRules(min_cell=1, nk=(3, 90.0)))
    assert Reason.DOMINANCE_NK in reasons_at(three, (0,))  # 95 % > 90 %


def test_p_percent_rule_by_hand() -> None:
    rules = DisclosureRules(min_cell=1, nk=None, p_percent=10.0)
    pt = one_cell([80, 15, 5], rules=rules)  # the rest (5) is within 10 % of the largest (8)
    assert reasons_at(pt, (0,)) == {Reason.P_PERCENT}
    assert pt.required_range("sum")[1][0] == pytest.approx(0.10 * 80 - 5)
    assert not one_cell([50, 40, 10], rules=rules).suppressed.any()  # rest 10 >= 5


def test_contributions_add_up_per_contributor() -> None:
    values = [30, 30, 30, 5, 2, 1, 1, 1]
    who = ["a", "a", "a", "b", "c", "d", "e", "f"]
    assert not one_cell(values, rules=DisclosureRules()).suppressed.any()  # per row the top two hold 60 %
    per_patient = one_cell(values, who, rules=DisclosureRules())  # patient a alone holds 90 %
    assert Reason.DOMINANCE_NK in reasons_at(per_patient, (0,))
    assert per_patient.true_values("count")[0] == 6  # contributors, not rows


def test_dominance_matches_a_direct_computation() -> None:
    rng = np.random.default_rng(5)
    n = 300
    data = {"a": rng.integers(0, 3, n), "b": rng.integers(0, 4, n), "pid": rng.integers(0, 60, n),
            "v": np.round(rng.lognormal(1, 1.5, n), 2)}
    rules = DisclosureRules(min_cell=1, nk=(2, 70.0), p_percent=20.0)
    pt = protect_sums(data, by=["a", "b"], value="v", contributor="pid", rules=rules)
    for pos in itertools.product(range(4), range(5)):
        sel = np.ones(n, dtype=bool)
        for axis, i in zip(("a", "b"), pos, strict=True):
            if i < len(pt.axes[("a", "b").index(axis)]):
                sel &= data[axis] == i
        per: dict[int, float] = {}
        for p, v in zip(data["pid"][sel], data["v"][sel], strict=True):
            per[int(p)] = per.get(int(p), 0.0) + float(v)
        top = [*sorted(per.values(), reverse=True), 0.0, 0.0]
        total = sum(per.values())
        assert pt.true_values("sum")[pos] == pytest.approx(total)
        got = reasons_at(pt, pos)
        assert (Reason.DOMINANCE_NK in got) == (top[0] + top[1] > 0.70 * total + 1e-9), pos
        assert (Reason.P_PERCENT in got) == (total - top[0] - top[1] < 0.20 * top[0] - 1e-9 and total > 0), pos
    assert pt.verify().ok


def test_sum_table_with_few_contributors_and_means() -> None:
    data = {"ward": ["a"] * 3 + ["b"] * 8 + ["c"] * 9, "sex": ["F", "M", "F"] + ["F", "M"] * 4 + ["F", "M", "F"] * 3,
            "cost": [10.0, 12.0, 11.0] + [10.0, 9.0] * 4 + [8.0, 12.0, 10.0] * 3}
    pt = protect_sums(data, by=["ward", "sex"], value="cost")
    assert Reason.SMALL_CELL in reasons_at(pt, (0, 0))  # two contributors
    _low, high = pt.required_range("sum")
    assert high[0, 0] == pytest.approx(0.30 * 21.0)  # threshold_pct of the cell's value
    assert pt.required_range("count")[1][0, 0] == 3  # and its count must look like it could be 5
    out = pt.to_arrow()
    assert out.column_names == ["ward", "sex", "count", "sum", "mean", "grouping"]
    assert pt.to_arrow(layers=["sum"]).column_names == ["ward", "sex", "sum", "grouping"]
    for r in out.to_pylist():
        assert (r["mean"] is None) == (r["sum"] is None)
        if r["mean"] is not None:
            assert r["mean"] == pytest.approx(r["sum"] / r["count"])
    assert_protected(pt)


@PROPERTY
@given(st.data())
def test_lp_finds_no_disclosed_sum_cell(data: st.DataObject) -> None:
    n = data.draw(st.integers(0, 60))
    cols = {
        "a": data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 3))),
        "b": data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, 2))),
        "v": data.draw(hnp.arrays(np.float64, n, elements=st.sampled_from([0.0, 1.0, 2.5, 10.0, 80.0, 400.0]))),
    }
    rules = DisclosureRules(min_cell=data.draw(st.integers(1, 5)),
                            p_percent=data.draw(st.sampled_from([None, 10.0])))
    pt = protect_sums(cols, by=["a", "b"], value="v", rules=rules)
    audit = pt.verify()
    assert audit.ok, audit.violations
    assert not [c for c in audit.determined if c.layer == "count"]


# --- edges and errors -----------------------------------------------------------------------------------------------


def test_empty_and_zero_dimensional_tables() -> None:
    empty = protect_counts({"a": pa.array([], pa.string())}, by=["a"])
    assert empty.shape == (1,) and not empty.suppressed.any()
    assert empty.to_arrow().column("a").type == pa.string()
    total = protect_counts({"n": [3]}, by=[], count="n")
    assert total.suppressed.tolist() is True  # a lone small total is suppressed; nothing can complement it
    audit = total.verify()
    assert audit.ok and audit.intervals[0].high == float("inf")
    assert total.to_arrow().to_pylist() == [{"count": None, "grouping": 0}]
    assert protect_sums({"v": pa.array([], pa.float64()), "g": pa.array([], pa.int64())}, by=["g"],
                        value="v").shape == (1,)


def test_all_zero_and_all_large_tables() -> None:
    assert not protect_counts(np.zeros((3, 3), dtype=np.int64)).suppressed.any()
    assert not protect_counts(np.full((3, 4), 9)).suppressed.any()
    hidden = protect_counts(np.zeros((2, 2), dtype=np.int64), rules=DisclosureRules(publish_zeros=False))
    assert hidden.suppressed.all()  # nothing published: every cell could hold min_cell people
    assert_protected(hidden)


def test_errors_never_echo_values() -> None:
    with pytest.raises(RulesError, match="min_cell"):
        DisclosureRules(min_cell=0)
    with pytest.raises(RulesError):
        DisclosureRules(nk=(2, 120.0))
    with pytest.raises(InputError) as bad:
        protect_counts({"diag": ["B20", "C50"], "n": [4, -7]}, by=["diag"], count="n")
    assert "-7" not in str(bad.value) and "'n'" in str(bad.value)
    with pytest.raises(InputError) as outside:
        protect_counts({"diag": ["B20", "Z99"]}, by=["diag"], categories={"diag": ["B20"]})
    assert "Z99" not in str(outside.value) and "1 rows" in str(outside.value)
    with pytest.raises(InputError):
        protect_sums({"g": [1, 2], "v": [1.0, None]}, by=["g"], value="v")
    with pytest.raises(InputError):
        protect_counts(np.array([[1.5, 2.0]]))
    with pytest.raises(InputError):
        protect_counts({"g": [1]}, by=["nope"])
    assert issubclass(ProtectionError, DisclosureError) and issubclass(InputError, DisclosureError)


def test_verifier_flags_a_narrow_interval_that_is_not_a_point() -> None:
    rows: dict[str, list[object]] = {"a": [], "b": [], "v": []}
    for (a, b), values in {(0, 0): [90.0, 5.0, 5.0, 0.0, 0.0], (0, 1): [1.0] * 6,
                           (1, 0): [10.0] * 6, (1, 1): [10.0] * 6}.items():
        rows["a"] += [a] * len(values)
        rows["b"] += [b] * len(values)
        rows["v"] += values
    pt = protect_sums(rows, by=["a", "b"], value="v")
    assert reasons_at(pt, (0, 0)) == {Reason.DOMINANCE_NK}
    assert_protected(pt)
    weak = np.zeros(pt.shape, dtype=bool)
    weak[:2, :2] = True  # the 2x2 cube: (0, 1) holds only 6, far from the 11.76 needed above 100
    audit = replace(pt, suppressed=weak).verify()
    bad = [c for c in audit.violations if c.layer == "sum"]
    assert [c.position for c in bad] == [(0, 0)]
    assert bad[0].high == pytest.approx(106.0) and not bad[0].determined


def test_fast_and_exact_verification_agree() -> None:
    rng = np.random.default_rng(13)
    for shape in [(6, 5), (4, 4, 3)]:
        table = rng.poisson(5, size=shape)
        pt = protect_counts(table)
        weak = replace(pt, suppressed=pt.reasons.astype(bool) & ((pt.reasons & 16) == 0))  # primaries only
        for candidate in (pt, weak):
            fast, exact = candidate.verify(), candidate.verify(exact=True)
            assert all(c.exact for c in exact.intervals)
            assert [c.position for c in fast.violations] == [c.position for c in exact.violations]
            assert [c.position for c in fast.determined] == [c.position for c in exact.determined]
            for f, e in zip(fast.intervals, exact.intervals, strict=True):
                assert e.low - 1e-6 <= f.low and f.high <= e.high + 1e-6  # fast intervals are inner bounds
        assert not weak.verify().ok
