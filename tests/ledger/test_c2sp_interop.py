"""Interoperability of our witness and witness client: with the C2SP texts, and with another implementation.

1. The texts: c2sp.org/tlog-witness, tlog-cosignature and tlog-checkpoint as in the C2SP/C2SP repository at commit
   5ba5ee830903e91240fc6f9f3a7a9293d49e69c9 (2026-07-22; it includes C2SP/C2SP#280, which made "same size,
   different root" a 422 so that every 409 carries a size). Their examples are quoted below with the section each
   comes from (the specifications are CC BY 4.0, the C2SP authors). Every MUST about the answers to
   ``POST /add-checkpoint`` and to the monitoring endpoint is one case, checked over real HTTP, byte for byte
   where the text fixes the bytes.
2. Another implementation: aics-witness 0.1.0 and aics-tlog 0.2.1 (PyPI, Apache-2.0; vendored unchanged in
   interop_aics/, see its README): its witness server with our client, our witness server with its client (which
   resynchronises on a 409 only if its media type is text/x.tlog.size), and its checkpoint verifier on what
   our monitoring endpoint serves. Signed-note and cosignature/v1 vectors of golang.org/x/mod/sumdb/note and
   transparency-dev/formats are checked in test_checkpoint.py.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import thread_server
from small_log import ORIGIN, Log

from medspace.ledger.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    NoteSignature,
    NoteSigner,
    append_signatures,
    cosignature_message,
    cosignature_timestamp,
    split_note,
)
from medspace.ledger.witness import (
    SIZE_CONTENT_TYPE,
    Witness,
    WitnessEndpoint,
    WitnessRefusal,
    collect_cosignatures,
    create_app,
    fetch_checkpoint,
    format_add_checkpoint,
    origin_hash,
    parse_add_checkpoint,
    submit,
    verify_quorum,
)

AICS = Path(__file__).parent / "interop_aics"
AICS_PATH = os.pathsep.join(str(AICS / w) for w in ("aics_witness-0.1.0-py3-none-any.whl",
                                                      "aics_tlog-0.2.1-py3-none-any.whl"))

# The checkpoint of the examples below (the same one in tlog-witness and tlog-cosignature), and that checkpoint as
# both examples carry it: signed by the log, whose signature comes first.
SPEC_CHECKPOINT = (
    "example.com/behind-the-sofa\n"
    "20852163\n"
    "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
SPEC_SIGNED_CHECKPOINT = (
    SPEC_CHECKPOINT
    + "\n"
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE"
    "+xeMcTOAYQ8=\n"
)
# tlog-witness §add-checkpoint, "Example request body:".
SPEC_REQUEST = (
    "old 20852014\n"
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
    "\n"
    + SPEC_SIGNED_CHECKPOINT
    + "— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnz"
    "v++qbSzm9Q=\n"
)
# tlog-witness §add-checkpoint, "Example response body:".
SPEC_RESPONSE = (
    "— witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvVjyQLrdk3DXDqI5G2HgLatVs0pWh"
    "6Up69HVOw==\n"
    "— witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt64vWhO+DlkL0+UfzuOBMh9ChdMkP1v"
    "i/lCAsmlw==\n"
    "— witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKbYKA7nC3HNJhm/kWl7oJlqU3rXXvp"
    "ysAdyP3wQ==\n"
)
# tlog-cosignature, the introduction's "example of a checkpoint that contains a cosignature".
SPEC_COSIGNED = (
    SPEC_SIGNED_CHECKPOINT
    + "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe"
    "+mbIUBkBIfZ+qnA==\n"
)
# tlog-cosignature §Ed25519 signed message: the message for that checkpoint at time 1679315147.
SPEC_COSIGNED_MESSAGE = (
    "cosignature/v1\n"
    "time 1679315147\n"
    + SPEC_CHECKPOINT
)


def canned_app(status: int, body: bytes, content_type: str) -> Any:
    """A witness stand-in that answers every add-checkpoint with exactly this status, body and Content-Type."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def add(request: Request) -> Response:
        await request.body()
        return Response(body, status_code=status, headers={"Content-Type": content_type})

    return Starlette(routes=[Route("/add-checkpoint", add, methods=["POST"])])


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send raw bytes to a server and read its whole answer (the request asks the server to close)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


# --- the texts ------------------------------------------------------------------------------------------------------

