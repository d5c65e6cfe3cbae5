"""One privacy accountant per contract: the steward sets (epsilon, delta); every query states its zCDP rho and is
charged before it runs; a query that would exceed the budget is refused and nothing is recorded.

Accounting. Queries compose sequentially, and zCDP composes additively (Bun, Steinke 2016, Lemma 2.3): k queries
of rho_1..rho_k cost sum(rho_i), which is what OpenDP's basic composition of zCDP measurements computes. The sum is
kept exactly (as a fraction of the charged floats), so a budget split in k equal parts admits exactly k queries,
and it is compared with the contract's rho budget: the largest rho whose (epsilon, delta) under OpenDP's
zCDP -> approximate-DP conversion at the contract's delta is within the contract's epsilon
(:func:`medspace.privacy.dp.opendp_bridge.rho_for_epsilon`). The epsilon spent so far is OpenDP's conversion of
the rho spent, at the contract's delta.

A query's rho comes from its noise: :meth:`medspace.privacy.dp.noise.NoisePlan.rho` for the distributed discrete
Gaussian with its sensitivity; :meth:`Accountant.calibrate` goes the other way (budget share -> sigma).

State. :meth:`Accountant.to_dict` / :meth:`Accountant.from_dict` carry the contract's terms and every charge (query
id, rho, time), so the hub can persist the accountant and log each charge; nothing in it is patient data.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

from medspace.privacy.dp.noise import sigma_for_rho
from medspace.privacy.dp.opendp_bridge import check_delta, epsilon_for_rho, rho_for_epsilon
from medspace.privacy.errors import BudgetExceeded, DPError

STATE_VERSION = 1
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def check_id(name: str, value: object) -> str:
    """An id (contract, query) in the audit log's format, else DPError naming it."""
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise DPError(f"{name} must be 1-128 characters of letters, digits and ._:- (starting alphanumeric)")
    return value


