"""Dataspace Protocol contract negotiation: the state machine of DSP 2025-1, "Contract Negotiation Protocol".

Two parties negotiate: the *consumer* (here the applicant, through the hub) requests a dataset's use, the *provider*
(the hospital, through its steward) offers and agrees. States and messages (DSP 2025-1 §"States", §"Message
Types", figure ``contract.negotiation.state.machine.puml``)::

    [start]    --ContractRequestMessage (C)-------------------> REQUESTED
    [start]    --ContractOfferMessage (P)---------------------> OFFERED
    REQUESTED  --ContractOfferMessage (P)---------------------> OFFERED
    REQUESTED  --ContractAgreementMessage (P)-----------------> AGREED
    OFFERED    --ContractRequestMessage (C)-------------------> REQUESTED   (a counter-request)
    OFFERED    --ContractNegotiationEventMessage:accepted (C)-> ACCEPTED
    ACCEPTED   --ContractAgreementMessage (P)-----------------> AGREED
    AGREED     --ContractAgreementVerificationMessage (C)-----> VERIFIED
    VERIFIED   --ContractNegotiationEventMessage:finalized (P)> FINALIZED   (terminal: data is available)
    REQUESTED, OFFERED --ContractNegotiationTerminationMessage (C or P)--> TERMINATED   (terminal)
    ACCEPTED, VERIFIED --ContractNegotiationTerminationMessage (P)-------> TERMINATED
    AGREED             --ContractNegotiationTerminationMessage (C)-------> TERMINATED

Termination follows the figure, where only the party whose turn it is may terminate from ACCEPTED, AGREED and
VERIFIED (the prose of the termination message says either party may send it "at any state"; the figure is the
state machine, and the stricter reading). Terminal states accept no message. Any other message, or the right
message from the wrong party, raises :class:`NegotiationError` naming the negotiation, its state, the message and
the party. A transition happens when the counter-party has acknowledged the message; this object records the
acknowledged transitions, with the time and the party that sent each message.

The agreement of a negotiation is a medspace :class:`~medspace.policy.contract.Contract` (ODRL 2.2 Agreement);
it must be assigned by the provider to the consumer. :meth:`Negotiation.to_dict` / :meth:`Negotiation.from_dict`
store a negotiation as JSON; reading one replays its history through the state machine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from medspace.policy.contract import Contract, ContractStatus, format_time, parse_time
from medspace.policy.errors import ContractError, NegotiationError

DSP_VERSION = "2025-1"
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_PARTY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}")


class State(StrEnum):
    """Contract negotiation states (DSP 2025-1)."""

    REQUESTED = "REQUESTED"
    OFFERED = "OFFERED"
    ACCEPTED = "ACCEPTED"
    AGREED = "AGREED"
    VERIFIED = "VERIFIED"
    FINALIZED = "FINALIZED"
    TERMINATED = "TERMINATED"


class Party(StrEnum):
    """The two roles of a negotiation."""

    CONSUMER = "consumer"
    PROVIDER = "provider"


class Message(StrEnum):
    """The messages that move a negotiation (DSP message types; the event message by its event type)."""

    REQUEST = "ContractRequestMessage"
    OFFER = "ContractOfferMessage"
    ACCEPTED = "ContractNegotiationEventMessage:accepted"
    AGREEMENT = "ContractAgreementMessage"
    VERIFICATION = "ContractAgreementVerificationMessage"
    FINALIZED = "ContractNegotiationEventMessage:finalized"
    TERMINATION = "ContractNegotiationTerminationMessage"


TERMINAL = frozenset({State.FINALIZED, State.TERMINATED})
_C, _P = frozenset({Party.CONSUMER}), frozenset({Party.PROVIDER})
_CP = _C | _P
# (state before, or None at the start; message) -> (parties that may send it, state after)
TRANSITIONS: dict[tuple[State | None, Message], tuple[frozenset[Party], State]] = {
    (None, Message.REQUEST): (_C, State.REQUESTED),
    (None, Message.OFFER): (_P, State.OFFERED),
    (State.REQUESTED, Message.OFFER): (_P, State.OFFERED),
    (State.REQUESTED, Message.AGREEMENT): (_P, State.AGREED),
    (State.REQUESTED, Message.TERMINATION): (_CP, State.TERMINATED),
    (State.OFFERED, Message.REQUEST): (_C, State.REQUESTED),
    (State.OFFERED, Message.ACCEPTED): (_C, State.ACCEPTED),
    (State.OFFERED, Message.TERMINATION): (_CP, State.TERMINATED),
    (State.ACCEPTED, Message.AGREEMENT): (_P, State.AGREED),
    (State.ACCEPTED, Message.TERMINATION): (_P, State.TERMINATED),
    (State.AGREED, Message.VERIFICATION): (_C, State.VERIFIED),
    (State.AGREED, Message.TERMINATION): (_C, State.TERMINATED),
    (State.VERIFIED, Message.FINALIZED): (_P, State.FINALIZED),
    (State.VERIFIED, Message.TERMINATION): (_P, State.TERMINATED),
}


@dataclass(frozen=True)
class Step:
    """One acknowledged message: the state it led to, the message, who sent it, when, and its note."""

    state: State
    message: Message
    party: Party
    at: datetime
    note: str = ""  # the offer id for requests and offers, the reason for a termination

    def to_dict(self) -> dict[str, Any]:
        """The step as plain JSON values."""
        return {"state": self.state.value, "message": self.message.value, "party": self.party.value,
                "at": format_time(self.at), "note": self.note}


class Negotiation:
    """One contract negotiation between a consumer and a provider, with its history."""

    def __init__(self, uid: str, consumer: str, provider: str) -> None:
        if not isinstance(uid, str) or not _ID.fullmatch(uid):
            raise NegotiationError("uid: must be 1-64 letters, digits and . _ : -")
        for name, value in (("consumer", consumer), ("provider", provider)):
            if not isinstance(value, str) or not _PARTY.fullmatch(value):
                raise NegotiationError(f"{name}: must be 1-128 letters, digits and . _ : @ / + -")
        if consumer == provider:
            raise NegotiationError("consumer and provider must be different participants")
        self.uid = uid
        self.consumer = consumer
        self.provider = provider
        self.history: list[Step] = []
        self.offer_id: str | None = None  # the latest offer or request's offer id (the application id)
        self.agreement: Contract | None = None

    def __repr__(self) -> str:
        return f"Negotiation({self.uid!r}, state={self.state})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Negotiation):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # mutable

    @property
    def state(self) -> State | None:
        """The current state, None before the first message."""
        return self.history[-1].state if self.history else None

    @property
    def final(self) -> bool:
        """Whether the negotiation reached FINALIZED or TERMINATED."""
        return self.state in TERMINAL

    def _step(self, message: Message, party: Party | str, at: datetime, note: str = "") -> State:
        try:
            party = Party(party)
        except ValueError:
            raise NegotiationError(f"negotiation {self.uid}: party must be consumer or provider") from None
        here = self.state.value if self.state else "start"
        rule = TRANSITIONS.get((self.state, message))
        if rule is None:
            raise NegotiationError(f"negotiation {self.uid}: state {here} does not accept {message.value} "
                                   f"(sent by the {party.value})")
        senders, after = rule
        if party not in senders:
            who = " or ".join(sorted(p.value for p in senders))
            raise NegotiationError(f"negotiation {self.uid}: in state {here}, {message.value} is sent by the "
                                   f"{who}, not the {party.value}")
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise NegotiationError(f"negotiation {self.uid}: the time of {message.value} must be timezone-aware")
        at = at.astimezone(UTC)
        if self.history and at < self.history[-1].at:
            raise NegotiationError(f"negotiation {self.uid}: {message.value} at {format_time(at)} is earlier "
                                   f"than the last step ({format_time(self.history[-1].at)})")
        if not isinstance(note, str) or len(note) > 500 or not note.isprintable():
            raise NegotiationError(f"negotiation {self.uid}: a note is one line of at most 500 printable characters")
        self.history.append(Step(after, message, party, at, note))
        return after

    def _offer_id(self, offer: str) -> str:
        if not isinstance(offer, str) or not _ID.fullmatch(offer):
            raise NegotiationError(f"negotiation {self.uid}: an offer id is 1-64 letters, digits and . _ : -")
        return offer

    def request(self, party: Party | str, offer: str, at: datetime) -> State:
        """ContractRequestMessage (consumer): start the negotiation, or counter an offer, for offer `offer`."""
        self._offer_id(offer)
        state = self._step(Message.REQUEST, party, at, offer)
        self.offer_id = offer
        return state

    def offer(self, party: Party | str, offer: str, at: datetime) -> State:
        """ContractOfferMessage (provider): start the negotiation, or answer a request, with offer `offer`."""
        self._offer_id(offer)
        state = self._step(Message.OFFER, party, at, offer)
        self.offer_id = offer
        return state

    def accept(self, party: Party | str, at: datetime) -> State:
        """ContractNegotiationEventMessage ACCEPTED (consumer): accept the latest offer."""
        return self._step(Message.ACCEPTED, party, at)

    def agree(self, party: Party | str, agreement: Contract, at: datetime) -> State:
        """ContractAgreementMessage (provider): send the agreement, a contract from provider to consumer."""
        if not isinstance(agreement, Contract):
            raise NegotiationError(f"negotiation {self.uid}: the agreement must be a Contract")
        if agreement.assigner != self.provider or agreement.assignee != self.consumer:
            raise NegotiationError(f"negotiation {self.uid}: the agreement must be assigned by the provider "
                                   f"{self.provider} to the consumer {self.consumer}")
        if agreement.status is not ContractStatus.ACTIVE:
            raise NegotiationError(f"negotiation {self.uid}: the agreement is {agreement.status.value}")
        state = self._step(Message.AGREEMENT, party, at, agreement.uid)
        self.agreement = agreement
        return state

    def verify(self, party: Party | str, at: datetime) -> State:
        """ContractAgreementVerificationMessage (consumer): verify the agreement."""
        return self._step(Message.VERIFICATION, party, at)

    def finalize(self, party: Party | str, at: datetime) -> State:
        """ContractNegotiationEventMessage FINALIZED (provider): the agreement is in force."""
        return self._step(Message.FINALIZED, party, at)

    def terminate(self, party: Party | str, at: datetime, reason: str = "") -> State:
        """ContractNegotiationTerminationMessage: end the negotiation (who may, depends on the state)."""
        return self._step(Message.TERMINATION, party, at, reason)

    def to_dict(self) -> dict[str, Any]:
        """The negotiation as plain JSON values (the agreement as its ODRL document)."""
        return {
            "uid": self.uid, "consumer": self.consumer, "provider": self.provider, "dsp": DSP_VERSION,
            "state": self.state.value if self.state else None,
            "history": [s.to_dict() for s in self.history],
            "agreement": self.agreement.to_odrl() if self.agreement else None,
        }

    @classmethod
    def from_dict(cls, data: object) -> Negotiation:
        """A negotiation from :meth:`to_dict`'s output, its history replayed through the state machine."""
        keys = {"uid", "consumer", "provider", "dsp", "state", "history", "agreement"}
        if not isinstance(data, dict) or set(data) != keys:
            raise NegotiationError(f"negotiation: must be an object with exactly {', '.join(sorted(keys))}")
        if data["dsp"] != DSP_VERSION:
            raise NegotiationError(f"negotiation: dsp must be {DSP_VERSION}")
        n = cls(data["uid"], data["consumer"], data["provider"])
        try:
            agreement = Contract.from_odrl(data["agreement"]) if data["agreement"] is not None else None
        except ContractError as e:
            raise NegotiationError(f"negotiation {n.uid}: agreement: {e}") from None
        history = data["history"]
        if not isinstance(history, list):
            raise NegotiationError(f"negotiation {n.uid}: history must be a list")
        for i, raw in enumerate(history):
            if not isinstance(raw, dict) or set(raw) != {"state", "message", "party", "at", "note"}:
                raise NegotiationError(f"negotiation {n.uid}: history[{i}] is not a step")
            try:
                message, at = Message(raw["message"]), parse_time(f"history[{i}].at", raw["at"])
            except (ValueError, ContractError):
                raise NegotiationError(f"negotiation {n.uid}: history[{i}] has an unknown message or bad time") \
                    from None
            if message is Message.AGREEMENT:
                if agreement is None or agreement.uid != raw["note"]:
                    raise NegotiationError(f"negotiation {n.uid}: history[{i}] names an agreement not stored")
                n.agree(raw["party"], agreement, at)
            elif message in (Message.REQUEST, Message.OFFER):
                getattr(n, "request" if message is Message.REQUEST else "offer")(raw["party"], raw["note"], at)
            elif message is Message.TERMINATION:
                n.terminate(raw["party"], at, raw["note"])
            else:
                {Message.ACCEPTED: n.accept, Message.VERIFICATION: n.verify, Message.FINALIZED: n.finalize}[
                    message](raw["party"], at)
            if n.state is None or n.state.value != raw["state"]:
                raise NegotiationError(f"negotiation {n.uid}: history[{i}] records state {raw['state']}, the "
                                       f"state machine gives {n.state}")
        if (n.state.value if n.state else None) != data["state"]:
            raise NegotiationError(f"negotiation {n.uid}: state {data['state']} does not match its history")
        if agreement is not None and n.agreement is None:
            raise NegotiationError(f"negotiation {n.uid}: an agreement is stored but was never sent")
        return n
