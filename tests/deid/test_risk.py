"""Re-identification risk on hand-computed examples; the Adult loader and its hierarchies."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from medspace.deid import adult
from medspace.deid.errors import AnonymityError
from medspace.deid.risk import (
    expected_inverse_population,
    record_risk,
    reidentification_risk,
    risk_from_class_sizes,
)

# classes: (30, F) x1, (30, M) x2, (40, F) x2, (40, M) x5 -> sizes 1, 2, 2, 5; n = 10
SAMPLE = pa.table({"age": [30, 30, 30, 40, 40, 40, 40, 40, 40, 40],
                   "sex": ["F", "M", "M", "F", "F", "M", "M", "M", "M", "M"]})


def test_prosecutor_by_hand() -> None:
    r = reidentification_risk(SAMPLE, ["age", "sex"])
    assert (r.records, r.classes) == (10, 4)
    assert r.prosecutor.highest == 1.0
    assert r.prosecutor.average == pytest.approx(4 / 10)  # (1*1 + 2*1/2 + 2*1/2 + 5*1/5) / 10
    assert r.prosecutor.at_risk == pytest.approx(5 / 10)  # risk > 0.2: the 1 + 2 + 2 records in classes below 5
    assert r.marketer == pytest.approx(0.4) and r.journalist == r.prosecutor
    assert r.journalist_basis == "sample is the population"
    assert record_risk(SAMPLE, ["age", "sex"]).tolist() == [1.0, 0.5, 0.5, 0.5, 0.5] + [0.2] * 5
    strict = reidentification_risk(SAMPLE, ["age", "sex"], threshold=0.5)
    assert strict.prosecutor.at_risk == pytest.approx(0.1)  # only risk 1.0 exceeds 0.5


def test_exclude_drops_suppressed_rows() -> None:
    r = reidentification_risk(SAMPLE, ["age", "sex"], exclude=np.array([True] + [False] * 9))
    assert (r.records, r.classes, r.prosecutor.highest) == (9, 3, 0.5)


def test_journalist_and_marketer_with_a_population_table() -> None:
    # population sizes of the sample's classes: (30,F) 4, (30,M) 2, (40,F) 10, (40,M) 5; plus a class not sampled
    population = pa.table({"age": [30, 30, 40, 40, 50], "sex": ["F", "M", "F", "M", "F"],
                           "n": [4, 2, 10, 5, 100]})
    r = reidentification_risk(SAMPLE, ["age", "sex"], population=population, population_counts="n")
    assert r.journalist.highest == pytest.approx(1 / 2)
    # per record: 1 x 1/4, 2 x 1/2, 2 x 1/10, 5 x 1/5 -> (0.25 + 1 + 0.2 + 1) / 10
    assert r.journalist.average == pytest.approx(0.245)
    assert r.marketer == pytest.approx(0.245)
    assert r.journalist.at_risk == pytest.approx(3 / 10)  # risks 1/4 and 1/2 exceed 0.2
    assert r.prosecutor.highest == 1.0 and r.journalist_basis == "population table"
    # population as individual rows; a population class smaller than the sample's is raised to the sample's
    rows = pa.table({"age": [30, 40, 40], "sex": ["F", "F", "M"]})
    r2 = reidentification_risk(SAMPLE, ["age", "sex"], population=rows)
    assert r2.journalist.highest == 1.0  # (30, F): F = 1; (30, M) absent, so F = f = 2; (40, M): F = f = 5
    assert r2.journalist.average == pytest.approx((1 + 2 * 0.5 + 2 * 0.5 + 5 * 0.2) / 10)


def test_benedetti_franconi_estimate() -> None:
    pi = 0.1
    q = 1 - pi
    f1, f2 = expected_inverse_population(np.array([1, 2]), pi)
    assert f1 == pytest.approx(pi / q * math.log(1 / pi), rel=1e-9)
    assert f2 == pytest.approx(pi**2 / q**2 * (q**2 / pi + q + math.log(pi)), rel=1e-9)
    big = expected_inverse_population(np.array([100, 101, 5000]), pi)
    assert big[0] == pytest.approx(big[1] * 101 / 100, rel=2e-3)  # exact sum and expansion meet
    assert big[2] == pytest.approx(pi / 5000, rel=1e-3)
    assert expected_inverse_population(np.array([4]), 1.0).tolist() == [0.25]
    with pytest.raises(AnonymityError):
        expected_inverse_population(np.array([1]), 0.0)
    r = reidentification_risk(SAMPLE, ["age", "sex"], sampling_fraction=pi)
    assert r.journalist.highest == pytest.approx(f1)
    assert r.journalist.average < r.prosecutor.average and r.marketer == r.journalist.average
    assert "Benedetti-Franconi" in r.journalist_basis


def test_risk_from_class_sizes_checks_input() -> None:
    with pytest.raises(AnonymityError):
        risk_from_class_sizes(np.array([0, 3]))
    with pytest.raises(AnonymityError):
        risk_from_class_sizes(np.array([3]), population_sizes=np.array([4]), sampling_fraction=0.5)
    with pytest.raises(AnonymityError):
        risk_from_class_sizes(np.array([3]), threshold=2.0)
    empty = risk_from_class_sizes(np.array([], np.int64))
    assert empty.records == 0 and empty.prosecutor.highest == 0.0
    assert risk_from_class_sizes(np.array([5, 5])).summary()["prosecutor"] == {
        "highest": 0.2, "average": 0.2, "at_risk": 0.0}


def test_adult_from_its_package_with_arx_hierarchies() -> None:
    t = adult.load_adult()
    assert t.num_rows == adult.ROWS == 30_162
    assert t.column_names == list(adult.ATTRIBUTES)
    assert set(t["salary-class"].to_pylist()) == {"<=50K", ">50K"}
    hs = adult.adult_hierarchies(t)
    levels = {q: h.levels for q, h in hs.items()}
    assert levels == {"age": 5, "education": 4, "marital-status": 3, "native-country": 3, "occupation": 3,
                      "race": 2, "salary-class": 2, "sex": 2, "workclass": 3}
    for q, h in hs.items():
        h.encode(t[q])  # every value is covered
    assert hs["native-country"].generalise(["England", "Germany"], 1).to_pylist() == ["Europe", "Europe"]
    assert hs["age"].generalise([20, 24, 25], 1).to_pylist() == ["20-24", "20-24", "25-29"]
    before = reidentification_risk(t, adult.ARX_QUASI_IDENTIFIERS)
    assert before.prosecutor.highest == 1.0 and 0 < before.prosecutor.average < 1