def _rho(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DPError("rho must be a number")
    rho = float(value)
    if not (math.isfinite(rho) and rho > 0.0):
        raise DPError("rho must be a positive finite number")
    return rho


def _down(x: Fraction) -> float:
    """The largest float <= x (a remaining budget is never rounded up)."""
    f = float(x)
    return math.nextafter(f, -math.inf) if Fraction(f) > x else f


def _up(x: Fraction) -> float:
    """The smallest float >= x (a spent budget is never rounded down)."""
    f = float(x)
    return math.nextafter(f, math.inf) if Fraction(f) < x else f


@dataclass(frozen=True)
class Charge:
    """One query's charge: its id, its zCDP rho, and when it was charged (UTC)."""

    query_id: str
    rho: float
    time: datetime

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready form (rho as a float, exact through JSON; time ISO 8601)."""
        return {"query_id": self.query_id, "rho": self.rho, "time": self.time.isoformat()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Charge:
        """Inverse of :meth:`to_dict`; DPError on a malformed charge."""
        try:
            when = datetime.fromisoformat(data["time"])
            return cls(check_id("query_id", data["query_id"]), _rho(data["rho"]), when)
        except (KeyError, TypeError, ValueError) as e:
            raise DPError(f"a malformed charge in the accountant's state: {type(e).__name__}") from e


@dataclass(frozen=True)
class Budget:
    """A budget in zCDP rho with its (epsilon, delta) reading at the contract's delta."""

    rho: float
    epsilon: float
    delta: float


@dataclass(frozen=True)
class Calibration:
    """The noise a query gets for its budget share: ``sigma`` for the sum and the ``rho`` it is charged."""

    sigma: float
    rho: float


class Accountant:
    """The privacy budget of one contract: (epsilon, delta) set by the steward, zCDP charges by query."""

    def __init__(self, contract_id: str, epsilon: float, delta: float) -> None:
        self.contract_id = check_id("contract_id", contract_id)
        eps = float(epsilon)
        if not (math.isfinite(eps) and eps > 0.0):
            raise DPError("a contract's epsilon must be a positive finite number")
        self.epsilon = eps
        self.delta = check_delta(delta)
        self.rho_budget = rho_for_epsilon(self.epsilon, self.delta)
        self._charges: list[Charge] = []
        self._spent = Fraction(0)
        self._lock = threading.Lock()

    # --- reading -----------------------------------------------------------------------------------------------

    @property
    def charges(self) -> tuple[Charge, ...]:
        """Every charge so far, in order."""
        return tuple(self._charges)

    def spent(self) -> Budget:
        """The budget spent: the exact sum of the charged rhos (rounded up) and its epsilon at the contract's
        delta by OpenDP's conversion."""
        rho = _up(self._spent)
        return Budget(rho, epsilon_for_rho(rho, self.delta), self.delta)

    def remaining(self) -> Budget:
        """What remains: rho_budget minus the rho spent (rounded down), and that rho's epsilon on its own."""
        rho = max(0.0, _down(Fraction(self.rho_budget) - self._spent))
        return Budget(rho, epsilon_for_rho(rho, self.delta), self.delta)

    def preview(self, rho: float) -> bool:
        """Whether a query of this rho would fit now (nothing is charged)."""
        return self._fits(_rho(rho))

    def _fits(self, rho: float) -> bool:
        return self._spent + Fraction(rho) <= Fraction(self.rho_budget)

    # --- charging ----------------------------------------------------------------------------------------------

    def charge(self, query_id: str, rho: float, *, at: datetime | None = None) -> Charge:
        """Record a query's rho, before the query runs; BudgetExceeded (nothing recorded) if it does not fit,
        DPError if the query id was charged already."""
        query_id = check_id("query_id", query_id)
        rho = _rho(rho)
        when = at or datetime.now(UTC)
        if when.tzinfo is None:
            raise DPError("a charge's time must be timezone-aware")
        with self._lock:
            if any(c.query_id == query_id for c in self._charges):
                raise DPError(f"contract {self.contract_id}: query {query_id} was charged already")
            if not self._fits(rho):
                raise BudgetExceeded(self.contract_id, query_id, rho, self.remaining().rho, self.epsilon, self.delta)
            entry = Charge(query_id, rho, when)
            self._charges.append(entry)
            self._spent += Fraction(rho)
            return entry

    # --- calibration -------------------------------------------------------------------------------------------

    def rho_for(self, *, epsilon: float | None = None, fraction: float | None = None) -> float:
        """A query's rho from its share of the budget: ``fraction`` of the contract's rho budget (rounded down), or
        the rho whose (epsilon, contract delta) conversion is ``epsilon`` on its own. DPError unless exactly one is
        given."""
        if fraction is not None:
            if epsilon is not None:
                raise DPError("give exactly one of epsilon or fraction")
            f = float(fraction)
            if not (math.isfinite(f) and 0.0 < f <= 1.0):
                raise DPError("fraction must be in (0, 1]")
            # 0.1 read as 1/10, and the share rounded down: k shares of 1/k always fit in the budget together
            return _down(Fraction(self.rho_budget) * Fraction(f).limit_denominator(10**9))
        if epsilon is None:
            raise DPError("give exactly one of epsilon or fraction")
        return rho_for_epsilon(float(epsilon), self.delta)

    def calibrate(self, *, l2: float, l1: float | None = None, dim: int = 1, min_nodes: int = 1,
                  epsilon: float | None = None, fraction: float | None = None, rho: float | None = None,
                  query_id: str = "calibration") -> Calibration:
        """The smallest sum-level sigma for a query of these sensitivities whose distributed discrete Gaussian
        (:func:`medspace.privacy.dp.noise.sigma_for_rho`, t = ``min_nodes``) costs at most its share: ``rho``, or
        :meth:`rho_for` (``epsilon`` / ``fraction``); default: all that remains. BudgetExceeded if the share does
        not fit now (nothing is charged: charge the returned rho with :meth:`charge`)."""
        if rho is None:
            rho = self.remaining().rho if epsilon is None and fraction is None else self.rho_for(
                epsilon=epsilon, fraction=fraction)
        if rho == 0.0:  # nothing remains
            raise BudgetExceeded(self.contract_id, query_id, 0.0, 0.0, self.epsilon, self.delta)
        rho = _rho(rho)
        if not self._fits(rho):
            raise BudgetExceeded(self.contract_id, query_id, rho, self.remaining().rho, self.epsilon, self.delta)
        return Calibration(sigma_for_rho(rho, l2=l2, l1=l1, dim=dim, min_nodes=min_nodes), rho)

    # --- state -------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The accountant's state for the hub to persist and log: contract, budget, charges, and what is spent."""
        spent = self.spent()
        return {"version": STATE_VERSION, "contract_id": self.contract_id, "epsilon": self.epsilon,
                "delta": self.delta, "charges": [c.to_dict() for c in self._charges],
                "spent": {"rho": spent.rho, "epsilon": spent.epsilon}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Accountant:
        """Inverse of :meth:`to_dict`: replays the charges (DPError on a malformed state or one over budget)."""
        if not isinstance(data, Mapping) or data.get("version") != STATE_VERSION:
            raise DPError(f"an accountant's state must be a mapping of version {STATE_VERSION}")
        try:
            acc = cls(data["contract_id"], data["epsilon"], data["delta"])
            charges = [Charge.from_dict(c) for c in data["charges"]]
        except (KeyError, TypeError) as e:
            raise DPError(f"a malformed accountant state: missing or bad {e}") from e
        for c in charges:
            try:
                acc.charge(c.query_id, c.rho, at=c.time)
            except BudgetExceeded as e:
                raise DPError(f"the stored charges of contract {acc.contract_id} exceed its budget") from e
        return acc
