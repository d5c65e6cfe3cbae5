"""Operational trust around the log: paths relative to the log directory, quorum as a rule, checkpoints checked by
their signatures and against copies held elsewhere, PostgreSQL secrets, and the event errors of `ledger append`."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from medspace.ledger.checkpoint import Checkpoint, read_private_key, sign_note
from medspace.ledger.errors import LedgerError, StorageError
from medspace.ledger.log import AuditLog, init_log, read_config, redact_url
from medspace.ledger.sqlite_store import SqliteLogStore

MEDSPACE = shutil.which("medspace", path=str(Path(sys.executable).parent)) or "medspace"
PG = "postgresql://postgres@127.0.0.1:5432/test"
EVENT = {"actor": "dr-chen@h1", "role": "researcher", "action": "task.submit", "purpose": "HRESCH",
         "resource": "study:metformin-age", "time": "2026-11-24T10:00:00Z"}


def events(n: int, start: int = 0) -> list[dict[str, object]]:
    return [dict(EVENT, resource=f"task:t-{i}") for i in range(start, start + n)]


def run(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1"}
    return subprocess.run([MEDSPACE, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=120,
                          input=stdin)


def ok(r: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert r.returncode == 0, (r.args, r.stdout, r.stderr)
    return r


def start(args: list[str], cwd: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([MEDSPACE, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert "listening on" in line, line
    return proc, line.split("listening on", 1)[1].strip()


def dead_url() -> str:
    """A loopback URL where nothing listens (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def witnesses(tmp_path: Path) -> Iterator[list[tuple[subprocess.Popen[str], str, Path]]]:
    """A log at tmp_path/log and two running witnesses of it (not yet added to the log)."""
    ok(run("ledger", "init", "--origin", "hub.medspace.test/audit", "--dir", "log", cwd=tmp_path))
    vkey = (tmp_path / "log" / "log.vkey").read_text().strip()
    out = []
    for name in ("w1", "w2"):
        ok(run("witness", "keygen", f"{name}.medspace.test/witness", "--out", name, cwd=tmp_path))
        proc, url = start(["witness", "serve", "--state", f"{name}/state.sqlite", "--key", f"{name}/witness.key",
                           "--log-key", vkey, "--port", "0", "--no-access-log"], tmp_path)
        out.append((proc, url, tmp_path / name / "witness.vkey"))
    yield out
    for proc, _, _ in out:
        proc.terminate()
        proc.wait(timeout=10)


# --- 1. paths relative to the log directory ---------------------------------------------------------------------


def test_every_command_works_from_another_directory(tmp_path: Path) -> None:
    """Run from a directory that has its own `log/` folder: every command uses the log named by --dir, only."""
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    (elsewhere / "log").mkdir(parents=True)
    home.mkdir()
    ok(run("ledger", "init", "--origin", "t.example/log", "--dir", "log", cwd=home))
    assert json.loads((home / "log" / "log.json").read_text())["store"] == "log.sqlite"
    log = str(home / "log")
    (elsewhere / "ev.json").write_text(json.dumps(events(7)))
    ok(run("witness", "keygen", "w.example/witness", "--out", "w", cwd=elsewhere))
    vkey = (home / "log" / "log.vkey").read_text().strip()
    proc, url = start(["witness", "serve", "--state", "w/state.sqlite", "--key", "w/witness.key", "--log-key", vkey,
                       "--port", "0", "--no-access-log"], elsewhere)
    try:
        ok(run("ledger", "add-witness", url, "w/witness.vkey", "--quorum", "1", "--dir", log, cwd=elsewhere))
        assert json.loads(ok(run("ledger", "append", "ev.json", "--dir", log, cwd=elsewhere)).stdout)["indices"] \
            == list(range(7))
        ok(run("ledger", "publish", "--dir", log, cwd=elsewhere))
        status = json.loads(ok(run("ledger", "status", "--dir", log, cwd=elsewhere)).stdout)
        assert status["size"] == 7 and status["latest_checkpoint"] == 7
        assert status["store"] == str(home / "log" / "log.sqlite")
        ok(run("audit", "keys", "keys.json", "--dir", log, cwd=elsewhere))
        ok(run("audit", "checkpoint", "--dir", log, "-o", "held.txt", cwd=elsewhere))
        ok(run("audit", "export", "3", "--dir", log, "-o", "b.json", cwd=elsewhere))
        ok(run("audit", "verify", "b.json", "--keys", "keys.json", cwd=elsewhere))
        assert "ok: 7 entries" in ok(run("audit", "check", "--dir", log, cwd=elsewhere)).stdout
        ok(run("audit", "check", "--dir", log, "--against", "held.txt", "--keys", "keys.json", cwd=elsewhere))
        ok(run("audit", "check", "--dir", log, "--witness", url, "--keys", "keys.json", cwd=elsewhere))
        server, _ = start(["ledger", "serve", "--dir", log, "--port", "0", "--no-access-log"], elsewhere)
        server.terminate()
        server.wait(timeout=10)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert list((elsewhere / "log").iterdir()) == []  # nothing was written into the other `log/`


def test_a_copied_log_is_checked_itself_not_the_original(tmp_path: Path) -> None:
    ok(run("ledger", "init", "--origin", "t.example/log", "--dir", "log", cwd=tmp_path))
    ok(run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin=json.dumps(events(5))))
    shutil.copytree(tmp_path / "log", tmp_path / "copy")
    con = sqlite3.connect(tmp_path / "copy" / "log.sqlite")
    row = con.execute("SELECT data FROM ledger_entries WHERE idx = 2").fetchone()[0]
    con.execute("UPDATE ledger_entries SET data = ? WHERE idx = 2", (bytes(row).replace(b"t-2", b"t-9"),))
    con.commit()
    con.close()
    assert run("audit", "check", "--dir", "copy", cwd=tmp_path).returncode == 1
    ok(run("audit", "check", "--dir", "log", cwd=tmp_path))


