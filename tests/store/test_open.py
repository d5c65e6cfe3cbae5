"""Opening a store: a missing or foreign file is refused in one line, a store a failed run made is removed again,
a store held by another process says who holds it (and can be waited for), and the statistics snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from medspace.connect import complete
from medspace.store import Store, StoreBusyError, StoreOpenError, read_snapshot
from medspace.store.sidecar import SNAPSHOT_SUFFIX, WRITER_SUFFIX
from store_holder import held


def _patient(pid: str) -> dict:
    return complete("patient", {"id": pid, "family_name": "Wang"}, "test")


def _made(tmp_path: Path) -> Path:
    p = tmp_path / "n.duckdb"
    with Store(p) as st, st.batch("one") as b:
        b.add("patient", _patient("p1"))
    return p


# --- missing, foreign, not a database -------------------------------------------------------------------
def test_create_false_refuses_a_missing_store_and_makes_nothing(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "n.duckdb"
    with pytest.raises(StoreOpenError, match=r"^no store at .*n\.duckdb$"):
        Store(p, create=False)
    assert not (tmp_path / "sub").exists()


def test_a_file_that_is_not_duckdb_is_one_clear_line(tmp_path: Path) -> None:
    for name, content in [("sqlite.duckdb", b"SQLite format 3\x00" + bytes(200)), ("empty.duckdb", b""),
                          ("text.duckdb", b"patient,name\n")]:
        p = tmp_path / name
        p.write_bytes(content)
        for read_only in (False, True):
            with pytest.raises(StoreOpenError) as e:
                Store(p, read_only=read_only)
            assert str(e.value) == f"{p} is not a medspace store (not a DuckDB database)"
        assert p.read_bytes() == content  # untouched


def test_a_real_sqlite_database_is_refused_without_fetching_anything(tmp_path: Path) -> None:
    import sqlite3

    p = tmp_path / "other.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE a (x)")
    con.commit()
    con.close()
    with pytest.raises(StoreOpenError, match="is not a medspace store"):
        Store(p)


def test_a_duckdb_database_of_something_else_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "other.duckdb"
    con = duckdb.connect(str(p))
    con.execute("CREATE TABLE accounts (x INTEGER)")
    con.close()
    with pytest.raises(StoreOpenError, match="a DuckDB database without medspace's tables"):
        Store(p)
    con = duckdb.connect(str(p), read_only=True)
    assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchall() == [(1,)]  # nothing added to it
    con.close()


def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreOpenError, match="is a directory, not a store"):
        Store(tmp_path)


# --- nothing half-made --------------------------------------------------------------------------------
def test_a_failed_first_run_removes_the_store_it_made(tmp_path: Path) -> None:
    p = tmp_path / "a" / "b" / "n.duckdb"
    with pytest.raises(RuntimeError), Store(p) as st, st.batch("fails") as b:
        assert st.created
        for i in range(20_000):  # staged rows reach the file (and its WAL) before the failure
            b.add("patient", _patient(f"p{i}"))
        b.flush()
        raise RuntimeError("crash mid-batch")
    assert not (tmp_path / "a").exists()  # the store, its .wal, the files beside it and the directories made


def test_a_failed_run_keeps_a_store_that_existed(tmp_path: Path) -> None:
    p = _made(tmp_path)
    with pytest.raises(RuntimeError), Store(p, create=False) as st, st.batch("fails") as b:
        assert not st.created
        b.add("patient", _patient("p2"))
        raise RuntimeError("boom")
    with Store(p, read_only=True) as st:
        assert st.count("patient") == 1


def test_a_failed_run_keeps_what_it_committed(tmp_path: Path) -> None:
    p = tmp_path / "n.duckdb"
    with pytest.raises(RuntimeError), Store(p) as st:
        with st.batch("good") as b:
            b.add("patient", _patient("p1"))
        raise RuntimeError("after a committed batch")
    with Store(p, read_only=True) as st:
        assert st.count("patient") == 1


# --- busy stores ----------------------------------------------------------------------------------------
def test_a_store_held_by_another_process_names_it(tmp_path: Path) -> None:
    p = _made(tmp_path)
    with held(p, "medspace ingest") as proc:
        info = json.loads((tmp_path / f"n.duckdb{WRITER_SUFFIX}").read_text())
        assert info["pid"] == proc.pid and info["command"] == "medspace ingest"
        for read_only in (False, True):
            t0 = time.monotonic()
            with pytest.raises(StoreBusyError) as e:
                Store(p, read_only=read_only)
            assert time.monotonic() - t0 < 5  # no waiting unless asked
            msg = str(e.value)
            assert "\n" not in msg and "Conflicting lock" not in msg and "duckdb.org" not in msg
            assert msg.startswith(f"store {p} is in use by medspace ingest (PID {proc.pid}, writing since ")
            assert e.value.pid == proc.pid and e.value.command == "medspace ingest"
    assert not (tmp_path / f"n.duckdb{WRITER_SUFFIX}").exists()  # removed when the writer closed


def test_a_stale_lock_info_file_is_not_believed(tmp_path: Path) -> None:
    p = _made(tmp_path)
    # A crashed writer's file: a PID that is not the holder's.
    (tmp_path / f"n.duckdb{WRITER_SUFFIX}").write_text(json.dumps({"pid": 1, "command": "medspace pull",
                                                                   "since": "2020-01-01T00:00:00"}))
    with held(p, "medspace deid apply") as proc:
        with pytest.raises(StoreBusyError) as e:
            Store(p)
        assert f"medspace deid apply (PID {proc.pid}" in str(e.value)
        assert "pull" not in str(e.value)


def test_a_reader_held_store_names_the_pid(tmp_path: Path) -> None:
    p = _made(tmp_path)
    code = ("import sys, select, duckdb; c = duckdb.connect(sys.argv[1], read_only=True); print('ready', flush=True);"
            "select.select([sys.stdin], [], [], 60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(p)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        with pytest.raises(StoreBusyError, match=rf"is in use by PID {proc.pid} \(python"):
            Store(p)
        with Store(p, read_only=True) as st:  # readers share
            assert st.count("patient") == 1
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(timeout=60)


def test_wait_retries_until_the_store_is_free(tmp_path: Path) -> None:
    p = _made(tmp_path)
    with held(p, hold=1.5):
        t0 = time.monotonic()
        with Store(p, wait=60) as st:  # the holder lets go after 1.5 s: its batch is then committed
            assert time.monotonic() - t0 < 30
            assert st.count("patient") == 2


def test_wait_gives_up_after_its_time(tmp_path: Path) -> None:
    p = _made(tmp_path)
    with held(p):
        t0 = time.monotonic()
        with pytest.raises(StoreBusyError, match=r"; waited 0\.6 s$"):
            Store(p, read_only=True, wait=0.6)
        assert 0.5 < time.monotonic() - t0 < 10


# --- the statistics snapshot ----------------------------------------------------------------------------
def test_a_writer_leaves_a_snapshot_as_of_its_last_batch(tmp_path: Path) -> None:
    p = _made(tmp_path)
    snap = read_snapshot(p)
    assert snap is not None and snap["snapshot"]["batch"] == 1 and snap["tables"]["patient"]["rows"] == 1
    with Store(p) as st, st.batch("two") as b:
        b.add("patient", _patient("p2"))
    snap = read_snapshot(p)
    assert snap is not None and snap["snapshot"]["batch"] == 2 and snap["tables"]["patient"]["rows"] == 2
    assert os.stat(tmp_path / f"n.duckdb{SNAPSHOT_SUFFIX}").st_mode & 0o777 == os.stat(p).st_mode & 0o777
    assert "Wang" not in (tmp_path / f"n.duckdb{SNAPSHOT_SUFFIX}").read_text()  # counts only


def test_while_a_writer_holds_the_store_its_snapshot_is_the_last_committed_state(tmp_path: Path) -> None:
    p = _made(tmp_path)
    with held(p):
        with pytest.raises(StoreBusyError):
            Store(p, read_only=True)
        snap = read_snapshot(p)
        assert snap is not None and snap["snapshot"]["batch"] == 1 and snap["tables"]["patient"]["rows"] == 1
    snap = read_snapshot(p)  # the holder committed its batch and wrote the next snapshot
    assert snap is not None and snap["snapshot"]["batch"] == 2 and snap["tables"]["patient"]["rows"] == 2


def test_a_read_only_opening_writes_nothing_beside_the_store(tmp_path: Path) -> None:
    p = _made(tmp_path)
    before = sorted(x.name for x in tmp_path.iterdir())
    with Store(p, read_only=True) as st:
        assert st.count("patient") == 1
    assert sorted(x.name for x in tmp_path.iterdir()) == before
