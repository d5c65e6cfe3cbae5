"""Witness: the tlog-witness rules in process, over HTTP in a real server process, clients and k-of-n quorums."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import queue
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import SilentServer, thread_server
from small_log import ORIGIN, Log

from medspace.ledger import merkle
from medspace.ledger.checkpoint import (
    Checkpoint,
    CosignatureSigner,
    NoteSignature,
    NoteSigner,
    append_signatures,
    cosignature_timestamp,
    generate_key_files,
    open_note,
    sign_note,
    split_note,
)
from medspace.ledger.errors import CheckpointError, WitnessError
from medspace.ledger.witness import (
    SIZE_CONTENT_TYPE,
    AddCheckpointRequest,
    Witness,
    WitnessEndpoint,
    WitnessRefusal,
    collect_cosignatures,
    create_app,
    fetch_checkpoint,
    format_add_checkpoint,
    origin_hash,
    parse_add_checkpoint,
    serve,
    submit,
    verify_quorum,
)

SRC = str(Path(__file__).resolve().parents[2] / "src")


def new_witness(path: Path, *logs: Log, name: str = "witness.example/w1") -> Witness:
    w = Witness(path, [CosignatureSigner.generate(name)])
    for log in logs:
        w.add_log(log.signer.verifier())
    return w


@pytest.fixture()
def log() -> Log:
    return Log()


@pytest.fixture()
def witness(tmp_path: Path, log: Log) -> Iterator[Witness]:
    w = new_witness(tmp_path / "witness.db", log)
    yield w
    w.close()


def size_of(w: Witness, origin: str = ORIGIN) -> int:
    state = w.state(origin)
    assert state is not None
    return state.size


def refused(w: Witness, old: int, proof: list[bytes], note: str) -> WitnessRefusal:
    with pytest.raises(WitnessRefusal) as info:
        w.add_checkpoint(old, proof, note)
    return info.value


# --- wire format ----------------------------------------------------------------------------------------------------

# The spec's example request and response: test_c2sp_interop.py.

@pytest.mark.parametrize("body, reason", [
    (b"old 01\n\nx", "leading zeros"),
    (b"old -1\n\nx", "old <size>"),
    (b"new 1\n\nx", "old <size>"),
    (b"old 1", "old <size>"),
    (b"old 1\nAAAA\n\nx", "32-byte hash"),
    (b"old 1\nnot base64!\n\nx", "base64"),
    (b"old 1\n" + b"PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n" * 64 + b"\nx", "more than 63"),
    (b"old 1\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n", "missing blank line"),
    (b"old 1\n\n\xff", "UTF-8"),
    (b"old 1\n\n" + b"x" * 70000, "too large"),
])
def test_malformed_request_bodies_are_400(body: bytes, reason: str) -> None:
    with pytest.raises(WitnessRefusal, match=reason) as info:
        parse_add_checkpoint(body)
    assert info.value.status == 400


# --- the rules, in process ------------------------------------------------------------------------------------------

def test_cosigns_first_checkpoint_and_extensions(witness: Witness, log: Log) -> None:
    wv = witness.verifiers()[0]
    lines = witness.add_checkpoint(0, [], log.note(5))
    cosigned = append_signatures(log.note(5), lines)
    _, sigs = open_note(cosigned, [wv])
    assert [s.name for s in sigs] == ["witness.example/w1"]
    for old, new in [(5, 8), (8, 8), (8, 13), (13, 64), (64, 100)]:
        lines = witness.add_checkpoint(old, log.proof(old, new), log.note(new))
        open_note(append_signatures(log.note(new), lines), [wv])
    state = witness.state(ORIGIN)
    assert state is not None and (state.size, state.root) == (100, log.root(100))
    # The stored note is what the monitoring endpoint serves: the log's signature and the cosignature returned.
    assert state.note == append_signatures(log.note(100), lines) == witness.cosigned_note(ORIGIN)


def test_stale_old_size_is_409_with_the_witness_size(witness: Witness, log: Log) -> None:
    witness.add_checkpoint(0, [], log.note(10))
    r = refused(witness, 4, log.proof(4, 12), log.note(12))
    assert (r.status, r.latest_size) == (409, 10) and "does not match" in r.reason
    # A client that starts from 0 learns the size the same way.
    r = refused(witness, 0, [], log.note(12))
    assert (r.status, r.latest_size) == (409, 10)


def test_rollback_is_refused(witness: Witness, log: Log) -> None:
    witness.add_checkpoint(0, [], log.note(10))
    # old = stored but the checkpoint is smaller: old > size is a 400 by the spec.
    r = refused(witness, 10, [], log.note(6))
    assert r.status == 400 and "rollback refused" in r.reason
    # Any other old size: 409 with the size it holds.
    r = refused(witness, 6, [], log.note(6))
    assert (r.status, r.latest_size) == (409, 10) and "rollback refused" in r.reason
    assert size_of(witness, ORIGIN) == 10


def test_fork_is_refused_and_kept_as_evidence(witness: Witness, log: Log) -> None:
    witness.add_checkpoint(0, [], log.note(7))
    fork = log.fork(7)
    # tlog-witness (since C2SP/C2SP#280): same size, different root is 422, so every 409 carries a size.
    r = refused(witness, 7, [], fork)
    assert r.status == 422 and r.reason == "fork: same size, different root" and r.latest_size is None
    [(status, reason, req)] = witness.evidence(ORIGIN)
    assert (status, reason, req.note) == (422, "fork: same size, different root", fork)
    # Sent with a stale old size it is a 409 with the size, and still kept: it proves a split view either way.
    r = refused(witness, 3, log.proof(3, 7), fork)
    assert (r.status, r.latest_size) == (409, 7)
    assert [e[0] for e in witness.evidence(ORIGIN)] == [422, 409]
    # The true checkpoint of the same size is still accepted (idempotent).
    assert witness.add_checkpoint(7, [], log.note(7))


def test_bad_consistency_proof_is_422(witness: Witness, log: Log) -> None:
    witness.add_checkpoint(0, [], log.note(6))
    proof = log.proof(6, 11)
    tampered = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    r = refused(witness, 6, tampered, log.note(11))
    assert r.status == 422 and r.reason.startswith("bad consistency proof")
    # A valid proof for other sizes, a short one, and a fork that grew past the witness are refused alike.
    for bad_proof, note in [(log.proof(5, 11), log.note(11)), (proof[:-1], log.note(11)),
                            (proof, log.fork(11))]:
        assert refused(witness, 6, bad_proof, note).status == 422
    assert size_of(witness, ORIGIN) == 6
    assert [e[0] for e in witness.evidence(ORIGIN)] == [422, 422, 422, 422]


def test_first_checkpoint_needs_an_empty_proof(witness: Witness, log: Log) -> None:
    r = refused(witness, 0, log.proof(2, 4), log.note(4))
    assert r.status == 422 and "empty" in r.reason
    bad_empty = Checkpoint(ORIGIN, 0, bytes(32)).sign([log.signer])
    assert refused(witness, 0, [], bad_empty).status == 422
    assert witness.add_checkpoint(0, [], log.note(0))
    assert witness.add_checkpoint(0, [], log.note(3))


def test_signatures_and_origin(witness: Witness, log: Log) -> None:
    # Unknown origin.
    stranger = Log("elsewhere.example/log")
    r = refused(witness, 0, [], stranger.note(3))
    assert r.status == 404 and r.reason == "unknown log origin"
    # Right origin, signed by another key of the same name: unknown key, so no trusted signature.
    impostor = Log(ORIGIN, NoteSigner.generate(ORIGIN))
    r = refused(witness, 0, [], impostor.note(3))
    assert r.status == 403 and r.reason.startswith("bad signature")
    # A trusted key's signature over another text.
    text, _ = split_note(log.note(3))
    other = log.note(4).split("\n\n")[1]
    r = refused(witness, 0, [], text + "\n" + other)
    assert r.status == 403 and "does not verify" in r.reason
    # Malformed checkpoint text.
    r = refused(witness, 0, [], sign_note(f"{ORIGIN}\n03\n{base64.b64encode(bytes(32)).decode()}\n", [log.signer]))
    assert r.status == 400 and "malformed checkpoint" in r.reason
    assert size_of(witness, ORIGIN) == 0


def test_state_survives_restart(tmp_path: Path, log: Log) -> None:
    signer = CosignatureSigner.generate("witness.example/w1")
    w = Witness(tmp_path / "w.db", [signer])
    w.add_log(log.signer.verifier())
    w.add_checkpoint(0, [], log.note(9))
    w.close()
    w2 = Witness(tmp_path / "w.db", [signer])
    assert w2.origins() == [ORIGIN]
    assert refused(w2, 0, [], log.note(3)).latest_size == 9
    assert w2.add_checkpoint(9, log.proof(9, 20), log.note(20))
    w2.close()


def test_batch_is_checked_in_order_in_one_transaction(witness: Witness, log: Log) -> None:
    reqs = [log.request(0, 3), log.request(3, 9), log.request(3, 7), log.request(9, 9), log.request(9, 30),
            AddCheckpointRequest(30, (), log.fork(30))]
    results = witness.add_checkpoints(reqs)
    ok = [not isinstance(r, WitnessRefusal) for r in results]
    assert ok == [True, True, False, True, True, False]
    assert isinstance(results[2], WitnessRefusal) and results[2].latest_size == 9
    assert size_of(witness, ORIGIN) == 30


def test_compare_and_swap_across_connections(tmp_path: Path, log: Log) -> None:
    """Two witness processes' worth of connections on one state file: of two racing extensions from the same old
    size exactly one is cosigned, and the state never goes back (the race tlog-witness warns about)."""
    signer = CosignatureSigner.generate("witness.example/w1")
    a, b = Witness(tmp_path / "w.db", [signer]), Witness(tmp_path / "w.db", [signer])
    a.add_log(log.signer.verifier())
    b.add_log(log.signer.verifier())
    a.add_checkpoint(0, [], log.note(4))
    old = 4
    for _ in range(6):
        big, small = old + 9, old + 3
        reqs = {"big": (a, log.request(old, big)), "small": (b, log.request(old, small))}
        barrier = threading.Barrier(2)
        out: dict[str, object] = {}

        def run(key: str, w: Witness, req: AddCheckpointRequest, barrier: threading.Barrier,
                out: dict[str, object]) -> None:
            barrier.wait()
            out[key] = w.add_checkpoints([req])[0]

        threads = [threading.Thread(target=run, args=(k, w, r, barrier, out)) for k, (w, r) in reqs.items()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        winners = [k for k, v in out.items() if not isinstance(v, WitnessRefusal)]
        assert len(winners) == 1
        loser = out["small" if winners == ["big"] else "big"]
        assert isinstance(loser, WitnessRefusal) and loser.status == 409
        state = a.state(ORIGIN)
        assert state is not None and state.size == (big if winners == ["big"] else small)
        old = state.size
    a.close()
    b.close()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.integers(0, 40), min_size=1, max_size=6), data=st.data())
def test_any_extension_sequence_is_cosigned_and_no_tampered_proof_is(steps: list[int], data: st.DataObject) -> None:
    log = Log()
    with tempfile.TemporaryDirectory() as tmp:
        w = new_witness(Path(tmp) / "w.db", log)
        wv = w.verifiers()
        size = 0
        for step in steps:
            new = size + step
            proof = log.proof(size, new)
            note = log.note(new)
            if proof or size:
                # Tamper: flip a bit of one node, drop one, or add one; never cosigned, state unchanged.
                how = data.draw(st.sampled_from(["flip", "drop", "add"] if proof else ["add"]))
                bad = list(proof)
                if how == "flip":
                    i = data.draw(st.integers(0, len(bad) - 1))
                    bit = data.draw(st.integers(0, 255))
                    bad[i] = bytes(b ^ (1 << (bit % 8)) if j == bit // 8 else b for j, b in enumerate(bad[i]))
                elif how == "drop":
                    del bad[data.draw(st.integers(0, len(bad) - 1))]
                else:
                    bad.insert(data.draw(st.integers(0, len(bad))), merkle.leaf_hash(b"junk"))
                with pytest.raises(WitnessRefusal) as info:
                    w.add_checkpoint(size, bad, note)
                assert info.value.status == 422
                assert size_of(w, ORIGIN) == size
            lines = w.add_checkpoint(size, proof, note)
            open_note(append_signatures(note, lines), wv)
            size = new
        w.close()


# --- over HTTP ------------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def witness_process(tmp: Path, log: Log, name: str, errlog: list[str] | None = None,
                    *extra: str) -> Iterator[tuple[str, str]]:
    """A real witness server process on a free loopback port: (url, witness vkey); its stderr lines (the access
    log) are appended to ``errlog`` as they come (read continuously, so a full pipe never blocks the server)."""
    vkey = generate_key_files(name, tmp / f"{name.replace('/', '_')}.key", tmp / "w.pub", cosigner=True)
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "medspace.ledger.witness", "--state", str(tmp / "state.db"),
         "--key", str(tmp / f"{name.replace('/', '_')}.key"), "--log-key", log.signer.vkey(), "--port", "0",
         *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    stdout, stderr = proc.stdout, proc.stderr
    assert stdout is not None and stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    errors = errlog if errlog is not None else []
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    threading.Thread(target=lambda: errors.extend(iter(stderr.readline, "")), daemon=True).start()
    try:
        first = lines.get(timeout=30)
        assert first.startswith("witness listening on "), first + "".join(errors)
        yield first.split()[-1], vkey
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SERVED_STDERR: list[str] = []


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, str, Log]]:
    log = Log()
    with tempfile.TemporaryDirectory() as tmp, \
            witness_process(Path(tmp), log, "regulator.example/w", SERVED_STDERR) as (url, vkey):
        yield url, vkey, log


def wait_for_lines(lines: list[str], needle: str, count: int = 1) -> list[str]:
    """The lines containing ``needle`` once there are ``count`` (another process writes them)."""
    deadline = time.monotonic() + 10
    while True:
        found = [ln for ln in list(lines) if needle in ln]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.02)


def test_http_server_process_speaks_tlog_witness(served: tuple[str, str, Log]) -> None:
    url, vkey, log = served
    wv = WitnessEndpoint.parse(url, vkey).verifier
    with httpx.Client(timeout=10) as http:
        def post(body: bytes) -> httpx.Response:
            return http.post(url + "/add-checkpoint", content=body)

        ok = post(format_add_checkpoint(0, [], log.note(5)))
        assert ok.status_code == 200, ok.text
        assert ok.text.endswith("\n") and all(line.startswith("— ") for line in ok.text.splitlines())
        open_note(append_signatures(log.note(5), ok.text.splitlines()), [wv])
        assert post(format_add_checkpoint(5, log.proof(5, 9), log.note(9))).status_code == 200
        # Stale old size: 409, the size as exactly text/x.tlog.size (no charset parameter).
        conflict = post(format_add_checkpoint(5, log.proof(5, 12), log.note(12)))
        assert conflict.status_code == 409
        assert conflict.headers.get_list("content-type") == [SIZE_CONTENT_TYPE] and conflict.content == b"9\n"
        # Fork, bad proof, unknown origin, bad signature, malformed body, old > size.
        fork = post(format_add_checkpoint(9, [], log.fork(9)))
        assert (fork.status_code, fork.text) == (422, "fork: same size, different root\n")
        assert fork.headers["content-type"].startswith("text/plain")
        proof = log.proof(9, 12)
        bad = post(format_add_checkpoint(9, [proof[0][::-1], *proof[1:]], log.note(12)))
        assert bad.status_code == 422 and bad.text.startswith("bad consistency proof")
        assert post(format_add_checkpoint(0, [], Log("nobody.example/log").note(1))).status_code == 404
        assert post(format_add_checkpoint(0, [], Log(ORIGIN, NoteSigner.generate(ORIGIN)).note(1))).status_code == 403
        assert post(b"old 9\nnot a hash\n\n" + log.note(12).encode()).status_code == 400
        assert post(format_add_checkpoint(12, [], log.note(10))).status_code == 400
        assert post(b"old 0\n\n" + b"x" * 70000).status_code == 413
        assert http.get(url + "/").text == vkey + "\n"
        # The monitoring endpoint: the latest cosigned checkpoint, the log's signature and this witness's.
        held = http.get(f"{url}/{origin_hash(ORIGIN)}/checkpoint")
        assert held.status_code == 200 and verify_quorum(held.text, log.signer.verifier(), [wv], 1).size == 9
        assert fetch_checkpoint(url, ORIGIN) == held.text
    # The client: a refusal carries the status and the witness's size.
    with pytest.raises(WitnessRefusal) as info:
        submit(url, 0, [], log.note(12))
    assert (info.value.status, info.value.latest_size) == (409, 9)
    lines = submit(url, 9, log.proof(9, 12), log.note(12))
    open_note(append_signatures(log.note(12), lines), [wv])


def test_access_log_names_each_request_and_never_its_content(served: tuple[str, str, Log], tmp_path: Path) -> None:
    url, _vkey, log = served
    with httpx.Client(timeout=10) as http:
        http.post(url + "/add-checkpoint", content=format_add_checkpoint(0, [], log.note(1)))  # a 409 by now
        http.get(f"{url}/{'0' * 64}/checkpoint")
    conflict = wait_for_lines(SERVED_STDERR, '"POST /add-checkpoint" 409')
    missing = wait_for_lines(SERVED_STDERR, f'"GET /{"0" * 64}/checkpoint" 404')
    assert conflict and missing, SERVED_STDERR
    # time, remote, principal ("-": the witness has no writers), request, status, bytes sent, duration.
    assert re.fullmatch(r'\S+ 127\.0\.0\.1:\d+ - "POST /add-checkpoint" 409 \d+ \d+\.\dms\n', conflict[-1])
    body = "".join(SERVED_STDERR)
    root = base64.b64encode(log.root(1)).decode()
    assert root not in body and "old " not in body and "—" not in body  # no request or response content
    # --no-access-log: silent.
    quiet: list[str] = []
    with witness_process(tmp_path, log, "quiet.example/w", quiet, "--no-access-log") as (url2, _):
        assert httpx.post(url2 + "/add-checkpoint", content=b"junk", timeout=10).status_code == 400
        assert httpx.get(url2 + "/", timeout=10).status_code == 200
    assert quiet == []


def test_monitoring_endpoint_serves_the_latest_cosigned_checkpoint(tmp_path: Path, log: Log) -> None:
    """tlog-witness §Monitor Retrieval Mechanism: GET <prefix>/<sha256(origin) hex>/checkpoint."""
    other = Log("other.example/log")
    w = new_witness(tmp_path / "w.db", log, other)
    wv = w.verifiers()
    with thread_server(create_app(w)) as url, httpx.Client(timeout=10) as http:
        path = f"{url}/{origin_hash(ORIGIN)}/checkpoint"
        assert origin_hash(ORIGIN) == hashlib.sha256(ORIGIN.encode()).hexdigest()
        # Known origin, nothing cosigned yet; unknown origin; not a lowercase SHA-256.
        assert (http.get(path).status_code, http.get(path).text) == (404, "no checkpoint cosigned for this log yet\n")
        assert http.get(f"{url}/{origin_hash('nobody.example/log')}/checkpoint").status_code == 404
        assert http.get(f"{url}/{origin_hash(ORIGIN).upper()}/checkpoint").status_code == 404
        assert http.get(f"{url}/{ORIGIN}/checkpoint").status_code == 404
        with pytest.raises(WitnessRefusal, match=r"no checkpoint for medspace\.example/audit") as info:
            fetch_checkpoint(url, ORIGIN)
        assert info.value.status == 404
        # Signed by the log with an extra signature of an unknown key: served with the verified ones only.
        stranger = NoteSigner.generate("stranger.example/k")
        note = append_signatures(log.note(6), [sign_note(split_note(log.note(6))[0], [stranger]).split("\n\n")[1]
                                               .strip()])
        lines = submit(url, 0, [], note, client=http)
        held = http.get(path)
        assert held.status_code == 200 and held.text == append_signatures(log.note(6), lines)
        assert verify_quorum(held.text, log.signer.verifier(), wv, 1).size == 6
        lines = submit(url, 6, log.proof(6, 9), log.note(9), client=http)
        assert fetch_checkpoint(url, ORIGIN, client=http) == append_signatures(log.note(9), lines)
        # Each log has its own.
        submit(url, 0, [], other.note(2), client=http)
        assert Checkpoint.from_text(split_note(fetch_checkpoint(url, other.origin))[0]).size == 2
    w.close()


def test_a_state_file_without_stored_cosignatures_is_served_cosigned(tmp_path: Path, log: Log) -> None:
    """A state file from before notes were stored cosigned: its checkpoint is cosigned as of when it was recorded,
    the same bytes every time."""
    signer = CosignatureSigner.generate("witness.example/w1")
    w = Witness(tmp_path / "w.db", [signer])
    w.add_log(log.signer.verifier())
    w.add_checkpoint(0, [], log.note(5))
    w.close()
    with sqlite3.connect(tmp_path / "w.db") as db:
        db.execute("UPDATE logs SET note = ?, updated = ? WHERE origin = ?", (log.note(5), 1_700_000_000.5, ORIGIN))
    w = Witness(tmp_path / "w.db", [signer])
    first = w.cosigned_note(ORIGIN)
    assert first is not None and first == w.cosigned_note(ORIGIN)
    verify_quorum(first, log.signer.verifier(), w.verifiers(), 1)
    [sig] = [s for s in split_note(first)[1] if s.name == "witness.example/w1"]
    assert cosignature_timestamp(sig.signature) == 1_700_000_000
    w.close()


def test_a_witness_that_never_answers_costs_its_timeout(witness: Witness, log: Log) -> None:
    with thread_server(create_app(witness)) as url1, SilentServer() as silent, SilentServer(drip=True) as dripping:
        silence = r"^witness at http://127\.0\.0\.1:\d+/add-checkpoint: no answer within 0\.3 s$"
        with pytest.raises(WitnessError, match=silence):
            submit(silent.url, 0, [], log.note(3), timeout=0.3)
        with pytest.raises(WitnessError, match=r"no answer within 0\.3 s$"):
            fetch_checkpoint(silent.url, ORIGIN, timeout=0.3)
        # Among others: the honest witness cosigns, the silent ones are reported, and the call returns. A witness
        # that keeps sending header lines never trips the read timeout: the per-witness deadline ends it.
        endpoints = [WitnessEndpoint(url1, witness.verifiers()[0]),
                     WitnessEndpoint(silent.url, CosignatureSigner.generate("silent.example/w").verifier()),
                     WitnessEndpoint(dripping.url, CosignatureSigner.generate("drip.example/w").verifier())]
        size = 60
        result = collect_cosignatures(endpoints, log.note(size), lambda old: log.proof(old, size),
                                      timeout=0.3, deadline=1.0)
    assert result.cosigned == ["witness.example/w1"]
    assert result.errors["silent.example/w"].endswith(": no answer within 0.3 s")
    assert result.errors["drip.example/w"].endswith(": no answer within 1 s")
    # Refused connections are reported as unreachable, not as silence.
    with pytest.raises(WitnessError, match="unreachable: ConnectError"):
        submit(f"http://127.0.0.1:{free_port()}", 0, [], log.note(3), timeout=0.3)


def test_serve_refuses_a_busy_port_and_a_loose_key_file(tmp_path: Path, log: Log) -> None:
    generate_key_files("w.example", tmp_path / "w.key", tmp_path / "w.pub", cosigner=True)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(WitnessError, match="cannot listen"):
            serve(tmp_path / "s.db", tmp_path / "w.key", [log.signer.vkey()], port=busy.getsockname()[1])
    os.chmod(tmp_path / "w.key", 0o644)
    with pytest.raises(CheckpointError, match="chmod 600") as info:
        serve(tmp_path / "s.db", tmp_path / "w.key", [log.signer.vkey()], port=0)
    assert "PRIVATE" not in str(info.value)


class CountingWitness(Witness):
    """A real witness that also records the size of each batch it commits."""

    batches: list[int]

    def add_checkpoints(self, requests: Sequence[AddCheckpointRequest]) -> list[list[str] | WitnessRefusal]:
        self.batches.append(len(requests))
        return super().add_checkpoints(requests)


def test_http_concurrent_clients_are_group_committed(tmp_path: Path) -> None:
    logs = [Log(f"log{i}.example/audit") for i in range(8)]
    w = CountingWitness(tmp_path / "w.db", [CosignatureSigner.generate("witness.example/w1")])
    w.batches = []
    for lg in logs:
        w.add_log(lg.signer.verifier())
    wv = w.verifiers()
    with thread_server(create_app(w)) as url, httpx.Client(timeout=10) as http:
        def chain(lg: Log) -> None:
            size = 0
            for new in (3, 7, 8, 20, 33):
                lines = submit(url, size, lg.proof(size, new), lg.note(new), client=http)
                open_note(append_signatures(lg.note(new), lines), wv)
                size = new

        threads = [threading.Thread(target=chain, args=(lg,)) for lg in logs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(size_of(w, lg.origin) == 33 for lg in logs)
    # Requests in flight together were checked and committed together (fewer transactions than requests).
    assert sum(w.batches) == 40 and len(w.batches) < 40
    w.close()


def liar_app(name: str) -> object:
    """A witness that answers 200 with its cosignature over a forked root (a lying witness)."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    signer = CosignatureSigner.generate(name)

    async def add(request: Request) -> PlainTextResponse:
        req = parse_add_checkpoint(await request.body())
        cp = Checkpoint.from_text(split_note(req.note)[0])
        lie = Checkpoint(cp.origin, cp.size, merkle.leaf_hash(b"lie"))
        return PlainTextResponse(sign_note(lie.to_text(), [signer]).split("\n\n")[1])

    app = Starlette(routes=[Route("/add-checkpoint", add, methods=["POST"])])
    app.state.verifier = signer.verifier()
    return app


