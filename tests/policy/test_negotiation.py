"""DSP contract negotiation: transitions against the spec's own state-machine figure, paths, refusals, storage."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from medspace.policy.contract import Application, Approval, Contract
from medspace.policy.errors import NegotiationError
from medspace.policy.negotiation import TERMINAL, TRANSITIONS, Message, Negotiation, Party, State

T0 = datetime(2026, 3, 1, tzinfo=UTC)
C, P = Party.CONSUMER, Party.PROVIDER
PUML = Path(__file__).parent / "data" / "contract.negotiation.state.machine.puml"


def agreement(provider: str = "h1", consumer: str = "dr-chen@uni") -> Contract:
    app = Application(id="a-7", applicant=consumer, purpose="HRESCH", duo=["DUO:0000042"], fields=["patient.sex"],
                      operations=["count"], start=T0, end=T0 + timedelta(days=90), region="DE", hospitals=[provider])
    ok = Approval(application="a-7", hospital=provider, steward="s@h1", outcome="approve", at=T0)
    return Contract.from_application(app, ok, uid="c-12", issued=T0)


class Clock:
    """Strictly later times for successive steps."""

    def __init__(self) -> None:
        self.t = T0

    def __call__(self) -> datetime:
        self.t += timedelta(minutes=1)
        return self.t


# The shortest path to each state, as (message, party).
PATHS: dict[State | None, list[tuple[Message, Party]]] = {
    None: [],
    State.REQUESTED: [(Message.REQUEST, C)],
    State.OFFERED: [(Message.OFFER, P)],
    State.ACCEPTED: [(Message.OFFER, P), (Message.ACCEPTED, C)],
    State.AGREED: [(Message.REQUEST, C), (Message.AGREEMENT, P)],
    State.VERIFIED: [(Message.REQUEST, C), (Message.AGREEMENT, P), (Message.VERIFICATION, C)],
    State.FINALIZED: [(Message.REQUEST, C), (Message.AGREEMENT, P), (Message.VERIFICATION, C),
                      (Message.FINALIZED, P)],
    State.TERMINATED: [(Message.REQUEST, C), (Message.TERMINATION, P)],
}


def send(n: Negotiation, message: Message, party: Party | str, at: datetime) -> State:
    """Send one message by its method."""
    if message is Message.REQUEST:
        return n.request(party, "a-7", at)
    if message is Message.OFFER:
        return n.offer(party, "a-7", at)
    if message is Message.ACCEPTED:
        return n.accept(party, at)
    if message is Message.AGREEMENT:
        return n.agree(party, agreement(), at)
    if message is Message.VERIFICATION:
        return n.verify(party, at)
    if message is Message.FINALIZED:
        return n.finalize(party, at)
    return n.terminate(party, at, "no longer needed")


def reach(state: State | None, clock: Clock) -> Negotiation:
    """A negotiation in `state`."""
    n = Negotiation("n-1", consumer="dr-chen@uni", provider="h1")
    for message, party in PATHS[state]:
        send(n, message, party, clock())
    assert n.state == state
    return n


def test_transitions_are_the_dsp_figure() -> None:
    text = PUML.read_text(encoding="utf-8")
    figure: dict[tuple[str, str], frozenset[str]] = {}
    for line in text.splitlines():
        m = re.fullmatch(r"\s*(\[\*\]|[A-Z]+)\s*-+>\s*(\[\*\]|[A-Z]+)\s*(?::\s*(\S+))?\s*", line)
        if m and m.group(2) != "[*]":
            who = {"C": "consumer", "P": "provider"}
            figure[(m.group(1), m.group(2))] = frozenset(who[x] for x in m.group(3).split("/"))
    ours = {(before.value if before else "[*]", after.value): frozenset(p.value for p in parties)
            for (before, _), (parties, after) in TRANSITIONS.items()}
    assert ours == figure
    # and each state is entered by the message the figure names
    entered = dict(re.findall(r"state (\w+)[^:\n]*:\s*<color:\$darkGray>(\S+)", text))
    for (_, message), (_, after) in TRANSITIONS.items():
        assert entered[after.value] == message.value


def test_consumer_initiated_happy_path_with_counter_offer() -> None:
    clock = Clock()
    n = Negotiation("n-1", consumer="dr-chen@uni", provider="h1")
    assert n.state is None
    assert n.request(C, "a-7", clock()) is State.REQUESTED
    assert n.offer(P, "a-7-restricted", clock()) is State.OFFERED
    assert n.request("consumer", "a-7-counter", clock()) is State.REQUESTED
    assert n.offer(P, "a-7-final", clock()) is State.OFFERED
    assert n.accept(C, clock()) is State.ACCEPTED
    assert n.agree(P, agreement(), clock()) is State.AGREED
    assert n.verify(C, clock()) is State.VERIFIED
    assert n.finalize(P, clock()) is State.FINALIZED
    assert n.final and n.offer_id == "a-7-final" and n.agreement == agreement()
    assert [(s.state, s.party) for s in n.history] == [
        (State.REQUESTED, C), (State.OFFERED, P), (State.REQUESTED, C), (State.OFFERED, P), (State.ACCEPTED, C),
        (State.AGREED, P), (State.VERIFIED, C), (State.FINALIZED, P)]
    stored = json.loads(json.dumps(n.to_dict()))
    assert stored["state"] == "FINALIZED"
    assert Negotiation.from_dict(stored) == n


def test_provider_initiated_and_direct_agreement() -> None:
    clock = Clock()
    n = Negotiation("n-2", consumer="dr-chen@uni", provider="h1")
    for step in (lambda: n.offer(P, "a-7", clock()), lambda: n.accept(C, clock()),
                 lambda: n.agree(P, agreement(), clock()), lambda: n.verify(C, clock()),
                 lambda: n.finalize(P, clock())):
        step()
    assert n.state is State.FINALIZED
    direct = reach(State.AGREED, clock)  # REQUESTED -> AGREED: the provider agrees to the request as it is
    assert [s.message for s in direct.history] == [Message.REQUEST, Message.AGREEMENT]


@pytest.mark.parametrize(("state", "party"), [
    (s, p) for (s, m), (parties, _) in TRANSITIONS.items() if m is Message.TERMINATION for p in parties])
def test_termination_from_each_non_final_state(state: State, party: Party) -> None:
    clock = Clock()
    n = reach(state, clock)
    assert n.terminate(party, clock(), "study cancelled") is State.TERMINATED
    assert n.final and n.history[-1].note == "study cancelled"
    assert Negotiation.from_dict(n.to_dict()) == n


def test_every_non_final_state_can_be_terminated() -> None:
    terminable = {s for (s, m) in TRANSITIONS if m is Message.TERMINATION}
    assert terminable == set(State) - TERMINAL


_ALL = [(s, m, p) for s in [None, *State] for m in Message for p in Party]


@pytest.mark.parametrize(("state", "message", "party"), [
    (s, m, p) for s, m, p in _ALL if (s, m) not in TRANSITIONS or p not in TRANSITIONS[(s, m)][0]])
def test_every_invalid_transition_is_refused(state: State | None, message: Message, party: Party) -> None:
    clock = Clock()
    n = reach(state, clock)
    before = n.to_dict()
    with pytest.raises(NegotiationError) as e:
        send(n, message, party, clock())
    text = str(e.value)
    assert f"state {state.value if state else 'start'}" in text
    assert message.value in text and party.value in text
    assert n.to_dict() == before  # nothing recorded


def test_agreement_must_bind_the_negotiating_parties() -> None:
    clock = Clock()
    n = reach(State.REQUESTED, clock)
    with pytest.raises(NegotiationError, match="assigned by the provider h1 to the consumer dr-chen@uni"):
        n.agree(P, agreement(consumer="someone@else"), clock())
    revoked = agreement().revoke(T0, "withdrawn")
    with pytest.raises(NegotiationError, match="the agreement is revoked"):
        n.agree(P, revoked, clock())


def test_steps_are_timed_in_order() -> None:
    clock = Clock()
    n = reach(State.REQUESTED, clock)
    with pytest.raises(NegotiationError, match="earlier than the last step"):
        n.offer(P, "a-7", T0)
    with pytest.raises(NegotiationError, match="timezone-aware"):
        n.offer(P, "a-7", datetime(2026, 4, 1))
    with pytest.raises(NegotiationError, match="party must be consumer or provider"):
        n.offer("hub", "a-7", clock())


def _tamper(d: dict[str, Any], how: str) -> None:
    if how == "state":
        d["state"] = "FINALIZED"
    elif how == "step-state":
        d["history"][1]["state"] = "OFFERED"
    elif how == "party":
        d["history"][1]["party"] = "consumer"
    elif how == "message":
        d["history"][0]["message"] = "Hello"
    elif how == "agreement":
        d["agreement"] = None
    elif how == "keys":
        d["extra"] = 1


@pytest.mark.parametrize(("how", "message"), [
    ("state", "state FINALIZED does not match its history"),
    ("step-state", "history\\[1\\] records state OFFERED"),
    ("party", "ContractAgreementMessage is sent by the provider, not the consumer"),
    ("message", "history\\[0\\] has an unknown message"),
    ("agreement", "history\\[1\\] names an agreement not stored"),
    ("keys", "must be an object with exactly"),
])
def test_stored_negotiation_is_replayed(how: str, message: str) -> None:
    n = reach(State.AGREED, Clock())
    d = json.loads(json.dumps(n.to_dict()))
    _tamper(d, how)
    with pytest.raises(NegotiationError, match=message):
        Negotiation.from_dict(d)


def test_negotiation_ids_are_checked() -> None:
    with pytest.raises(NegotiationError, match="uid"):
        Negotiation("n 1", consumer="a", provider="b")
    with pytest.raises(NegotiationError, match="must be different"):
        Negotiation("n-1", consumer="h1", provider="h1")
