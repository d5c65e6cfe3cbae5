"""Differential privacy for federated aggregates, in front of secure aggregation (transport-agnostic).

For one query under a contract (the hub and node wiring is theirs)::

    policy = DPPolicy.from_terms(contract_id, terms)       # DP on unless the contract's clause waives it
    acc = policy.accountant()                               # or Accountant.from_dict(stored state)
    sens = histogram_sensitivity(bins)                      # bounds.py: sensitivity from contribution bounds
    cal = acc.calibrate(l2=sens.l2, l1=sens.l1, dim=sens.dim, min_nodes=t, fraction=0.1)
    acc.charge(query_id, cal.rho)                           # BudgetExceeded here: nothing runs
    plan = NoisePlan(cal.sigma, n_nodes=n, min_nodes=t)     # sent to every node with the task
    # at each node: counts = one_bin_per_patient(...); noisy = add_noise_share(counts, plan); then secagg
    # at the hub, on the unmasked sum: release = protect_noisy_counts(total, axes=...)

Modules: :mod:`~medspace.privacy.dp.bounds` (clipping, sensitivities), :mod:`~medspace.privacy.dp.noise`
(distributed discrete Gaussian shares and their zCDP cost), :mod:`~medspace.privacy.dp.accountant` (per-contract
budget), :mod:`~medspace.privacy.dp.release` (post-processing and disclosure control of noisy cells),
:mod:`~medspace.privacy.dp.policy` (DP off only by contract), :mod:`~medspace.privacy.dp.opendp_bridge` (OpenDP's
sampler and conversion; the only module that imports OpenDP).
"""

from medspace.privacy.dp.accountant import Accountant, Budget, Calibration, Charge
from medspace.privacy.dp.bounds import (
    Sensitivity,
    clip_l2,
    clipped_sums,
    count_sensitivity,
    histogram_sensitivity,
    mean_sensitivity,
    one_bin_per_patient,
    patient_counts,
    sum_sensitivity,
    to_grid,
    vector_sensitivity,
)
from medspace.privacy.dp.noise import (
    NoisePlan,
    add_noise_share,
    ddg_rho,
    ddg_tau,
    discrete_gaussian_variance,
    node_sigma,
    sigma_for_rho,
)
from medspace.privacy.dp.opendp_bridge import epsilon_for_rho, rho_for_epsilon
from medspace.privacy.dp.policy import DPPolicy
from medspace.privacy.dp.release import NoisyCounts, from_codes, noisy_mean, postprocess_counts, protect_noisy_counts

__all__ = [
    "Accountant",
    "Budget",
    "Calibration",
    "Charge",
    "DPPolicy",
    "NoisePlan",
    "NoisyCounts",
    "Sensitivity",
    "add_noise_share",
    "clip_l2",
    "clipped_sums",
    "count_sensitivity",
    "ddg_rho",
    "ddg_tau",
    "discrete_gaussian_variance",
    "epsilon_for_rho",
    "from_codes",
    "histogram_sensitivity",
    "mean_sensitivity",
    "node_sigma",
    "noisy_mean",
    "one_bin_per_patient",
    "patient_counts",
    "postprocess_counts",
    "protect_noisy_counts",
    "rho_for_epsilon",
    "sigma_for_rho",
    "sum_sensitivity",
    "to_grid",
    "vector_sensitivity",
]