def test_quorum_with_one_witness_down_and_one_lying(served: tuple[str, str, Log], tmp_path: Path) -> None:
    url1, vkey1, log = served
    w2 = new_witness(tmp_path / "w2.db", log, name="peer-hospital.example/w")
    liar = liar_app("liar.example/w")
    down = WitnessEndpoint(f"http://127.0.0.1:{free_port()}", CosignatureSigner.generate("down.example/w").verifier())
    # This witness already holds the log at 10: collect_cosignatures learns that from its 409 and retries.
    w2.add_checkpoint(0, [], log.note(10))
    with thread_server(create_app(w2)) as url2, thread_server(liar) as url3:
        honest = [WitnessEndpoint.parse(url1, vkey1), WitnessEndpoint(url2, w2.verifiers()[0])]
        lying = WitnessEndpoint(url3, liar.state.verifier)  # type: ignore[attr-defined]
        endpoints = [*honest, down, lying]
        size = 40
        result = collect_cosignatures(endpoints, log.note(size), lambda old: log.proof(old, size))
        assert sorted(result.cosigned) == sorted(e.verifier.name for e in honest)
        assert set(result.errors) == {"down.example/w", "liar.example/w"}
        assert "unreachable" in result.errors["down.example/w"]
        assert "no valid cosignature" in result.errors["liar.example/w"]
        assert result.sizes == {e.verifier.name: size for e in honest}
    witness_keys = [e.verifier for e in endpoints]
    cp = verify_quorum(result.note, log.signer.verifier(), witness_keys, 2)
    assert (cp.origin, cp.size, cp.root_hash) == (ORIGIN, size, log.root(size))
    with pytest.raises(WitnessError, match="quorum not reached: 2 of 4 witnesses cosigned, 3 needed"):
        verify_quorum(result.note, log.signer.verifier(), witness_keys, 3)
    # The liar's cosignature pasted into the note is counted as invalid, never as a vote.
    lie_text = Checkpoint(ORIGIN, size, merkle.leaf_hash(b"lie")).to_text()
    fake = NoteSignature.from_line(sign_note(lie_text, [CosignatureSigner.generate("x")]).split("\n\n")[1].strip())
    pasted = append_signatures(result.note, [NoteSignature("liar.example/w", lying.verifier.key_id,
                                                           fake.signature).line()])
    with pytest.raises(WitnessError, match="2 of 4 witnesses cosigned, 3 needed; 1 invalid"):
        verify_quorum(pasted, log.signer.verifier(), witness_keys, 3)
    # Freshness: cosignatures are recent, so they count with max_age; far in the future they do not.
    assert verify_quorum(result.note, log.signer.verifier(), witness_keys, 2, max_age=600)
    with pytest.raises(WitnessError, match="too old"):
        verify_quorum(result.note, log.signer.verifier(), witness_keys, 1, max_age=600, now=time.time() + 3600)
    w2.close()


