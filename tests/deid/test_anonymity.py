"""Measuring k, l and t agrees with plain group-by counts (pure Python and DuckDB)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.deid.anonymity import AnonymityMeasures, PrivacyModel, equivalence_classes, measure
from medspace.deid.errors import AnonymityError


def reference(rows: list[tuple[object, ...]], sens: list[object], ordered: bool, c: float
              ) -> dict[str, float]:
    """k, l and t of a table by the textbook definitions, one class at a time."""
    classes: dict[tuple[object, ...], list[object]] = defaultdict(list)
    for r, s in zip(rows, sens, strict=True):
        classes[r].append(s)
    n = len(rows)
    overall = Counter(sens)
    domain = sorted(overall, key=lambda v: (v is None, v)) if ordered else list(overall)
    m = len(domain)
    p = [overall[v] / n for v in domain]
    k = min(len(v) for v in classes.values())
    l_distinct = min(len(set(v)) for v in classes.values())
    entropies, t, l_rec = [], 0.0, math.inf
    for vals in classes.values():
        cnt = Counter(vals)
        size = len(vals)
        entropies.append(-sum(x / size * math.log(x / size) for x in cnt.values()))
        q = [cnt.get(v, 0) / size for v in domain]
        if ordered and m > 1:
            acc, emd = 0.0, 0.0
            for i in range(m):
                acc += q[i] - p[i]
                emd += abs(acc)
            emd /= m - 1
        else:
            emd = 0.5 * sum(abs(a - b) for a, b in zip(q, p, strict=True))
        t = max(t, emd)
        r = sorted(cnt.values(), reverse=True)
        best = 0
        for ell in range(1, len(r) + 1):
            if r[0] < c * sum(r[ell - 1:]):
                best = ell
        l_rec = min(l_rec, best)
    return {"k": k, "classes": len(classes), "l_distinct": l_distinct, "l_entropy": math.exp(min(entropies)),
            "t": t, "l_recursive": l_rec}


table_rows = st.integers(1, 120).flatmap(lambda n: st.tuples(
    st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n, max_size=n),
    st.lists(st.integers(0, 4), min_size=n, max_size=n),
    st.lists(st.one_of(st.none(), st.integers(20, 23)), min_size=n, max_size=n),
    st.lists(st.integers(0, 5), min_size=n, max_size=n),
))


@settings(max_examples=80, deadline=None)
@given(table_rows, st.booleans(), st.sampled_from([1.0, 2.0, 3.5]))
def test_measures_agree_with_a_plain_python_groupby(data: tuple[list[object], ...], ordered: bool, c: float) -> None:
    a, b, d, s = data
    t = pa.table({"a": pa.array(a, pa.string()), "b": b, "d": pa.array(d, pa.int64()),
                  "s": s if ordered else [f"v{x}" for x in s]})
    m = measure(t, ["a", "b", "d"], "s", c=c, t_distance="ordered" if ordered else "equal")
    ref = reference(list(zip(a, b, d, strict=True)), list(t["s"].to_pylist()), ordered, c)
    assert m.rows == len(a)
    assert m.k == ref["k"] and m.classes == ref["classes"] and m.l_distinct == ref["l_distinct"]
    assert m.l_recursive == ref["l_recursive"]
    assert m.l_entropy == pytest.approx(ref["l_entropy"], rel=1e-9)
    assert m.t == pytest.approx(ref["t"], abs=1e-9)
    assert m.t_distance == ("ordered" if ordered else "equal")
    sizes = Counter(Counter(zip(a, b, d, strict=True)).values())
    assert m.class_sizes == dict(sizes)


def test_class_sizes_agree_with_duckdb_group_by() -> None:
    rng = np.random.default_rng(5)
    n = 20_000
    t = pa.table({"age": rng.integers(0, 90, n), "sex": rng.choice(["F", "M"], n),
                  "zip": rng.choice([f"{z:05d}" for z in range(300)], n),
                  "dx": rng.choice(["E11", "I10", "J45", None], n)})
    m = measure(t, ["age", "sex", "zip", "dx"])
    con = duckdb.connect()
    con.register("t", t)
    got = con.execute("""SELECT size, count(*) FROM (SELECT count(*) AS size FROM t GROUP BY age, sex, zip, dx)
                         GROUP BY size""").fetchall()
    assert m.class_sizes == dict(got)
    assert m.k == min(s for s, _ in got)
    assert m.classes == sum(c for _, c in got)
    assert m.rows_in_classes_below(5) == sum(s * c for s, c in got if s < 5)


def test_exclude_leaves_rows_out_but_t_uses_the_whole_table() -> None:
    t = pa.table({"q": ["x", "x", "y", "y", "z"], "s": ["a", "b", "a", "a", "b"]})
    full = measure(t, ["q"], "s")
    assert full.k == 1
    kept = measure(t, ["q"], "s", exclude=np.array([False, False, False, False, True]))
    assert kept.rows == 4 and kept.k == 2 and kept.l_distinct == 1
    # overall distribution stays a:3/5, b:2/5: class y (all a) is 0.4 away
    assert kept.t == pytest.approx(0.4)
    with pytest.raises(AnonymityError):
        measure(t, ["q"], exclude=np.array([True]))


def test_equivalence_classes_and_numpy_input() -> None:
    inv, sizes = equivalence_classes({"a": np.array([1, 1, 2]), "b": np.array(["u", "u", "u"])}, ["a", "b"])
    assert sizes[inv].tolist() == [2, 2, 1]


def test_empty_table_and_missing_column() -> None:
    t = pa.table({"q": pa.array([], pa.string()), "s": pa.array([], pa.string())})
    m = measure(t, ["q"], "s")
    assert m.rows == 0 and m.k == 0 and m.satisfies(PrivacyModel(k=5))
    with pytest.raises(AnonymityError, match="no column 'zip'"):
        measure(t, ["zip"])
    with pytest.raises(AnonymityError, match="both"):
        measure(t, ["q"], "q")


def test_satisfies_each_model() -> None:
    m = AnonymityMeasures(rows=10, classes=2, k=5, class_sizes={5: 2}, sensitive="s", l_distinct=3,
                          l_entropy=2.5, c=2.0, l_recursive=2, t=0.3, t_distance="equal")
    assert m.satisfies(PrivacyModel(k=5))
    assert not m.satisfies(PrivacyModel(k=6))
    assert m.satisfies(PrivacyModel(k=5, l=3, sensitive="s"))
    assert not m.satisfies(PrivacyModel(k=5, l=3, l_variant="entropy", sensitive="s"))
    assert m.satisfies(PrivacyModel(k=5, l=2, l_variant="entropy", sensitive="s"))
    assert m.satisfies(PrivacyModel(k=5, l=2, l_variant="recursive", c=2.0, sensitive="s"))
    assert not m.satisfies(PrivacyModel(k=5, l=2, l_variant="recursive", c=3.0, sensitive="s"))  # measured at c=2
    assert m.satisfies(PrivacyModel(k=5, t=0.3, sensitive="s"))
    assert not m.satisfies(PrivacyModel(k=5, t=0.29, sensitive="s"))


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": True}, {"k": 2, "l": 0, "sensitive": "s"},
                                    {"k": 2, "l": 2}, {"k": 2, "t": 1.5, "sensitive": "s"},
                                    {"k": 2, "l": 2, "l_variant": "recursive", "sensitive": "s"},
                                    {"k": 2, "max_suppression": 1.0}, {"k": 2, "l_variant": "other"},
                                    {"k": 2, "t": 0.2, "t_distance": "hierarchical", "sensitive": "s"}])
def test_privacy_model_checks_its_parameters(kwargs: dict[str, object]) -> None:
    with pytest.raises(AnonymityError):
        PrivacyModel(**kwargs)  # type: ignore[arg-type]


def test_describe() -> None:
    assert PrivacyModel(k=5, l=3, l_variant="recursive", c=2, sensitive="s", t=0.2).describe() == \
        "k=5, recursive (c=2, l=3), t=0.2"
