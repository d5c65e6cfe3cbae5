"""SQLite format 3: the open leaf tile lives in the head row and the nodes inside it are derived when read.

One-entry appends must build the very log that batched appends build (roots, proofs, stored rows as counted by the
check), through reopening, other connections and competing writers; the check must see tampering with the head's leaf
hashes as it sees tampering with a tile; logs of format 2 keep their layout.
"""

from __future__ import annotations

import random
import re
import sqlite3
from pathlib import Path

import pytest

from medspace.ledger import merkle
from medspace.ledger.check import check
from medspace.ledger.errors import TamperError
from medspace.ledger.sqlite_store import FORMAT, FORMAT_2, SqliteLogStore, tile_id
from medspace.ledger.store import TILE_WIDTH

H = merkle.HASH_SIZE


def _data(start: int, n: int) -> list[bytes]:
    return [f"entry-{i}".encode() * (1 + i % 3) for i in range(start, start + n)]


def _tree_facts(s: SqliteLogStore, leaves: list[bytes], rng: random.Random) -> list[object]:
    """Roots at every size, a sample of proofs and single nodes, and the row counts, for comparing two stores."""
    n = len(leaves)
    facts: list[object] = [s.stats()]
    for size in range(1, n + 1):
        root = s.root(size)
        assert root == merkle.root(leaves[:size])
        facts.append(root)
    for _ in range(60):
        size = rng.randrange(1, n + 1)
        i = rng.randrange(size)
        proof = s.inclusion_proof(i, size)
        merkle.verify_inclusion(leaves[i], i, size, proof, s.root(size))
        m = rng.randrange(1, size + 1)
        cons = s.consistency_proof(m, size)
        merkle.verify_consistency(m, size, s.root(m), s.root(size), cons)
        facts += [proof, cons, s.leaf_hash(i)]
    for level in range(8):
        for idx in range(0, (n >> level) + 1, 7):
            if idx << level < n:
                facts.append(s.node(level, idx, n))
    return facts


def test_single_appends_build_the_batched_log(tmp_path: Path) -> None:
    n = 3 * TILE_WIDTH + 17
    data = _data(0, n)
    leaves = [merkle.leaf_hash(d) for d in data]
    with SqliteLogStore(tmp_path / "batched.db") as b:
        b.append(data)
    one = tmp_path / "single.db"
    for lo, hi in ((0, 100), (100, 101), (101, n)):  # reopened between runs: the open tile is read from the head
        with SqliteLogStore(one) as s:
            for i in range(lo, hi):
                assert s.append([data[i]]) == [i]
    with SqliteLogStore(tmp_path / "batched.db", readonly=True) as b, SqliteLogStore(one, readonly=True) as s:
        # Read-only connections have no frontier or open tile of their own: everything comes from the file.
        assert _tree_facts(s, leaves, random.Random(3)) == _tree_facts(b, leaves, random.Random(3))
        assert check(s).root == check(b).root == merkle.root(leaves)
    with SqliteLogStore(one) as s:
        # And the writer that has cached them appends on to the same tree.
        more = _data(n, 50)
        for d in more:
            s.append([d])
        assert s.root() == merkle.root(leaves + [merkle.leaf_hash(d) for d in more])
        check(s)


def test_every_size_across_tile_boundaries_checks(tmp_path: Path) -> None:
    # Sizes just below, at and above a completed leaf tile, and the first levels completing above level 5.
    with SqliteLogStore(tmp_path / "log.db") as s:
        data: list[bytes] = []
        for size in range(1, 2 * TILE_WIDTH + 3):
            data += _data(size - 1, 1)
            s.append(data[-1:])
            rep = check(s)
            assert rep.size == size and rep.root == merkle.root([merkle.leaf_hash(d) for d in data])
            assert s.stats().nodes == {lv: (size >> lv, (size >> lv) - 1) for lv in range(size.bit_length())}