def test_an_old_config_is_still_read_and_rewritten_relative(tmp_path: Path) -> None:
    """Before the rule, log.json named the store relative to where `ledger init` ran (`log/log.sqlite`)."""
    ok(run("ledger", "init", "--origin", "t.example/log", "--dir", "log", cwd=tmp_path))
    ok(run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin=json.dumps(events(3))))
    cfg = json.loads((tmp_path / "log" / "log.json").read_text())
    del cfg["paths"]
    cfg["store"] = "log/log.sqlite"
    (tmp_path / "log" / "log.json").write_text(json.dumps(cfg))
    elsewhere = tmp_path / "x"
    elsewhere.mkdir()
    for cwd in (tmp_path, elsewhere):
        assert json.loads(ok(run("ledger", "status", "--dir", str(tmp_path / "log"), cwd=cwd)).stdout)["size"] == 3
    ok(run("ledger", "add-witness", "http://127.0.0.1:9", str(_witness_vkey(tmp_path)),
           "--dir", str(tmp_path / "log"), cwd=elsewhere))
    assert json.loads((tmp_path / "log" / "log.json").read_text())["store"] == "log.sqlite"


def _witness_vkey(tmp_path: Path) -> Path:
    ok(run("witness", "keygen", "old.example/witness", "--out", "ow", cwd=tmp_path))
    return tmp_path / "ow" / "witness.vkey"


def test_a_missing_store_is_named_and_never_recreated(tmp_path: Path) -> None:
    ok(run("ledger", "init", "--origin", "t.example/log", "--dir", "log", cwd=tmp_path))
    (tmp_path / "log" / "log.sqlite").rename(tmp_path / "moved.sqlite")
    for args in (["ledger", "append", "-"], ["ledger", "publish"], ["ledger", "status"], ["audit", "check"]):
        r = run(*args, "--dir", "log", cwd=tmp_path, stdin="[]")
        assert r.returncode == 2, (args, r.stderr)
        assert str(tmp_path / "log" / "log.sqlite") in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "log" / "log.sqlite").exists()


# --- 3. quorum as a rule ------------------------------------------------------------------------------------------


def test_publish_below_quorum_fails_and_stores_nothing(tmp_path: Path) -> None:
    ok(run("ledger", "init", "--origin", "t.example/log", "--dir", "log", cwd=tmp_path))
    vkey = _witness_vkey(tmp_path)
    ok(run("ledger", "add-witness", dead_url(), str(vkey), "--quorum", "1", "--dir", "log", cwd=tmp_path))
    ok(run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin=json.dumps(events(2))))
    r = run("ledger", "publish", "--dir", "log", "--json", cwd=tmp_path)
    assert r.returncode == 1 and "quorum not reached: 0 of 1" in r.stderr, r.stderr
    out = json.loads(r.stdout)
    assert out["stored"] is False and out["cosigned"] == [] and "old.example/witness" in out["witness_errors"]
    with AuditLog(tmp_path / "log", readonly=True) as log:
        assert log.latest() is None
    r = run("audit", "export", "0", "--dir", "log", cwd=tmp_path)
    assert r.returncode == 2 and "quorum" in r.stderr and "ledger publish" in r.stderr