def test_spec_example_request_parses_and_round_trips_byte_for_byte() -> None:
    """tlog-witness §add-checkpoint: old size line, proof lines, empty line, checkpoint (with two signatures)."""
    req = parse_add_checkpoint(SPEC_REQUEST.encode())
    assert req.old_size == 20852014 and len(req.proof) == 4
    assert req.proof[0] == base64.b64decode("PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=")
    text, sigs = split_note(req.note)
    cp = Checkpoint.from_text(text)
    assert (cp.origin, cp.size) == ("example.com/behind-the-sofa", 20852163)
    assert [s.name for s in sigs] == ["example.com/behind-the-sofa"] * 2
    assert format_add_checkpoint(req.old_size, req.proof, req.note) == SPEC_REQUEST.encode()
    assert req.to_body() == SPEC_REQUEST.encode()


def test_spec_example_response_is_what_our_client_reads() -> None:
    """tlog-witness §add-checkpoint: a 200 body is note signature lines, each starting with U+2014 and ending with a
    newline; "The client MUST ignore any cosignatures from unknown keys"."""
    log = Log()
    with thread_server(canned_app(200, SPEC_RESPONSE.encode(), "text/plain; charset=utf-8")) as url:
        assert [line + "\n" for line in submit(url, 0, [], log.note(3))] == SPEC_RESPONSE.splitlines(keepends=True)
        # Lines of keys we do not trust (here: the spec's example keys) never count as a cosignature.
        ours = WitnessEndpoint(url, CosignatureSigner.generate("witness.example/w1").verifier())
        result = collect_cosignatures([ours], log.note(3), lambda old: log.proof(old, 3))
    assert result.cosigned == [] and result.errors == {"witness.example/w1": "witness returned no valid cosignature"}
    assert result.note == log.note(3)
    for line in SPEC_RESPONSE.splitlines():
        sig = NoteSignature.from_line(line)
        assert len(sig.signature) == 8 + 64 and sig.line() == line  # timestamp || Ed25519 signature


def test_spec_cosignature_example() -> None:
    """tlog-cosignature: the example cosignature's timestamp, and the signed message our cosigner builds for it."""
    text, sigs = split_note(SPEC_COSIGNED)
    witness = sigs[1]
    assert (witness.name, witness.key_id) == ("witness.example.com/w1", 0x8D66CF3F)
    assert cosignature_timestamp(witness.signature) == 1679315147
    assert cosignature_message(1679315147, text.encode()) == SPEC_COSIGNED_MESSAGE.encode()


@pytest.fixture()
def ours(tmp_path: Path) -> Iterator[tuple[str, Witness, Log]]:
    """Our witness over real HTTP (uvicorn in a thread), following one log."""
    log = Log()
    w = Witness(tmp_path / "w.db", [CosignatureSigner.generate("witness.example/medspace")])
    w.add_log(log.signer.verifier())
    with thread_server(create_app(w)) as url:
        yield url, w, log
    w.close()


