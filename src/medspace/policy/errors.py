"""Errors of the policy layer. Messages name the rule, the field or the state that refused, never a person's data."""

from __future__ import annotations


class PolicyError(Exception):
    """Base of the policy layer's errors."""


class EnvelopeError(PolicyError):
    """A task envelope is malformed, altered, expired, replayed or not for this node; the message says which."""


# --- identities and certificates (pki) ---------------------------------------------------------------------------


class PkiError(PolicyError):
    """A certificate authority, key or certificate cannot be created, read or used."""


class EnrolmentError(PkiError):
    """A certificate signing request is refused; the message names the rule it breaks."""


class CertificateRejected(PkiError):
    """A peer's certificate is not acceptable (other CA, revoked, expired, wrong role); the message says which."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message

    @classmethod
    def because(cls, reason: str) -> CertificateRejected:
        """The rejection for ``reason`` ("revoked", "expired", "not issued by this space's CA", ...)."""
        return cls(f"certificate rejected: {reason}", reason)


# --- applications, contracts and negotiation ---------------------------------------------------------------------


class ContractError(PolicyError):
    """An application or contract is invalid when made; the message names the rule it breaks."""


class NegotiationError(PolicyError):
    """A contract negotiation step is not allowed in its current state; the message names both states."""


# --- compliance packs and decisions --------------------------------------------------------------------------------


class PackError(PolicyError):
    """A compliance pack is malformed; the message names the pack, the rule and the field."""


class RequestError(PolicyError):
    """A decision request is invalid when made; the message names the field."""


# --- consent -------------------------------------------------------------------------------------------------------


class ConsentError(PolicyError):
    """A consent resource or change is invalid; the message names the element, never the patient."""