def test_a_cosigned_checkpoint_is_never_replaced_by_a_less_cosigned_one(
    tmp_path: Path, witnesses: list[tuple[subprocess.Popen[str], str, Path]]
) -> None:
    (_p1, u1, k1), (p2, u2, k2) = witnesses
    ok(run("ledger", "add-witness", u1, str(k1), "--dir", "log", cwd=tmp_path))
    ok(run("ledger", "add-witness", u2, str(k2), "--quorum", "1", "--dir", "log", cwd=tmp_path))
    ok(run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin=json.dumps(events(4))))
    first = json.loads(ok(run("ledger", "publish", "--dir", "log", "--json", cwd=tmp_path)).stdout)
    assert sorted(first["cosigned"]) == ["w1.medspace.test/witness", "w2.medspace.test/witness"]
    p2.terminate()
    p2.wait(timeout=10)
    again = json.loads(ok(run("ledger", "publish", "--dir", "log", "--json", cwd=tmp_path)).stdout)
    assert "w2.medspace.test/witness" in again["witness_errors"]
    with AuditLog(tmp_path / "log", readonly=True) as log:
        latest = log.latest()
        assert latest is not None and latest.count("\u2014 w2.medspace.test/witness") == 1
        assert len(log.stored_checkpoints()[0].cosigners) == 2
    # quorum 2 with one witness down: the new size is not stored, the latest stays the witnessed one
    ok(run("ledger", "add-witness", u2, str(k2), "--quorum", "2", "--dir", "log", cwd=tmp_path))
    ok(run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin=json.dumps(events(2, 4))))
    assert run("ledger", "publish", "--dir", "log", cwd=tmp_path).returncode == 1
    with AuditLog(tmp_path / "log", readonly=True) as log:
        assert log.latest_size() == 4


def test_export_picks_the_smallest_checkpoint_that_meets_the_quorum(
    tmp_path: Path, witnesses: list[tuple[subprocess.Popen[str], str, Path]]
) -> None:
    (_, u1, k1), _ = witnesses
    ok(run("ledger", "add-witness", u1, str(k1), "--quorum", "1", "--dir", "log", cwd=tmp_path))
    ok(run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin=json.dumps(events(6))))
    ok(run("ledger", "publish", "--dir", "log", cwd=tmp_path))
    # An uncosigned checkpoint at a smaller size, as a log published before the rule could hold
    with AuditLog(tmp_path / "log") as log:
        signer = read_private_key(tmp_path / "log" / "log.key")
        note = sign_note(Checkpoint(log.config.origin, 3, log.store.root(3)).to_text(), [signer])
        log.db.execute("INSERT INTO checkpoint VALUES (3, ?, ?, 0)", (log.store.root(3), note))
    ok(run("audit", "keys", "keys.json", "--dir", "log", cwd=tmp_path))
    ok(run("audit", "export", "1", "--dir", "log", "-o", "b.json", cwd=tmp_path))
    assert json.loads((tmp_path / "b.json").read_text())["checkpoint"].split("\n")[1] == "6"
    ok(run("audit", "verify", "b.json", "--keys", "keys.json", cwd=tmp_path))
    check = json.loads(ok(run("audit", "check", "--dir", "log", "--json", cwd=tmp_path)).stdout)
    assert check["checkpoints"] == 2 and check["witnessed_checkpoints"] == 1


# --- 4. checkpoints checked by signature, and against copies held elsewhere --------------------------------------


def _rebuild(log_dir: Path, edit: int) -> None:
    """What an insider with the files can do: rebuild the store consistently with one entry rewritten."""
    db = log_dir / "log.sqlite"
    with SqliteLogStore(db, readonly=True) as old:
        datas = [old.entry(i) for i in range(old.size)]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    datas[edit] = datas[edit].replace(f"t-{edit}".encode(), b"t-x")
    with SqliteLogStore(db) as new:
        new.append(datas)


def test_a_rewritten_root_column_is_caught(tmp_path: Path) -> None:
    ok(run("ledger", "init", "--origin", "t.example/log", "--dir", "log", cwd=tmp_path))
    ok(run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin=json.dumps(events(40))))
    ok(run("ledger", "publish", "--dir", "log", cwd=tmp_path))
    _rebuild(tmp_path / "log", 17)
    with SqliteLogStore(tmp_path / "log" / "log.sqlite", readonly=True) as s:
        forged_root = s.root(40)
    con = sqlite3.connect(tmp_path / "log" / "checkpoints.sqlite")
    con.execute("UPDATE checkpoint SET root = ?", (forged_root,))
    con.commit()
    con.close()
    r = run("audit", "check", "--dir", "log", cwd=tmp_path)
    assert r.returncode == 1 and "do not match the checkpoint" in r.stderr, r.stderr


