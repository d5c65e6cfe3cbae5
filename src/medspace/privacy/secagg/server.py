"""The server's (relay's) side of a secure-aggregation round: it collects and checks messages, routes shares,
sums the masked inputs and removes the masks from the sum with the shares survivors reveal. It never sees an
unmasked input, a pairwise key of two survivors, or a share in the clear before the reveal.

Phases close explicitly: :meth:`SecAggServer.close_adverts` (the adverts to broadcast), :meth:`route_shares` (the
shares for each node), :meth:`unmask_request` (who survived) and :meth:`finish` (the sum). A phase that closes with
fewer than the threshold of nodes raises DropoutError: "k of n contributions arrived, t needed".
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from medspace.privacy.errors import (
    DropoutError,
    MessageError,
    ParticipantError,
    PhaseError,
    ReplayError,
    SecAggError,
)
from medspace.privacy.secagg.config import RoundConfig, verify_advert
from medspace.privacy.secagg.messages import (
    EncryptedShare,
    KeyAdvert,
    MaskedInput,
    PeerVerifier,
    Reveal,
    UnmaskRequest,
    check_signature,
)
from medspace.privacy.secagg.prg import PAIRWISE, MaskStream, agree, seed_commitment
from medspace.privacy.secagg.ring import U64Array
from medspace.privacy.secagg.shamir import Share, combine

_ADVERTS, _SHARES, _INPUTS, _REVEALS, _DONE = range(5)
_PHASES = ("key adverts", "shares", "masked inputs", "reveals", "finished")


class SecAggServer:
    """The relay of one round. ``verifier`` checks the nodes' certificates (the data space)."""

    def __init__(self, config: RoundConfig, verifier: PeerVerifier) -> None:
        self.config = config
        self._verifier = verifier
        self._phase = _ADVERTS
        self._adverts: dict[str, KeyAdvert] = {}
        self._signers: dict[str, ec.EllipticCurvePublicKey] = {}
        self._shares: dict[str, list[EncryptedShare]] = {}
        self._u2: frozenset[str] = frozenset()
        self._inputs: set[str] = set()
        self._sum: U64Array = np.zeros(config.vector_length, dtype=np.uint64)
        self._survivors: tuple[str, ...] = ()
        self._dropped: tuple[str, ...] = ()
        self._reveals: dict[str, Reveal] = {}

    @property
    def survivors(self) -> tuple[str, ...]:
        """The nodes whose inputs are in the sum (known once the unmask request is made)."""
        return self._survivors

    @property
    def dropped(self) -> tuple[str, ...]:
        """The nodes that shared their keys but sent no input (known once the unmask request is made)."""
        return self._dropped

    def _in(self, phase: int, what: str) -> None:
        if self._phase != phase:
            raise PhaseError(f"{what} arrived during the {_PHASES[self._phase]} phase of round "
                             f"{self.config.round_id}, not the {_PHASES[phase]} phase")

    def _close(self, phase: int, arrived: int, total: int) -> None:
        self._in(phase, f"the end of the {_PHASES[phase]} phase")
        if arrived < self.config.threshold:
            raise DropoutError(_PHASES[phase], arrived, total, self.config.threshold)
        self._phase = phase + 1

    # phase 1 ------------------------------------------------------------------------------------------------------
    def receive_advert(self, advert: KeyAdvert) -> None:
        """Accept a node's key advert; refused if for another round or a second one (ReplayError), from a
        non-participant (ParticipantError), or not signed under the node's certificate from this space's CA
        (SignatureError)."""
        self._in(_ADVERTS, "a key advert")
        public = verify_advert(self.config, self._verifier, advert)
        if advert.name in self._adverts:
            raise ReplayError(f"{advert.name} has already sent its key advert in round {self.config.round_id}")
        self._adverts[advert.name] = advert
        self._signers[advert.name] = public

    def close_adverts(self) -> list[KeyAdvert]:
        """End phase 1: the adverts every node gets (DropoutError if fewer than the threshold arrived)."""
        self._close(_ADVERTS, len(self._adverts), self.config.n)
        return [self._adverts[k] for k in sorted(self._adverts)]

    # phase 2 ------------------------------------------------------------------------------------------------------
    def receive_shares(self, shares: Sequence[EncryptedShare]) -> None:
        """Accept one node's encrypted shares: one for every other advertised node, all from the same sender."""
        self._in(_SHARES, "encrypted shares")
        if not shares:
            raise MessageError("an empty batch of shares")
        sender = shares[0].sender
        for s in shares:
            self.config.check(s.round_id, s.sender, "a share")
            if s.sender != sender:
                raise MessageError("a batch of shares must come from one sender")
        if sender not in self._adverts:
            raise ParticipantError(f"{sender} sent shares without a key advert in round {self.config.round_id}")
        if sender in self._shares:
            raise ReplayError(f"{sender} has already sent its shares in round {self.config.round_id}")
        recipients = [s.recipient for s in shares]
        expected = sorted(set(self._adverts) - {sender})
        if sorted(recipients) != expected:
            raise MessageError(f"{sender}'s shares must go to every other advertised node, once each")
        self._shares[sender] = list(shares)

    def route_shares(self) -> dict[str, list[EncryptedShare]]:
        """End phase 2: for each node that shared, the shares addressed to it by the others that did."""
        self._close(_SHARES, len(self._shares), self.config.n)
        self._u2 = frozenset(self._shares)
        return {r: [s for sender in sorted(self._u2) for s in self._shares[sender] if s.recipient == r]
                for r in sorted(self._u2)}

    # phase 3 ------------------------------------------------------------------------------------------------------
    def receive_input(self, masked: MaskedInput) -> None:
        """Add a node's masked vector to the sum; refused for another round or a second one from the node
        (ReplayError), from a node that did not share (ParticipantError), of the wrong length (MessageError), or
        whose signature does not verify under the node's certificate (SignatureError)."""
        self._in(_INPUTS, f"a masked input from {masked.name}")
        self.config.check(masked.round_id, masked.name, "a masked input")
        if masked.name not in self._u2:
            raise ParticipantError(f"{masked.name} did not share its keys in round {self.config.round_id}; its "
                                   "input cannot be unmasked")
        if masked.vector.shape != (self.config.vector_length,):
            raise MessageError(f"the masked input from {masked.name} has {masked.vector.shape[0]} values, not "
                               f"{self.config.vector_length}")
        check_signature(self._signers[masked.name], masked.signature, masked.payload(),
                        f"the masked input from {masked.name}")
        if masked.name in self._inputs:
            raise ReplayError(f"{masked.name} has already sent its masked input in round {self.config.round_id}")
        self._sum += masked.vector
        self._inputs.add(masked.name)

    def unmask_request(self) -> UnmaskRequest:
        """End phase 3: survivors (inputs in the sum) and dropped nodes (shared, sent no input)."""
        self._close(_INPUTS, len(self._inputs), len(self._u2))
        self._survivors = tuple(sorted(self._inputs))
        self._dropped = tuple(sorted(self._u2 - self._inputs))
        return UnmaskRequest(self.config.round_id, self._survivors, self._dropped)

    # phase 4 ------------------------------------------------------------------------------------------------------
    def receive_reveal(self, reveal: Reveal) -> None:
        """Accept a survivor's shares; refused for another round or a second one (ReplayError), from a node that
        is not a survivor (ParticipantError), not signed by the node (SignatureError), or not exactly the shares
        asked for (MessageError)."""
        self._in(_REVEALS, f"a reveal from {reveal.name}")
        self.config.check(reveal.round_id, reveal.name, "a reveal")
        if reveal.name not in self._survivors:
            raise ParticipantError(f"{reveal.name} is not a survivor of round {self.config.round_id}")
        check_signature(self._signers[reveal.name], reveal.signature, reveal.payload(),
                        f"the reveal from {reveal.name}")
        if reveal.name in self._reveals:
            raise ReplayError(f"{reveal.name} has already revealed in round {self.config.round_id}")
        if set(reveal.seed_shares) != set(self._survivors) or set(reveal.key_shares) != set(self._dropped):
            raise MessageError(f"the reveal from {reveal.name} does not hold exactly the shares asked for")
        self._reveals[reveal.name] = reveal

    def finish(self) -> npt.NDArray[np.float64] | npt.NDArray[np.int64]:
        """End the round: reconstruct each survivor's seed and each dropped node's mask key from the reveals, take
        their masks off the sum and decode it (DropoutError if fewer than the threshold revealed)."""
        self._close(_REVEALS, len(self._reveals), len(self._survivors))
        cfg = self.config
        reveals = [self._reveals[k] for k in sorted(self._reveals)]
        total = self._sum.copy()
        stream = MaskStream(cfg.vector_length)
        for s in self._survivors:
            seed = combine([Share(cfg.index(r.name), r.seed_shares[s]) for r in reveals], cfg.threshold)
            if not hmac.compare_digest(seed_commitment(cfg.round_id, s, seed), self._adverts[s].seed_commitment):
                raise SecAggError(f"the revealed shares of {s}'s self-mask seed do not give the seed it committed to")
            total -= stream.keystream(seed)
        for d in self._dropped:
            raw = combine([Share(cfg.index(r.name), r.key_shares[d]) for r in reveals], cfg.threshold)
            key = X25519PrivateKey.from_private_bytes(raw)
            if not hmac.compare_digest(key.public_key().public_bytes_raw(), self._adverts[d].mask_key):
                raise SecAggError(f"the revealed shares of {d}'s mask key do not give the key it advertised")
            for s in self._survivors:
                mask = stream.keystream(agree(key, self._adverts[s].mask_key, PAIRWISE, cfg.round_id, d, s))
                # s added +mask for a peer named after it and -mask for one before it; undo that for d
                if d > s:
                    total -= mask
                else:
                    total += mask
        return cfg.encoding.decode(total)
