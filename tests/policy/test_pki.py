"""The space's CA: layout and modes, certificate contents, enrolment rules, revocation and the CRL, peer
verification (other CA, expired, revoked, no identity), copies without the CA key, and audit events."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from medspace.ledger.entry import Action, AuditEvent, Purpose, Role
from medspace.ledger.log import AuditLog, init_log
from medspace.policy.errors import CertificateRejected, EnrolmentError, PkiError
from medspace.policy.pki import Space, identity_of, init_space, make_csr, write_csr


def cert_of(space: Space, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(space.participant(name).cert.read_bytes())


def der(space: Space, name: str) -> bytes:
    return cert_of(space, name).public_bytes(serialization.Encoding.DER)


def csr_with(key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, cn: str) -> bytes:
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
           .sign(key, algorithm))
    return csr.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def space(tmp_path: Path) -> Space:
    return init_space(tmp_path / "space", "demo", nodes=["h1", "h2"], witnesses=["w1"])


def test_layout_and_modes(space: Space) -> None:
    d = space.directory
    for f in ("ca/ca.key", "ca/ca.pem", "ca/crl.pem", "ca/issued.json"):
        assert (d / f).is_file(), f
    assert stat.S_IMODE((d / "ca" / "ca.key").stat().st_mode) == 0o600
    for name in ("hub", "h1", "h2", "w1"):
        p = space.participant(name)
        assert stat.S_IMODE(p.key.stat().st_mode) == 0o600
        assert p.cert.is_file()
    issued = json.loads((d / "ca" / "issued.json").read_text())["certificates"]
    assert [(r["name"], r["role"], r["hospital"], r["revoked_at"]) for r in issued] == [
        ("hub", "hub", None, None), ("h1", "node", "h1", None), ("h2", "node", "h2", None),
        ("w1", "witness", None, None)]
    assert all(len(r["serial"]) == 40 for r in issued)
    assert space.name == "demo" and space.can_issue


def test_ca_certificate(space: Space) -> None:
    ca = space.ca_cert
    assert ca.subject == ca.issuer
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign and not ku.digital_signature
    assert isinstance(ca.public_key(), ec.EllipticCurvePublicKey)
    assert isinstance(ca.signature_hash_algorithm, hashes.SHA256)


def test_participant_certificates(space: Space) -> None:
    hub, h1 = cert_of(space, "hub"), cert_of(space, "h1")
    assert hub.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "hub"
    san = hub.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:medspace:demo:hub:hub"]
    node_san = h1.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert node_san.get_values_for_type(x509.DNSName) == []  # a node is a client only
    eku = h1.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not h1.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    key = h1.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    ident = identity_of(h1)
    assert (ident.space, ident.role, ident.name) == ("demo", "node", "h1")
    assert ident.uri == "urn:medspace:demo:node:h1"
    assert identity_of(cert_of(space, "w1")).role == "witness"


def test_extra_server_hosts(tmp_path: Path) -> None:
    s = init_space(tmp_path / "s", "demo", hosts=["hub.example.org", "10.0.0.5"])
    san = cert_of(s, "hub").extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "hub.example.org"]
    assert [str(a) for a in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "10.0.0.5"]


def test_init_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    d = tmp_path / "taken"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    with pytest.raises(PkiError, match=str(d)):
        init_space(d, "demo")
    assert sorted(p.name for p in d.iterdir()) == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert init_space(empty, "demo").name == "demo"


@pytest.mark.parametrize(("kwargs", "rule"), [
    ({"space": "Demo"}, "space's name must match"),
    ({"space": "demo", "nodes": ["H1"]}, "name must match"),
    ({"space": "demo", "nodes": ["-h1"]}, "name must match"),
    ({"space": "demo", "nodes": ["h1", "h1"]}, "distinct"),
    ({"space": "demo", "hub": "h1", "nodes": ["h1"]}, "distinct"),
])
def test_init_refuses_bad_names(tmp_path: Path, kwargs: dict[str, object], rule: str) -> None:
    with pytest.raises(PkiError, match=rule):
        init_space(tmp_path / "s", **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "s").exists()


def test_enrol_a_hospital_that_made_its_own_key(space: Space, tmp_path: Path) -> None:
    key_path, csr_path = write_csr(tmp_path / "h6", "h6")
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert_pem = space.enrol(csr_path.read_bytes(), "node", "h6")
    cert = x509.load_pem_x509_certificate(cert_pem)
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert cert.public_key() == key.public_key()
    ident = space.verify_peer(cert.public_bytes(serialization.Encoding.DER))
    assert (ident.role, ident.name) == ("node", "h6")
    assert space.participant("h6").cert.read_bytes() == cert_pem  # the CA keeps a copy
    assert not space.participant("h6").key.exists()  # but never the hospital's key
    assert space.active("h6") is not None and space.active("h6").hospital == "h6"  # type: ignore[union-attr]
    with pytest.raises(PkiError, match="never overwritten"):
        write_csr(tmp_path / "h6", "h6")


def test_enrolment_rules(space: Space) -> None:
    _, csr = make_csr("h6")
    with pytest.raises(EnrolmentError, match=r"common name \(CN\) must be the requested name h7"):
        space.enrol(csr, "node", "h7")
    _, bad = make_csr("h6")
    with pytest.raises(EnrolmentError, match="name must match"):
        space.enrol(bad, "node", "H6")
    with pytest.raises(EnrolmentError, match="name must match"):
        space.enrol(csr_with(ec.generate_private_key(ec.SECP256R1()), "h_6"), "node", "h_6")
    with pytest.raises(EnrolmentError, match="role must be one of hub, node, witness"):
        space.enrol(csr, "admin", "h6")
    _, dup = make_csr("h1")
    with pytest.raises(EnrolmentError, match="h1 is already issued; revoke"):
        space.enrol(dup, "node", "h1")
    with pytest.raises(EnrolmentError, match="Ed25519 keys are refused; the key must be ECDSA P-256"):
        space.enrol(csr_with(ed25519.Ed25519PrivateKey.generate(), "h6"), "node", "h6")
    with pytest.raises(EnrolmentError, match="curve secp384r1; the key must be ECDSA P-256"):
        space.enrol(csr_with(ec.generate_private_key(ec.SECP384R1()), "h6"), "node", "h6")
    with pytest.raises(EnrolmentError, match="not a PEM certificate signing request"):
        space.enrol(b"hello", "node", "h6")
    # a CSR whose signed part was altered after signing (the name changed on the way)
    body = x509.load_pem_x509_csr(csr).public_bytes(serialization.Encoding.DER)
    forged = x509.load_der_x509_csr(body.replace(b"h6", b"h7", 1)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(EnrolmentError, match="signature does not verify"):
        space.enrol(forged, "node", "h7")
    assert [r.name for r in space.issued()] == ["hub", "h1", "h2", "w1"]  # nothing issued by a refused request


def test_revoke_then_enrol_again(space: Space) -> None:
    old = der(space, "h2")
    rec = space.revoke("h2", "key_compromise")
    assert rec.revoked_at is not None and rec.reason == "key_compromise"
    crl = space.crl()
    revoked = crl.get_revoked_certificate_by_serial_number(int(rec.serial, 16))
    assert revoked is not None
    assert revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
    assert crl.is_signature_valid(space.ca_cert.public_key())  # type: ignore[arg-type]
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    assert crl.next_update_utc is not None and crl.next_update_utc > datetime.now(UTC) + timedelta(days=6)
    with pytest.raises(CertificateRejected) as e:
        space.verify_peer(old)
    assert e.value.reason == "revoked"
    with pytest.raises(PkiError, match="h2 has no certificate to revoke"):
        space.revoke("h2")
    with pytest.raises(PkiError, match="reason must be one of"):
        space.revoke("h1", "because")
    _, csr = make_csr("h2")  # a new key for the same hospital
    new = x509.load_pem_x509_certificate(space.enrol(csr, "node", "h2"))
    assert space.verify_peer(new.public_bytes(serialization.Encoding.DER)).name == "h2"
    with pytest.raises(CertificateRejected, match="revoked"):
        space.verify_peer(old)
    assert [(r.name, r.active) for r in space.issued() if r.name == "h2"] == [("h2", False), ("h2", True)]


def test_refresh_crl_keeps_revocations(space: Space) -> None:
    space.revoke("w1")
    before = space.crl()
    space.refresh_crl()
    after = space.crl()
    assert after.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 3
    assert after.last_update_utc > before.last_update_utc
    assert [r.serial_number for r in after] == [r.serial_number for r in before]


def test_verify_peer_refusals(space: Space, tmp_path: Path) -> None:
    other = init_space(tmp_path / "other", "demo", nodes=["h1"])  # same names, another CA
    with pytest.raises(CertificateRejected) as e:
        space.verify_peer(der(other, "h1"))
    assert e.value.reason == "not issued by this space's CA"
    assert "not issued by this space's CA" in str(e.value)

    past = datetime.now(UTC) - timedelta(days=30)
    old = space.issue("h9", "node", days=1, not_before=past)
    old_der = x509.load_pem_x509_certificate(old.cert.read_bytes()).public_bytes(serialization.Encoding.DER)
    with pytest.raises(CertificateRejected) as e:
        space.verify_peer(old_der)
    assert e.value.reason == "expired"
    assert space.verify_peer(old_der, now=past + timedelta(hours=1)).name == "h9"
    with pytest.raises(CertificateRejected, match="not yet valid"):
        space.verify_peer(der(space, "h1"), now=past)

    with pytest.raises(CertificateRejected, match="not a certificate"):
        space.verify_peer(b"\x30\x03junk")
    assert space.verify_peer(der(space, "h1"), roles=["node"]).name == "h1"
    with pytest.raises(CertificateRejected, match="role node is not accepted here"):
        space.verify_peer(der(space, "h1"), roles=["hub", "witness"])


def test_a_certificate_without_a_medspace_identity(space: Space) -> None:
    ca_key = serialization.load_pem_private_key((space.ca_dir / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "h1")]))
            .issuer_name(space.ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.UniformResourceIdentifier("urn:other:h1")]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    with pytest.raises(CertificateRejected) as e:
        space.verify_peer(cert.public_bytes(serialization.Encoding.DER))
    assert e.value.reason == "no medspace identity"


def test_a_participants_copy_verifies_but_cannot_issue(space: Space, tmp_path: Path) -> None:
    copy = Space.open(space.export("h1", tmp_path / "h1-copy"))
    assert not copy.can_issue and copy.name == "demo"
    assert not (copy.directory / "ca" / "ca.key").exists()
    assert stat.S_IMODE(copy.participant("h1").key.stat().st_mode) == 0o600
    assert copy.verify_peer(der(space, "hub")).role == "hub"
    with pytest.raises(PkiError, match="holds no CA key"):
        copy.issue("h7", "node")
    space.revoke("hub")
    assert copy.install_crl(space.crl_pem.read_bytes())  # the node fetched the new CRL
    with pytest.raises(CertificateRejected, match="revoked"):
        copy.verify_peer(der(space, "hub"))
    assert not copy.install_crl(space.crl_pem.read_bytes())  # not newer: nothing to do
    other = init_space(tmp_path / "other", "demo")
    other.refresh_crl()
    other.refresh_crl()
    with pytest.raises(PkiError, match="not signed by this space's CA"):
        copy.install_crl(other.crl_pem.read_bytes())
    with pytest.raises(PkiError, match="not a PEM revocation list"):
        copy.install_crl(b"nope")


def test_a_crl_from_another_ca_is_refused(space: Space, tmp_path: Path) -> None:
    other = init_space(tmp_path / "other", "demo")
    space.crl_pem.write_bytes(other.crl_pem.read_bytes())
    with pytest.raises(PkiError, match="not signed by this space's CA"):
        space.verify_peer(der(space, "h1"))


def test_a_loose_ca_key_is_refused(space: Space) -> None:
    (space.ca_dir / "ca.key").chmod(0o644)
    with pytest.raises(PkiError, match="chmod 600"):
        space.issue("h7", "node")


def test_open_refuses_what_is_not_a_space(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="is not a space directory"):
        Space.open(tmp_path)


def test_events_and_audit_log(tmp_path: Path) -> None:
    seen: list[tuple[str, str, str]] = []
    init_log(tmp_path / "log", "hub.example.org/audit")
    with AuditLog(tmp_path / "log", create=True) as log:
        s = init_space(tmp_path / "s", "demo", nodes=["h1"], on_event=lambda *a: seen.append(a), audit=log)
        _, csr = make_csr("h6")
        s.enrol(csr, "node", "h6")
        s.revoke("h1")
        entries = [AuditEvent.from_bytes(e) for e in log.store.entries(0, log.store.size)]
    assert seen == [("issue", "hub", "hub"), ("issue", "h1", "node"), ("enrol", "h6", "node"),
                    ("revoke", "h1", "node")]
    assert [(e.action, e.resource) for e in entries] == [
        (Action.PARTICIPANT_REGISTER, "participant:hub"), (Action.PARTICIPANT_REGISTER, "participant:h1"),
        (Action.PARTICIPANT_REGISTER, "participant:h6"), (Action.PARTICIPANT_REVOKE, "participant:h1")]
    assert all(e.actor == "ca" and e.role is Role.ADMIN and e.purpose is Purpose.HSYSADMIN for e in entries)
    import hashlib

    h6 = hashlib.sha256(der(s, "h6")).hexdigest()
    assert entries[2].output_hashes == (h6,)
    assert entries[3].output_hashes == (hashlib.sha256(s.crl().public_bytes(serialization.Encoding.DER)).hexdigest(),)
