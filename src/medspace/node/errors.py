"""Errors of the node service. Messages name the rule or the request that failed, never a record, identifier or key."""

from __future__ import annotations


class NodeError(Exception):
    """Base of the node service's errors."""


class TaskError(NodeError):
    """A task cannot run at this node: malformed, not permitted, or its data is missing; the message says which."""


class ConnectionFailed(NodeError):
    """The hub cannot be reached or refused the node's credentials; the message names the hub and the reason."""
