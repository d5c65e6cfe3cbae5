"""Errors of the hub service. Messages name the rule or the request that failed, never a record, identifier or key."""

from __future__ import annotations

from typing import Any


class HubError(Exception):
    """Base of the hub service's errors."""


class DatabaseError(HubError):
    """The hub database cannot be opened, migrated or used; the message names the step, never a row's values."""


class AuthError(HubError):
    """Authentication failed: no credential, a wrong password, an expired or forged token (one message for all)."""


class Forbidden(HubError):
    """An authenticated caller may not do this; ``rule`` names the rule that refused it."""

    def __init__(self, rule: str, message: str, decision: dict[str, Any] | None = None) -> None:
        super().__init__(f"{message} (rule {rule})")
        self.rule = rule
        self.decision = decision  # the decision engine's answer: every applied rule, its citation, met or not


class NotFound(HubError):
    """A named object does not exist (or the caller may not know that it does)."""


class Conflict(HubError):
    """A request conflicts with the current state (a duplicate name, a step out of order)."""


class BadRequest(HubError):
    """A request is malformed; the message names the field."""


class ConfigError(HubError):
    """The hub's directory or configuration is missing or wrong; the message names the file and the setting."""