def test_our_witness_answers_as_tlog_witness_says(ours: tuple[str, Witness, Log]) -> None:
    url, w, log = ours
    wv = w.verifiers()[0]
    stranger = Log("stranger.example/log")
    impostor = NoteSigner.generate(ORIGIN)  # the log's name, another key
    text5 = split_note(log.note(5))[0]
    with httpx.Client(timeout=10) as http:
        def post(body: bytes) -> httpx.Response:
            return http.post(url + "/add-checkpoint", content=body)

        # "If it doesn't match [the size of the latest checkpoint it cosigned, or zero if it never cosigned], the
        # witness MUST respond with a "409 Conflict" [...] The response body MUST consist of the tree size of the
        # latest cosigned checkpoint in decimal, followed by a newline (U+000A). The response MUST have a
        # Content-Type of text/x.tlog.size."
        r = post(format_add_checkpoint(3, log.proof(3, 5), log.note(5)))
        assert (r.status_code, r.content, r.headers.get_list("content-type")) == (409, b"0\n", [SIZE_CONTENT_TYPE])
        # "If all the checks above pass [...] respond with a "200 Success" [...] one or more note signature lines,
        # each starting with the — character (U+2014) and ending with a newline character (U+000A). The
        # signatures MUST be cosignatures from the witness key(s) on the checkpoint. [...] The cosignature MUST NOT
        # omit the timestamp, i.e. the timestamp MUST NOT be zero."
        r = post(format_add_checkpoint(0, [], log.note(5)))
        assert r.status_code == 200
        [line] = r.content.decode().splitlines(keepends=True)
        assert line.startswith("\u2014 witness.example/medspace ") and line.endswith("\n")
        sig = NoteSignature.from_line(line)
        assert (sig.name, sig.key_id) == (wv.name, wv.key_id) and wv.verify(text5.encode(), sig.signature)
        assert cosignature_timestamp(sig.signature) > 0
        # The 409 once it has cosigned: the size it holds.
        r = post(format_add_checkpoint(2, log.proof(2, 8), log.note(8)))
        assert (r.status_code, r.content, r.headers.get_list("content-type")) == (409, b"5\n", [SIZE_CONTENT_TYPE])
        cases: list[tuple[str, bytes, int]] = [
            # "If the checkpoint origin is unknown, the witness MUST respond with a "404 Not Found"".
            ("unknown origin", format_add_checkpoint(0, [], stranger.note(2)), 404),
            # "MUST respond with a "403 Forbidden" HTTP status code if either no signature from a trusted key for
            # the origin is present, or a signature line's key name and ID match a trusted key but the signature
            # itself fails to verify".
            ("no trusted signature", format_add_checkpoint(5, [], Checkpoint(ORIGIN, 5, log.root(5)).sign([impostor])),
             403),
            ("trusted key, bad signature", format_add_checkpoint(5, [], text5 + "\n" + log.note(6).split("\n\n")[1]),
             403),
            # "The old size MUST be equal to or lower than the checkpoint size. Otherwise [...] "400 Bad Request"".
            ("old size above the checkpoint's", format_add_checkpoint(9, [], log.note(8)), 400),
            # "If the proof is not empty when the old size is zero, or if a Merkle Consistency Proof doesn't verify,
            # the witness MUST respond with a "422 Unprocessable Entity"".
            ("bad consistency proof", format_add_checkpoint(5, log.proof(4, 8), log.note(8)), 422),
            # "If the old size matches the checkpoint size, the witness MUST check that the root hashes are also
            # identical. If they don't match, the witness MUST respond with a "422 Unprocessable Entity"".
            ("same size, other root", format_add_checkpoint(5, [], log.fork(5)), 422),
        ]
        for what, body, status in cases:
            assert post(body).status_code == status, what
        # "A checkpoint of size zero MUST have the root hash of the empty tree [...] Otherwise [...] 422", and the
        # proof from size zero must be empty: a log the witness has not cosigned yet.
        fresh = Log("fresh.example/log")
        w.add_log(fresh.signer.verifier())
        bad_empty = Checkpoint(fresh.origin, 0, bytes(32)).sign([fresh.signer])
        assert post(format_add_checkpoint(0, [], bad_empty)).status_code == 422
        assert post(format_add_checkpoint(0, fresh.proof(2, 4), fresh.note(4))).status_code == 422
        assert post(format_add_checkpoint(0, [], fresh.note(0))).status_code == 200
        # "The request MUST be an HTTP POST."
        assert http.get(url + "/add-checkpoint").status_code == 405
        # §Monitor Retrieval Mechanism: GET <monitoring prefix>/<origin hash>/checkpoint, the origin hash "the
        # SHA-256 hash of the log's origin, hex encoded, in lowercase"; the body "MUST include the cosignature(s)
        # from the witness's key(s) that were returned from add-checkpoint and the cosignature from the log
        # key(s) that the witness verified"; "If the witness has never cosigned a checkpoint for that log, it MUST
        # respond with a "404 Not Found"".
        held = http.get(f"{url}/{hashlib.sha256(ORIGIN.encode()).hexdigest()}/checkpoint")
        assert held.status_code == 200 and held.text == append_signatures(log.note(5), [line.rstrip("\n")])
        other = Log("never.example/log")
        w.add_log(other.signer.verifier())
        assert http.get(f"{url}/{origin_hash(other.origin)}/checkpoint").status_code == 404
    # The 409 on the wire, not through a client library: the header is exactly the type, nothing appended.
    raw = raw_exchange(url, b"POST /add-checkpoint HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n"
                            b"\r\n%s" % (len(body := format_add_checkpoint(0, [], log.note(5))), body))
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 409 ") and payload == b"5\n"
    content_types = [h for h in head.lower().split(b"\r\n") if h.startswith(b"content-type:")]
    assert content_types == [b"content-type: text/x.tlog.size"]


