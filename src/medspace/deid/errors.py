"""Errors of the de-identification engine."""

from __future__ import annotations


class DeidError(Exception):
    """Base of the de-identification engine's errors."""


class PolicyError(DeidError):
    """A policy file is invalid; the message names the file, line and field. Nothing is written."""

    def __init__(self, source: str, line: int | None, field: str, message: str) -> None:
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {field}: {message}")
        self.source = source
        self.line = line
        self.field = field
        self.message = message


class HierarchyError(DeidError):
    """A generalisation hierarchy is malformed or does not cover a value of its attribute."""


class AnonymityError(DeidError):
    """A privacy model (k-anonymity, l-diversity, t-closeness) cannot be reached; the message says why."""


class DeidKeyError(DeidError):
    """A pseudonymisation or linkage key is missing, malformed or of the wrong kind."""


class ResidentIdError(DeidError):
    """A GB 11643 resident ID is malformed (the message never repeats the ID)."""
