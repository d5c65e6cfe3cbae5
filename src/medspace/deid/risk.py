"""Re-identification risk under the prosecutor, journalist and marketer attacker models (El Emam; as ARX reports).

Records are grouped into equivalence classes by their quasi-identifiers; f_j is the size of class j in the
released sample (n records), F_j its size in the population.

- **Prosecutor** (the attacker knows the person is in the data): a record's risk is ``1 / f_j``. Highest
  ``1 / min f_j``; average ``classes / n``; *at risk*: the share of records whose risk exceeds the threshold
  (threshold 0.2 = classes smaller than 5).
- **Journalist** (the attacker knows the person is in the population, not whether in the sample): risk
  ``1 / F_j``. F_j comes from a population table when one is given (classes matched on the same QI values;
  ``F_j >= f_j`` is enforced). With only a sampling fraction ``pi``, the risk is the Benedetti-Franconi
  estimate ``E[1/F_j | f_j]`` under a negative-binomial super-population model (F_j - f_j ~ NB(f_j, pi)),
  as in mu-Argus and sdcMicro: ``(pi/(1-pi)) log(1/pi)`` for a sample unique, summed exactly for f_j <= 100
  and by the second-order expansion ``(pi/f)(1 + (1-pi)/f)`` above. With neither, the sample is taken as the
  population and the journalist risk equals the prosecutor risk.
- **Marketer** (the attacker re-identifies as many records as possible): the expected share of records
  re-identified, ``(1/n) sum_j f_j r_j`` with r_j the journalist risk of class j (``classes / n`` when the
  sample is the population).

Everything is computed per class with numpy, never per row in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from medspace.deid.anonymity import TableLike, column, encode, equivalence_classes, group, num_rows
from medspace.deid.errors import AnonymityError

__all__ = ["ReidentificationRisk", "RiskSummary", "expected_inverse_population", "record_risk",
           "reidentification_risk", "risk_from_class_sizes"]
_EXACT_UP_TO = 100  # class sizes summed exactly in the Benedetti-Franconi estimate


@dataclass(frozen=True)
class RiskSummary:
    """One attacker model's risk over the records."""

    highest: float
    average: float
    at_risk: float  # share of records whose risk exceeds the threshold


@dataclass(frozen=True)
class ReidentificationRisk:
    """Prosecutor, journalist and marketer risk of a released table."""

    records: int
    classes: int
    threshold: float
    prosecutor: RiskSummary
    journalist: RiskSummary
    marketer: float
    journalist_basis: str  # "sample is the population", "population table" or "sampling fraction ..."

    def summary(self) -> dict[str, object]:
        """Plain data for reports."""
        return {"records": self.records, "classes": self.classes, "threshold": self.threshold,
                "prosecutor": self.prosecutor.__dict__, "journalist": self.journalist.__dict__,
                "marketer": self.marketer, "journalist_basis": self.journalist_basis}


def record_risk(table: TableLike, quasi_identifiers: Sequence[str], exclude: np.ndarray | None = None) -> np.ndarray:
    """Prosecutor risk ``1 / |class|`` of each kept record (float64, in kept-row order)."""
    inv, sizes = equivalence_classes(table, quasi_identifiers, exclude)
    return 1.0 / sizes[inv]


def expected_inverse_population(f: np.ndarray, sampling_fraction: float) -> np.ndarray:
    """Benedetti-Franconi ``E[1/F | f]`` for sample class sizes ``f`` at sampling fraction ``pi`` (see the doc)."""
    pi = float(sampling_fraction)
    if not 0 < pi <= 1:
        raise AnonymityError("the sampling fraction must be in (0, 1]")
    f = np.asarray(f, np.int64)
    if pi == 1.0:
        return 1.0 / f
    out = np.empty(len(f), np.float64)
    uniq, inv = np.unique(f, return_inverse=True)
    vals = np.empty(len(uniq))
    q = 1.0 - pi
    for i, fv in enumerate(uniq.tolist()):
        if fv > _EXACT_UP_TO:
            vals[i] = (pi / fv) * (1.0 + q / fv)
            continue
        # P(F = h) = C(h-1, f-1) pi^f q^(h-f), h >= f: built by the ratio h/(h-f+1) * q, in logs
        top = int(np.ceil((fv + 10.0 * np.sqrt(fv) + 40.0) / pi))
        h = np.arange(fv, top + 1, dtype=np.float64)
        ratios = np.log(h[:-1]) - np.log(h[:-1] - fv + 1.0) + np.log(q)
        logp = fv * np.log(pi) + np.concatenate(([0.0], np.cumsum(ratios)))
        vals[i] = float(np.sum(np.exp(logp) / h))
    out[:] = vals[inv.reshape(-1)]
    return out


