"""Secure aggregation under attack: replayed, substituted, wrong-round and forged messages, foreign certificates,
a relay that swaps keys, and unmask requests that would expose a node's input are all refused, each by its rule."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from secagg_space import NODES, Spaces, exchange_keys

from medspace.policy.pki import init_space
from medspace.privacy.errors import (
    ParticipantError,
    ReplayError,
    RevealRefused,
    SecAggError,
    SignatureError,
)
from medspace.privacy.secagg import (
    Encoding,
    EncryptedShare,
    KeyAdvert,
    MaskedInput,
    NodeKey,
    Reveal,
    RoundConfig,
    SecAggClient,
    SecAggServer,
    UnmaskRequest,
)
from medspace.privacy.secagg.messages import vector_digest

LENGTH = 64
ENC = Encoding.integers(bound=1000)


def _config(round_id: str) -> RoundConfig:
    return RoundConfig(round_id, NODES, LENGTH, encoding=ENC)


def _until_masking(spaces: Spaces, config: RoundConfig) -> tuple[SecAggServer, dict[str, SecAggClient],
                                                                   dict[str, list[EncryptedShare]]]:
    server, clients = spaces.round(config)
    return server, clients, exchange_keys(server, clients)


def _x(i: int) -> np.ndarray:
    return np.full(LENGTH, i, dtype=np.int64)


def _sign_advert(key: NodeKey, advert: KeyAdvert) -> KeyAdvert:
    unsigned = replace(advert, certificate=key.certificate, signature=b"")
    return replace(unsigned, signature=key.sign(unsigned.payload()))


# --- masked inputs ---------------------------------------------------------------------------------------------------


def test_a_replayed_contribution_is_refused(spaces: Spaces) -> None:
    server, clients, routed = _until_masking(spaces, _config("replay"))
    masked = clients["h2"].masked_input(_x(2), routed["h2"])
    server.receive_input(masked)
    with pytest.raises(ReplayError, match="h2 has already sent its masked input in round replay"):
        server.receive_input(MaskedInput.from_bytes(masked.to_bytes()))


def test_a_contribution_for_another_round_is_refused(spaces: Spaces) -> None:
    _, clients_a, routed_a = _until_masking(spaces, _config("round-a"))
    server_b, _, _ = _until_masking(spaces, _config("round-b"))
    old = clients_a["h4"].masked_input(_x(4), routed_a["h4"])
    with pytest.raises(ReplayError, match="is for round 'round-a', not for this round round-b"):
        server_b.receive_input(old)
    # relabelled for round b, its signature (which binds the round id) no longer verifies
    with pytest.raises(SignatureError, match="masked input from h4 does not verify"):
        server_b.receive_input(replace(old, round_id="round-b"))


def test_a_substituted_contribution_is_refused(spaces: Spaces) -> None:
    server, clients, routed = _until_masking(spaces, _config("substitute"))
    genuine = clients["h2"].masked_input(_x(2), routed["h2"])
    altered = genuine.vector.copy()
    altered[0] += np.uint64(1)
    with pytest.raises(SignatureError, match="the signature of the masked input from h2 does not verify"):
        server.receive_input(replace(genuine, vector=altered))
    other = clients["h3"].masked_input(_x(3), routed["h3"])
    with pytest.raises(SignatureError, match="masked input from h2 does not verify"):
        server.receive_input(replace(other, name="h2"))  # h3's input passed off as h2's
    server.receive_input(genuine)
    server.receive_input(other)


def test_a_forged_signature_is_refused(spaces: Spaces) -> None:
    server, _, _ = _until_masking(spaces, _config("forged"))
    vector = np.zeros(LENGTH, dtype=np.uint64)
    payload = MaskedInput.signed_payload("forged", "h5", vector_digest(vector))
    for key in (spaces.foreign_keys["h5"], spaces.keys["h9"], spaces.keys["h6"]):
        with pytest.raises(SignatureError, match="masked input from h5 does not verify"):
            server.receive_input(MaskedInput("forged", "h5", vector, key.sign(payload)))
    with pytest.raises(SignatureError):
        server.receive_input(MaskedInput("forged", "h5", vector, b"\x30\x06garbage"))


def test_a_contribution_from_outside_the_round_is_refused(spaces: Spaces) -> None:
    server, _, _ = _until_masking(spaces, _config("outsider"))
    vector = np.zeros(LENGTH, dtype=np.uint64)
    sig = spaces.keys["h9"].sign(MaskedInput.signed_payload("outsider", "h9", vector_digest(vector)))
    with pytest.raises(ParticipantError, match="h9, which is not a participant of round outsider"):
        server.receive_input(MaskedInput("outsider", "h9", vector, sig))


# --- key adverts -----------------------------------------------------------------------------------------------------


def test_an_advert_certified_by_another_ca_is_refused(spaces: Spaces) -> None:
    config = _config("foreign-ca")
    server, clients = spaces.round(config)
    forged = _sign_advert(spaces.foreign_keys["h2"], clients["h2"].advertise())
    with pytest.raises(SignatureError, match="certificate presented for h2 is refused: not issued by this space's CA"):
        server.receive_advert(forged)
    # a relay that slips it to the nodes gets the same answer from each of them
    adverts = [clients[n].advertise() for n in NODES if n != "h2"]
    with pytest.raises(SignatureError, match="not issued by this space's CA"):
        clients["h1"].share([*adverts, forged])


def test_an_advert_for_another_name_is_refused(spaces: Spaces) -> None:
    config = _config("other-name")
    server, clients = spaces.round(config)
    own = clients["h2"].advertise()
    claimed = _sign_advert(spaces.keys["h2"], replace(own, name="h3"))  # h2's valid certificate, h3's name
    with pytest.raises(SignatureError, match=r"certificate presented for h3 names another node \(h2\)"):
        server.receive_advert(claimed)
    outsider = SecAggClient(RoundConfig("other-name", [*NODES, "h9"], LENGTH, encoding=ENC), "h9", spaces.keys["h9"],
                            spaces.space).advertise()
    with pytest.raises(ParticipantError, match="h9, which is not a participant"):
        server.receive_advert(outsider)
    server.receive_advert(own)
    with pytest.raises(ReplayError, match="h2 has already sent its key advert"):
        server.receive_advert(own)


def test_a_revoked_certificate_is_refused(tmp_path: Path) -> None:
    space = init_space(tmp_path / "s", "demo", nodes=["a1", "a2", "a3"])
    space.revoke("a3", "key_compromise")
    config = RoundConfig("revoked", ["a1", "a2", "a3"], 4)
    key = NodeKey.load(space.participant("a3").key, space.participant("a3").cert)
    advert = SecAggClient(config, "a3", key, space).advertise()
    with pytest.raises(SignatureError, match="certificate presented for a3 is refused: revoked"):
        SecAggServer(config, space).receive_advert(advert)


def test_the_relay_cannot_substitute_a_nodes_keys(spaces: Spaces) -> None:
    config = _config("swap-keys")
    server, clients = spaces.round(config)
    for n in NODES:
        server.receive_advert(clients[n].advertise())
    adverts = server.close_adverts()
    relay_key = clients["h1"]._mask_private.public_key().public_bytes_raw()  # any key the relay knows
    swapped = [replace(a, mask_key=relay_key) if a.name == "h3" else a for a in adverts]
    with pytest.raises(SignatureError, match="the signature of h3's key advert does not verify"):
        clients["h1"].share(swapped)
    # nor replace a node's own advert by an older one of its
    older = SecAggClient(config, "h2", spaces.keys["h2"], spaces.space).advertise()
    with pytest.raises(SignatureError, match="do not carry h2's own advert"):
        clients["h2"].share([older if a.name == "h2" else a for a in adverts])


def test_shares_are_authenticated_and_delivered_to_their_recipient(spaces: Spaces) -> None:
    _, clients, routed = _until_masking(spaces, _config("shares"))
    mine = routed["h1"]
    tampered = [replace(s, ciphertext=s.ciphertext[:-1] + bytes([s.ciphertext[-1] ^ 1])) if i == 0 else s
                for i, s in enumerate(mine)]
    with pytest.raises(SignatureError, match=f"the share from {mine[0].sender} does not authenticate"):
        clients["h1"].masked_input(_x(1), tampered)
    with pytest.raises(ParticipantError, match="was delivered to h1"):
        clients["h1"].masked_input(_x(1), routed["h2"])
    relabelled = [replace(mine[0], sender="h7")]  # h2's share claimed to be h7's: the AAD binds the sender
    with pytest.raises(SignatureError, match="the share from h7 does not authenticate"):
        clients["h1"].masked_input(_x(1), relabelled)


# --- reveals ---------------------------------------------------------------------------------------------------------


def _until_reveal(spaces: Spaces, round_id: str, dropped: tuple[str, ...]) -> tuple[SecAggServer,
                                                                                     dict[str, SecAggClient]]:
    server, clients, routed = _until_masking(spaces, _config(round_id))
    for i, n in enumerate(NODES):
        if n not in dropped:
            server.receive_input(clients[n].masked_input(_x(i), routed[n]))
    return server, clients


def test_revealing_both_shares_for_one_node_is_refused(spaces: Spaces) -> None:
    server, clients = _until_reveal(spaces, "both", dropped=("h3",))
    survivors = ("h1", "h2", "h3", "h4", "h5", "h6", "h7")  # h3 claimed alive and dropped at once
    with pytest.raises(RevealRefused, match="h3 is listed both as a survivor and as dropped"):
        clients["h1"].reveal(UnmaskRequest("both", survivors, ("h3",)))
    # the honest request goes through once; a second one (now calling h3 alive) is refused
    request = server.unmask_request()
    assert request.dropped == ("h3",)
    clients["h1"].reveal(request)
    with pytest.raises(RevealRefused, match="h1 has already revealed in round both"):
        clients["h1"].reveal(UnmaskRequest("both", survivors, ()))


def test_unmask_requests_that_break_the_rules_are_refused(spaces: Spaces) -> None:
    _, clients = _until_reveal(spaces, "rules", dropped=("h3",))
    c = clients["h1"]
    alive = ("h1", "h2", "h4", "h5", "h6", "h7")
    cases = [
        (UnmaskRequest("rules", ("h2", "h4", "h5", "h6", "h7"), ("h1", "h3")), "lists h1 as dropped"),
        (UnmaskRequest("rules", ("h1", "h2", "h4", "h5"), ("h3", "h6", "h7")), "names 4 survivors; 5 are needed"),
        (UnmaskRequest("rules", alive, ()), "does not say whether h3 survived"),
        (UnmaskRequest("rules", (*alive, "h9"), ("h3",)), "h9 did not share its keys with h1"),
        (UnmaskRequest("rules", (*alive, "h2"), ("h3",)), "names a node twice"),
    ]
    for request, rule in cases:
        with pytest.raises(RevealRefused, match=rule):
            c.reveal(request)
    with pytest.raises(ReplayError, match="unmask request is for round 'other'"):
        c.reveal(UnmaskRequest("other", alive, ("h3",)))
    c.reveal(UnmaskRequest("rules", alive, ("h3",)))  # refusals do not use up the one reveal


def test_forged_replayed_and_outside_reveals_are_refused(spaces: Spaces) -> None:
    server, clients = _until_reveal(spaces, "reveals", dropped=("h3",))
    request = server.unmask_request()
    reveal = clients["h1"].reveal(request)
    with pytest.raises(SignatureError, match="the reveal from h1 does not verify"):
        server.receive_reveal(replace(reveal, key_shares={"h3": b"\x00" * 32}))
    server.receive_reveal(reveal)
    with pytest.raises(ReplayError, match="h1 has already revealed"):
        server.receive_reveal(reveal)
    with pytest.raises(ParticipantError, match="h3 is not a survivor"):
        server.receive_reveal(replace(reveal, name="h3"))


def test_a_bad_share_is_detected_not_summed(spaces: Spaces) -> None:
    server, clients = _until_reveal(spaces, "bad-share", dropped=())
    request = server.unmask_request()
    for n in NODES:
        reveal = clients[n].reveal(request)
        if n == "h1":  # a malicious survivor signs a wrong share of h2's seed
            bad = replace(reveal, seed_shares={**reveal.seed_shares, "h2": b"\x01" * 32}, signature=b"")
            reveal = replace(bad, signature=spaces.keys["h1"].sign(bad.payload()))
        server.receive_reveal(Reveal.from_bytes(reveal.to_bytes()))
    with pytest.raises(SecAggError, match="shares of h2's self-mask seed do not give the seed it committed to"):
        server.finish()