def test_the_open_tile_lives_in_the_head(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    data = _data(0, 150)
    leaves = [merkle.leaf_hash(d) for d in data]
    with SqliteLogStore(path) as s:
        for d in data[:70]:
            s.append([d])
        s.append(data[70:150])
    conn = sqlite3.connect(path)
    (fmt,) = conn.execute("SELECT value FROM ledger_meta WHERE key = 'format'").fetchone()
    size, held = conn.execute("SELECT size, leaves FROM ledger_head").fetchone()
    tiles = dict(conn.execute("SELECT id, hashes FROM ledger_tiles").fetchall())
    conn.close()
    assert fmt == FORMAT
    assert size == 150 and held == b"".join(leaves[128:150])
    # Leaf tiles only once complete; above them the perfect nodes of the first 128 entries, nothing inside the head's.
    assert tiles[tile_id(0, 0)] == b"".join(leaves[:64]) and tiles[tile_id(0, 1)] == b"".join(leaves[64:128])
    assert tile_id(0, 2) not in tiles
    for level in range(1, 8):
        assert len(tiles[tile_id(level, 0)]) == (128 >> level) * H


def test_competing_writers_hand_over_the_open_tile(tmp_path: Path) -> None:
    # Each writer's cached open tile goes stale whenever the other one appends: it must be re-read from the head.
    path = tmp_path / "log.db"
    rng = random.Random(11)
    data: list[bytes] = []
    with SqliteLogStore(path) as a, SqliteLogStore(path) as b:
        for i in range(3 * TILE_WIDTH):
            batch = _data(i * 10, rng.choice([1, 1, 1, 2, 5]))
            writer = a if rng.random() < 0.5 else b
            assert writer.append(batch) == list(range(len(data), len(data) + len(batch)))
            data += batch
        leaves = [merkle.leaf_hash(d) for d in data]
        assert a.root() == b.root() == merkle.root(leaves)
        check(a)


def test_format_2_logs_keep_their_layout(tmp_path: Path) -> None:
    # A log created before format 3 (the schema and rows as format 2 wrote them): read, appended to, checked as such.
    path = tmp_path / "v2.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        f"""
        CREATE TABLE ledger_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE ledger_head (id INTEGER PRIMARY KEY CHECK (id = 0), size INTEGER NOT NULL);
        CREATE TABLE ledger_entries (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
        CREATE TABLE ledger_tiles (id INTEGER PRIMARY KEY, hashes BLOB NOT NULL);
        INSERT INTO ledger_meta VALUES ('format', '{FORMAT_2}');
        INSERT INTO ledger_head VALUES (0, 0);
        """
    )
    conn.close()
    data = _data(0, 200)
    leaves = [merkle.leaf_hash(d) for d in data]
    with SqliteLogStore(path) as s:
        for d in data[:100]:
            s.append([d])
        s.append(data[100:])
        assert s.root() == merkle.root(leaves)
        check(s)
    with SqliteLogStore(path, readonly=True) as s:
        assert _tree_facts(s, leaves, random.Random(5))
        check(s)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM ledger_meta").fetchone() == (FORMAT_2,)
    assert [r[1] for r in conn.execute("PRAGMA table_info(ledger_head)")] == ["id", "size"]
    # Format 2 stores the open tile and every node inside it in the tiles table.
    assert conn.execute("SELECT hashes FROM ledger_tiles WHERE id = ?", (tile_id(0, 3),)).fetchone() == (
        b"".join(leaves[192:200]),
    )
    assert conn.execute("SELECT length(hashes) FROM ledger_tiles WHERE id = ?", (tile_id(1, 1),)).fetchone() == (
        (100 - 64) * H,
    )
    conn.close()


def test_unknown_formats_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with SqliteLogStore(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("UPDATE ledger_meta SET value = 'medspace-ledger/9 something' WHERE key = 'format'")
    conn.commit()
    conn.close()
    with pytest.raises(Exception, match="another format"):
        SqliteLogStore(path)


# --- tampering with the head's open tile -----------------------------------------------------------------------

N = 1000  # 15 complete leaf tiles; the head holds the leaf hashes of entries 960-999


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "log.db"
    with SqliteLogStore(path) as s:
        for start in range(0, N - 40, 80):
            s.append(_data(start, min(80, N - 40 - start)))
        for i in range(N - 40, N):
            s.append(_data(i, 1))
    return path


def _first_bad(path: Path) -> int:
    with SqliteLogStore(path, readonly=True) as s, pytest.raises(TamperError) as err:
        check(s)
    m = re.match(r"entry (\d+):", str(err.value))
    assert m, str(err.value)
    return int(m.group(1))


def _edit_head(path: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql, args)
    conn.commit()
    conn.close()


def test_clean_log_with_an_open_tile_passes(log: Path) -> None:
    with SqliteLogStore(log, readonly=True) as s:
        rep = check(s)
    assert rep.size == N and rep.nodes == sum(N >> lv for lv in range(N.bit_length()))


def test_edited_entry_in_the_open_tile(log: Path) -> None:
    _edit_head(log, "UPDATE ledger_entries SET data = ? WHERE idx = 977", b"edited")
    assert _first_bad(log) == 977


def test_edited_leaf_hash_in_the_head(log: Path) -> None:
    conn = sqlite3.connect(log)
    (held,) = conn.execute("SELECT leaves FROM ledger_head").fetchone()
    conn.close()
    off = (985 - 960) * H
    _edit_head(log, "UPDATE ledger_head SET leaves = ?", held[:off] + bytes(H) + held[off + H :])
    assert _first_bad(log) == 985


def test_edited_entry_with_its_leaf_hash_in_the_head(log: Path) -> None:
    # Entry and leaf hash rewritten together inside the open tile: no stored node covers them yet (the nodes of
    # levels 1-5 there are derived from the head's leaves), so the file is consistent and only a checkpoint finds the
    # edit, as for any edit made consistently all the way up.
    with SqliteLogStore(log) as s:
        cp = (N, s.root())
    new = b"forged"
    conn = sqlite3.connect(log)
    (held,) = conn.execute("SELECT leaves FROM ledger_head").fetchone()
    conn.close()
    off = (990 - 960) * H
    _edit_head(log, "UPDATE ledger_head SET leaves = ?", held[:off] + merkle.leaf_hash(new) + held[off + H :])
    _edit_head(log, "UPDATE ledger_entries SET data = ? WHERE idx = 990", new)
    with SqliteLogStore(log, readonly=True) as s:
        assert check(s).size == N
        with pytest.raises(TamperError, match="checkpoint"):
            check(s, [cp])


def test_cut_open_tile(log: Path) -> None:
    _edit_head(log, "UPDATE ledger_head SET leaves = substr(leaves, 1, length(leaves) - 32)")
    assert _first_bad(log) == N - 1


@pytest.mark.parametrize("value", ["CAST(leaves || x'00' AS BLOB)", "leaves || x'00'"])  # the latter is text
def test_ragged_open_tile(log: Path, value: str) -> None:
    _edit_head(log, f"UPDATE ledger_head SET leaves = {value}")
    assert _first_bad(log) == N


def test_head_moved_back_inside_the_open_tile(log: Path) -> None:
    _edit_head(log, "UPDATE ledger_head SET size = 990")
    assert _first_bad(log) == 990


def test_deleted_partial_tile_under_the_open_tile(log: Path) -> None:
    # Level 1 holds nodes 0-479 (entries 0-959): tile 7 holds 448-479; the head's nodes 480-499 continue it.
    _edit_head(log, "DELETE FROM ledger_tiles WHERE id = ?", tile_id(1, 7))
    assert _first_bad(log) == 448 << 1
