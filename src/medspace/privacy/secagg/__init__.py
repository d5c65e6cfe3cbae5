"""Secure aggregation (Bonawitz et al. 2017, "Practical Secure Aggregation", with double masking): the hub adds
the nodes' vectors and learns only their sum. Transport-agnostic: every message is a dataclass with ``to_bytes`` /
``from_bytes``; the hub relays them.

A round, for a :class:`RoundConfig` (round id, never reused: :func:`new_round_id`; participants, vector length,
threshold t, :class:`Encoding`)::

    client = SecAggClient(config, name, NodeKey.load(key_pem, cert_pem), space)   # one per node
    server = SecAggServer(config, space)                                           # the hub
    server.receive_advert(client.advertise())          # 1. signed fresh X25519 keys, per node
    adverts = server.close_adverts()                   #    broadcast to every node
    server.receive_shares(client.share(adverts))       # 2. Shamir shares of seed and mask key, encrypted per peer
    routed = server.route_shares()                     #    routed[name] goes to node name
    server.receive_input(client.masked_input(x, routed[name]))   # 3. y = x + PRG(b) ± pairwise masks, signed
    request = server.unmask_request()                  #    survivors and dropped nodes
    server.receive_reveal(client.reveal(request))      # 4. survivors' seed shares, dropped nodes' key shares
    total = server.finish()                            #    the sum of the survivors' x (float64 or int64)

Cryptography (pyca ``cryptography``; shares by PyCryptodome): identities are the nodes' ECDSA P-256 certificate
keys from the data space's CA (``space`` is :class:`medspace.policy.pki.Space`, or anything with its
``verify_peer``); each node signs its advertised keys, its masked input and its reveal with the round id and its
name, so the relay cannot substitute a node's keys or inputs. Pairwise and share-encryption keys are X25519, then
HKDF-SHA256 bound to the round and the pair; masks are AES-256-CTR keystreams of 32-byte keys over Z_{2^64}; shares
travel under AES-256-GCM bound to round, sender and recipient. All randomness comes from ``secrets`` (Shamir's
polynomial coefficients from PyCryptodome's OS-backed generator).

Dropouts: the sum completes while at least t nodes send their inputs and reveal (t = ceil(2n/3) by default: up to a
third may drop after masking). Safety rests on t > n/2 and on each honest node revealing, for any one node, either
its self-mask seed's share (survivor) or its mask key's share (dropped), never both, once per round: a relay would
need t of each from distinct honest nodes, 2t > n of them. Not covered: a malicious node sending inconsistent
shares is detected (the reconstructed secret must match its signed advert), not corrected; a relay that lies about
who survived can make a round fail, not learn an input. "The relay cannot substitute a node" holds while the relay
cannot issue certificates: the space's CA key (ca/ca.key) must not be on the hub's machine.
"""

from medspace.privacy.secagg.client import SecAggClient
from medspace.privacy.secagg.config import RoundConfig, default_threshold, new_round_id
from medspace.privacy.secagg.messages import (
    EncryptedShare,
    KeyAdvert,
    MaskedInput,
    NodeKey,
    PeerVerifier,
    Reveal,
    UnmaskRequest,
)
from medspace.privacy.secagg.ring import Encoding
from medspace.privacy.secagg.server import SecAggServer

__all__ = [
    "Encoding",
    "EncryptedShare",
    "KeyAdvert",
    "MaskedInput",
    "NodeKey",
    "PeerVerifier",
    "Reveal",
    "RoundConfig",
    "SecAggClient",
    "SecAggServer",
    "UnmaskRequest",
    "default_threshold",
    "new_round_id",
]
