"""Errors of federated computation. Messages name the parameter or the step, never a value of a record."""

from __future__ import annotations


class ComputeError(Exception):
    """Base of federated computation's errors."""


class QueryError(ComputeError):
    """A computation is malformed or cannot run on this node's data; the message names the parameter or table."""
