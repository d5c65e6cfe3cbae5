"""Signed notes, checkpoints and cosignatures against the C2SP specs' examples and the Go reference's vectors."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
import struct
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.ledger.checkpoint import (
    ALG_COSIGNATURE_V1,
    MAX_SIGNATURES,
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    append_signatures,
    cosignature_message,
    cosignature_timestamp,
    generate_key,
    generate_key_files,
    key_id,
    load_verifier,
    open_checkpoint,
    open_note,
    read_private_key,
    sign_note,
    signer_from_skey,
    split_note,
    verifier_from_vkey,
    verify_signatures,
    write_private_key,
)
from medspace.ledger.errors import CheckpointError

# c2sp.org/signed-note, "Verifier keys" example: a vkey and a note it signed.
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = ("This is an example message.\n\n"
             "— example.com/foo "
             "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n")
# c2sp.org/tlog-checkpoint and tlog-cosignature examples (no keys published: framing only).
SOFA_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SOFA_LOG_SIG = ("— example.com/behind-the-sofa "
                "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=")
SOFA_COSIG = ("— witness.example.com/w1 "
              "jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==")
# golang.org/x/mod/sumdb/note note_test.go.
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
PETER_B64 = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
PETER_SIG = f"— PeterNeumann {PETER_B64}\n"
ENOCH_SIG = ("— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="
             "\n")
# transparency-dev/formats note_cosigv1_test.go: a cosignature/v1 vkey and a cosignature's timestamp.
REMORA_VKEY = "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
FORMATS_COSIG = ("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnF"
                 "BOBA==")


# --- spec and reference vectors -------------------------------------------------------------------------------------

def test_signed_note_spec_example_verifies_and_key_id_derives() -> None:
    v = NoteVerifier.from_vkey(SPEC_VKEY)
    assert v.name == "example.com/foo" and v.key_id == 0x530D903A
    assert key_id("example.com/foo", 0x01, v.public_bytes) == 0x530D903A
    assert v.vkey() == SPEC_VKEY
    text, sigs = open_note(SPEC_NOTE, [v])
    assert text == "This is an example message.\n"
    assert [s.line() + "\n" for s in sigs] == [SPEC_NOTE.split("\n\n")[1]]
    # One flipped byte of the text breaks it.
    with pytest.raises(CheckpointError, match=r"invalid signature for key example\.com/foo"):
        open_note(SPEC_NOTE.replace("example message", "example massage"), [v])


def test_go_reference_key_strings_and_signature_byte_for_byte() -> None:
    signer = NoteSigner.from_skey(PETER_SKEY)
    assert signer.skey() == PETER_SKEY
    assert signer.vkey() == PETER_VKEY
    assert signer.key_id == 0xC74F20A3
    # Ed25519 is deterministic: the Go test's note is reproduced exactly.
    assert sign_note(GO_TEXT, [signer]) == GO_TEXT + "\n" + PETER_SIG
    skey, vkey = generate_key("EnochRoot")
    s2, v2 = NoteSigner.from_skey(skey), NoteVerifier.from_vkey(vkey)
    assert s2.key_id == v2.key_id and s2.vkey() == vkey
    msg = b"hi\n"
    assert v2.verify(msg, s2.sign(msg)) and not v2.verify(b"ho\n", s2.sign(msg))


def test_go_open_semantics() -> None:
    peter, enoch = NoteVerifier.from_vkey(PETER_VKEY), NoteVerifier.from_vkey(ENOCH_VKEY)
    note = GO_TEXT + "\n" + PETER_SIG + ENOCH_SIG
    # One verified, the unknown one ignored.
    text, sigs = open_note(note, [peter])
    assert text == GO_TEXT and [s.name for s in sigs] == ["PeterNeumann"]
    _, valid, invalid, unknown = verify_signatures(note, [peter])
    assert [s.name for s in unknown] == ["EnochRoot"] and not invalid and len(valid) == 1
    # Both verified.
    assert [s.name for s in open_note(note, [peter, enoch])[1]] == ["PeterNeumann", "EnochRoot"]
    # Neither known.
    with pytest.raises(CheckpointError, match="no verifiable signatures"):
        open_note(note, [])
    # A known key's bad signature rejects the whole note.
    bad = GO_TEXT + "\n" + PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(CheckpointError, match=r"invalid signature for key PeterNeumann\+c74f20a3"):
        open_note(bad, [peter])
    # Duplicates: only the first signature of a key counts; repeated unknown lines are dropped.
    enoch_abcd = ENOCH_SIG[:60] + "ABCD" + ENOCH_SIG[60:]
    dup = GO_TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd
    _, valid, invalid, unknown = verify_signatures(dup, [peter])
    assert len(valid) == 1 and not invalid and len(unknown) == 2
    # Too many signatures.
    with pytest.raises(CheckpointError, match="more than 100"):
        open_note(GO_TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), [peter])
    assert len(open_note(GO_TEXT + "\n" + PETER_SIG * MAX_SIGNATURES, [peter])[1]) == 1


@pytest.mark.parametrize("msg", [
    GO_TEXT,
    GO_TEXT + "\n",
    GO_TEXT + "\n" + PETER_SIG[:-1],
    "\x01" + GO_TEXT + "\n" + PETER_SIG,
    b"\xff" + (GO_TEXT + "\n" + PETER_SIG).encode(),
    GO_TEXT + "\n" + "— Bad Name " + PETER_B64,
    GO_TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
])
def test_go_malformed_notes(msg: str | bytes) -> None:
    with pytest.raises(CheckpointError, match="malformed note"):
        open_note(msg, [NoteVerifier.from_vkey(PETER_VKEY)])


def test_ambiguous_keys_are_refused() -> None:
    enoch = NoteVerifier.from_vkey(ENOCH_VKEY)
    impostor = NoteVerifier("EnochRoot", NoteSigner.generate("EnochRoot").public_bytes)
    impostor.key_id = enoch.key_id  # a 32-bit key ID collision, which an attacker can compute
    with pytest.raises(CheckpointError, match=r"ambiguous key EnochRoot\+af0cfe78"):
        open_note(GO_TEXT + "\n" + ENOCH_SIG, [enoch, impostor])
    # The same key listed twice is not ambiguous.
    assert open_note(GO_TEXT + "\n" + ENOCH_SIG, [enoch, NoteVerifier.from_vkey(ENOCH_VKEY)])


def _manglings(key: str) -> list[str]:
    """Every proper substring and every one-byte increment of a key string (Go's TestNewVerifier/TestNewSigner)."""
    out = {key[i:j] for i in range(len(key) + 1) for j in range(i + 1, len(key) + 1) if (i, j) != (0, len(key))}
    out |= {key[:i] + chr(ord(key[i]) + 1) + key[i + 1:] for i in range(len(key))}
    out.discard(key)
    return sorted(out)


def test_mangled_vkeys_are_refused() -> None:
    for bad in _manglings(PETER_VKEY):
        with pytest.raises(CheckpointError):
            verifier_from_vkey(bad)
    # Go's extra cases: wrong-length key and unknown algorithm, each with a key hash adjusted to match.
    for bad in ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"):
        with pytest.raises(CheckpointError):
            verifier_from_vkey(bad)


def test_mangled_skeys_are_refused_without_echoing_the_key() -> None:
    secret = PETER_SKEY.rsplit("+", 1)[1]
    for bad in _manglings(PETER_SKEY):
        with pytest.raises(CheckpointError) as info:
            signer_from_skey(bad)
        assert secret[4:] not in str(info.value)


def test_checkpoint_spec_example_round_trips() -> None:
    cp = Checkpoint.from_text(SOFA_TEXT)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    assert cp.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.to_text() == SOFA_TEXT
    note = SOFA_TEXT + "\n" + SOFA_LOG_SIG + "\n" + SOFA_COSIG + "\n"
    text, sigs = split_note(note)
    assert text == SOFA_TEXT
    log_sig, cosig = sigs
    assert log_sig.name == "example.com/behind-the-sofa" and len(log_sig.signature) == 64
    # The cosignature: key ID, then the 8-byte timestamp the spec's signed-message example shows, then 64 bytes.
    assert cosig.name == "witness.example.com/w1" and cosig.key_id == 0x8D66CF3F
    assert len(cosig.signature) == 72 and cosignature_timestamp(cosig.signature) == 1679315147
    assert [s.line() for s in sigs] == [SOFA_LOG_SIG, SOFA_COSIG]
    # The spec's cosignature/v1 signed-message example, byte for byte.
    assert cosignature_message(1679315147, SOFA_TEXT.encode()) == (
        b"cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\n"
        b"CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n")


def test_formats_cosignature_vectors() -> None:
    remora = verifier_from_vkey(REMORA_VKEY)
    assert isinstance(remora, CosignatureVerifier) and remora.key_id == 0xDA77ADE7 and remora.vkey() == REMORA_VKEY
    assert cosignature_timestamp(base64.b64decode(FORMATS_COSIG)[4:]) == 1727964367
    # A plain Ed25519 vkey names the same key; as a cosigner its key ID is the 0x04 one.
    peter = CosignatureVerifier.from_vkey(PETER_VKEY)
    assert peter.public_bytes == NoteVerifier.from_vkey(PETER_VKEY).public_bytes
    assert peter.key_id == key_id("PeterNeumann", ALG_COSIGNATURE_V1, peter.public_bytes) != 0xC74F20A3


# --- checkpoints ----------------------------------------------------------------------------------------------------

ROOT_B64 = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize("text, reason", [
    (f"log\n5\n{ROOT_B64}", "end with a newline"),
    ("log\n5\n", "at least three lines"),
    (f"\n5\n{ROOT_B64}\n", "origin line is empty"),
    (f"log\n05\n{ROOT_B64}\n", "leading zeros"),
    (f"log\n+5\n{ROOT_B64}\n", "decimal"),
    (f"log\n 5\n{ROOT_B64}\n", "decimal"),
    (f"log\n-1\n{ROOT_B64}\n", "decimal"),
    (f"log\n٥\n{ROOT_B64}\n", "decimal"),  # a non-ASCII digit
    (f"log\n{2**63}\n{ROOT_B64}\n", "2\\^63-1"),
    ("log\n5\nAAAA\n", "not 32 bytes"),
    (f"log\n5\n{ROOT_B64[:-1]}\n", "base64"),
    ("log\n5\n" + ROOT_B64[:-2] + "B=\n", "canonical"),
    (f"log\n5\n{ROOT_B64}\n\n", "extension lines must be non-empty"),
    (f"log\n5\n{ROOT_B64}\next\n\nmore\n", "extension lines must be non-empty"),
])
def test_checkpoint_parsing_is_strict(text: str, reason: str) -> None:
    with pytest.raises(CheckpointError, match=reason):
        Checkpoint.from_text(text)


def test_checkpoint_text_form_and_extensions() -> None:
    cp = Checkpoint("medspace.example/audit", 0, hashlib.sha256(b"").digest())
    assert cp.to_text() == "medspace.example/audit\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    ext = Checkpoint("o", 2**63 - 1, bytes(32), ("— ext one", "two"))
    assert Checkpoint.from_text(ext.to_text()) == ext
    assert ext.to_text().endswith("\n— ext one\ntwo\n")
    bad_args: list[tuple[str, int, bytes, tuple[str, ...]]] = [
        ("", 1, bytes(32), ()), ("o", -1, bytes(32), ()), ("o", 2**63, bytes(32), ()), ("o", True, bytes(32), ()),
        ("o", 1, b"x", ()), ("o", 1, bytes(32), ("",)), ("o", 1, bytes(32), ("a\nb",)), ("a\nb", 1, bytes(32), ())]
    for origin, size, root_hash, extensions in bad_args:
        with pytest.raises(CheckpointError):
            Checkpoint(origin, size, root_hash, extensions)


def test_signed_checkpoint_round_trip() -> None:
    log = NoteSigner.generate("medspace.example/audit")
    cp = Checkpoint("medspace.example/audit", 42, hashlib.sha256(b"x").digest(), ("ext",))
    note = cp.sign([log])
    got, sigs = open_checkpoint(note, [log.verifier()])
    assert got == cp and [s.name for s in sigs] == [log.name]


# --- cosignatures ---------------------------------------------------------------------------------------------------

def test_cosignature_v1_format_independently_checked() -> None:
    witness = CosignatureSigner.generate("witness.example/w1")
    witness.clock = lambda: 1679315147.9
    line = sign_note(SOFA_TEXT, [witness]).split("\n\n")[1].rstrip("\n")
    sig = NoteSignature.from_line(line)
    # Key ID with the 0x04 type byte; signature = 8-byte big-endian timestamp || Ed25519 signature.
    digest = hashlib.sha256(b"witness.example/w1\n\x04" + witness.public_bytes).digest()
    assert sig.key_id == int.from_bytes(digest[:4], "big")
    assert struct.unpack(">Q", sig.signature[:8])[0] == 1679315147
    message = b"cosignature/v1\ntime 1679315147\n" + SOFA_TEXT.encode()
    Ed25519PublicKey.from_public_bytes(witness.public_bytes).verify(sig.signature[8:], message)
    v = witness.verifier()
    assert v.verify(SOFA_TEXT.encode(), sig.signature)
    # The timestamp is signed: changing it breaks the cosignature.
    assert not v.verify(SOFA_TEXT.encode(), struct.pack(">Q", 1679315148) + sig.signature[8:])
    # The vkey of a cosigner carries type 0x04 and parses back to a cosignature verifier.
    assert base64.b64decode(v.vkey().split("+", 2)[2])[0] == 0x04
    assert isinstance(verifier_from_vkey(v.vkey()), CosignatureVerifier)


def test_cosignature_covers_extension_lines_and_is_not_a_plain_signature() -> None:
    witness = CosignatureSigner.generate("w")
    text = "test\n123\nf+7CoKgXKE/tNys9TTXcr/ad6U/K3xvznmzew9y6SP0=\nExtendo\n"
    note = sign_note(text, [witness])
    assert open_note(note, [witness.verifier()])
    with pytest.raises(CheckpointError, match="invalid signature"):
        open_note(note.replace("Extendo", "Extend@"), [witness.verifier()])
    # A plain (0x01) verifier of the same key has another key ID: the cosignature is not its signature.
    plain = NoteVerifier("w", witness.public_bytes)
    with pytest.raises(CheckpointError, match="no verifiable signatures"):
        open_note(note, [plain])
    # A cosigner refuses to cosign something that is not a checkpoint.
    with pytest.raises(CheckpointError):
        sign_note("just text\n", [witness])


def test_append_signatures_merges_cosignatures() -> None:
    log, w1, w2 = NoteSigner.generate("log"), CosignatureSigner.generate("w1"), CosignatureSigner.generate("w2")
    note = Checkpoint("log", 1, bytes(32)).sign([log])
    text = note.split("\n\n")[0] + "\n"
    lines = [sign_note(text, [w]).split("\n\n")[1].rstrip("\n") for w in (w1, w2)]
    merged = append_signatures(note, lines + lines[:1])
    _, valid, _, _ = verify_signatures(merged, [log.verifier(), w1.verifier(), w2.verifier()])
    assert [s.name for s in valid] == ["log", "w1", "w2"]
    assert merged.count("— w1 ") == 1


# --- key files ------------------------------------------------------------------------------------------------------

def test_key_files_are_private_and_never_echoed(tmp_path: os.PathLike[str]) -> None:
    old = os.umask(0)
    try:
        vkey = generate_key_files("witness.example/w1", f"{tmp_path}/w.key", f"{tmp_path}/w.pub", cosigner=True)
    finally:
        os.umask(old)
    priv = f"{tmp_path}/w.key"
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    signer = read_private_key(priv)
    assert isinstance(signer, CosignatureSigner) and signer.vkey() == vkey
    assert load_verifier(f"{tmp_path}/w.pub") == load_verifier(vkey) == signer.verifier()
    skey = Path(priv).read_text().strip()
    assert skey.startswith("PRIVATE+KEY+witness.example/w1+")
    # PRIVATE+KEY+<name>+<hash>+<base64 key>: the key part may itself contain "+".
    secret = skey.split("+", 4)[4]
    assert skey not in repr(signer) and secret not in repr(signer)
    with pytest.raises(CheckpointError, match="exists") as info:
        write_private_key(priv, skey)
    assert secret not in str(info.value)
    os.chmod(priv, 0o644)
    with pytest.raises(CheckpointError, match="chmod 600"):
        read_private_key(priv)
    # Overwriting on purpose restores the mode even over a loose existing file.
    write_private_key(priv, skey, overwrite=True)
    assert stat.S_IMODE(os.stat(priv).st_mode) == 0o600
    # A plain Ed25519 key loads as a cosigner when asked (transparency-dev/formats does the same).
    write_private_key(f"{tmp_path}/plain.key", PETER_SKEY)
    assert isinstance(read_private_key(f"{tmp_path}/plain.key", cosigner=True), CosignatureSigner)


# --- properties -----------------------------------------------------------------------------------------------------

_LINE = st.text(st.characters(exclude_categories=["Cs", "Cc"]), min_size=1, max_size=30)
_SIGNER = NoteSigner.generate("prop.example/log")


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(_LINE, min_size=1, max_size=6), data=st.data())
def test_sign_open_round_trip_and_any_text_change_breaks_it(lines: list[str], data: st.DataObject) -> None:
    text = "\n".join(lines) + "\n"
    note = sign_note(text, [_SIGNER])
    got, sigs = open_note(note, [_SIGNER.verifier()])
    assert got == text and len(sigs) == 1
    raw = bytearray(text.encode())
    i = data.draw(st.integers(0, len(raw) - 2))
    raw[i] = ord("x") if raw[i] != ord("x") else ord("y")
    try:
        tampered = raw.decode()
    except UnicodeDecodeError:
        return
    if tampered == text or "\n\n" in tampered or not tampered.strip("\n"):
        return
    with pytest.raises(CheckpointError):
        open_note(tampered + note[len(text):], [_SIGNER.verifier()])
