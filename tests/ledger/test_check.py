"""Full re-verification: a clean log passes; every kind of tampering with the SQLite file names the first bad index."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from pathlib import Path

import pytest

from medspace.ledger import merkle
from medspace.ledger.check import check, verify_checkpoints
from medspace.ledger.errors import StorageError, TamperError
from medspace.ledger.sqlite_store import SqliteLogStore, tile_id
from medspace.ledger.store import TILE_WIDTH

N = 1000


def _data(i: int) -> bytes:
    return f'{{"i":{i},"what":"audit entry"}}'.encode()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log.db"
    with SqliteLogStore(path) as s:
        for start in range(0, N, 100):
            s.append([_data(i) for i in range(start, start + 100)])
    return path


def _tamper(path: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Edit the file behind the log's back, as an attacker with file access would."""
    conn = sqlite3.connect(path)
    for sql, args in statements:
        conn.execute(sql, args)
    conn.commit()
    conn.close()


def _first_bad(path: Path, **kwargs: object) -> int:
    # As an auditor would: through a read-only connection.
    with SqliteLogStore(path, readonly=True) as s, pytest.raises(TamperError) as err:
        check(s, **kwargs)  # type: ignore[arg-type]
    m = re.match(r"entry (\d+):", str(err.value))
    assert m, str(err.value)
    return int(m.group(1))


def test_clean_log_passes(log: Path) -> None:
    with SqliteLogStore(log) as s:
        rep = check(s, [(1, s.root(1)), (N, s.root())])
        assert rep.size == N
        assert rep.root == merkle.root([merkle.leaf_hash(_data(i)) for i in range(N)])
        assert rep.nodes == sum(N >> lv for lv in range(N.bit_length()))
        assert rep.checkpoints == 2


def test_edited_entry(log: Path) -> None:
    _tamper(log, ("UPDATE ledger_entries SET data = ? WHERE idx = 417", (b'{"i":417,"what":"edited"}',)))
    assert _first_bad(log) == 417


