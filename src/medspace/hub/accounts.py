"""People's accounts: roles, Argon2id password hashes, short-lived signed access tokens.

Passwords are hashed with Argon2id (RFC 9106) through argon2-cffi, whose defaults follow the RFC's second
recommended profile (64 MiB of memory, 3 passes). A hash made with older parameters is re-hashed at the next
successful login. A failed login answers the same way whether the user exists or not, and a missing user costs
a hash verification too, so response time does not tell who has an account.

Access tokens are JWTs (RFC 7519) signed with the hub's Ed25519 key (``EdDSA``, RFC 8037), valid for 15 minutes
by default. Every hub process of one deployment reads the same key file, so a token from one is good at all. A
token carries the username, role and hospital; the hub re-reads the account on every request, so a disabled
account or a changed role takes effect at once, not when the token expires.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medspace.hub.errors import AuthError, BadRequest, ConfigError
from medspace.private_files import PrivateFileError, read_private_file

TOKEN_LIFETIME = timedelta(minutes=15)
_ISSUER = "medspace-hub"
_USERNAME = re.compile(r"[a-z0-9][a-z0-9._-]{1,63}")
_HOSPITAL = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
MIN_PASSWORD = 12


class UserRole(StrEnum):
    """The roles a person can hold in the space."""

    RESEARCHER = "researcher"
    STEWARD = "steward"  # data steward / DPO of one hospital
    CLINICIAN = "clinician"  # of one hospital
    PATIENT = "patient"
    REGULATOR = "regulator"
    ADMIN = "admin"


HOSPITAL_ROLES = frozenset({UserRole.STEWARD, UserRole.CLINICIAN})

_hasher = PasswordHasher()
# verified against when the user does not exist, so both paths cost one Argon2 verification
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def check_username(name: str) -> str:
    """A valid username (lower-case letters, digits, '.', '_', '-'; 2-64 characters) or BadRequest."""
    if not _USERNAME.fullmatch(name):
        raise BadRequest("username: 2-64 characters of a-z, 0-9, '.', '_', '-', starting with a letter or digit")
    return name


def check_hospital(name: str) -> str:
    """A valid hospital (node) name or BadRequest."""
    if not _HOSPITAL.fullmatch(name):
        raise BadRequest("hospital: 1-63 characters of a-z, 0-9 and '-'")
    return name


def check_account(role: str, hospital: str | None, pseudonym: str | None) -> UserRole:
    """The role of a new account, checked with what it needs: a hospital for stewards and clinicians, a linkage
    pseudonym for patients, neither for the others."""
    try:
        r = UserRole(role)
    except ValueError:
        raise BadRequest(f"role: one of {', '.join(x.value for x in UserRole)}") from None
    if r in HOSPITAL_ROLES and not hospital:
        raise BadRequest(f"hospital: required for the role {r.value}")
    if r not in HOSPITAL_ROLES and hospital:
        raise BadRequest(f"hospital: only stewards and clinicians belong to a hospital, not the role {r.value}")
    if hospital:
        check_hospital(hospital)
    if r is UserRole.PATIENT:
        if not pseudonym or not re.fullmatch(r"[0-9a-f]{32,128}", pseudonym):
            raise BadRequest("pseudonym: a patient account needs the linkage pseudonym (32-128 hex digits)")
    elif pseudonym:
        raise BadRequest("pseudonym: only patient accounts carry a linkage pseudonym")
    return r


def hash_password(password: str) -> str:
    """The Argon2id hash of a password of at least 12 characters."""
    if len(password) < MIN_PASSWORD:
        raise BadRequest(f"password: at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches the stored hash (``None``: no such user; verified against a dummy anyway)."""
    try:
        return _hasher.verify(stored if stored is not None else _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """Whether a stored hash was made with parameters weaker than today's."""
    return _hasher.check_needs_rehash(stored)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a person (from a token) or a service (from its certificate)."""

    name: str
    role: str
    hospital: str | None = None
    pseudonym: str | None = None
    service: bool = False


class TokenSigner:
    """Issues and verifies the hub's access tokens with one Ed25519 key."""

    def __init__(self, key: Ed25519PrivateKey, lifetime: timedelta = TOKEN_LIFETIME) -> None:
        self._key = key
        self._public: Ed25519PublicKey = key.public_key()
        self.lifetime = lifetime

    @classmethod
    def from_file(cls, path: Path, lifetime: timedelta = TOKEN_LIFETIME) -> TokenSigner:
        """Load the key from a PEM file only its owner may read."""
        try:
            data = read_private_file(path, "the token signing key", 64 * 1024)
        except PrivateFileError as e:
            raise ConfigError(str(e)) from None
        try:
            key = serialization.load_pem_private_key(data, password=None)
        except ValueError:
            raise ConfigError(f"the token signing key {path} is not a PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigError(f"the token signing key {path} is not an Ed25519 key")
        return cls(key, lifetime)

    @staticmethod
    def create_file(path: Path) -> None:
        """Write a new Ed25519 signing key (PEM, mode 0600); an existing file is an error."""
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(f"{path} exists; not replacing a signing key") from None
        with os.fdopen(fd, "wb") as f:
            f.write(pem)

    def issue(self, principal: Principal, now: datetime | None = None) -> tuple[str, datetime]:
        """A signed token for a person and the time it expires."""
        now = now or datetime.now(UTC)
        exp = now + self.lifetime
        claims: dict[str, Any] = {"iss": _ISSUER, "sub": principal.name, "role": principal.role,
                                  "iat": int(now.timestamp()), "exp": int(exp.timestamp()),
                                  "jti": secrets.token_hex(8)}
        if principal.hospital:
            claims["hospital"] = principal.hospital
        return jwt.encode(claims, self._key, algorithm="EdDSA"), exp

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid, unexpired token from this hub; anything else is AuthError."""
        try:
            claims: dict[str, Any] = jwt.decode(token, self._public, algorithms=["EdDSA"], issuer=_ISSUER,
                                                options={"require": ["exp", "iat", "sub", "iss"]})
        except jwt.ExpiredSignatureError:
            raise AuthError("the access token has expired; log in again") from None
        except jwt.PyJWTError:
            raise AuthError("the access token is not valid") from None
        return claims
