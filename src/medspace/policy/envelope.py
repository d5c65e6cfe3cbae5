"""Signed task envelopes: what the hub sends a node, signed with the hub's certificate key, so a node can tell a
task the hub issued from an altered or replayed one even if the transport were compromised.

Envelope (JSON)::

    {"payload": base64(canonical JSON), "sig": base64(ECDSA P-256 / SHA-256 signature, DER)}

The signature covers ``b"medspace-task/1\\n" || payload`` (domain separation: a signature over a task can never be
mistaken for one over anything else the key signs). The canonical JSON is orjson with sorted keys. The payload
names the task, the hospital it is for, the contract, purpose, operation and parameters, when it was issued,
when it expires, and a 128-bit random nonce. A node accepts a payload once (it remembers nonces until they
expire), only for itself, and only before it expires.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from medspace.policy.errors import EnvelopeError

CONTEXT = b"medspace-task/1\n"
LIFETIME = timedelta(minutes=10)


def seal(payload: Mapping[str, Any], key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
    """Sign a task payload (which must already hold ``nonce``, ``issued_at`` and ``expires_at``)."""
    for k in ("task", "hospital", "nonce", "issued_at", "expires_at"):
        if k not in payload:
            raise EnvelopeError(f"payload: {k} is missing")
    body = orjson.dumps(dict(payload), option=orjson.OPT_SORT_KEYS)
    sig = key.sign(CONTEXT + body, ec.ECDSA(hashes.SHA256()))
    return {"payload": base64.b64encode(body).decode(), "sig": base64.b64encode(sig).decode()}


def stamp(payload: Mapping[str, Any], now: datetime | None = None, lifetime: timedelta = LIFETIME) -> dict[str, Any]:
    """A payload with a fresh nonce and its issue and expiry times."""
    now = now or datetime.now(UTC)
    return {**payload, "nonce": secrets.token_hex(16), "issued_at": now.isoformat(),
            "expires_at": (now + lifetime).isoformat()}


def open_envelope(envelope: Mapping[str, Any], hub_key: ec.EllipticCurvePublicKey, *, hospital: str,
                  now: datetime | None = None) -> dict[str, Any]:
    """The payload of an envelope the hub signed for ``hospital`` that has not expired; EnvelopeError otherwise.
    (Replays are the caller's to refuse, by remembering ``nonce``.)"""
    try:
        body = base64.b64decode(str(envelope["payload"]), validate=True)
        sig = base64.b64decode(str(envelope["sig"]), validate=True)
    except (KeyError, TypeError, binascii.Error):
        raise EnvelopeError("task envelope: payload and sig must be base64") from None
    try:
        hub_key.verify(sig, CONTEXT + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise EnvelopeError("task envelope: the hub's signature does not verify (altered or forged)") from None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise EnvelopeError("task envelope: the payload is not JSON") from None
    if not isinstance(payload, dict):
        raise EnvelopeError("task envelope: the payload is not an object")
    if payload.get("hospital") != hospital:
        raise EnvelopeError("task envelope: addressed to another hospital")
    try:
        expires = datetime.fromisoformat(str(payload["expires_at"]))
        issued = datetime.fromisoformat(str(payload["issued_at"]))
    except (KeyError, ValueError):
        raise EnvelopeError("task envelope: issued_at / expires_at missing or malformed") from None
    now = now or datetime.now(UTC)
    if expires.tzinfo is None or issued.tzinfo is None:
        raise EnvelopeError("task envelope: times must carry a zone")
    if now >= expires:
        raise EnvelopeError("task envelope: expired")
    if issued - now > timedelta(minutes=2):
        raise EnvelopeError("task envelope: issued in the future (clock skew over 2 minutes)")
    return payload
