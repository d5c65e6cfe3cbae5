"""The space's certificate authority: one CA per data space, certificates for the hub, the nodes and the witnesses,
enrolment of hospitals that make their own keys, revocation, and the mutual-TLS contexts every party speaks.

Keys are ECDSA P-256, signatures SHA-256 (pyca ``cryptography``). A *space directory* holds::

    <space>/ca/ca.key              the CA's private key (0600; only the operator's copy of the space has it)
    <space>/ca/ca.pem              the CA certificate (self-signed; O = the space's name)
    <space>/ca/crl.pem             the revocation list, signed by the CA, valid CRL_DAYS (refresh_crl renews it)
    <space>/ca/issued.json         every certificate issued: serial, name, role, hospital, not_after, revoked_at
    <space>/ca/certs/<serial>.pem  a copy of every certificate issued
    <space>/participants/<name>/key.pem, cert.pem   (key 0600; absent for a participant that enrolled with a CSR)

A participant's identity is the URI ``urn:medspace:<space>:<role>:<name>`` in its certificate's subjectAltName
(role hub, node or witness; a node's name is its hospital id, e.g. ``h1``); its common name is the name too. Server
certificates (hub, witness) also name ``localhost`` and ``127.0.0.1`` (and any ``hosts`` given) for hostname checks.

A party that holds no CA key (a hospital's node) opens a copy of the space that has ``ca/ca.pem``, ``ca/crl.pem``
and its own ``participants/<name>/`` (:meth:`Space.export` writes one).

TLS: the mutual-TLS contexts (:func:`server_context`, :func:`client_context`, :func:`reload_crl`) are in
:mod:`medspace.policy.tls_context`, and importable from here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from medspace.policy.errors import CertificateRejected, EnrolmentError, PkiError
from medspace.policy.pki_identity import (
    _NAME,
    Identity,
    _check_csr_key,
    _check_private,
    _key_pem,
    _load_cert,
    _new_key,
    _read,
    _write_file,
    check_name,
    check_role,
    identity_of,
)
from medspace.policy.pki_identity import NAME_PATTERN as NAME_PATTERN
from medspace.policy.pki_identity import ROLES as ROLES
from medspace.policy.pki_identity import make_csr as make_csr
from medspace.policy.pki_identity import write_csr as write_csr
from medspace.policy.tls_context import client_context as client_context
from medspace.policy.tls_context import reload_crl as reload_crl
from medspace.policy.tls_context import server_context as server_context
from medspace.private_files import (
    PrivateFileError,
    os_reason,
    read_private_file,
)

if TYPE_CHECKING:
    from medspace.ledger.log import AuditLog

SERVER_ROLES = frozenset({"hub", "witness"})
DEFAULT_HOSTS = ("localhost", "127.0.0.1")
CRL_DAYS = 7
CA_DAYS = 3650
# Issued certificates start a little in the past: a peer whose clock is a few minutes behind still accepts them.
BACKDATE = timedelta(minutes=5)
# RFC 5280 reasons for a revocation that is final (no certificate_hold: a revoked name enrols again instead)
REASONS = ("unspecified", "key_compromise", "affiliation_changed", "superseded", "cessation_of_operation",
           "privilege_withdrawn")
_MAX_PEM = 64 * 1024

EventHook = Callable[[str, str, str], None]


@dataclass(frozen=True, slots=True)
class Participant:
    """Where a participant's files are in a space directory (``key`` may not exist: enrolled with a CSR)."""

    name: str
    role: str
    key: Path
    cert: Path


@dataclass(frozen=True, slots=True)
class IssuedCert:
    """One certificate the CA issued, as recorded in issued.json (times are RFC 3339 UTC, serial lower-case hex)."""

    serial: str
    name: str
    role: str
    hospital: str | None
    not_after: str
    revoked_at: str | None = None
    reason: str | None = None

    @property
    def active(self) -> bool:
        """Not revoked (it may still have expired)."""
        return self.revoked_at is None


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _serial_hex(n: int) -> str:
    # 40 hex digits, zero-padded: one spelling per serial, and long enough that the audit log reads it as a hash
    return f"{n:040x}"


