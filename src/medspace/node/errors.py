"""Errors of the node service. Messages name the rule or the request that failed, never a record, identifier or key."""

from __future__ import annotations


class NodeError(Exception):
    """Base of the node service's errors."""