def test_a_log_rewritten_with_its_checkpoints_is_caught_against_a_held_checkpoint(tmp_path: Path) -> None:
    ok(run("ledger", "init", "--origin", "t.example/log", "--dir", "log", cwd=tmp_path))
    ok(run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin=json.dumps(events(40))))
    ok(run("ledger", "publish", "--dir", "log", cwd=tmp_path))
    ok(run("audit", "keys", "keys.json", "--dir", "log", cwd=tmp_path))
    ok(run("audit", "checkpoint", "--dir", "log", "-o", "held.txt", cwd=tmp_path))  # the regulator's copy
    ok(run("audit", "export", "5", "--dir", "log", "-o", "bundle.json", cwd=tmp_path))
    # the insider holds log.key: rebuilds the store and re-signs the checkpoint file consistently
    _rebuild(tmp_path / "log", 17)
    (tmp_path / "log" / "checkpoints.sqlite").unlink()
    ok(run("ledger", "publish", "--dir", "log", cwd=tmp_path))
    ok(run("audit", "check", "--dir", "log", cwd=tmp_path))  # consistent in itself: only a copy held elsewhere helps
    for held in ("held.txt", "bundle.json"):
        r = run("audit", "check", "--dir", "log", "--against", held, "--keys", "keys.json", "--json", cwd=tmp_path)
        assert r.returncode == 1, r.stderr
        assert "rewritten after it was witnessed" in json.loads(r.stdout)["error"]
    # truncation below the held size is named as such
    with SqliteLogStore(tmp_path / "log" / "log.sqlite", readonly=True) as s:
        datas = [s.entry(i) for i in range(30)]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{tmp_path / 'log' / 'log.sqlite'}{suffix}").unlink(missing_ok=True)
    with SqliteLogStore(tmp_path / "log" / "log.sqlite") as s:
        s.append(datas)
    (tmp_path / "log" / "checkpoints.sqlite").unlink()
    r = run("audit", "check", "--dir", "log", "--against", "held.txt", "--keys", "keys.json", cwd=tmp_path)
    assert r.returncode == 1 and "truncated" in r.stderr, r.stderr


def test_against_refuses_a_checkpoint_the_keys_do_not_vouch_for(tmp_path: Path) -> None:
    for name in ("log", "other"):
        ok(run("ledger", "init", "--origin", f"{name}.example/log", "--dir", name, cwd=tmp_path))
        ok(run("ledger", "append", "-", "--dir", name, cwd=tmp_path, stdin=json.dumps(events(3))))
        ok(run("ledger", "publish", "--dir", name, cwd=tmp_path))
        ok(run("audit", "checkpoint", "--dir", name, "-o", f"{name}.txt", cwd=tmp_path))
    ok(run("audit", "keys", "keys.json", "--dir", "log", cwd=tmp_path))
    r = run("audit", "check", "--dir", "log", "--against", "other.txt", "--keys", "keys.json", cwd=tmp_path)
    assert r.returncode == 2 and "does not verify" in r.stderr, r.stderr
    r = run("audit", "check", "--dir", "log", "--against", "log.txt", cwd=tmp_path)
    assert r.returncode == 2 and "--keys" in r.stderr
    ok(run("audit", "check", "--dir", "log", "--against", "log.txt", "--keys", "keys.json", cwd=tmp_path))


def test_a_forged_checkpoint_row_is_caught(tmp_path: Path) -> None:
    ok(run("ledger", "init", "--origin", "t.example/log", "--dir", "log", cwd=tmp_path))
    ok(run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin=json.dumps(events(5))))
    ok(run("ledger", "publish", "--dir", "log", cwd=tmp_path))
    con = sqlite3.connect(tmp_path / "log" / "checkpoints.sqlite")
    note = con.execute("SELECT note FROM checkpoint").fetchone()[0]
    con.execute("UPDATE checkpoint SET note = ?", (note.replace("\n5\n", "\n4\n"),))
    con.commit()
    con.close()
    r = run("audit", "check", "--dir", "log", cwd=tmp_path)
    assert r.returncode == 1 and "signature does not verify" in r.stderr, r.stderr


# --- 5. PostgreSQL secrets and read-only checking ------------------------------------------------------------------


