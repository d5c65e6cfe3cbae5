"""Iterative federated training (FedAvg, FedProx, FedAvgM, FedAdam) of numpy, PyTorch or scikit-learn models.

Transport-agnostic: a strategy turns the SUM of the clients' flat messages into the next global parameters
(:mod:`.strategies`, :mod:`.federated`), so secure aggregation can stand in for the sum; optional DP-SGD-style
clipping and noise (:mod:`.dp`); evaluation of local-only, federated and pooled training per site (:mod:`.evaluate`).
"""

from medspace.compute.fl.dp import DPConfig, NoiseFn, clip_update, opendp_gaussian
from medspace.compute.fl.evaluate import EvaluationReport, SiteSplit, evaluate_federated, format_table
from medspace.compute.fl.federated import (
    FL_EXTRAS,
    FLCoordinator,
    FLResult,
    client_update,
    message_length,
    pack_update,
    train_federated,
    unpack_update,
)
from medspace.compute.fl.metrics import Metrics, classification_metrics
from medspace.compute.fl.models import MLP, LogisticRegression, Model, NumpyModel, SoftmaxRegression
from medspace.compute.fl.strategies import (
    ClientInstructions,
    FedAdam,
    FedAvg,
    FedAvgM,
    FedProx,
    ServerState,
    Strategy,
)

__all__ = [
    "FL_EXTRAS",
    "MLP",
    "ClientInstructions",
    "DPConfig",
    "EvaluationReport",
    "FLCoordinator",
    "FLResult",
    "FedAdam",
    "FedAvg",
    "FedAvgM",
    "FedProx",
    "LogisticRegression",
    "Metrics",
    "Model",
    "NoiseFn",
    "NumpyModel",
    "ServerState",
    "SiteSplit",
    "SoftmaxRegression",
    "Strategy",
    "classification_metrics",
    "client_update",
    "clip_update",
    "evaluate_federated",
    "format_table",
    "message_length",
    "opendp_gaussian",
    "pack_update",
    "train_federated",
    "unpack_update",
]
