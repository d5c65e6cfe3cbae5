"""LogStore on SQLite and on the real PostgreSQL server: roots, proofs, sequencing, reopening."""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.ledger import merkle, store
from medspace.ledger.check import check
from medspace.ledger.errors import ProofError, StorageError, TamperError
from medspace.ledger.postgres_store import PostgresLogStore
from medspace.ledger.sqlite_store import SqliteLogStore
from medspace.ledger.store import TILE_WIDTH, LogStore

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


PG = _pg_available()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    """A fresh schema on the test server, dropped afterwards."""
    if not PG:
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    name = f"ledger_test_{secrets.token_hex(6)}"
    yield name
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict[str, object]]]:
    """(url, options) of an empty log on each backend."""
    if request.param == "sqlite":
        yield str(tmp_path / "log.db"), {}
    else:
        schema = request.getfixturevalue("pg_schema")
        yield PG_URL, {"schema": schema}


def _data(n: int, start: int = 0) -> list[bytes]:
    return [f"entry-{i}".encode() * (1 + i % 3) for i in range(start, start + n)]


def _fill(s: LogStore, n: int, rng: random.Random) -> list[bytes]:
    data = _data(n)
    pos = 0
    while pos < n:
        k = rng.choice([1, 2, 3, TILE_WIDTH - 1, TILE_WIDTH, TILE_WIDTH + 1, 150])
        got = s.append(data[pos : pos + k])
        assert got == list(range(pos, min(pos + k, n)))
        pos += len(got)
    return data


