"""Enforcement: the lattice search reaches the model, stays within the suppression limit and is optimal."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.deid import adult
from medspace.deid.anonymity import PrivacyModel, encode_sensitive, measure
from medspace.deid.errors import AnonymityError
from medspace.deid.hierarchy import Hierarchy, Intervals, Prefix, Suppress, fit_all
from medspace.deid.lattice import enforce


def brute_force(table: pa.Table, hs: dict[str, Hierarchy], model: PrivacyModel, metric: str
                ) -> tuple[tuple[float, ...], tuple[int, ...]] | None:
    """The optimum found by generalising the raw rows at every node and measuring each class directly."""
    n = table.num_rows
    allowed = int(np.floor(model.max_suppression * n + 1e-9))
    names = list(hs)
    sens = None
    if model.uses_sensitive:
        sv, m, ordered = encode_sensitive(table[model.sensitive].combine_chunks(), model.t_distance)
        overall = np.bincount(sv, minlength=m) / n
        sens = sv.tolist()
    base = {q: hs[q].encode(table[q]) for q in names}
    best = None
    for node in itertools.product(*[range(hs[q].levels) for q in names]):
        keys = list(zip(*[hs[q].codes_at(lvl)[base[q]].tolist() for q, lvl in zip(names, node, strict=True)],
                        strict=True))
        members: dict[tuple[int, ...], list[int]] = {}
        for i, key in enumerate(keys):
            members.setdefault(key, []).append(i)
        suppressed, kept_sq = 0, 0.0
        for rows in members.values():
            fail = len(rows) < model.k
            if sens is not None:
                vals = [sens[i] for i in rows]
                counts = np.bincount(vals, minlength=m)
                nz = counts[counts > 0]
                if model.l is not None:
                    if model.l_variant == "distinct":
                        fail |= len(nz) < model.l
                    elif model.l_variant == "entropy":
                        p = nz / len(rows)
                        fail |= -(p * np.log(p)).sum() < np.log(model.l) - 1e-12
                    else:
                        r = np.sort(nz)[::-1]
                        fail |= not r[0] < (model.c or 0) * r[model.l - 1:].sum()
                if model.t is not None:
                    q = counts / len(rows)
                    if ordered and m > 1:
                        emd = np.abs(np.cumsum(q - overall)[:-1]).sum() / (m - 1)
                    else:
                        emd = 0.5 * np.abs(q - overall).sum()
                    fail |= emd > model.t + 1e-12
            if fail:
                suppressed += len(rows)
            else:
                kept_sq += len(rows) ** 2
        if suppressed > allowed:
            continue
        loss = sum(lvl / max(hs[q].top, 1) for q, lvl in zip(names, node, strict=True)) / len(names)
        score = (round(loss, 12), suppressed) if metric == "loss" else (kept_sq + suppressed * n,)
        if best is None or score < best[0]:
            best = (score, node)
    return best


def small_table(rng: np.random.Generator, n: int) -> pa.Table:
    return pa.table({"age": rng.integers(0, 60, n), "sex": rng.choice(["F", "M", "X"], n, p=[0.5, 0.45, 0.05]),
                     "zip": [f"{z:04d}" for z in rng.integers(0, 40, n)], "s": rng.integers(0, 6, n)})


SPECS = {"age": Intervals((5, 10, 20)), "sex": Suppress(), "zip": Prefix((4, 2, 0))}
MODELS = [
    lambda r: PrivacyModel(k=int(r.integers(2, 6)), max_suppression=float(r.choice([0.0, 0.05, 0.2]))),
    lambda r: PrivacyModel(k=int(r.integers(2, 4)), l=2, sensitive="s", max_suppression=float(r.choice([0.0, 0.1]))),
    lambda r: PrivacyModel(k=2, l=2, l_variant="entropy", sensitive="s", max_suppression=float(r.choice([0.0, 0.1]))),
    lambda r: PrivacyModel(k=2, l=2, l_variant="recursive", c=2.0, sensitive="s",
                           max_suppression=float(r.choice([0.0, 0.1]))),
    lambda r: PrivacyModel(k=2, t=float(r.choice([0.25, 0.45])), sensitive="s",
                           max_suppression=float(r.choice([0.0, 0.1]))),
]


@pytest.mark.parametrize("seed", range(30))
def test_search_is_optimal_against_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = small_table(rng, int(rng.integers(5, 160)))
    hs = fit_all(t, SPECS)
    model = MODELS[seed % len(MODELS)](rng)
    metric = "loss" if seed % 3 else "discernibility"
    best = brute_force(t, hs, model, metric)
    if best is None:
        with pytest.raises(AnonymityError):
            enforce(t, hs, model, metric=metric)  # type: ignore[arg-type]
        return
    r = enforce(t, hs, model, metric=metric, suppressed="star")  # type: ignore[arg-type]
    got = (round(r.loss, 12), r.suppressed_rows) if metric == "loss" else (r.discernibility,)
    assert got == pytest.approx(best[0])
    assert r.nodes_evaluated <= r.nodes_in_lattice == 5 * 2 * 3
    m = measure(r.table, list(hs), "s", c=model.c, t_distance=model.t_distance, exclude=r.suppressed)
    assert m.satisfies(model)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 150), st.integers(2, 8), st.sampled_from([0.0, 0.02, 0.1, 0.3]),
       st.sampled_from([None, 2, 3]))
def test_enforcement_reaches_k_and_l_within_the_limit_or_says_why(seed: int, n: int, k: int, sup: float,
                                                                 ell: int | None) -> None:
    rng = np.random.default_rng(seed)
    t = small_table(rng, n)
    model = PrivacyModel(k=k, l=ell, sensitive="s" if ell else None, max_suppression=sup)
    try:
        r = enforce(t, SPECS, model)
    except AnonymityError as e:
        assert "of rows" in str(e) and "suppression limit" in str(e)
        assert brute_force(t, fit_all(t, SPECS), model, "loss") is None
        return
    assert r.suppressed_rows <= sup * n + 1e-9
    assert r.table is not None and r.table.num_rows == n - r.suppressed_rows
    m = measure(r.table, ["age", "sex", "zip"], "s")
    assert m.rows == 0 or m.k >= k
    if ell:
        assert m.rows == 0 or (m.l_distinct is not None and m.l_distinct >= ell)
    assert r.k == m.k and r.classes == m.classes


def test_adult_five_anonymity() -> None:
    t = adult.load_adult()
    hs = adult.adult_hierarchies(t)
    r = enforce(t, {q: hs[q] for q in adult.ARX_QUASI_IDENTIFIERS}, PrivacyModel(k=5, max_suppression=0.05))
    assert r.nodes_in_lattice == 4320 and r.nodes_evaluated < r.nodes_in_lattice // 4
    assert r.k >= 5 and r.suppressed_rows <= 0.05 * adult.ROWS
    assert r.table is not None and r.table.num_rows == adult.ROWS - r.suppressed_rows
    m = measure(r.table, list(adult.ARX_QUASI_IDENTIFIERS), adult.ARX_SENSITIVE)
    assert m.k >= 5
    assert set(r.table["age"].to_pylist()) <= set(hs["age"].labels_at(r.levels["age"]).to_pylist())
    r8 = enforce(t, {q: hs[q] for q in adult.QUASI_IDENTIFIERS}, PrivacyModel(k=5))
    assert r8.nodes_in_lattice == 6480 and r8.k >= 5


def test_suppressed_rows_can_stay_as_stars() -> None:
    t = pa.table({"age": [30, 31, 32, 33, 34, 80], "sex": ["F"] * 5 + ["M"], "dx": list("abcdef")})
    r = enforce(t, {"age": Intervals((5, 10)), "sex": Suppress()}, PrivacyModel(k=5, max_suppression=0.2),
                suppressed="star")
    assert r.levels == {"age": 1, "sex": 0} and r.suppressed.tolist() == [False] * 5 + [True]
    assert r.table is not None and r.table.num_rows == 6
    assert r.table.to_pylist()[-1] == {"age": "*", "sex": "*", "dx": "f"}
    assert r.table["age"].to_pylist()[:5] == ["30-34"] * 5
    summary = r.summary()
    assert summary["suppressed_rows"] == 1 and summary["levels"] == {"age": 1, "sex": 0}


def test_error_says_how_far_off_in_numbers_never_values() -> None:
    names = [f"patient-{i}" for i in range(20)]
    t = pa.table({"name": names, "s": ["x"] * 20})
    with pytest.raises(AnonymityError) as e:
        enforce(t, {"name": Hierarchy("name", pa.array(names), [np.arange(20)], [pa.array(names)])},
                PrivacyModel(k=2))
    msg = str(e.value)
    assert "100.0% of rows (20 of 20)" in msg and "limit of 5.0%" in msg
    assert not any(v in msg for v in names)
    with pytest.raises(AnonymityError, match=r"failing distinct l=2: 100\.0%"):
        enforce(t.append_column("g", pa.array(["a"] * 20)), {"g": Suppress()},
                PrivacyModel(k=2, l=2, sensitive="s"))


def test_wide_key_spaces_fall_back_to_pairwise_grouping() -> None:
    rng = np.random.default_rng(3)
    n = 300
    cols = {f"q{i}": rng.integers(0, 10**6, n) for i in range(8)}  # ~300^8 base combinations: beyond int64
    t = pa.table(cols)
    hs = fit_all(t, {f"q{i}": Suppress() for i in range(8)})
    for sup in (0.0, 0.1):
        model = PrivacyModel(k=3, max_suppression=sup)
        r = enforce(t, hs, model)
        best = brute_force(t, hs, model, "loss")
        assert best is not None and (round(r.loss, 12), r.suppressed_rows) == best[0]
        assert measure(r.table, list(hs)).k >= 3
    assert measure(t, list(hs)).classes == n
    bottom = enforce(t, hs, PrivacyModel(k=1))  # evaluates the bottom node, whose key space overflows int64
    assert bottom.levels == {f"q{i}": 0 for i in range(8)} and bottom.classes == n and bottom.k == 1


def test_empty_table_and_bad_arguments() -> None:
    t = pa.table({"age": pa.array([], pa.int64())})
    r = enforce(t, {"age": Intervals()}, PrivacyModel(k=5))
    assert r.rows == 0 and r.levels == {"age": 0} and r.suppressed_rows == 0
    with pytest.raises(AnonymityError):
        enforce(t, {}, PrivacyModel(k=5))
    with pytest.raises(AnonymityError):
        enforce(t, {"age": Intervals()}, PrivacyModel(k=5), metric="entropy")  # type: ignore[arg-type]
    with pytest.raises(AnonymityError, match="both"):
        enforce(t, {"age": Intervals()}, PrivacyModel(k=5, l=2, sensitive="age"))
