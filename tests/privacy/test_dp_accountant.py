"""The per-contract privacy accountant: zCDP charges compose additively, (epsilon, delta) is OpenDP's conversion,
a query over budget is refused before it runs and leaves no trace, the state round-trips, calibration inverts."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import opendp.prelude as dp
import pytest

from medspace.privacy.dp import Accountant, NoisePlan, epsilon_for_rho, histogram_sensitivity, rho_for_epsilon
from medspace.privacy.dp.opendp_bridge import composed_rho
from medspace.privacy.errors import BudgetExceeded, DPError


def _opendp_epsilon(rho: float, delta: float) -> float:
    """OpenDP's conversion of a discrete Gaussian whose map is ``rho``, built independently of our bridge."""
    space = dp.atom_domain(T="i64"), dp.absolute_distance(T="i64")
    scale = 1.0 / math.sqrt(2 * rho)
    meas = dp.m.make_gaussian(*space, scale=scale)
    return float(dp.c.make_fix_delta(dp.c.make_zCDP_to_approxDP(meas), delta).map(1)[0]), float(meas.map(1))


@pytest.mark.parametrize("rho", [1e-4, 0.005, 0.1, 1.0, 7.0])
@pytest.mark.parametrize("delta", [1e-5, 1e-9])
def test_conversion_matches_opendp(rho: float, delta: float) -> None:
    eps, mapped = _opendp_epsilon(rho, delta)
    assert epsilon_for_rho(mapped, delta) == eps
    assert epsilon_for_rho(rho, delta) == pytest.approx(eps, rel=1e-9)
    # the tight conversion is below the classic rho + 2 sqrt(rho ln 1/delta), above rho
    assert rho < epsilon_for_rho(rho, delta) <= rho + 2 * math.sqrt(rho * math.log(1 / delta))


@pytest.mark.parametrize(("epsilon", "delta"), [(0.1, 1e-6), (1.0, 1e-6), (3.0, 1e-9), (10.0, 1e-5)])
def test_the_rho_budget_is_the_largest_rho_within_epsilon(epsilon: float, delta: float) -> None:
    rho = rho_for_epsilon(epsilon, delta)
    assert epsilon_for_rho(rho, delta) <= epsilon
    assert epsilon_for_rho(rho * (1 + 1e-9), delta) > epsilon * (1 - 1e-12)
    assert Accountant("c-1", epsilon, delta).rho_budget == rho


def test_k_queries_spend_k_rho_and_the_epsilon_opendp_gives() -> None:
    acc = Accountant("c-2", 2.0, 1e-6)
    k, rho = 7, acc.rho_budget / 10
    for i in range(k):
        acc.charge(f"q{i}", rho)
    spent = acc.spent()
    assert spent.rho == pytest.approx(k * rho, rel=1e-15)
    assert spent.rho == pytest.approx(composed_rho([rho] * k), rel=1e-12)  # OpenDP's basic composition
    assert spent.epsilon == pytest.approx(_opendp_epsilon(spent.rho, 1e-6)[0], rel=1e-9)
    assert acc.remaining().rho == pytest.approx(acc.rho_budget - k * rho, rel=1e-12)
    assert [c.query_id for c in acc.charges] == [f"q{i}" for i in range(k)]


def test_a_budget_split_in_k_parts_admits_exactly_k_queries() -> None:
    acc = Accountant("c-3", 1.0, 1e-6)
    k = 10
    share = acc.rho_for(fraction=1 / k)
    for i in range(k):
        assert acc.preview(share)
        acc.charge(f"q{i}", share)
    assert not acc.preview(share)
    with pytest.raises(BudgetExceeded):
        acc.charge("q-extra", share)
    assert acc.spent().epsilon <= 1.0


def test_budget_exhaustion_refuses_and_records_nothing() -> None:
    acc = Accountant("c-4", 0.5, 1e-6)
    acc.charge("q1", acc.rho_budget * 0.8)
    before = acc.to_dict()
    asked = acc.rho_budget * 0.3
    with pytest.raises(BudgetExceeded) as err:
        acc.charge("q2", asked)
    e = err.value
    assert (e.contract_id, e.query_id) == ("c-4", "q2")
    assert e.asked_rho == asked
    assert e.remaining_rho == pytest.approx(acc.rho_budget * 0.2, rel=1e-9)
    message = str(e)
    assert "c-4" in message and "q2" in message and "remains" in message
    assert acc.to_dict() == before
    assert not acc.preview(asked)
    # what remains still fits, exactly
    acc.charge("q3", acc.remaining().rho)
    assert acc.remaining().rho == 0.0
    assert acc.spent().epsilon <= 0.5
    with pytest.raises(BudgetExceeded):
        acc.charge("q4", 1e-300)
    with pytest.raises(BudgetExceeded):
        acc.calibrate(l2=1.0)  # all that remains: nothing