@pytest.mark.parametrize("content_type, body, latest", [
    ("text/x.tlog.size", b"12\n", 12),  # exactly as the spec says
    ("text/x.tlog.size; charset=utf-8", b"12\n", 12),  # a parameter some servers append: tolerated
    ("TEXT/X.TLOG.SIZE", b"0\n", 0),  # media types are case-insensitive
    ("text/plain; charset=utf-8", b"12\n", None),  # not the size type: a plain refusal, not a resync signal
])
def test_our_client_reads_the_size_of_a_409(content_type: str, body: bytes, latest: int | None) -> None:
    log = Log()
    with thread_server(canned_app(409, body, content_type)) as url, pytest.raises(WitnessRefusal) as info:
        submit(url, 0, [], log.note(20))
    assert (info.value.status, info.value.latest_size) == (409, latest)


@pytest.mark.parametrize("body", [b"12", b"012\n", b"-1\n", b"12\n\n", b"twelve\n", b""])
def test_our_client_refuses_a_malformed_size(body: bytes) -> None:
    with thread_server(canned_app(409, body, SIZE_CONTENT_TYPE)) as url, \
            pytest.raises(WitnessRefusal, match="malformed size") as info:
        submit(url, 0, [], Log().note(20))
    assert info.value.latest_size is None


def test_our_client_resynchronises_on_a_spec_409() -> None:
    """tlog-witness: "If a client doesn't have information on the latest cosigned checkpoint, it MAY initially make
    a request with a old size of zero to obtain it" -- and then retries from the size in the 409."""
    log = Log()
    seen: list[int] = []
    wkey = CosignatureSigner.generate("w.example/strict")

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def add(request: Request) -> Response:
        req = parse_add_checkpoint(await request.body())
        seen.append(req.old_size)
        if req.old_size != 7:
            return Response(b"7\n", status_code=409, headers={"Content-Type": "text/x.tlog.size"})
        text = split_note(req.note)[0]
        return Response(NoteSignature(wkey.name, wkey.key_id, wkey.sign(text.encode())).line() + "\n")

    with thread_server(Starlette(routes=[Route("/add-checkpoint", add, methods=["POST"])])) as url:
        result = collect_cosignatures([WitnessEndpoint(url, wkey.verifier())], log.note(11),
                                      lambda old: log.proof(old, 11))
    assert seen == [0, 7] and result.cosigned == ["w.example/strict"] and result.sizes == {"w.example/strict": 11}


# --- another implementation: aics-witness / aics-tlog --------------------------------------------------------------

def _aics_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": AICS_PATH, "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture(scope="module")
def aics() -> None:
    """The vendored wheels run here (they declare Python >= 3.12 and work on 3.11; see interop_aics/README.md)."""
    probe = subprocess.run([sys.executable, "-c", "import aics_witness.feeder, aics_witness.service, aics_tlog"],
                           env=_aics_env(), capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"the vendored aics-witness does not import on this Python: {probe.stderr.strip()[-300:]}")


