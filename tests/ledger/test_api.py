"""The log's HTTP API on real loopback servers: read-only by default, writes only with the owner's bearer token and
for the actors it may claim, bodies capped and streamed, writes attributed, nothing stalled by a silent witness."""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import queue
import shutil
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import SilentServer, thread_server

from medspace.ledger import api
from medspace.ledger.api import WriteAccess, create_app, new_token
from medspace.ledger.checkpoint import generate_key_files
from medspace.ledger.errors import LedgerError
from medspace.ledger.log import AuditLog, WitnessConfig, init_log, read_config, write_config

MEDSPACE = shutil.which("medspace", path=str(Path(sys.executable).parent)) or "medspace"
ORIGIN = "hub.medspace.test/audit"
BIG = 50 * 1024 * 1024


def event(actor: str, i: int = 0, **over: Any) -> dict[str, Any]:
    """A valid audit event in its JSON form."""
    ev = {"actor": actor, "role": "researcher", "action": "task.submit", "purpose": "HRESCH",
          "resource": f"task:t-{i}", "time": "2026-11-24T10:00:00Z", "contract_id": "C-17",
          "input_hashes": ["ab" * 32]}
    return {**ev, **over}


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """A fresh log (no witness, quorum 0) with its store created."""
    d = tmp_path / "log"
    init_log(d, ORIGIN)
    AuditLog(d, create=True).close()
    return d


@contextlib.contextmanager
def served(log_dir: Path, access: WriteAccess | None, **options: Any) -> Iterator[tuple[str, AuditLog]]:
    """The log's API over ``log_dir`` on loopback: (base URL, the open log)."""
    with AuditLog(log_dir) as log, thread_server(create_app(log, access=access, **options), lifespan="off") as url:
        yield url, log


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def raw_response(sock: socket.socket) -> tuple[int, bytes, bytes]:
    """Read one HTTP response until the server closes: (status, lower-cased head, body)."""
    data = b""
    sock.settimeout(60)
    while True:
        try:
            got = sock.recv(65536)
        except ConnectionResetError:
            break
        if not got:
            break
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head.lower(), body


# --- read-only and authentication -----------------------------------------------------------------------------------


def test_a_server_without_a_credential_is_read_only(log_dir: Path) -> None:
    with served(log_dir, None) as (url, log), httpx.Client(base_url=url, timeout=30) as http:
        for path in ("/entries", "/checkpoint"):
            r = http.post(path, json=[event("owner")], headers=bearer(new_token()))
            assert r.status_code == 403, path
            err = r.json()["error"]
            assert "read-only" in err and "--token-file" in err and api.TOKEN_ENV in err
        assert log.store.size == 0
        assert http.get("/entries", params={"start": 0}).json() == {"start": 0, "entries": []}
        assert http.get("/checkpoint").status_code == 404


def test_writes_need_the_bearer_token(log_dir: Path) -> None:
    token = new_token()
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    access = WriteAccess.from_token(token)
    with served(log_dir, access) as (url, log), httpx.Client(base_url=url, timeout=30) as http:
        cases = {
            "missing": ({}, None),
            "basic": ({"Authorization": f"Basic {token}"}, "invalid_request"),
            "empty": ({"Authorization": "Bearer"}, "invalid_request"),
            "spaces": ({"Authorization": f"Bearer {token} extra"}, "invalid_request"),
            "wrong": (bearer(wrong), "invalid_token"),
            "other": (bearer(new_token()), "invalid_token"),
        }
        for name, (headers, code) in cases.items():
            for path in ("/entries", "/checkpoint"):
                r = http.post(path, json=[event("owner")], headers=headers)
                assert r.status_code == 401, (name, path)
                challenge = r.headers["www-authenticate"]
                assert challenge.startswith("Bearer "), name
                assert (f'error="{code}"' in challenge) if code else ("error=" not in challenge), name
                assert token not in r.text and wrong not in r.text
        assert log.store.size == 0
        assert http.get("/checkpoint").status_code == 404  # reads need no token
        # the scheme is case-insensitive (RFC 9110), the token is not
        ok = http.post("/entries", json=[event("owner")], headers={"Authorization": f"bearer {token}"})
        assert ok.status_code == 200 and ok.json() == {"indices": [0]}
        assert http.post("/entries", json=[event("owner")], headers=bearer(token.upper())).status_code == 401


