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


# --- secure aggregation (medspace.privacy.secagg) -------------------------------------------------------------------


class SecAggError(PrivacyError):
    """A secure-aggregation round cannot go ahead; the message names the rule, the phase or the node, never a key,
    a share or a vector's value."""


class ConfigError(SecAggError):
    """A round's configuration is invalid (threshold, participants, vector length, encoding); the message names it."""


class BoundError(SecAggError):
    """A contribution is outside the encoding's bound, or the bound lets the sum of n contributions overflow the
    ring; the message names the bound."""


class PhaseError(SecAggError):
    """A step was called out of order or twice (each party runs advertise, share, mask, reveal once, in order)."""


class DropoutError(SecAggError):
    """Fewer than the threshold of nodes took part in a phase: "k of n contributions arrived, t needed"."""

    def __init__(self, phase: str, arrived: int, total: int, needed: int) -> None:
        super().__init__(f"{phase}: {arrived} of {total} contributions arrived, {needed} needed")
        self.phase = phase
        self.arrived = arrived
        self.total = total
        self.needed = needed


class ParticipantError(SecAggError):
    """A message comes from, or is addressed to, a node that is not a participant of the round."""


class ReplayError(SecAggError):
    """A message is replayed: a second one from the same node in a phase, or one made for another round."""


class SignatureError(SecAggError):
    """A signature does not verify, or the signer's certificate is not this space's or names another node."""


class RevealRefused(SecAggError):
    """An unmask request asks for what would expose a node's input (both its self-mask and its mask key, a node
    outside the round, too few survivors, or a second reveal); the message names the rule."""


class MessageError(SecAggError):
    """A message's bytes are malformed (bad magic, truncated, wrong sizes); the message names the field."""


# --- differential privacy (medspace.privacy.dp) ---------------------------------------------------------------------


class DPError(PrivacyError):
    """Differential privacy cannot go ahead: a bad parameter (scale, budget, node count) or a bad accountant state;
    the message names the parameter, never a value of the data."""


class BoundsError(DPError):
    """A contribution bound is invalid (lo > hi, not finite) or an input does not fit it (a cell index out of
    range, a vector of the wrong shape); the message names the bound or the input, never a record's value."""


class BudgetExceeded(DPError):
    """A query's privacy cost does not fit in its contract's remaining budget; nothing was charged and nothing ran.
    The message names the contract, the query, the rho asked and the rho that remains (privacy parameters, not
    data)."""

    def __init__(self, contract_id: str, query_id: str, asked_rho: float, remaining_rho: float,
                 epsilon: float, delta: float) -> None:
        super().__init__(f"contract {contract_id}: query {query_id} asks rho={asked_rho:.6g} (zCDP) but only "
                         f"rho={remaining_rho:.6g} remains of the budget epsilon={epsilon:g}, delta={delta:g}")
        self.contract_id = contract_id
        self.query_id = query_id
        self.asked_rho = asked_rho
        self.remaining_rho = remaining_rho


class PolicyError(DPError):
    """A DP policy cannot be built as asked: DP can be switched off only by an explicit contract term."""
