"""The audit log end to end, as real processes on loopback: two witnesses, a log, its HTTP API, offline checks."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from medspace.ledger import merkle

MEDSPACE = shutil.which("medspace", path=str(Path(sys.executable).parent)) or "medspace"
EVENTS = [
    {"actor": "dr-chen@h1", "role": "researcher", "action": "task.submit", "purpose": "HRESCH",
     "resource": "study:metformin-age", "time": "2026-11-24T10:00:00Z", "contract_id": "C-17",
     "input_hashes": ["ab" * 32]},
    {"actor": "node-h1", "role": "node", "action": "node.compute", "purpose": "HRESCH",
     "resource": "task:t-1", "time": "2026-11-24T10:00:01Z", "contract_id": "C-17", "output_hashes": ["cd" * 32]},
    {"actor": "dr-li@h2", "role": "clinician", "action": "lookup.emergency", "purpose": "ETREAT",
     "resource": "patient:linkage", "time": "2026-11-24T10:05:00Z", "subject_commitment": "ef" * 32},
]


def run(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([MEDSPACE, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120,
                          input=stdin)


def start(args: list[str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    """Start a server process and read the URL it announces."""
    proc = subprocess.Popen([MEDSPACE, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, (line, proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
    return proc, line.split("listening on", 1)[1].strip()


@pytest.fixture
def space(tmp_path: Path) -> Iterator[dict[str, object]]:
    """A log with two witnesses (quorum 2), each a separate process with its own key and state."""
    assert run("ledger", "init", "--origin", "hub.medspace.test/audit", "--dir", "log", cwd=tmp_path).returncode == 0
    log_vkey = (tmp_path / "log" / "log.vkey").read_text().strip()
    procs = []
    for name in ("regulator", "peer"):
        r = run("witness", "keygen", f"{name}.medspace.test/witness", "--out", name, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        proc, url = start(["witness", "serve", "--state", f"{name}/state.sqlite", "--key", f"{name}/witness.key",
                           "--log-key", log_vkey, "--port", "0"], tmp_path)
        procs.append(proc)
        r = run("ledger", "add-witness", url, f"{name}/witness.vkey", "--quorum", "2", "--dir", "log", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    yield {"root": tmp_path, "witnesses": procs}
    for p in procs:
        p.terminate()
        p.wait(timeout=10)


def test_append_publish_export_verify_offline(space: dict[str, object]) -> None:
    root = space["root"]
    assert isinstance(root, Path)
    r = run("ledger", "append", "-", "--dir", "log", cwd=root, stdin=json.dumps(EVENTS))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["indices"] == [0, 1, 2]
    r = run("ledger", "publish", "--dir", "log", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    pub = json.loads(r.stdout)
    assert pub["witness_errors"] == {}
    assert pub["checkpoint"].count("\u2014 ") == 3  # the log's signature and two cosignatures
    assert run("audit", "keys", "keys.json", "--dir", "log", cwd=root).returncode == 0
    assert run("audit", "export", "2", "--dir", "log", "-o", "b2.json", cwd=root).returncode == 0
    # the witnesses can go away: verification needs no network
    for p in space["witnesses"]:  # type: ignore[attr-defined]
        p.terminate()
    r = run("audit", "verify", "b2.json", "--keys", "keys.json", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["verified"] and out["index"] == 2 and out["event"]["action"] == "lookup.emergency"
    # tampering with the entry, the proof or the checkpoint is caught, in one clear line
    bundle = json.loads((root / "b2.json").read_text())
    entry = json.loads(base64.b64decode(bundle["entry"]))
    entry["purpose"] = "TREAT"
    forged = dict(bundle, entry=base64.b64encode(json.dumps(entry, separators=(",", ":"), sort_keys=True).encode())
                  .decode())
    bad_proof = dict(bundle, index=1)
    cp_lines = bundle["checkpoint"].split("\n")
    cp_lines[1] = str(int(cp_lines[1]) + 1)
    bad_cp = dict(bundle, checkpoint="\n".join(cp_lines))
    for name, doc in (("forged", forged), ("proof", bad_proof), ("cp", bad_cp)):
        (root / f"{name}.json").write_text(json.dumps(doc))
        r = run("audit", "verify", f"{name}.json", "--keys", "keys.json", cwd=root)
        assert r.returncode == 1, name  # a finding: the bundle does not verify
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error:"), r.stderr
    # a quorum of 2 is not met by a bundle whose keys file expects witnesses it lacks
    keys = json.loads((root / "keys.json").read_text())
    (root / "strict.json").write_text(json.dumps(dict(keys, quorum=3, witnesses=[*keys["witnesses"],
                                                                                  keys["witnesses"][0]])))
    r = run("audit", "verify", "b2.json", "--keys", "strict.json", cwd=root)
    assert r.returncode == 2 and "distinct witnesses (2)" in r.stderr, r.stderr


def test_check_detects_tampering_with_the_store(space: dict[str, object]) -> None:
    root = space["root"]
    assert isinstance(root, Path)
    many = [dict(EVENTS[i % 3], resource=f"task:t-{i}") for i in range(300)]
    assert run("ledger", "append", "-", "--dir", "log", cwd=root, stdin=json.dumps(many)).returncode == 0
    assert run("ledger", "publish", "--dir", "log", cwd=root).returncode == 0
    r = run("audit", "check", "--dir", "log", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["size"] == 300
    db = root / "log" / "log.sqlite"
    con = sqlite3.connect(db)
    tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    entries = next(t for t in tables if "entr" in t)
    cols = [c[1] for c in con.execute(f"PRAGMA table_info({entries})")]
    data_col = next(c for c in cols if c not in ("idx", "id", "index"))
    idx_col = next(c for c in cols if c != data_col)
    row = con.execute(f"SELECT {data_col} FROM {entries} WHERE {idx_col} = 123").fetchone()[0]
    con.execute(f"UPDATE {entries} SET {data_col} = ? WHERE {idx_col} = 123", (bytes(row).replace(b"t-123", b"t-999"),))
    con.commit()
    con.close()
    r = run("audit", "check", "--dir", "log", cwd=root)
    assert r.returncode == 1 and "123" in r.stderr, r.stderr  # a finding: the log does not re-derive


def test_http_api_serves_checkpoint_and_proofs(space: dict[str, object]) -> None:
    root = space["root"]
    assert isinstance(root, Path)
    many = [dict(EVENTS[i % 3], resource=f"task:t-{i}") for i in range(37)]
    assert run("ledger", "append", "-", "--dir", "log", cwd=root, stdin=json.dumps(many)).returncode == 0
    assert run("ledger", "token", "hub.token", cwd=root).returncode == 0
    token = (root / "hub.token").read_text().strip()
    proc, url = start(["ledger", "serve", "--dir", "log", "--port", "0", "--token-file", "hub.token",
                       "--writer", "hub", "--actor", "*@h1", "--actor", "*@h2", "--actor", "node-*"], root)
    try:
        with httpx.Client(base_url=url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
            assert http.get("/checkpoint").status_code == 404
            pub = http.post("/checkpoint").json()
            assert pub["witness_errors"] == {}
            note = http.get("/checkpoint").text
            assert note == pub["checkpoint"]
            size = int(note.split("\n")[1])
            root_hash = base64.b64decode(note.split("\n")[2])
            assert size == 37
            entries = [base64.b64decode(e) for e in http.get("/entries", params={"start": 0, "end": 37}).json()
                       ["entries"]]
            assert merkle.root([merkle.leaf_hash(e) for e in entries]) == root_hash
            p = http.get("/proof/inclusion", params={"index": 20}).json()
            merkle.verify_inclusion(merkle.leaf_hash(entries[20]), 20, size,
                                    [base64.b64decode(h) for h in p["proof"]], root_hash)
            added = http.post("/entries", json=many[:5]).json()["indices"]
            assert added == [37, 38, 39, 40, 41]
            c = http.get("/proof/consistency", params={"first": 37, "second": 42}).json()
            new_root = merkle.root([merkle.leaf_hash(e) for e in entries + [
                base64.b64decode(x) for x in http.get("/entries", params={"start": 37}).json()["entries"]]])
            merkle.verify_consistency(37, 42, root_hash, new_root, [base64.b64decode(h) for h in c["proof"]])
            bad = http.post("/entries", json=[{"actor": "x", "role": "nobody"}])
            assert bad.status_code == 400 and "error" in bad.json()
            assert http.get("/proof/inclusion", params={"index": 99}).status_code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_witnesses_of_a_data_space_serve_https_with_their_certificates(tmp_path: Path) -> None:
    from medspace.policy.pki import Space, init_space

    init_space(tmp_path / "space", "test-space", witnesses=["w1"])
    Space.open(tmp_path / "space").export("w1", tmp_path / "w1-space")
    ca = str(tmp_path / "space" / "ca" / "ca.pem")
    assert run("ledger", "init", "--origin", "hub.medspace.test/audit", "--dir", "log", cwd=tmp_path).returncode == 0
    log_vkey = (tmp_path / "log" / "log.vkey").read_text().strip()
    assert run("witness", "keygen", "w1.medspace.test/witness", "--out", "w1", cwd=tmp_path).returncode == 0
    proc, url = start(["witness", "serve", "--state", "w1/state.sqlite", "--key", "w1/witness.key", "--log-key",
                       log_vkey, "--port", "0", "--space", "w1-space", "--name", "w1"], tmp_path)
    try:
        assert url.startswith("https://")
        # without the space's CA the witness's certificate is not trusted: no cosignature, and publish says so
        r = run("ledger", "add-witness", url, "w1/witness.vkey", "--quorum", "1", "--dir", "log", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin=json.dumps(EVENTS)).returncode == 0
        r = run("ledger", "publish", "--dir", "log", "--json", cwd=tmp_path)
        assert r.returncode != 0 and "certificate" in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
        # with it, the witness cosigns over TLS, and a regulator reads its checkpoint the same way
        r = run("ledger", "add-witness", url, "w1/witness.vkey", "--ca", ca, "--dir", "log", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        r = run("ledger", "publish", "--dir", "log", "--json", cwd=tmp_path)
        assert r.returncode == 0 and json.loads(r.stdout)["witness_errors"] == {}, r.stdout + r.stderr
        assert run("audit", "keys", "keys.json", "--dir", "log", cwd=tmp_path).returncode == 0
        r = run("audit", "check", "--dir", "log", "--witness", url, "--keys", "keys.json", "--ca", ca, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        r = run("audit", "check", "--dir", "log", "--witness", url, "--keys", "keys.json", cwd=tmp_path)
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        # --space needs --name
        r = run("witness", "serve", "--state", "x.sqlite", "--key", "w1/witness.key", "--log-key", log_vkey,
                "--space", "w1-space", cwd=tmp_path)
        assert r.returncode == 2 and "--name" in r.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=10)