def test_edited_entry_with_its_leaf_hash(log: Path) -> None:
    # The attacker also rewrites the leaf hash in its tile: the level-1 node above no longer re-derives.
    new = b'{"i":418,"what":"edited"}'
    conn = sqlite3.connect(log)
    tid = tile_id(0, 418 // TILE_WIDTH)
    (tile,) = conn.execute("SELECT hashes FROM ledger_tiles WHERE id = ?", (tid,)).fetchone()
    off = (418 % TILE_WIDTH) * 32
    tile = tile[:off] + merkle.leaf_hash(new) + tile[off + 32 :]
    conn.execute("UPDATE ledger_tiles SET hashes = ? WHERE id = ?", (tile, tid))
    conn.execute("UPDATE ledger_entries SET data = ? WHERE idx = 418", (new,))
    conn.commit()
    conn.close()
    assert _first_bad(log) == 418  # node (1, 209) covers entries 418-419


def test_deleted_entry(log: Path) -> None:
    _tamper(log, ("DELETE FROM ledger_entries WHERE idx = 10", ()))
    assert _first_bad(log) == 10


def test_deleted_last_entry(log: Path) -> None:
    _tamper(log, ("DELETE FROM ledger_entries WHERE idx = ?", (N - 1,)))
    assert _first_bad(log) == N - 1


def test_reordered_entries(log: Path) -> None:
    conn = sqlite3.connect(log)
    a = conn.execute("SELECT data FROM ledger_entries WHERE idx = 600").fetchone()[0]
    b = conn.execute("SELECT data FROM ledger_entries WHERE idx = 601").fetchone()[0]
    conn.close()
    _tamper(
        log,
        ("UPDATE ledger_entries SET data = ? WHERE idx = 600", (b,)),
        ("UPDATE ledger_entries SET data = ? WHERE idx = 601", (a,)),
    )
    assert _first_bad(log) == 600


def test_moved_entry_rows(log: Path) -> None:
    # Renumbering rows (idx 300 becomes 2000): a gap at 300, whatever the data.
    _tamper(log, ("UPDATE ledger_entries SET idx = 2000 WHERE idx = 300", ()))
    assert _first_bad(log) == 300


def test_edited_interior_node(log: Path) -> None:
    conn = sqlite3.connect(log)
    (tile,) = conn.execute("SELECT hashes FROM ledger_tiles WHERE id = ?", (tile_id(3, 1),)).fetchone()
    conn.close()
    # node (3, 70) is at offset 6 of tile 1: it covers entries 560-567
    bad = tile[: 6 * 32] + bytes(32) + tile[7 * 32 :]
    _tamper(log, ("UPDATE ledger_tiles SET hashes = ? WHERE id = ?", (bad, tile_id(3, 1))))
    assert _first_bad(log) == 560


def test_deleted_tile(log: Path) -> None:
    _tamper(log, ("DELETE FROM ledger_tiles WHERE id = ?", (tile_id(0, 5),)))
    assert _first_bad(log) == 5 * TILE_WIDTH


def test_head_moved_back(log: Path) -> None:
    # Hiding the last entries by lowering the size: rows beyond it give it away.
    _tamper(log, ("UPDATE ledger_head SET size = 900", ()))
    assert _first_bad(log) == 900


def test_consistent_truncation_needs_a_checkpoint(log: Path) -> None:
    with SqliteLogStore(log) as s:
        cp = (N, s.root())
    # Remove the last 100 entries and every hash that covers them, and move the head: internally consistent.
    with SqliteLogStore(tmp := log.with_name("short.db")) as s:
        for start in range(0, 900, 100):
            s.append([_data(i) for i in range(start, start + 100)])
    os.replace(tmp, log)
    with SqliteLogStore(log) as s:
        check(s)  # nothing inside the file betrays it...
    assert _first_bad(log, checkpoints=[cp]) == 900  # ...the checkpoint does


def test_rewritten_history_fails_the_checkpoint(log: Path) -> None:
    with SqliteLogStore(log) as s:
        cp = (500, s.root(500))
    with SqliteLogStore(tmp := log.with_name("forged.db")) as s:
        s.append([_data(i) if i != 3 else b"forged" for i in range(N)])
    os.replace(tmp, log)
    with SqliteLogStore(log) as s, pytest.raises(TamperError, match="checkpoint"):
        check(s, [cp])
    with SqliteLogStore(log) as s, pytest.raises(TamperError):
        verify_checkpoints(s, [cp])


def test_entry_turned_into_text(log: Path) -> None:
    _tamper(log, ("UPDATE ledger_entries SET data = ? WHERE idx = 77", ('{"i":77,"what":"audit entry"}',)))
    assert _first_bad(log) == 77


@pytest.mark.parametrize("cut", ["torn page", "page boundary"])
def test_truncated_file(tmp_path: Path, cut: str) -> None:
    path = tmp_path / "big.db"
    n = 20000
    with SqliteLogStore(path) as s:
        for start in range(0, n, 1000):
            s.append([_data(i) + b"x" * 200 for i in range(start, start + 1000)])
    # Closing the last connection checkpoints the WAL into the file; then cut the file to 60 %.
    assert not path.with_name("big.db-wal").exists()
    size = path.stat().st_size
    os.truncate(path, size * 6 // 10 if cut == "torn page" else size // 2 // 4096 * 4096)
    with pytest.raises(StorageError, match="malformed"):
        SqliteLogStore(path)  # no appending to a damaged log
    bad = _first_bad(path)
    assert 0 < bad < n
    # Everything before the named index is there and intact; at the named index the file stops making sense (a
    # torn last page reads back as rows out of order, which is what the check must not be fooled by).
    with SqliteLogStore(path, readonly=True) as s:
        try:
            rows = s.scan_entries(0, n)
        except StorageError:
            rows = s.scan_entries(0, bad)
    assert rows[:bad] == [(i, _data(i) + b"x" * 200) for i in range(bad)]
    assert len(rows) == bad or rows[bad] != (bad, _data(bad) + b"x" * 200)


def test_parallel_workers_report_the_first_bad_index(tmp_path: Path) -> None:
    path = tmp_path / "par.db"
    with SqliteLogStore(path) as s:
        s.append([_data(i) for i in range(600)])
        # Small chunks so that four worker processes each get some.
        clean = check(s, workers=4, chunk_level=5)
        assert clean.root == s.root() and clean.nodes == sum(600 >> lv for lv in range(10))
    _tamper(
        path,
        ("UPDATE ledger_entries SET data = ? WHERE idx = 450", (b"x",)),
        ("UPDATE ledger_entries SET data = ? WHERE idx = 200", (b"y",)),
    )
    assert _first_bad(path, workers=4, chunk_level=5) == 200
    assert _first_bad(path, workers=1, chunk_level=5) == 200


def test_an_entry_hashes_as_rfc9162_says(log: Path) -> None:
    with SqliteLogStore(log) as s:
        assert s.leaf_hash(5) == hashlib.sha256(b"\x00" + _data(5)).digest()


def test_a_warm_cache_does_not_hide_a_rewrite(log: Path) -> None:
    # The hub's own store has served proofs (its node cache is warm); then the tables are rewritten consistently
    # under it. The check must judge what is stored now, not what the store remembers.
    forged = log.with_name("forged.db")
    with SqliteLogStore(forged) as f:
        f.append([_data(i) if i != 3 else b"forged" for i in range(N)])
    with SqliteLogStore(log) as s:
        cp = (N, s.root())
        s.inclusion_proof(3)
        conn = sqlite3.connect(log)
        conn.execute("ATTACH ? AS forged", (str(forged),))
        for table in ("ledger_entries", "ledger_tiles"):
            conn.execute(f"DELETE FROM {table}")
            conn.execute(f"INSERT INTO {table} SELECT * FROM forged.{table}")
        conn.commit()
        conn.close()
        with pytest.raises(TamperError, match="checkpoint"):
            check(s, [cp])
