"""Whether a contract's aggregates get differential privacy: on by default, off only where the contract says so.

A :class:`DPPolicy` is built from a contract's terms (:meth:`DPPolicy.from_terms`), a mapping the policy package
writes from the contract (the wiring is the hub's and the node's):

* ``dp_required`` absent or true: DP is on; ``dp_epsilon`` and ``dp_delta`` (the steward's budget) are required,
  and the policy hands out the contract's :class:`~medspace.privacy.dp.accountant.Accountant`.
* ``dp_required`` exactly ``False`` **and** a non-empty ``dp_waiver`` (the contract's clause that waives DP, e.g.
  an approved quality-registry use whose cells are protected by disclosure control alone): DP is off, and the
  policy carries the clause so that every task run without noise can log why.

There is no other way to get an "off" policy: :meth:`DPPolicy.required_for` makes an "on" one, and the constructor
refuses to be called directly. Anything else (a missing waiver clause, ``dp_required`` given as "no" or 0, a
budget on a waived contract) raises :class:`~medspace.privacy.errors.PolicyError`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from medspace.privacy.dp.accountant import Accountant, check_id
from medspace.privacy.dp.opendp_bridge import check_delta
from medspace.privacy.errors import DPError, PolicyError

_KEY = object()  # only this module's factories build a policy


class DPPolicy:
    """A contract's DP policy: ``required`` with its (``epsilon``, ``delta``), or waived by ``waiver`` (a contract
    clause)."""

    __slots__ = ("contract_id", "delta", "epsilon", "required", "waiver")

    def __init__(self, contract_id: str, required: bool, epsilon: float | None, delta: float | None,
                 waiver: str | None, *, _key: object = None) -> None:
        if _key is not _KEY:
            raise PolicyError("build a DP policy with DPPolicy.required_for(...) or DPPolicy.from_terms(...)")
        self.contract_id = contract_id
        self.required = required
        self.epsilon = epsilon
        self.delta = delta
        self.waiver = waiver

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, name):
            raise PolicyError("a DP policy is immutable")
        object.__setattr__(self, name, value)

    def __repr__(self) -> str:
        if self.required:
            return f"DPPolicy(contract={self.contract_id}, required, epsilon={self.epsilon}, delta={self.delta})"
        return f"DPPolicy(contract={self.contract_id}, waived by contract clause)"

    @classmethod
    def required_for(cls, contract_id: str, epsilon: float, delta: float) -> DPPolicy:
        """DP on, with the steward's budget (epsilon, delta)."""
        eps = float(epsilon)
        if not (math.isfinite(eps) and eps > 0.0):
            raise PolicyError("a contract's dp_epsilon must be a positive finite number")
        try:
            d = check_delta(delta)
            cid = check_id("contract_id", contract_id)
        except DPError as e:
            raise PolicyError(str(e)) from e
        return cls(cid, True, eps, d, None, _key=_KEY)

    @classmethod
    def from_terms(cls, contract_id: str, terms: Mapping[str, Any]) -> DPPolicy:
        """The policy a contract's terms state (module docstring); PolicyError naming the term otherwise."""
        if not isinstance(terms, Mapping):
            raise PolicyError("a contract's terms must be a mapping")
        required = terms.get("dp_required", True)
        if required is True:
            if terms.get("dp_waiver"):
                raise PolicyError("dp_waiver is given but dp_required is not False")
            if "dp_epsilon" not in terms or "dp_delta" not in terms:
                raise PolicyError("DP is required and the contract sets no budget (dp_epsilon, dp_delta)")
            return cls.required_for(contract_id, terms["dp_epsilon"], terms["dp_delta"])
        if required is not False:
            raise PolicyError("dp_required must be true or false (a boolean), nothing else")
        clause = terms.get("dp_waiver")
        if not isinstance(clause, str) or not clause.strip():
            raise PolicyError("DP can be switched off only by a contract clause: dp_waiver is missing or empty")
        if "dp_epsilon" in terms or "dp_delta" in terms:
            raise PolicyError("a contract that waives DP sets no DP budget (dp_epsilon, dp_delta)")
        try:
            cid = check_id("contract_id", contract_id)
        except DPError as e:
            raise PolicyError(str(e)) from e
        return cls(cid, False, None, None, clause.strip(), _key=_KEY)

    def accountant(self) -> Accountant:
        """A fresh accountant for the contract's budget; PolicyError if the contract waives DP."""
        if not self.required or self.epsilon is None or self.delta is None:
            raise PolicyError(f"contract {self.contract_id} waives DP: it has no privacy budget")
        return Accountant(self.contract_id, self.epsilon, self.delta)

    def to_terms(self) -> dict[str, Any]:
        """The contract terms this policy reads from (inverse of :meth:`from_terms`)."""
        if self.required:
            return {"dp_required": True, "dp_epsilon": self.epsilon, "dp_delta": self.delta}
        return {"dp_required": False, "dp_waiver": self.waiver}
