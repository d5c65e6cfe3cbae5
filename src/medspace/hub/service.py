"""The hub service: one class that brings together its parts (accounts and audit, contracts, consent, tasks)."""

from __future__ import annotations

from medspace.hub.consents import ConsentOps
from medspace.hub.core import CONFIG, HubConfig, init_hub, read_config
from medspace.hub.tasks import TaskOps

__all__ = ["CONFIG", "Hub", "HubConfig", "init_hub", "read_config"]


class Hub(TaskOps, ConsentOps):
    """A hub process: accounts, participants, contracts, consent registry, task dispatch, audit log."""