def aics_client(request: dict[str, Any]) -> Any:
    """Run interop_aics/aics_client.py (their client or verifier) in its own process."""
    done = subprocess.run([sys.executable, str(AICS / "aics_client.py")], input=json.dumps(request),
                          env=_aics_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@contextlib.contextmanager
def aics_witness(tmp: Path, log: Log) -> Iterator[tuple[str, str]]:
    """Their witness server on a free loopback port, following ``log``: (url, witness vkey)."""
    config = tmp / "aics" / "witness.json"
    config.parent.mkdir()
    run = [sys.executable, "-m", "aics_witness"]
    init = subprocess.run([*run, "init", "--config", str(config), "--name", "witness.example/aics", "--listen",
                           "127.0.0.1:0"], env=_aics_env(), capture_output=True, text=True, timeout=60)
    assert init.returncode == 0, init.stderr
    vkey = init.stdout.split()[0]
    added = subprocess.run([*run, "add-log", "--config", str(config), "--origin", log.origin, "--vkey",
                            log.signer.vkey()], env=_aics_env(), capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    proc = subprocess.Popen([*run, "serve", "--config", str(config), "--listen", "127.0.0.1:0"], env=_aics_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    stderr = proc.stderr
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x) for x in iter(stderr.readline, "")], daemon=True).start()
    try:
        seen = []
        while True:
            line = lines.get(timeout=30)
            seen.append(line)
            if " listening on " in line:
                break
            assert proc.poll() is None, "".join(seen)
        yield line.split(" listening on ")[1].split()[0], vkey
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_their_witness_cosigns_for_our_client(aics: None, tmp_path: Path) -> None:
    log = Log()
    with aics_witness(tmp_path, log) as (url, vkey):
        theirs = WitnessEndpoint.parse(url, vkey)
        # First contact from size 0: cosigned, and the cosignature verifies with our cosignature/v1 verifier.
        first = collect_cosignatures([theirs], log.note(5), lambda old: log.proof(old, 5))
        assert first.cosigned == ["witness.example/aics"], first.errors
        assert verify_quorum(first.note, log.signer.verifier(), [theirs.verifier], 1, max_age=600).size == 5
        # Their 409: exactly text/x.tlog.size, body "<size>\n"; our client reads the size from it.
        r = httpx.post(url + "/add-checkpoint", content=format_add_checkpoint(0, [], log.note(9)), timeout=10)
        assert (r.status_code, r.content, r.headers.get_list("content-type")) == (409, b"5\n", [SIZE_CONTENT_TYPE])
        with pytest.raises(WitnessRefusal) as info:
            submit(url, 0, [], log.note(9))
        assert (info.value.status, info.value.latest_size) == (409, 5)
        # A client that does not know their size learns it from the 409 and sends our proof from there.
        second = collect_cosignatures([theirs], log.note(9), lambda old: log.proof(old, 9))
        assert second.cosigned == ["witness.example/aics"] and second.sizes == {"witness.example/aics": 9}
        third = collect_cosignatures([theirs], log.note(12), lambda old: log.proof(old, 12),
                                     old_sizes=second.sizes)
        assert third.cosigned == ["witness.example/aics"]
        # Their refusals reach our client with the spec's statuses.
        for old, proof, note, status in [(12, [], log.fork(12), 422), (13, [], log.note(12), 400),
                                         (12, log.proof(11, 14), log.note(14), 422),
                                         (0, [], Log("stranger.example/log").note(1), 404)]:
            with pytest.raises(WitnessRefusal) as info:
                submit(url, old, proof, note)
            assert info.value.status == status
        # Their monitoring endpoint, read by our fetch_checkpoint: the log's signature and their cosignature.
        held = fetch_checkpoint(url, ORIGIN)
        assert verify_quorum(held, log.signer.verifier(), [theirs.verifier], 1).size == 12
        with pytest.raises(WitnessRefusal) as info:
            fetch_checkpoint(url, "stranger.example/log")
        assert info.value.status == 404


def test_our_witness_cosigns_for_their_client(aics: None, ours: tuple[str, Witness, Log], tmp_path: Path) -> None:
    url, w, log = ours
    vkey = w.verifiers()[0].vkey()
    log.grow(40)
    request = {"command": "submit", "url": url, "witness_vkey": vkey, "state": str(tmp_path / "client.json"),
               "leaves": [base64.b64encode(e).decode() for e in log.entries]}
    # Their client verifies our cosignature (name, key ID, cosignature/v1 message, freshness) and proves
    # consistency with their own RFC 6962 tree, which our witness checks against ours.
    [a, b] = aics_client({**request, "notes": [log.note(4), log.note(9)]})
    assert a["ok"] and b["ok"], (a, b)
    assert verify_quorum(b["note"], log.signer.verifier(), w.verifiers(), 1).size == 9
    # Our witness moves on without them (another client): their client, still at 9, gets our 409 and resumes
    # from the size in it (it takes the size only from a 409 whose media type is text/x.tlog.size).
    submit(url, 9, log.proof(9, 15), log.note(15))
    [c] = aics_client({**request, "notes": [log.note(20)]})
    assert c["ok"], c
    # A split view: our 422, their final refusal.
    [d] = aics_client({**request, "notes": [log.fork(20)]})
    assert (d["ok"], d["error"]) == (False, "WitnessRejected") and "422" in d["message"]
    # Their checkpoint verifier accepts what our monitoring endpoint serves, and what their client merged.
    held = fetch_checkpoint(url, ORIGIN)
    assert held == c["note"]
    for note in (held, c["note"]):
        verdict = aics_client({"command": "verify", "note": note, "log_vkey": log.signer.vkey(),
                               "witness_vkey": vkey})
        assert verdict == {"ok": True, "error": None, "witnesses": ["witness.example/medspace"]}
    assert Checkpoint.from_text(split_note(held)[0]).size == 20
    # And the spec's example request body, sent to our witness by hand, is parsed (404: not a log it follows).
    assert httpx.post(url + "/add-checkpoint", content=SPEC_REQUEST.encode(), timeout=10).status_code == 404
