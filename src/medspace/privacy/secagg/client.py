"""A node's side of a secure-aggregation round: advertise keys, share secrets, mask the input, reveal shares.

Each step runs once, in order; a step called out of order raises PhaseError. The node keeps its secrets (self-mask
seed, X25519 private keys, the shares it holds) in memory for the round only; none is logged or put in an error.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence

import numpy.typing as npt
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medspace.privacy.errors import (
    BoundError,
    DropoutError,
    ParticipantError,
    PhaseError,
    ReplayError,
    RevealRefused,
    SignatureError,
)
from medspace.privacy.secagg.config import RoundConfig, verify_advert
from medspace.privacy.secagg.messages import (
    EncryptedShare,
    KeyAdvert,
    MaskedInput,
    NodeKey,
    PeerVerifier,
    Reveal,
    UnmaskRequest,
    vector_digest,
)
from medspace.privacy.secagg.prg import (
    PAIRWISE,
    SHARE_ENCRYPTION,
    MaskStream,
    add_pairwise_masks,
    agree,
    new_seed,
    new_x25519,
    seed_commitment,
)
from medspace.privacy.secagg.shamir import SECRET_BYTES, split

_NONCE = 12
_ADVERTISE, _SHARE, _MASK, _REVEAL, _DONE = range(5)


class SecAggClient:
    """One node in one round. ``key`` is the node's certificate key (it signs the node's messages); ``verifier``
    checks its peers' certificates (the data space, :class:`medspace.policy.pki.Space`)."""

    def __init__(self, config: RoundConfig, name: str, key: NodeKey, verifier: PeerVerifier) -> None:
        config.index(name)
        self.config = config
        self.name = name
        self._key = key
        self._verifier = verifier
        self._mask_private = new_x25519()
        self._share_private = new_x25519()
        self._seed = new_seed()
        self._phase = _ADVERTISE
        self._advert: KeyAdvert | None = None
        self._peers: dict[str, KeyAdvert] = {}
        # owner -> (my share of its seed, my share of its mask key), my own shares included
        self._held: dict[str, tuple[bytes, bytes]] = {}
        self._u2: frozenset[str] = frozenset()

    def _step(self, phase: int, what: str) -> None:
        if self._phase != phase:
            raise PhaseError(f"{self.name} cannot {what} now: each step runs once, in order "
                             "(advertise, share, masked_input, reveal)")

    def advertise(self) -> KeyAdvert:
        """Phase 1: this round's public keys and seed commitment, signed with the node's certificate key."""
        self._step(_ADVERTISE, "advertise")
        cfg = self.config
        unsigned = KeyAdvert(cfg.round_id, self.name, self._mask_private.public_key().public_bytes_raw(),
                             self._share_private.public_key().public_bytes_raw(),
                             seed_commitment(cfg.round_id, self.name, self._seed), self._key.certificate, b"")
        advert = KeyAdvert(unsigned.round_id, unsigned.name, unsigned.mask_key, unsigned.share_key,
                           unsigned.seed_commitment, unsigned.certificate, self._key.sign(unsigned.payload()))
        self._advert = advert
        self._phase = _SHARE
        return advert

    def share(self, adverts: Sequence[KeyAdvert]) -> list[EncryptedShare]:
        """Phase 2: verify every relayed advert (round, participant, certificate, signature; the node's own must be
        the one it made), then send each advertised peer its shares of this node's seed and mask key, encrypted."""
        self._step(_SHARE, "share")
        cfg = self.config
        peers: dict[str, KeyAdvert] = {}
        for a in adverts:
            verify_advert(cfg, self._verifier, a)
            if a.name in peers:
                raise ReplayError(f"two key adverts from {a.name} in round {cfg.round_id}")
            peers[a.name] = a
        mine = peers.get(self.name)
        assert self._advert is not None
        if mine is None or not (hmac.compare_digest(mine.mask_key, self._advert.mask_key)
                                and hmac.compare_digest(mine.share_key, self._advert.share_key)):
            raise SignatureError(f"the relayed adverts do not carry {self.name}'s own advert")
        if len(peers) < cfg.threshold:
            raise DropoutError("key adverts", len(peers), cfg.n, cfg.threshold)
        seed_shares = split(self._seed, cfg.threshold, cfg.n)
        key_shares = split(self._mask_private.private_bytes_raw(), cfg.threshold, cfg.n)
        out: list[EncryptedShare] = []
        for peer in sorted(peers):
            i = cfg.index(peer) - 1
            plain = seed_shares[i].value + key_shares[i].value
            if peer == self.name:
                self._held[peer] = (seed_shares[i].value, key_shares[i].value)
                continue
            box = EncryptedShare(cfg.round_id, self.name, peer, b"")
            k = agree(self._share_private, peers[peer].share_key, SHARE_ENCRYPTION, cfg.round_id, self.name, peer)
            nonce = secrets.token_bytes(_NONCE)
            out.append(EncryptedShare(box.round_id, box.sender, box.recipient,
                                      nonce + AESGCM(k).encrypt(nonce, plain, box.aad())))
        self._peers = peers
        self._phase = _MASK
        return out

    def masked_input(self, vector: npt.ArrayLike, shares: Sequence[EncryptedShare]) -> MaskedInput:
        """Phase 3: decrypt the shares peers sent this node (their senders are the nodes it masks with), encode
        ``vector`` and add the self mask and the pairwise masks; the result is signed over its hash."""
        self._step(_MASK, "mask its input")
        cfg = self.config
        codes = cfg.encoding.encode(vector)
        if codes.shape[0] != cfg.vector_length:
            raise BoundError(f"the vector has {codes.shape[0]} values; round {cfg.round_id} expects "
                             f"{cfg.vector_length}")
        held: dict[str, tuple[bytes, bytes]] = {}
        for s in shares:
            cfg.check(s.round_id, s.sender, "a share")
            if s.recipient != self.name:
                raise ParticipantError(f"a share from {s.sender} for {s.recipient} was delivered to {self.name}")
            if s.sender == self.name or s.sender not in self._peers:
                raise ParticipantError(f"a share comes from {s.sender}, which has no key advert in this round")
            if s.sender in held:
                raise ReplayError(f"two shares from {s.sender} for {self.name}")
            k = agree(self._share_private, self._peers[s.sender].share_key, SHARE_ENCRYPTION, cfg.round_id,
                      self.name, s.sender)
            try:
                plain = AESGCM(k).decrypt(s.ciphertext[:_NONCE], s.ciphertext[_NONCE:], s.aad())
            except (InvalidTag, ValueError):
                raise SignatureError(f"the share from {s.sender} does not authenticate") from None
            if len(plain) != 2 * SECRET_BYTES:
                raise SignatureError(f"the share from {s.sender} has the wrong size")
            held[s.sender] = (plain[:SECRET_BYTES], plain[SECRET_BYTES:])
        u2 = frozenset(held) | {self.name}
        if len(u2) < cfg.threshold:
            raise DropoutError("shares", len(u2), cfg.n, cfg.threshold)
        y = codes  # a fresh array: encode never returns its input
        stream = MaskStream(cfg.vector_length)
        y += stream.keystream(self._seed)
        pair_keys = {p: agree(self._mask_private, self._peers[p].mask_key, PAIRWISE, cfg.round_id, self.name, p)
                     for p in sorted(u2) if p != self.name}
        add_pairwise_masks(y, self.name, pair_keys, stream)
        signature = self._key.sign(MaskedInput.signed_payload(cfg.round_id, self.name, vector_digest(y)))
        self._held.update(held)
        self._u2 = u2
        self._phase = _REVEAL
        return MaskedInput(cfg.round_id, self.name, y, signature)

    def reveal(self, request: UnmaskRequest) -> Reveal:
        """Phase 4: shares of each survivor's seed and of each dropped node's mask key. Refused (RevealRefused) if
        the request names a node both as survivor and as dropped, names this node as dropped, leaves a node out,
        names one that did not share, has fewer survivors than the threshold, or comes after a reveal."""
        if self._phase == _DONE:
            raise RevealRefused(f"{self.name} has already revealed in round {self.config.round_id}; a second "
                                "reveal could give out both a node's self-mask seed and its mask key")
        self._step(_REVEAL, "reveal")
        cfg = self.config
        if request.round_id != cfg.round_id:
            raise ReplayError(f"the unmask request is for round {request.round_id[:128]!r}, not for this round "
                              f"{cfg.round_id}")
        survivors, dropped = set(request.survivors), set(request.dropped)
        if len(survivors) != len(request.survivors) or len(dropped) != len(request.dropped):
            raise RevealRefused("the unmask request names a node twice")
        both = sorted(survivors & dropped)
        if both:
            raise RevealRefused(f"{both[0]} is listed both as a survivor and as dropped: revealing both its "
                                "self-mask seed and its mask key would expose its input")
        unknown = sorted((survivors | dropped) - self._u2)
        if unknown:
            raise RevealRefused(f"{unknown[0]} did not share its keys with {self.name} in this round")
        missing = sorted(self._u2 - survivors - dropped)
        if missing:
            raise RevealRefused(f"the unmask request does not say whether {missing[0]} survived")
        if self.name not in survivors:
            raise RevealRefused(f"the unmask request lists {self.name} as dropped, but it sent its input")
        if len(survivors) < cfg.threshold:
            raise RevealRefused(f"the unmask request names {len(survivors)} survivors; {cfg.threshold} are needed")
        seed_shares = {s: self._held[s][0] for s in sorted(survivors)}
        key_shares = {d: self._held[d][1] for d in sorted(dropped)}
        unsigned = Reveal(cfg.round_id, self.name, seed_shares, key_shares, b"")
        self._phase = _DONE
        return Reveal(cfg.round_id, self.name, seed_shares, key_shares, self._key.sign(unsigned.payload()))