# --- the space ------------------------------------------------------------------------------------------------------


class Space:
    """A data space's certificate authority and participants, in a space directory (see the module docstring).

    Opened without ``ca/ca.key`` (a node's copy), it verifies peers and makes TLS contexts but issues nothing.
    ``on_event(action, name, role)`` is called after every issue, enrolment and revocation (action "issue",
    "enrol" or "revoke"); ``audit`` receives an audit event for each (see :meth:`_log`)."""

    def __init__(self, directory: Path, *, on_event: EventHook | None = None, audit: AuditLog | None = None) -> None:
        self.directory = Path(directory)
        self.on_event = on_event
        self.audit = audit
        self.ca_cert = _load_cert(_read(self.ca_pem, "the CA certificate"), f"the CA certificate {self.ca_pem}")
        names = self.ca_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        if len(names) != 1 or not _NAME.fullmatch(str(names[0].value)):
            raise PkiError(f"{self.ca_pem} does not name a medspace space")
        self.name = str(names[0].value)
        self._crl_cache: tuple[tuple[int, int, int], x509.CertificateRevocationList] | None = None

    @classmethod
    def open(cls, directory: Path, *, on_event: EventHook | None = None, audit: AuditLog | None = None) -> Space:
        """Open a space directory (it must hold ca/ca.pem and ca/crl.pem)."""
        directory = Path(directory)
        if not (directory / "ca" / "ca.pem").is_file():
            raise PkiError(f"{directory} is not a space directory (no ca/ca.pem)")
        return cls(directory, on_event=on_event, audit=audit)

    # paths
    @property
    def ca_dir(self) -> Path:
        """The CA's directory."""
        return self.directory / "ca"

    @property
    def ca_pem(self) -> Path:
        """The CA certificate's file (what every party trusts)."""
        return self.ca_dir / "ca.pem"

    @property
    def crl_pem(self) -> Path:
        """The revocation list's file."""
        return self.ca_dir / "crl.pem"

    @property
    def can_issue(self) -> bool:
        """Whether this copy of the space holds the CA's key."""
        return (self.ca_dir / "ca.key").exists()

    def participant(self, name: str) -> Participant:
        """The paths of a participant's key and certificate (role read from the certificate when it exists)."""
        check_name(name)
        d = self.directory / "participants" / name
        role = ""
        if (d / "cert.pem").is_file():
            role = identity_of(_load_cert(_read(d / "cert.pem", "a certificate"), f"{d / 'cert.pem'}")).role
        return Participant(name, role, d / "key.pem", d / "cert.pem")

    # records
    def issued(self) -> list[IssuedCert]:
        """Every certificate issued, oldest first (empty in a copy without the CA)."""
        path = self.ca_dir / "issued.json"
        if not path.exists():
            return []
        try:
            return [IssuedCert(**r) for r in json.loads(_read(path, "the issued list"))["certificates"]]
        except (ValueError, TypeError, KeyError):
            raise PkiError(f"{path} is not a medspace issued list") from None

    def _write_issued(self, records: Sequence[IssuedCert]) -> None:
        data = json.dumps({"space": self.name, "certificates": [asdict(r) for r in records]}, indent=1)
        _write_file(self.ca_dir / "issued.json", data.encode() + b"\n")

    def active(self, name: str) -> IssuedCert | None:
        """The unrevoked certificate issued to ``name`` (the latest), if any."""
        live = [r for r in self.issued() if r.name == name and r.active]
        return live[-1] if live else None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[ec.EllipticCurvePrivateKey]:
        """The CA key, with the space's lock held: one issuer at a time, across processes."""
        key_path = self.ca_dir / "ca.key"
        if not key_path.exists():
            raise PkiError(f"{self.directory} holds no CA key (ca/ca.key); only the CA's copy of the space issues")
        try:
            lock = os.open(self.ca_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise PkiError(f"cannot lock {self.ca_dir}: {os_reason(e)}") from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                data = read_private_file(key_path, "the CA key", _MAX_PEM)
            except PrivateFileError as e:
                raise PkiError(str(e)) from None
            try:
                key = serialization.load_pem_private_key(data, None)
            except (ValueError, TypeError):
                raise PkiError(f"{key_path} is not an unencrypted PEM private key") from None
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise PkiError(f"{key_path} is not an ECDSA key")
            yield key
        finally:
            os.close(lock)  # closing releases the lock

    # issuing
    def issue(self, name: str, role: str, *, hosts: Sequence[str] = (), days: int = 365,
              not_before: datetime | None = None) -> Participant:
        """Make a key and a certificate for ``name`` in ``participants/<name>/``; ``hosts`` adds DNS names or IP
        addresses to a server's certificate; ``not_before`` (default: now) lets tests make expired ones."""
        check_name(name)
        check_role(role)
        key = _new_key()
        with self._locked() as ca_key:
            self._refuse_active(name)
            cert = self._sign(ca_key, name, role, key.public_key(), hosts=hosts, days=days, not_before=not_before)
            p = Participant(name, role, self.directory / "participants" / name / "key.pem",
                            self.directory / "participants" / name / "cert.pem")
            p.key.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(p.key.parent, 0o700)
            _write_file(p.key, _key_pem(key), private=True)
            self._record(cert, name, role)
        self._event("issue", name, role, cert)
        return p

    def enrol(self, csr_pem: bytes, role: str, name: str, *, hosts: Sequence[str] = (), days: int = 365,
              not_before: datetime | None = None) -> bytes:
        """Check a hospital's CSR and issue its certificate (PEM); EnrolmentError names the rule it breaks:
        name syntax, role, a valid CSR signature, an ECDSA P-256 key, CN equal to ``name``, ``name`` not issued
        (unless its certificate was revoked)."""
        check_name(name)
        check_role(role)
        try:
            csr = x509.load_pem_x509_csr(csr_pem)
        except ValueError:
            raise EnrolmentError("not a PEM certificate signing request") from None
        try:
            valid = csr.is_signature_valid
        except (ValueError, TypeError, InvalidSignature):
            valid = False
        if not valid:
            raise EnrolmentError("the CSR's signature does not verify")
        public_key = _check_csr_key(csr)
        cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if len(cns) != 1 or cns[0].value != name:
            raise EnrolmentError(f"the CSR's common name (CN) must be the requested name {name}")
        with self._locked() as ca_key:
            self._refuse_active(name)
            cert = self._sign(ca_key, name, role, public_key, hosts=hosts, days=days, not_before=not_before)
            self._record(cert, name, role)
        self._event("enrol", name, role, cert)
        return cert.public_bytes(serialization.Encoding.PEM)

    def _refuse_active(self, name: str) -> None:
        if self.active(name) is not None:
            raise EnrolmentError(f"{name} is already issued; revoke its certificate before issuing a new one")

    def _sign(self, ca_key: ec.EllipticCurvePrivateKey, name: str, role: str, public_key: ec.EllipticCurvePublicKey,
              *, hosts: Sequence[str], days: int, not_before: datetime | None) -> x509.Certificate:
        if days < 1:
            raise PkiError("days must be at least 1")
        start = not_before if not_before is not None else _now() - BACKDATE
        end = min(start + timedelta(days=days), self.ca_cert.not_valid_after_utc)
        uri = Identity(self.name, role, name).uri
        names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
        if role in SERVER_ROLES:
            for h in dict.fromkeys([*DEFAULT_HOSTS, *hosts]):
                names.append(_host_name(h))
        ca_ski = self.ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, self.name)]))
                .issuer_name(self.ca_cert.subject)
                .public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(start)
                .not_valid_after(end)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName(names), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
                .sign(ca_key, hashes.SHA256()))
        return cert

    def _record(self, cert: x509.Certificate, name: str, role: str) -> None:
        pem = cert.public_bytes(serialization.Encoding.PEM)
        serial = _serial_hex(cert.serial_number)
        _write_file(self.ca_dir / "certs" / f"{serial}.pem", pem)
        _write_file(self.directory / "participants" / name / "cert.pem", pem)
        rec = IssuedCert(serial, name, role, name if role == "node" else None, _iso(cert.not_valid_after_utc))
        self._write_issued([*self.issued(), rec])

    # revoking
    def revoke(self, name: str, reason: str = "unspecified") -> IssuedCert:
        """Revoke ``name``'s certificate and re-sign the CRL; ``reason`` is an RFC 5280 reason (REASONS)."""
        check_name(name)
        if reason not in REASONS:
            raise PkiError(f"reason must be one of {', '.join(REASONS)}")
        with self._locked() as ca_key:
            records = self.issued()
            live = [i for i, r in enumerate(records) if r.name == name and r.active]
            if not live:
                raise PkiError(f"{name} has no certificate to revoke")
            now = _now()
            for i in live:
                records[i] = IssuedCert(**{**asdict(records[i]), "revoked_at": _iso(now), "reason": reason})
            self._write_issued(records)
            self._write_crl(ca_key, records)
            cert = _load_cert(_read(self.ca_dir / "certs" / f"{records[live[-1]].serial}.pem", "a certificate"),
                              "an issued certificate")
        self._event("revoke", name, records[live[-1]].role, cert)
        return records[live[-1]]

    def refresh_crl(self) -> None:
        """Re-sign the CRL with a new validity of CRL_DAYS: run it (e.g. daily) before the current one expires,
        or every handshake fails once it has."""
        with self._locked() as ca_key:
            self._write_crl(ca_key, self.issued())

    def _write_crl(self, ca_key: ec.EllipticCurvePrivateKey, records: Sequence[IssuedCert]) -> None:
        now = _now()
        number, last_update = 1, now - BACKDATE
        if self.crl_pem.exists():
            with contextlib.suppress(x509.ExtensionNotFound, PkiError):
                old = self.crl()
                number = old.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number + 1
                # Strictly later than the last CRL, to the second: a live context holding both (reload_crl) uses
                # the one with the latest lastUpdate, and keeps the older one on a tie.
                last_update = max(last_update, old.last_update_utc + timedelta(seconds=1))
        ca_ski = self.ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = (x509.CertificateRevocationListBuilder()
                   .issuer_name(self.ca_cert.subject)
                   .last_update(last_update)
                   .next_update(now + timedelta(days=CRL_DAYS))
                   .add_extension(x509.CRLNumber(number), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                                  critical=False))
        for r in records:
            if r.revoked_at is not None:
                revoked = (x509.RevokedCertificateBuilder()
                           .serial_number(int(r.serial, 16))
                           .revocation_date(datetime.strptime(r.revoked_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC))
                           .add_extension(x509.CRLReason(x509.ReasonFlags[r.reason or "unspecified"]), critical=False)
                           .build())
                builder = builder.add_revoked_certificate(revoked)
        crl = builder.sign(ca_key, hashes.SHA256())
        _write_file(self.crl_pem, crl.public_bytes(serialization.Encoding.PEM))

    def crl(self) -> x509.CertificateRevocationList:
        """The current CRL, read again whenever its file changes; PkiError if it is not signed by the CA."""
        try:
            st = self.crl_pem.stat()
        except OSError as e:
            raise PkiError(f"cannot read the revocation list {self.crl_pem}: {os_reason(e)}") from None
        key = (st.st_ino, st.st_mtime_ns, st.st_size)
        if self._crl_cache is not None and self._crl_cache[0] == key:
            return self._crl_cache[1]
        try:
            crl = x509.load_pem_x509_crl(_read(self.crl_pem, "the revocation list"))
        except ValueError:
            raise PkiError(f"{self.crl_pem} is not a PEM revocation list") from None
        if crl.issuer != self.ca_cert.subject or not crl.is_signature_valid(self.ca_cert.public_key()):  # type: ignore[arg-type]
            raise PkiError(f"{self.crl_pem} is not signed by this space's CA")
        self._crl_cache = (key, crl)
        return crl

    def install_crl(self, crl_pem: bytes) -> bool:
        """Install a CRL fetched from the hub in this copy of the space if the CA signed it and it is newer (a
        higher CRL number) than the one held; True if installed. A node keeps its copy fresh this way: once its
        CRL expires, every handshake it makes fails."""
        try:
            crl = x509.load_pem_x509_crl(crl_pem)
        except ValueError:
            raise PkiError("not a PEM revocation list") from None
        if crl.issuer != self.ca_cert.subject or not crl.is_signature_valid(self.ca_cert.public_key()):  # type: ignore[arg-type]
            raise PkiError("the revocation list is not signed by this space's CA")
        try:
            new = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
            old = self.crl().extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        except x509.ExtensionNotFound:
            raise PkiError("the revocation list has no CRL number") from None
        if new <= old:
            return False
        _write_file(self.crl_pem, crl.public_bytes(serialization.Encoding.PEM))
        return True

    # verifying
    def verify_peer(self, cert_der: bytes, *, roles: Sequence[str] | None = None,
                    now: datetime | None = None) -> Identity:
        """The identity of a peer's certificate (DER) if this space's CA issued it, it is within its validity, it
        is not revoked and it names a medspace identity in this space (and one of ``roles``, if given); else
        CertificateRejected whose ``reason`` says which."""
        try:
            cert = x509.load_der_x509_certificate(cert_der)
        except (ValueError, TypeError):
            raise CertificateRejected.because("not a certificate") from None
        try:
            cert.verify_directly_issued_by(self.ca_cert)
        except (ValueError, TypeError, InvalidSignature):
            raise CertificateRejected.because("not issued by this space's CA") from None
        t = now if now is not None else _now()
        if t < cert.not_valid_before_utc:
            raise CertificateRejected.because("not yet valid")
        if t > cert.not_valid_after_utc:
            raise CertificateRejected.because("expired")
        crl = self.crl()
        next_update = crl.next_update_utc
        if next_update is None or t > next_update:
            raise CertificateRejected.because("the space's revocation list has expired")
        if crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None:
            raise CertificateRejected.because("revoked")
        ident = identity_of(cert)
        if ident.space != self.name:
            raise CertificateRejected.because("issued for another space")
        if roles is not None and ident.role not in roles:
            raise CertificateRejected.because(f"role {ident.role} is not accepted here")
        return ident

    # copies
    def export(self, name: str, destination: Path) -> Path:
        """Write the copy of the space a participant needs (CA certificate, CRL, its own key and certificate) to
        a new directory ``destination``; open it with Space.open, give it to server_context/client_context."""
        p = self.participant(name)
        if destination.exists() and any(destination.iterdir()):
            raise PkiError(f"{destination} exists and is not empty")
        files = [(self.ca_pem, destination / "ca" / "ca.pem", False), (self.crl_pem, destination / "ca" / "crl.pem",
                 False), (p.cert, destination / "participants" / name / "cert.pem", False)]
        if p.key.exists():
            _check_private(p.key, "the key file")
            files.append((p.key, destination / "participants" / name / "key.pem", True))
        try:
            for src, dst, private in files:
                _write_file(dst, _read(src, "a file"), private=private)
        except OSError as e:
            raise PkiError(f"cannot write {destination}: {os_reason(e)}") from None
        return destination

    # events
    def _event(self, action: str, name: str, role: str, cert: x509.Certificate) -> None:
        if self.audit is not None:
            self._log(action, name, cert)
        if self.on_event is not None:
            self.on_event(action, name, role)

    def _log(self, action: str, name: str, cert: x509.Certificate) -> None:
        """One audit event: actor "ca", role admin, purpose HSYSADMIN, resource ``participant:<name>``; an issue or
        enrolment is participant.register with the certificate's SHA-256 as output; a revocation is participant.revoke
        with the certificate's SHA-256 as input and the new CRL's as output."""
        from medspace.ledger.entry import Action, AuditEvent, Purpose, Role

        assert self.audit is not None
        digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
        if action == "revoke":
            crl = hashlib.sha256(self.crl().public_bytes(serialization.Encoding.DER)).hexdigest()
            event = AuditEvent(actor="ca", role=Role.ADMIN, action=Action.PARTICIPANT_REVOKE, purpose=Purpose.HSYSADMIN,
                               resource=f"participant:{name}", time=_now(), input_hashes=(digest,),
                               output_hashes=(crl,))
        else:
            event = AuditEvent(actor="ca", role=Role.ADMIN, action=Action.PARTICIPANT_REGISTER,
                               purpose=Purpose.HSYSADMIN, resource=f"participant:{name}", time=_now(),
                               output_hashes=(digest,))
        self.audit.append([event])


