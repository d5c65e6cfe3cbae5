"""A secure-aggregation round's configuration: its id, participants, threshold, vector length and encoding."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec

from medspace.privacy.errors import ConfigError, ParticipantError, ReplayError
from medspace.privacy.secagg.messages import KeyAdvert, PeerVerifier, certified_key, check_signature
from medspace.privacy.secagg.ring import Encoding
from medspace.privacy.secagg.shamir import MAX_SHARES

_ROUND_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_VECTOR = 1 << 28  # 2 GiB of ring elements: far beyond any model update we send, and it keeps lengths in 4 bytes


def new_round_id() -> str:
    """A fresh round id (128 random bits): ids must never repeat, or an old signed input could be replayed."""
    return f"secagg-{secrets.token_hex(16)}"


def default_threshold(n: int) -> int:
    """ceil(2n/3): a round completes when up to floor(n/3) nodes drop."""
    return (2 * n + 2) // 3


@dataclass(frozen=True, slots=True, init=False)
class RoundConfig:
    """One round: ``round_id`` (unique per round; it binds every key and signature), the participants' names
    (stored sorted), the threshold t (default ceil(2n/3); at least n//2+1, so that no server can collect both a
    node's seed and its mask key from honest nodes), the vector length and its encoding."""

    round_id: str
    participants: tuple[str, ...]
    vector_length: int
    threshold: int = 0
    encoding: Encoding = field(default_factory=Encoding)

    def __init__(self, round_id: str, participants: Sequence[str], vector_length: int, threshold: int | None = None,
                 encoding: Encoding | None = None) -> None:
        names = tuple(sorted(participants))
        n = len(names)
        if not isinstance(round_id, str) or not _ROUND_ID.fullmatch(round_id):
            raise ConfigError("a round id must be 1-128 characters of letters, digits and . _ : -")
        if len(set(names)) != n:
            raise ConfigError("a round's participants must be distinct")
        if not 2 <= n <= MAX_SHARES:
            raise ConfigError(f"a round needs 2 to {MAX_SHARES} participants")
        t = default_threshold(n) if threshold is None else threshold
        if not n // 2 + 1 <= t <= n:
            raise ConfigError(f"the threshold must be in {n // 2 + 1}..{n} for {n} participants (more than half, "
                              "so that a node's seed and mask key are never both revealed)")
        if not 1 <= vector_length <= MAX_VECTOR:
            raise ConfigError(f"the vector length must be in 1..{MAX_VECTOR}")
        enc = encoding if encoding is not None else Encoding()
        enc.check_sum(n)
        object.__setattr__(self, "round_id", round_id)
        object.__setattr__(self, "participants", names)
        object.__setattr__(self, "vector_length", int(vector_length))
        object.__setattr__(self, "threshold", t)
        object.__setattr__(self, "encoding", enc)

    @property
    def n(self) -> int:
        """The number of participants."""
        return len(self.participants)

    def index(self, name: str) -> int:
        """A participant's share index (its position in the sorted participants, plus one)."""
        try:
            return self.participants.index(name) + 1
        except ValueError:
            raise ParticipantError(f"{name} is not a participant of round {self.round_id}") from None

    def check(self, round_id: str, name: str, what: str) -> None:
        """ReplayError if a message is for another round, ParticipantError if its node is not in this one."""
        name = name[:64]  # a message's claimed name is untrusted: keep errors short
        if round_id != self.round_id:
            raise ReplayError(f"{what} from {name} is for round {round_id[:128]!r}, not for this round {self.round_id}")
        if name not in self.participants:
            raise ParticipantError(f"{what} comes from {name}, which is not a participant of round {self.round_id}")


def verify_advert(config: RoundConfig, verifier: PeerVerifier, advert: KeyAdvert) -> ec.EllipticCurvePublicKey:
    """The advertiser's certificate key; refuse a key advert for another round (ReplayError), from a
    non-participant (ParticipantError), or whose certificate is not the space's for that node or whose signature
    does not verify (SignatureError)."""
    config.check(advert.round_id, advert.name, "a key advert")
    public = certified_key(verifier, advert.certificate, advert.name)
    check_signature(public, advert.signature, advert.payload(), f"{advert.name}'s key advert")
    return public
