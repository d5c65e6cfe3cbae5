"""Errors of the hub service. Messages name the rule or the request that failed, never a record, identifier or key."""

from __future__ import annotations


class HubError(Exception):
    """Base of the hub service's errors."""