def test_roots_and_proofs_match_the_naive_tree(backend: tuple[str, dict[str, object]]) -> None:
    url, opts = backend
    rng = random.Random(7)
    with store.open_store(url, **opts) as s:
        assert s.size == 0
        assert s.root() == merkle.EMPTY_ROOT
        data = _fill(s, 700, rng)
        leaves = [merkle.leaf_hash(d) for d in data]
        assert s.size == 700
        sizes = [1, 2, 3, 63, 64, 65, 127, 128, 129, 500, 699, 700]
        for n in sizes:
            r = s.root(n)
            assert r == merkle.root(leaves[:n])
            for i in {0, n - 1, n // 2, rng.randrange(n)}:
                proof = s.inclusion_proof(i, n)
                merkle.verify_inclusion(leaves[i], i, n, proof, r)
                assert s.leaf_hash(i) == leaves[i]
            for m in {1, n // 3 or 1, n - 1 or 1, rng.randrange(1, n + 1)}:
                merkle.verify_consistency(m, n, s.root(m), r, s.consistency_proof(m, n))
        assert s.entries(10, 20) == data[10:20]
        assert s.entry(699) == data[699]
        assert s.inclusion_proof(5) == s.inclusion_proof(5, 700)
        assert s.consistency_proof(700) == []
        for lv, idx in [(0, 699), (3, 87), (6, 10)]:
            assert s.node(lv, idx, 700) == merkle.root(leaves[idx << lv : min((idx + 1) << lv, 700)])
        rep = check(s)
        assert rep.root == s.root() and rep.size == 700


def test_reopen_continues_the_same_tree(backend: tuple[str, dict[str, object]]) -> None:
    url, opts = backend
    with store.open_store(url, **opts) as s:
        s.append(_data(100))
    with store.open_store(url, **opts) as s:
        # The frontier is re-read from the tiles: the next appends extend the same tree.
        assert s.append(_data(37, 100)) == list(range(100, 137))
        assert s.root() == merkle.root([merkle.leaf_hash(d) for d in _data(137)])
        check(s)


def test_two_writers_share_one_sequence(backend: tuple[str, dict[str, object]]) -> None:
    url, opts = backend
    a = store.open_store(url, **opts)
    b = store.open_store(url, **opts)
    got: dict[str, list[int]] = {"a": [], "b": []}

    def writer(name: str, s: LogStore) -> None:
        for i in range(30):
            got[name] += s.append([f"{name}-{i}".encode()] * (1 + i % 4))

    threads = [threading.Thread(target=writer, args=(n, s)) for n, s in (("a", a), ("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = sorted(got["a"] + got["b"])
    assert total == list(range(len(total)))
    # Each writer's stale frontier was refreshed under the lock: both see the one tree.
    assert a.root() == b.root()
    entries = a.entries(0, a.size)
    assert a.root() == merkle.root([merkle.leaf_hash(d) for d in entries])
    check(a)
    a.close()
    b.close()


def test_out_of_range_requests_are_refused(backend: tuple[str, dict[str, object]]) -> None:
    url, opts = backend
    with store.open_store(url, **opts) as s:
        s.append(_data(10))
        with pytest.raises(StorageError):
            s.entry(10)
        with pytest.raises(StorageError):
            s.root(11)
        with pytest.raises(StorageError):
            s.leaf_hash(-1)
        with pytest.raises(ProofError):
            s.inclusion_proof(10, 10)
        with pytest.raises(ProofError):
            s.inclusion_proof(0, 11)
        with pytest.raises(ProofError):
            s.consistency_proof(0, 5)
        with pytest.raises(ProofError):
            s.consistency_proof(6, 5)
        assert s.append([]) == []


def test_open_urls(tmp_path: Path) -> None:
    s = store.open(str(tmp_path / "a.db"))
    assert isinstance(s, SqliteLogStore)
    s.close()
    rel = store.open_store(f"sqlite:///{tmp_path / 'b.db'}")  # sqlite:/// + absolute path
    assert rel.path == tmp_path / "b.db"
    rel.close()
    with pytest.raises(StorageError):
        store.open_store("sqlite:/nope.db")
    if PG:
        pg = store.open_store(PG_URL, schema=f"ledger_test_{secrets.token_hex(6)}")
        assert isinstance(pg, PostgresLogStore)
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {pg.schema} CASCADE")
        pg.close()


def test_sqlite_is_wal_and_fully_synchronous(tmp_path: Path) -> None:
    s = SqliteLogStore(tmp_path / "log.db")
    assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    s.append(_data(3))
    s.close()
    ro = SqliteLogStore(tmp_path / "log.db", readonly=True)
    assert ro.size == 3
    with pytest.raises(StorageError):
        ro.append([b"x"])
    ro.close()
    with pytest.raises(StorageError):
        SqliteLogStore(tmp_path / "other.db", prefix="Bad-Prefix")


def test_prefixes_keep_logs_apart(tmp_path: Path) -> None:
    with SqliteLogStore(tmp_path / "x.db", prefix="a_") as a, SqliteLogStore(tmp_path / "x.db", prefix="b_") as b:
        a.append([b"1", b"2"])
        b.append([b"3"])
        assert (a.size, b.size) == (2, 1)


@given(st.lists(st.integers(min_value=1, max_value=70), min_size=1, max_size=12))
@settings(max_examples=25, deadline=None)
def test_any_batching_gives_the_same_tree(batches: list[int]) -> None:
    s = SqliteLogStore(":memory:")
    n = sum(batches)
    data = _data(n)
    pos = 0
    for k in batches:
        s.append(data[pos : pos + k])
        pos += k
    leaves = [merkle.leaf_hash(d) for d in data]
    assert s.root() == merkle.root(leaves)
    st_ = s.stats()
    assert st_.nodes == {lv: (n >> lv, (n >> lv) - 1) for lv in range(n.bit_length())}
    m = max(1, n // 2)
    merkle.verify_consistency(m, n, s.root(m), s.root(), s.consistency_proof(m))
    s.close()


def test_check_finds_an_edited_postgres_row(pg_schema: str) -> None:
    with PostgresLogStore(PG_URL, schema=pg_schema) as s:
        s.append(_data(300))
        # Several worker processes, each with its own read-only connection.
        assert check(s, workers=2, chunk_level=5).root == s.root()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"UPDATE {pg_schema}.ledger_entries SET data = 'x'::bytea WHERE idx = 123")
    with PostgresLogStore(PG_URL, schema=pg_schema, readonly=True) as s:
        with pytest.raises(TamperError, match=r"^entry 123:"):
            check(s, workers=2, chunk_level=5)
        with pytest.raises(StorageError):
            s.append([b"read-only"])
