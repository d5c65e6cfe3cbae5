"""Errors of federated computation. Messages name the parameter or the step, never a value of a record."""

from __future__ import annotations


class ComputeError(Exception):
    """Base of federated computation's errors."""


class QueryError(ComputeError):
    """A computation is malformed or cannot run on this node's data; the message names the parameter or table."""


class ModelError(ComputeError):
    """A federated model cannot be fitted; the message names the model, the step or the covariates."""


class MessageLayoutError(ModelError):
    """A site's message or the aggregated sum does not have the layout the model expects."""


class SingularHessianError(ModelError):
    """The summed information matrix is singular: the named covariates are collinear (or constant)."""


class PerfectSeparationError(ModelError):
    """A binomial model's outcome is perfectly predicted by the covariates: the estimates do not exist."""


class NoEventsError(ModelError):
    """There is no event (outcome 1 or observed failure) to fit: at a site (Cox) or in the whole data (binomial)."""


class ConvergenceError(ModelError):
    """Newton–Raphson did not converge within its round or step-halving limit."""


class FederatedLearningError(ModelError):
    """Iterative federated training (FedAvg and kin) cannot proceed; the message names the strategy, model or step."""


class PrivacyConfigError(FederatedLearningError):
    """DP-SGD-style protection of updates is misconfigured (clip norm, noise multiplier, missing noise sampler)."""


class OptionalDependencyError(ComputeError):
    """An optional extra (PyTorch, scikit-learn, OpenDP) a model or sampler needs is not installed."""