def _host_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})", host):
        raise PkiError("a host must be a DNS name or an IP address")
    return x509.DNSName(host.lower())


def _make_ca(space: str, ca_days: int) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"medspace {space} CA"),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, space)])
    now = _now()
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + timedelta(days=ca_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def init_space(directory: Path, space: str, *, hub: str = "hub", nodes: Sequence[str] = (),
               witnesses: Sequence[str] = (), days: int = 365, hosts: Sequence[str] = (), ca_days: int = CA_DAYS,
               on_event: EventHook | None = None, audit: AuditLog | None = None) -> Space:
    """Create a space directory: the CA (valid ``ca_days``), an empty CRL, and certificates valid ``days`` for
    the hub, the nodes (named by hospital id) and the witnesses; ``hosts`` are extra DNS names or addresses of the
    servers (hub, witnesses). Refuses a directory that exists and is not empty."""
    directory = Path(directory)
    check_name(space, "the space's name")
    names = [hub, *nodes, *witnesses]
    for n in names:
        check_name(n)
    if len(set(names)) != len(names):
        raise PkiError("participant names must be distinct")
    if days < 1 or ca_days < days:
        raise PkiError("days must be at least 1 and the CA must outlive its certificates (ca_days >= days)")
    for h in hosts:
        _host_name(h)
    try:
        if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise PkiError(f"{directory} exists and is not empty; a space is created in a new or empty directory")
        key, cert = _make_ca(space, ca_days)
        (directory / "ca").mkdir(parents=True, exist_ok=True)
        os.chmod(directory / "ca", 0o700)
        _write_file(directory / "ca" / "ca.key", _key_pem(key), private=True)
        _write_file(directory / "ca" / "ca.pem", cert.public_bytes(serialization.Encoding.PEM))
        s = Space(directory, on_event=on_event, audit=audit)
        s._write_issued([])
        with s._locked() as ca_key:
            s._write_crl(ca_key, [])
    except OSError as e:
        raise PkiError(f"cannot create the space in {directory}: {os_reason(e)}") from None
    s.issue(hub, "hub", hosts=hosts, days=days)
    for n in nodes:
        s.issue(n, "node", days=days)
    for w in witnesses:
        s.issue(w, "witness", hosts=hosts, days=days)
    return s


def describe(records: Sequence[IssuedCert]) -> list[dict[str, Any]]:
    """issued.json records as plain dictionaries (what `medspace space list --json` prints)."""
    return [asdict(r) for r in records]