def _pg_available() -> bool:
    try:
        psycopg.connect(PG, connect_timeout=3).close()
        return True
    except psycopg.Error:
        return False


pg = pytest.mark.skipif(not _pg_available(), reason="PostgreSQL at 127.0.0.1:5432 is not running")


def test_a_password_never_reaches_the_config_or_the_output(tmp_path: Path) -> None:
    r = run("ledger", "init", "--origin", "t.example/log", "--dir", "log", "--store",
            "postgresql://postgres:s3cret-pw@127.0.0.1:5432/test", cwd=tmp_path)
    assert r.returncode == 2 and "PGPASSWORD" in r.stderr and "s3cret" not in r.stderr + r.stdout
    assert not (tmp_path / "log" / "log.json").exists()
    assert redact_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert redact_url("host=h password='a b' dbname=x") == "host=h password=*** dbname=x"
    assert redact_url("postgresql://u@h/db?password=pw&sslmode=require") == \
        "postgresql://u@h/db?password=***&sslmode=require"


@pg
def test_postgres_log_status_masks_an_old_password_and_errors_name_the_server(tmp_path: Path, pg_url: str) -> None:
    init_log(tmp_path / "log", "t.example/log", store=pg_url)
    with AuditLog(tmp_path / "log", create=True) as log:
        log.store.append([b"x"])
    cfg = json.loads((tmp_path / "log" / "log.json").read_text())
    cfg["store"] = pg_url.replace("postgres@", "postgres:old-secret@")  # as an older version wrote it (trust auth)
    (tmp_path / "log" / "log.json").write_text(json.dumps(cfg))
    r = ok(run("ledger", "status", "--dir", "log", cwd=tmp_path))
    assert "old-secret" not in r.stdout and "postgres:***@127.0.0.1" in r.stdout and '"size": 1' in r.stdout
    cfg["store"] = pg_url.replace("postgres@", "nobody-here@")
    (tmp_path / "log" / "log.json").write_text(json.dumps(cfg))
    r = run("audit", "check", "--dir", "log", cwd=tmp_path)
    assert r.returncode == 2 and "nobody-here@127.0.0.1:5432/" in r.stderr and "does not exist" in r.stderr, r.stderr


@pg
def test_checking_a_postgres_log_creates_nothing(tmp_path: Path, pg_url: str) -> None:
    init_log(tmp_path / "log", "t.example/log", store=pg_url)  # a config, but its tables were never made
    with pytest.raises(StorageError, match="do not hold a log"):
        AuditLog(tmp_path / "log", readonly=True)
    for args in (["audit", "check"], ["audit", "export", "0"], ["audit", "checkpoint"]):
        r = run(*args, "--dir", "log", cwd=tmp_path)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    with psycopg.connect(pg_url) as c:
        tables = c.execute("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
                           "'information_schema')").fetchone()
    assert tables == (0,)
    with AuditLog(tmp_path / "log", create=True) as log:  # a writer makes the tables; readers then work
        log.append([])
    ok(run("audit", "check", "--dir", "log", cwd=tmp_path))


# --- 7. `ledger append` errors ------------------------------------------------------------------------------------


def test_append_errors_name_the_event_and_the_allowed_values(tmp_path: Path) -> None:
    ok(run("ledger", "init", "--origin", "t.example/log", "--dir", "log", cwd=tmp_path))
    bad = [*events(2), dict(EVENT, role="nobody"), dict(EVENT, actor="has space")]
    r = run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin=json.dumps(bad))
    assert r.returncode == 2
    assert "event 3 of 4" in r.stderr and "researcher, steward, clinician" in r.stderr and "nothing" in r.stderr
    r = run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin=json.dumps([dict(EVENT, actor="a b")]))
    assert "event 1 of 1: field 'actor' is not in its format: 1-128 letters" in r.stderr
    r = run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin="[1, 2]")
    assert "event 1 of 2: not a JSON object" in r.stderr
    with AuditLog(tmp_path / "log", readonly=True) as log:
        assert log.store.size == 0
    ok(run("ledger", "append", "-", "--dir", "log", cwd=tmp_path, stdin=json.dumps(events(3))))
    with AuditLog(tmp_path / "log", readonly=True) as log:
        assert log.writer_of(2) == f"local:{getpass.getuser()}" and log.writer_of(3) is None


def test_read_config_errors_name_the_path(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(LedgerError, match="is a file"):
        read_config(tmp_path / "f")
    (tmp_path / "d" / "log.json").mkdir(parents=True)
    with pytest.raises(LedgerError, match=r"log\.json is a directory"):
        read_config(tmp_path / "d")