def test_a_query_id_is_charged_once_and_bad_charges_are_refused() -> None:
    acc = Accountant("c-5", 1.0, 1e-6)
    acc.charge("q1", 1e-3)
    with pytest.raises(DPError, match="charged already"):
        acc.charge("q1", 1e-3)
    for bad in (0.0, -1.0, math.nan, math.inf, True, "0.1"):
        with pytest.raises(DPError):
            acc.charge("q2", bad)  # type: ignore[arg-type]
    with pytest.raises(DPError):
        acc.charge("bad id with spaces", 1e-3)
    with pytest.raises(DPError):
        acc.charge("q3", 1e-3, at=datetime(2026, 1, 1))  # naive time
    assert len(acc.charges) == 1


@pytest.mark.parametrize(("epsilon", "delta"), [(0.0, 1e-6), (-1.0, 1e-6), (math.inf, 1e-6), (1.0, 0.0),
                                                (1.0, 1.0), (1.0, math.nan)])
def test_bad_budgets_are_refused(epsilon: float, delta: float) -> None:
    with pytest.raises(DPError):
        Accountant("c-6", epsilon, delta)


def test_state_round_trips_through_json() -> None:
    acc = Accountant("c-7", 1.5, 1e-7)
    t0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    acc.charge("count-1", 0.00123456789, at=t0)
    acc.charge("hist-2", acc.rho_budget / 3)
    state = json.loads(json.dumps(acc.to_dict()))
    assert state["charges"][0] == {"query_id": "count-1", "rho": 0.00123456789, "time": t0.isoformat()}
    back = Accountant.from_dict(state)
    assert back.to_dict() == acc.to_dict()
    assert back.charges == acc.charges
    assert back.remaining() == acc.remaining()
    # a tampered state whose charges exceed the budget is refused, as is a malformed one
    state["charges"].append({"query_id": "x", "rho": 10.0, "time": t0.isoformat()})
    with pytest.raises(DPError, match="exceed"):
        Accountant.from_dict(state)
    for bad in ({}, {"version": 99}, {"version": 1, "contract_id": "c"}, {**acc.to_dict(), "charges": [{"rho": 1}]}):
        with pytest.raises(DPError):
            Accountant.from_dict(bad)


def test_calibration_gives_the_sigma_a_budget_share_buys() -> None:
    acc = Accountant("c-8", 1.0, 1e-6)
    sens = histogram_sensitivity(20)
    cal = acc.calibrate(l2=sens.l2, l1=sens.l1, dim=sens.dim, min_nodes=4, epsilon=0.1)
    assert epsilon_for_rho(cal.rho, acc.delta) <= 0.1
    assert epsilon_for_rho(cal.rho, acc.delta) == pytest.approx(0.1, rel=1e-9)
    plan = NoisePlan(cal.sigma, n_nodes=6, min_nodes=4)
    assert plan.rho(l2=sens.l2, l1=sens.l1, dim=sens.dim) <= cal.rho
    assert cal.sigma == pytest.approx(sens.l2 / math.sqrt(2 * cal.rho), rel=1e-8)  # tau negligible here
    # a fraction of the budget; by default all that remains
    half = acc.calibrate(l2=1.0, fraction=0.5)
    assert half.rho == pytest.approx(acc.rho_budget / 2, rel=1e-15)
    acc.charge("q1", half.rho)
    rest = acc.calibrate(l2=1.0)
    assert rest.rho == acc.remaining().rho
    assert rest.sigma == pytest.approx(half.sigma, rel=1e-6)
    assert len(acc.charges) == 1  # calibration charges nothing
    with pytest.raises(BudgetExceeded):
        acc.calibrate(l2=1.0, fraction=0.6, query_id="q2")
    with pytest.raises(DPError):
        acc.rho_for(epsilon=0.1, fraction=0.1)
    with pytest.raises(DPError):
        acc.rho_for()
