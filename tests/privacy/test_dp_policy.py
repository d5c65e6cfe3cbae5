"""DP is on unless the contract says otherwise, in an explicit clause; there is no other way to switch it off."""

from __future__ import annotations

import pytest

from medspace.privacy.dp import Accountant, DPPolicy
from medspace.privacy.errors import PolicyError


def test_dp_is_required_by_default_and_brings_the_contracts_accountant() -> None:
    policy = DPPolicy.from_terms("c-1", {"dp_epsilon": 1.0, "dp_delta": 1e-6})
    assert policy.required and policy.epsilon == 1.0 and policy.delta == 1e-6
    acc = policy.accountant()
    assert isinstance(acc, Accountant)
    assert (acc.contract_id, acc.epsilon, acc.delta) == ("c-1", 1.0, 1e-6)
    assert DPPolicy.from_terms("c-1", policy.to_terms()).to_terms() == policy.to_terms()
    assert DPPolicy.required_for("c-1", 2.0, 1e-7).required


def test_dp_is_off_only_with_an_explicit_waiver_clause() -> None:
    terms = {"dp_required": False, "dp_waiver": "Clause 7.2: registry counts, protected by cell suppression"}
    policy = DPPolicy.from_terms("c-2", terms)
    assert not policy.required
    assert policy.waiver == terms["dp_waiver"]
    assert policy.to_terms() == terms
    assert "waived" in repr(policy)
    with pytest.raises(PolicyError, match="waives DP"):
        policy.accountant()


@pytest.mark.parametrize("terms", [
    {},  # required, but no budget
    {"dp_required": True, "dp_epsilon": 1.0},
    {"dp_required": False},  # no clause
    {"dp_required": False, "dp_waiver": "   "},
    {"dp_required": "no", "dp_waiver": "clause 1"},  # only the boolean False switches it off
    {"dp_required": 0, "dp_waiver": "clause 1"},
    {"dp_required": None, "dp_waiver": "clause 1"},
    {"dp_required": False, "dp_waiver": "clause 1", "dp_epsilon": 1.0},
    {"dp_waiver": "clause 1", "dp_epsilon": 1.0, "dp_delta": 1e-6},  # a waiver without dp_required False
    {"dp_epsilon": 0.0, "dp_delta": 1e-6},
    {"dp_epsilon": 1.0, "dp_delta": 1.5},
])
def test_anything_else_is_refused(terms: dict[str, object]) -> None:
    with pytest.raises(PolicyError):
        DPPolicy.from_terms("c-3", terms)


def test_an_off_policy_cannot_be_built_or_forged_directly() -> None:
    with pytest.raises(PolicyError):
        DPPolicy("c-4", False, None, None, "clause")
    on = DPPolicy.required_for("c-4", 1.0, 1e-6)
    with pytest.raises(PolicyError):
        on.required = False
    with pytest.raises(PolicyError):
        DPPolicy.from_terms("c-4", [("dp_required", False)])  # type: ignore[arg-type]