def test_verify_quorum_rejects_bad_log_signature_and_origin(log: Log) -> None:
    ws = [CosignatureSigner.generate(f"w{i}") for i in range(3)]
    note = log.note(4)
    text = split_note(note)[0]
    cosigned = append_signatures(note, [sign_note(text, [w]).split("\n\n")[1].strip() for w in ws])
    keys = [w.verifier() for w in ws]
    assert verify_quorum(cosigned, log.signer.verifier(), keys, 3).size == 4
    # Cosigned by witnesses but not signed by the log.
    no_log = text + "\n" + cosigned.split("\n\n")[1].split("\n", 1)[1]
    with pytest.raises(CheckpointError, match="no verifiable signatures"):
        verify_quorum(no_log, log.signer.verifier(), keys, 1)
    with pytest.raises(CheckpointError, match="origin"):
        verify_quorum(cosigned, log.signer.verifier(), keys, 1, origin="another.example/log")
    with pytest.raises(ValueError):
        verify_quorum(cosigned, log.signer.verifier(), keys, 4)
    # The same witness key listed twice is one witness: it cannot make a quorum of two.
    assert verify_quorum(cosigned, log.signer.verifier(), [keys[0], keys[0]], 1).size == 4
    with pytest.raises(ValueError):
        verify_quorum(cosigned, log.signer.verifier(), [keys[0], keys[0]], 2)
    with pytest.raises(WitnessError, match="0 of 1 witnesses cosigned"):
        verify_quorum(note, log.signer.verifier(), [keys[0]], 1)