def test_the_token_is_compared_as_a_digest_in_constant_time(log_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = new_token()
    access = WriteAccess.from_token(token, "hub", ["*@h1"])
    # the server keeps the token's digest, never the token
    assert token not in repr(access) and all(token not in str(v) for v in vars(access).values())
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    with served(log_dir, access) as (url, _log), httpx.Client(base_url=url, timeout=30) as http:
        assert http.post("/entries", json=[event("a@h1")], headers=bearer(token)).status_code == 200
        assert http.post("/entries", json=[event("a@h1")], headers=bearer(new_token())).status_code == 401
    # both answers came from one comparison each, of two SHA-256 digests (never of the token itself)
    assert len(calls) == 2
    for a, b in calls:
        assert isinstance(a, bytes) and isinstance(b, bytes) and len(a) == len(b) == 32
        assert token.encode() not in (a, b)


def test_tokens_are_long_random_and_checked() -> None:
    a, b = new_token(), new_token()
    assert a != b and a.startswith("msl_") and len(a) >= 40
    for bad in ("", "short", "x" * 31, "has space" + "x" * 40, "é" * 40):
        with pytest.raises(LedgerError, match="at least 32 characters"):
            WriteAccess.from_token(bad)
    with pytest.raises(LedgerError, match="writer's name"):
        WriteAccess.from_token(a, "two words")
    with pytest.raises(LedgerError, match="actor pattern"):
        WriteAccess.from_token(a, "hub", ["a b"])


# --- what a writer may append ---------------------------------------------------------------------------------------


def test_an_event_the_writer_may_not_claim_refuses_the_whole_batch(log_dir: Path) -> None:
    token = new_token()
    access = WriteAccess.from_token(token, "hub", ["hub", "*@h1"])
    with served(log_dir, access) as (url, log), httpx.Client(base_url=url, timeout=30) as http:
        batch = [event("dr-chen@h1", 0), event("hub", 1), event("dr-li@h2", 2), event("dr-wu@h1", 3)]
        r = http.post("/entries", json=batch, headers=bearer(token))
        assert r.status_code == 403
        assert r.json()["error"] == ("event 3 of 4: actor is not one this writer may claim "
                                     "(writer 'hub' may claim: hub, *@h1)")
        assert "dr-li" not in r.text
        assert log.store.size == 0  # all or nothing
        # patterns match whole actors, case-sensitively
        for actor in ("dr-chen@h10", "dr-chen@H1", "xhub", "hub@h2"):
            assert http.post("/entries", json=[event(actor)], headers=bearer(token)).status_code == 403, actor
        r = http.post("/entries", json=[b for b in batch if b["actor"] != "dr-li@h2"], headers=bearer(token))
        assert r.status_code == 200 and r.json() == {"indices": [0, 1, 2]}
        assert log.store.size == 3


def test_by_default_a_writer_claims_only_its_own_name(log_dir: Path) -> None:
    token = new_token()
    with served(log_dir, WriteAccess.from_token(token)) as (url, _log), httpx.Client(base_url=url, timeout=30) as h:
        assert h.post("/entries", json=[event("owner")], headers=bearer(token)).status_code == 200
        r = h.post("/entries", json=[event("dr-chen@h1")], headers=bearer(token))
        assert r.status_code == 403 and "writer 'owner' may claim: owner" in r.json()["error"]


def test_a_star_claims_any_actor_patients_included(log_dir: Path) -> None:
    token = new_token()
    patient = event("ef" * 32, role="patient", action="consent.grant", purpose="PATRQT", resource="consent:c-1")
    with served(log_dir, WriteAccess.from_token(token, "hub", ["*"])) as (url, _), httpx.Client(base_url=url) as h:
        r = h.post("/entries", json=[event("dr-li@h2"), patient], headers=bearer(token))
        assert r.status_code == 200 and r.json() == {"indices": [0, 1]}


def test_an_invalid_event_is_named_by_its_position_and_field(log_dir: Path) -> None:
    token = new_token()
    access = WriteAccess.from_token(token, "hub", ["*"])
    cases: list[tuple[Any, str]] = [
        ([event("a@h1"), {k: v for k, v in event("b@h1").items() if k != "role"}],
         "event 2 of 2: missing event field 'role'"),
        ([event("a@h1", role="nobody")], "event 1 of 1: field 'role' is not in its vocabulary"),
        ([event("a@h1"), event("a@h1"), event("a@h1", time="yesterday")], "event 3 of 3: field 'time'"),
        ([event("a@h1", time="2026-11-24T10:00:00")], "event 1 of 1: field 'time' must be a timezone-aware"),
        ([event("a@h1", input_hashes="ab")], "event 1 of 1: field 'input_hashes' must be a list of hashes"),
        ([event("a@h1", colour="red")], "event 1 of 1: unknown event field(s): colour"),
        ([event("a@h1", v=2)], "event 1 of 1: field 'v' must be 1"),
        ([event("a@h1"), "x"], "event 2 of 2: not a JSON object"),
        ({"events": []}, "the body must be a JSON list of audit events"),
    ]
    with served(log_dir, access) as (url, log), httpx.Client(base_url=url, timeout=30) as http:
        for body, expected in cases:
            r = http.post("/entries", json=body, headers=bearer(token))
            assert r.status_code == 400, expected
            assert r.json()["error"].startswith(expected), (r.json(), expected)
            assert "red" not in r.text and "nobody" not in r.text and "yesterday" not in r.text
        r = http.post("/entries", content=b"[{not json", headers=bearer(token))
        assert r.status_code == 400 and r.json()["error"] == "the body is not JSON"
        assert http.post("/entries", json=[], headers=bearer(token)).json() == {"indices": []}
        assert log.store.size == 0


# --- body limits ------------------------------------------------------------------------------------------------------


def test_a_declared_oversize_body_is_refused_before_it_is_sent(log_dir: Path) -> None:
    token = new_token()
    with served(log_dir, WriteAccess.from_token(token)) as (url, log):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"POST /entries HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      + f"Authorization: Bearer {token}\r\nContent-Length: {BIG}\r\n\r\n".encode())
            status, head, body = raw_response(s)  # answered (and closed) with no byte of the body sent
        assert status == 413 and b"connection: close" in head
        assert json.loads(body)["error"] == f"the body is larger than 1048576 bytes ({BIG} declared)"
        # without the token, the answer is 401 before the size is even looked at
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(f"POST /entries HTTP/1.1\r\nHost: x\r\nContent-Length: {BIG}\r\n\r\n".encode())
            assert raw_response(s)[0] == 401
        assert log.store.size == 0
    with served(log_dir, WriteAccess.from_token(token, "owner", ["*"]), max_body=4096) as (url, log), \
            httpx.Client(base_url=url, timeout=30) as http:
        small = [event("a@h1", i) for i in range(5)]
        assert len(json.dumps(small)) < 4096 < len(json.dumps(small * 4))
        assert http.post("/entries", json=small, headers=bearer(token)).status_code == 200
        r = http.post("/entries", json=small * 4, headers=bearer(token))
        assert r.status_code == 413 and "4096" in r.json()["error"]
        assert log.store.size == 5


def test_a_streamed_body_is_cut_off_at_the_cap(log_dir: Path) -> None:
    token = new_token()
    with served(log_dir, WriteAccess.from_token(token, "owner", ["*"])) as (url, log):
        port = int(url.rsplit(":", 1)[1])
        sent = [0]
        finished = threading.Event()
        s = socket.create_connection(("127.0.0.1", port))

        def send() -> None:
            # a chunked body (no Content-Length) of up to 50 MB, until the server closes the connection
            chunk = b"x" * 65536
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            try:
                s.sendall(b"POST /entries HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          + f"Authorization: Bearer {token}\r\n\r\n".encode())
                while sent[0] < BIG:
                    s.sendall(frame)
                    sent[0] += len(chunk)
                s.sendall(b"0\r\n\r\n")
            except OSError:  # the server closed the connection: the rest of the body is never read
                pass
            finished.set()

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        try:
            status, head, body = raw_response(s)
            finished.wait(60)
        finally:
            s.close()
            sender.join(60)
        assert status == 413 and b"connection: close" in head
        assert json.loads(body)["error"] == "the body is larger than 1048576 bytes"
        assert sent[0] < BIG  # the sender was stopped: the server never read 50 MB
        assert log.store.size == 0
    # a chunked body under the cap is read whole and appended
    with served(log_dir, WriteAccess.from_token(token, "owner", ["*"])) as (url, log), \
            httpx.Client(base_url=url, timeout=30) as http:
        data = json.dumps([event("a@h1", i) for i in range(50)]).encode()

        def pieces() -> Iterator[bytes]:
            for k in range(0, len(data), 1000):
                yield data[k : k + 1000]

        r = http.post("/entries", content=pieces(), headers=bearer(token))
        assert r.status_code == 200 and r.json()["indices"] == list(range(50))


# --- publication and the event loop -----------------------------------------------------------------------------------


def test_publishing_needs_the_token_and_reports_the_checkpoint(log_dir: Path) -> None:
    token = new_token()
    with served(log_dir, WriteAccess.from_token(token)) as (url, _log), httpx.Client(base_url=url, timeout=30) as h:
        assert h.post("/entries", json=[event("owner", i) for i in range(3)], headers=bearer(token)).status_code == 200
        r = h.post("/checkpoint", headers=bearer(token))
        assert r.status_code == 200, r.text
        pub = r.json()
        assert set(pub) == {"checkpoint", "cosigned", "witness_errors"}
        assert pub["cosigned"] == [] and pub["witness_errors"] == {}
        assert h.get("/checkpoint").text == pub["checkpoint"]
        assert pub["checkpoint"].split("\n")[:2] == [ORIGIN, "3"]


def test_a_silent_witness_stalls_neither_reads_nor_the_server(log_dir: Path, tmp_path: Path) -> None:
    vkey = generate_key_files("silent.medspace.test/witness", tmp_path / "w.key", tmp_path / "w.vkey", cosigner=True)
    witness = SilentServer()
    cfg = read_config(log_dir)
    cfg.witnesses = [WitnessConfig(witness.url, vkey)]
    cfg.quorum = 1
    write_config(log_dir, cfg)
    token = new_token()
    outcome: queue.Queue[httpx.Response | BaseException] = queue.Queue()
    try:
        with served(log_dir, WriteAccess.from_token(token)) as (url, _log), \
                httpx.Client(base_url=url, timeout=60) as http:
            assert http.post("/entries", json=[event("owner", i) for i in range(3)],
                             headers=bearer(token)).status_code == 200

            def publish() -> None:
                try:
                    with httpx.Client(base_url=url, timeout=60) as other:
                        outcome.put(other.post("/checkpoint", headers=bearer(token)))
                except BaseException as e:  # handed to the test thread
                    outcome.put(e)

            poster = threading.Thread(target=publish, daemon=True)
            poster.start()
            assert witness.accepted.wait(60), "the log never called its witness"
            # the publication is now waiting on a witness that will not answer; reads go on
            assert http.get("/checkpoint").status_code == 404  # nothing witnessed yet
            assert len(http.get("/entries", params={"start": 0}).json()["entries"]) == 3
            assert http.get("/proof/inclusion", params={"index": 1, "size": 3}).status_code == 200
            assert http.get("/proof/consistency", params={"first": 1, "second": 3}).status_code == 200
            assert outcome.empty(), "the publication ended before the reads were answered"
            # a second publication does not queue behind the first
            busy = http.post("/checkpoint", headers=bearer(token))
            assert busy.status_code == 409 and "already being published" in busy.json()["error"]
            witness.close()  # the witness hangs up: the publication fails short of its quorum
            poster.join(60)
            r = outcome.get(timeout=60)
            assert isinstance(r, httpx.Response), r
            assert r.status_code == 503
            body = r.json()
            assert "the quorum is 1" in body["error"] and body["cosigned"] == []
            assert list(body["witness_errors"]) == ["silent.medspace.test/witness"]
            assert http.get("/checkpoint").status_code == 404  # a checkpoint short of its quorum is not served
    finally:
        witness.close()


# --- the command line: credentials, attribution, access log -----------------------------------------------------------


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != api.TOKEN_ENV}
    return {**env, "COLUMNS": "200", "NO_COLOR": "1", **extra}


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MEDSPACE, *args], cwd=cwd, capture_output=True, text=True, env=env or cli_env(),
                          timeout=120)


