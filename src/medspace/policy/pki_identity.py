"""Participants' names and identities, and their key material: the identity URI a certificate carries, keys, CSRs,
and the file helpers the space's CA (:mod:`medspace.policy.pki`, which re-exports the public names here) and the TLS
contexts (:mod:`medspace.policy.tls_context`) share.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from medspace.policy.errors import CertificateRejected, EnrolmentError, PkiError
from medspace.private_files import loose_mode_message, os_reason, shared_with_others

ROLES = ("hub", "node", "witness")
NAME_PATTERN = r"[a-z0-9][a-z0-9-]{0,62}"
_NAME = re.compile(NAME_PATTERN)
_URI = re.compile(rf"urn:medspace:({NAME_PATTERN}):(hub|node|witness):({NAME_PATTERN})")


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a certificate names: the space, the role (hub, node, witness) and the participant's name."""

    space: str
    role: str
    name: str

    @property
    def uri(self) -> str:
        """The identity as the URI in the certificate's subjectAltName."""
        return f"urn:medspace:{self.space}:{self.role}:{self.name}"


def check_name(name: str, what: str = "name") -> str:
    """A participant's or space's name, or EnrolmentError naming the syntax it must have."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise EnrolmentError(f"{what} must match {NAME_PATTERN} (lower-case letters, digits, '-')")
    return name


def check_role(role: str) -> str:
    """A participant's role, or EnrolmentError listing the roles."""
    if role not in ROLES:
        raise EnrolmentError(f"role must be one of {', '.join(ROLES)}")
    return role


# --- files ----------------------------------------------------------------------------------------------------------


def _write_file(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write a file atomically (a temporary file in the same directory, then rename); ``private``: mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise PkiError(f"cannot read {what} {path}: {os_reason(e)}") from None


def _check_private(path: Path, what: str) -> None:
    """Refuse a key file group or others may access (as ssh does), or one that is missing."""
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise PkiError(f"cannot read {what} {path}: {os_reason(e)}") from None
    if shared_with_others(mode) and stat.S_ISREG(mode):
        raise PkiError(loose_mode_message(what, path))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _load_cert(data: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise PkiError(f"{what} is not a PEM certificate") from None


# --- identities -----------------------------------------------------------------------------------------------------


def identity_of(cert: x509.Certificate) -> Identity:
    """The medspace identity a certificate names (its ``urn:medspace:`` URI), or CertificateRejected."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        raise CertificateRejected.because("no medspace identity") from None
    except ValueError:  # a malformed extension
        raise CertificateRejected.because("no medspace identity") from None
    found = {m.groups() for u in san.get_values_for_type(x509.UniformResourceIdentifier)
             if (m := _URI.fullmatch(u)) is not None}
    if not found:
        raise CertificateRejected.because("no medspace identity")
    if len(found) > 1:
        raise CertificateRejected.because("more than one medspace identity")
    space, role, name = found.pop()
    return Identity(space, role, name)


def make_csr(name: str) -> tuple[bytes, bytes]:
    """A fresh P-256 key and a CSR for ``name`` (the hospital side of enrolment): (key PEM, CSR PEM)."""
    check_name(name)
    key = _new_key()
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .sign(key, hashes.SHA256()))
    return _key_pem(key), csr.public_bytes(serialization.Encoding.PEM)


def write_csr(directory: Path, name: str) -> tuple[Path, Path]:
    """Make a key and CSR for ``name`` in ``directory`` (key.pem 0600, csr.pem); refuses to overwrite a key."""
    key_pem, csr_pem = make_csr(name)
    key_path, csr_path = directory / "key.pem", directory / "csr.pem"
    if key_path.exists():
        raise PkiError(f"{key_path} exists; a key is never overwritten")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write_file(key_path, key_pem, private=True)
        _write_file(csr_path, csr_pem)
    except OSError as e:
        raise PkiError(f"cannot write {directory}: {os_reason(e)}") from None
    return key_path, csr_path


def _check_csr_key(csr: x509.CertificateSigningRequest) -> ec.EllipticCurvePublicKey:
    try:
        key = csr.public_key()
    except (ValueError, TypeError):  # an algorithm cryptography does not know
        raise EnrolmentError("the CSR's key is of an unsupported type; the key must be ECDSA P-256") from None
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise EnrolmentError(f"the CSR's key is on curve {key.curve.name}; the key must be ECDSA P-256")
        return key
    kind = ("Ed25519" if isinstance(key, ed25519.Ed25519PublicKey) else "Ed448" if isinstance(
        key, ed448.Ed448PublicKey) else "RSA" if isinstance(key, rsa.RSAPublicKey) else type(key).__name__)
    raise EnrolmentError(f"{kind} keys are refused; the key must be ECDSA P-256")
