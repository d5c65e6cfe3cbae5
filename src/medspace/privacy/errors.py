"""Errors of the privacy engine. Messages name rules, columns, axes and positions, never a cell's value."""

from __future__ import annotations


class PrivacyError(Exception):
    """Base of the privacy engine's errors."""


class DisclosureError(PrivacyError):
    """Disclosure control cannot go ahead: bad rules, bad input, or a cell that cannot be protected."""


class RulesError(DisclosureError):
    """A disclosure rule's parameter is out of range; the message names the parameter."""


class InputError(DisclosureError):
    """A table given to disclosure control is malformed; the message names the column or axis."""


class ProtectionError(DisclosureError):
    """A sensitive cell cannot be protected by complementary suppression; the message names its position."""