@contextlib.contextmanager
def serve_process(args: list[str], cwd: Path, env: dict[str, str] | None = None
                  ) -> Iterator[tuple[str, str, list[str]]]:
    """`medspace ledger serve ... --port 0` as a process: (URL, its mode line, its stderr lines once stopped)."""
    proc = subprocess.Popen([MEDSPACE, "ledger", "serve", "--port", "0", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env or cli_env())
    stdout, stderr = proc.stdout, proc.stderr
    assert stdout is not None and stderr is not None
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(stdout.readline()) for _ in range(2)], daemon=True).start()
    err: list[str] = []
    try:
        first = lines.get(timeout=60)
        assert "listening on" in first, first + (stderr.read() if proc.poll() is not None else "")
        yield first.split("listening on", 1)[1].strip(), lines.get(timeout=60), err
    finally:
        proc.terminate()
        try:
            _out, rest = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _out, rest = proc.communicate()
        err.extend(rest.splitlines())


def test_ledger_token_writes_a_private_token_and_never_prints_it(tmp_path: Path) -> None:
    r = run("ledger", "token", "w.token", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    token = (tmp_path / "w.token").read_text().strip()
    assert token.startswith("msl_") and token not in r.stdout + r.stderr
    assert stat.S_IMODE((tmp_path / "w.token").stat().st_mode) == 0o600
    r = run("ledger", "token", "w.token", cwd=tmp_path)
    assert r.returncode == 2 and "--force" in r.stderr and token not in r.stderr
    assert (tmp_path / "w.token").read_text().strip() == token
    (tmp_path / "w.token").chmod(0o644)
    r = run("ledger", "token", "w.token", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    fresh = (tmp_path / "w.token").read_text().strip()
    assert fresh != token and fresh not in r.stdout + r.stderr
    assert stat.S_IMODE((tmp_path / "w.token").stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_token_file_others_can_read_is_refused(log_dir: Path, tmp_path: Path) -> None:
    assert run("ledger", "token", "w.token", cwd=tmp_path).returncode == 0
    token = (tmp_path / "w.token").read_text().strip()
    (tmp_path / "w.token").chmod(0o640)
    r = run("ledger", "serve", "--dir", "log", "--port", "0", "--token-file", "w.token", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "chmod 600" in r.stderr and "w.token" in r.stderr, r.stderr
    assert token not in r.stdout + r.stderr and "listening" not in r.stdout
    r = run("ledger", "serve", "--dir", "log", "--port", "0", "--writer", "hub", cwd=tmp_path)
    assert r.returncode == 2 and "need a write credential" in r.stderr, r.stderr
    r = run("ledger", "serve", "--dir", "log", "--port", "0", cwd=tmp_path, env=cli_env(MEDSPACE_LEDGER_TOKEN="short"))
    assert r.returncode == 2 and "MEDSPACE_LEDGER_TOKEN" in r.stderr and "short" not in r.stderr, r.stderr


def test_writes_are_attributed_and_the_access_log_names_the_writer(log_dir: Path, tmp_path: Path) -> None:
    assert run("ledger", "token", "hub.token", cwd=tmp_path).returncode == 0
    token = (tmp_path / "hub.token").read_text().strip()
    args = ["--dir", "log", "--token-file", "hub.token", "--writer", "hub", "--actor", "hub", "--actor", "*@h1"]
    with serve_process(args, tmp_path) as (url, mode, err), httpx.Client(base_url=url, timeout=30) as http:
        assert mode.strip() == "writes accepted with the write token: writer 'hub' may claim: hub, *@h1"
        r = http.post("/entries", json=[event("dr-chen@h1", 0), event("hub", 1)], headers=bearer(token))
        assert r.status_code == 200 and r.json() == {"indices": [0, 1]}
        assert http.post("/entries", json=[event("dr-li@h2")], headers=bearer(token)).status_code == 403
        assert http.post("/entries", json=[event("hub")], headers=bearer(new_token())).status_code == 401
        assert http.get("/entries", params={"start": 0}).status_code == 200
    text = "\n".join(err)
    assert token not in text and "dr-chen" not in text and "Bearer" not in text
    lines = [line for line in err if '"' in line]
    assert any(' hub "POST /entries" 200 ' in line for line in lines), text
    assert any(' hub "POST /entries" 403 ' in line for line in lines), text
    assert any(' - "POST /entries" 401 ' in line for line in lines), text
    assert any(' - "GET /entries" 200 ' in line for line in lines), text
    with AuditLog(log_dir, readonly=True) as log:
        assert log.store.size == 2
        assert log.writer_of(0) == log.writer_of(1) == "hub"
    # --no-access-log: no line at all
    with serve_process([*args, "--no-access-log"], tmp_path) as (url, _mode, err2), httpx.Client(base_url=url) as h:
        assert h.get("/checkpoint").status_code == 404
    assert not [line for line in err2 if "GET /checkpoint" in line]


def test_the_credential_can_come_from_the_environment(log_dir: Path, tmp_path: Path) -> None:
    token = new_token()
    env = cli_env(MEDSPACE_LEDGER_TOKEN=token)
    with serve_process(["--dir", "log"], tmp_path, env) as (url, mode, err), httpx.Client(base_url=url) as http:
        assert "writer 'owner' may claim: owner" in mode
        assert http.post("/entries", json=[event("owner")], headers=bearer(token)).json() == {"indices": [0]}
        assert http.post("/entries", json=[event("owner")]).status_code == 401
    assert token not in "\n".join(err)
    with serve_process(["--dir", "log"], tmp_path) as (url, mode, _err), httpx.Client(base_url=url) as http:
        assert mode.startswith("read-only")
        assert http.post("/entries", json=[event("owner")], headers=bearer(token)).status_code == 403


def test_access_log_lines_follow_a_replaced_stderr() -> None:
    """A line goes to the stderr of the moment: a server thread that outlives a closed stream writes no error."""
    import io
    import logging
    import sys

    from medspace.ledger.access_log import LOGGER, log_to_stderr

    saved = sys.stderr
    try:
        log_to_stderr(True)
        first, second = io.StringIO(), io.StringIO()
        sys.stderr = first
        LOGGER.info("one")
        first.close()
        sys.stderr = second
        LOGGER.info("two")
        assert second.getvalue().endswith("two\n")
    finally:
        sys.stderr = saved
        LOGGER.handlers.clear()
        LOGGER.setLevel(logging.NOTSET)
        LOGGER.propagate = True