def _summary(risk: np.ndarray, f: np.ndarray, n: int, threshold: float) -> RiskSummary:
    if n == 0:
        return RiskSummary(0.0, 0.0, 0.0)
    return RiskSummary(highest=float(risk.max()), average=float((f * risk).sum() / n),
                       at_risk=float(f[risk > threshold].sum() / n))


def risk_from_class_sizes(sizes: np.ndarray, *, population_sizes: np.ndarray | None = None,
                          sampling_fraction: float | None = None, threshold: float = 0.2) -> ReidentificationRisk:
    """All three models from the sample class sizes (and the population sizes of the same classes, if known)."""
    if not 0 <= threshold <= 1:
        raise AnonymityError("the risk threshold must be in [0, 1]")
    if population_sizes is not None and sampling_fraction is not None:
        raise AnonymityError("give a population table or a sampling fraction, not both")
    f = np.asarray(sizes, np.int64)
    n = int(f.sum())
    if (f <= 0).any():
        raise AnonymityError("class sizes must be positive")
    prosecutor = 1.0 / f if len(f) else np.zeros(0)
    if population_sizes is not None:
        big_f = np.maximum(np.asarray(population_sizes, np.int64), f)
        journalist = 1.0 / big_f
        basis = "population table"
    elif sampling_fraction is not None:
        journalist = expected_inverse_population(f, sampling_fraction)
        basis = f"sampling fraction {sampling_fraction:g} (Benedetti-Franconi)"
    else:
        journalist = prosecutor
        basis = "sample is the population"
    j = _summary(journalist, f, n, threshold)
    return ReidentificationRisk(records=n, classes=len(f), threshold=threshold,
                                prosecutor=_summary(prosecutor, f, n, threshold), journalist=j,
                                marketer=j.average, journalist_basis=basis)


def reidentification_risk(table: TableLike, quasi_identifiers: Sequence[str], *, threshold: float = 0.2,
                          population: TableLike | None = None, population_counts: str | None = None,
                          sampling_fraction: float | None = None, exclude: np.ndarray | None = None
                          ) -> ReidentificationRisk:
    """Risk of a released table; ``population`` (a table with the same QI columns, optionally a count column
    ``population_counts`` per row) or ``sampling_fraction`` informs the journalist and marketer models."""
    if population is None:
        _, sizes = equivalence_classes(table, quasi_identifiers, exclude)
        return risk_from_class_sizes(sizes, sampling_fraction=sampling_fraction, threshold=threshold)
    sizes, pop = _match_population(table, quasi_identifiers, population, population_counts, exclude)
    return risk_from_class_sizes(sizes, population_sizes=pop, sampling_fraction=sampling_fraction,
                                 threshold=threshold)


def _match_population(table: TableLike, qis: Sequence[str], population: TableLike, counts: str | None,
                      exclude: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Sample class sizes and the population size of each sample class (0 where the population lacks it)."""
    n = num_rows(table, qis)
    keep = None if exclude is None else ~np.asarray(exclude, bool)
    if keep is not None and keep.shape != (n,):
        raise AnonymityError(f"exclude must be a mask of {n} rows")
    m = num_rows(population, [*qis, *([counts] if counts else [])])
    codes, cards = [], []
    for q in qis:
        a = column(table, q)
        if keep is not None:
            a = a.filter(pa.array(keep))
        b = column(population, q)
        if b.type != a.type:
            try:
                b = b.cast(a.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                raise AnonymityError(f"the population's column {q} cannot be read as the sample's") from None
        c, card = encode(pa.concat_arrays([a, b]))
        codes.append(c)
        cards.append(card)
    rows = len(codes[0]) if codes else 0
    s_rows = rows - m
    inv, g, _ = group(codes, cards, rows)
    w_pop = np.ones(m) if counts is None else np.asarray(
        column(population, counts).to_numpy(zero_copy_only=False), np.float64)
    f_all = np.bincount(inv[:s_rows], minlength=g)
    big_all = np.rint(np.bincount(inv[s_rows:], weights=w_pop, minlength=g)).astype(np.int64)
    present = f_all > 0
    return f_all[present].astype(np.int64), big_all[present]

