"""The batch writer's staging: big batches reach the file before they commit, and still all or nothing."""

import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import medspace.store.duckdb_store as ds
from medspace.model import TABLES
from medspace.store import Store, StoreError

ROWS = ds.ROW_GROUP_ROWS + 5_000  # more than a row group: at least one staging commit before the end


def patients(n: int, prefix: str = "p", family: str = "Wang", start: int = 0) -> pa.Table:
    """n patient rows with the catalogue's columns, ids prefix0000000..."""
    ids = pc.binary_join_element_wise(pa.scalar(prefix), pa.array([f"{i:07d}" for i in range(start, start + n)]), "")
    cols = {f.name: pa.nulls(n, f.arrow_type) for f in TABLES["patient"]}
    cols.update(id=ids, family_name=pa.repeat(pa.scalar(family), n), sensitivity=pa.repeat(pa.scalar("L2"), n),
                source=pa.repeat(pa.scalar("test"), n))
    return pa.table(cols)


def staging_tables(st: Store) -> list[str]:
    rows = st.con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE starts_with(table_name, ?)", [ds.STAGE_PREFIX]
    ).fetchall()
    return [r[0] for r in rows]


def test_a_big_batch_is_invisible_until_it_commits(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        reader = st.con.cursor()
        with st.batch("big") as b:
            b.add_arrow("patient", patients(ROWS))
            b.flush()
            b._drain()  # the staging commits have happened
            assert staging_tables(st)
            assert reader.execute("SELECT count(*) FROM patient").fetchall() == [(0,)]
        assert b.report.to_dict()["tables"]["patient"] == {"received": ROWS, "new": ROWS, "updated": 0,
                                                            "unchanged": 0}
        assert reader.execute("SELECT count(*) FROM patient").fetchall() == [(ROWS,)]
        assert staging_tables(st) == []


def test_a_failure_after_staging_commits_leaves_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        with st.batch("first") as b:
            b.add_arrow("patient", patients(10))
        with pytest.raises(RuntimeError), st.batch("fails") as b:
            b.add_arrow("patient", patients(ROWS, prefix="q"))
            b.flush()
            b._drain()
            raise RuntimeError("crash mid-batch")
        assert st.count("patient") == 10
        assert staging_tables(st) == []
        assert st.con.execute("SELECT label FROM ingest_batch").fetchall() == [("first",)]


def test_a_killed_ingest_shows_nothing_and_is_cleaned_up(tmp_path: Path) -> None:
    path = tmp_path / "n.duckdb"
    Store(path).close()
    # The child stages more than a row group (committed to the file), then dies without unwinding.
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_staging import patients
        from medspace.store import Store
        st = Store({str(path)!r})
        b = st.batch("killed").__enter__()
        b.add_arrow("patient", patients({ROWS}))
        b.flush(); b._drain()
        os._exit(3)
    """)
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 3
    con = duckdb.connect(str(path), read_only=True)
    left = con.execute("SELECT count(*) FROM duckdb_tables() WHERE starts_with(table_name, ?)",
                       [ds.STAGE_PREFIX]).fetchall()
    assert left[0][0] > 0  # the staged rows did reach the file ...
    assert con.execute("SELECT count(*) FROM patient").fetchall() == [(0,)]  # ... but not the table
    con.close()
    with Store(path) as st:  # opening the store drops them
        assert staging_tables(st) == []
        with st.batch("again") as b:
            b.add_arrow("patient", patients(5))
        assert st.count("patient") == 5


def test_an_empty_table_becomes_its_staging_table_with_the_same_definition(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        before = st.con.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'patient'").fetchall()
        with st.batch("a") as b:
            b.add_arrow("patient", patients(100))
            b.flush()
            b._drain()
            b._submit(b._commit_staging)
            b._drain()
            staged = st.con.execute("SELECT table_oid FROM duckdb_tables() WHERE starts_with(table_name, ?)",
                                    [ds.STAGE_PREFIX]).fetchall()
        # Renamed, not copied: the table is the staging table (same oid), defined as the table was.
        assert st.con.execute("SELECT table_oid FROM duckdb_tables() WHERE table_name = 'patient'").fetchall() == staged
        after = st.con.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'patient'").fetchall()
        assert after == before
        with pytest.raises(duckdb.ConstraintException):
            st.con.execute("INSERT INTO patient (id) VALUES (NULL)")


def test_ids_repeated_across_chunks_and_row_groups_keep_the_last(tmp_path: Path) -> None:
    n = ds.ROW_GROUP_ROWS + 1_000
    with Store(tmp_path / "n.duckdb") as st:
        with st.batch("a") as b:
            b.add_arrow("patient", patients(n, family="First"))
            b.add_arrow("patient", patients(2_000, family="Second", start=n - 1_500))  # 1,500 again, 500 new
            for i in range(3):
                b.add("patient", {"id": "p0000007", "family_name": f"Row{i}", "sensitivity": "L2", "source": "t"})
        # An id given more than once is received once, with its last values.
        assert b.report.tables["patient"].received == n + 500
        assert b.report.tables["patient"].new == n + 500
        assert st.count("patient") == n + 500
        got = dict(st.con.execute(
            "SELECT id, family_name FROM patient WHERE id IN ('p0000007', ?, ?, ?)",
            [f"p{n - 1_501:07d}", f"p{n - 1_500:07d}", f"p{n + 499:07d}"],
        ).fetchall())
        assert got == {"p0000007": "Row2", f"p{n - 1_501:07d}": "First", f"p{n - 1_500:07d}": "Second",
                       f"p{n + 499:07d}": "Second"}


def test_reingest_of_a_big_batch_counts_new_updated_unchanged(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        with st.batch("a") as b:
            b.add_arrow("patient", patients(ROWS))
        changed = patients(ROWS)
        changed = changed.set_column(changed.schema.get_field_index("family_name"), "family_name",
                                     pc.if_else(pc.less(pa.array(range(ROWS)), 1_000), "Li", "Wang"))
        with st.batch("b") as b:
            b.add_arrow("patient", changed)
            b.add_arrow("patient", patients(10, prefix="new"))
        c = b.report.tables["patient"]
        assert (c.received, c.new, c.updated, c.unchanged) == (ROWS + 10, 10, 1_000, ROWS - 1_000)
        assert st.count("patient") == ROWS + 10
        assert st.con.execute("SELECT count(*) FROM patient WHERE family_name = 'Li'").fetchall() == [(1_000,)]
        dup = st.con.execute("SELECT count(*) FROM (SELECT id FROM patient GROUP BY id HAVING count(*) > 1)")
        assert dup.fetchall() == [(0,)]


def test_settings_are_restored_after_a_batch(tmp_path: Path) -> None:
    switch = sys.getswitchinterval()
    with Store(tmp_path / "n.duckdb") as st:
        st.con.execute("SET threads = 3")
        with st.batch("a") as b:
            b.add_arrow("patient", patients(10))
            assert st.con.execute("SELECT current_setting('threads')").fetchall() == [(min(3, ds.STAGING_THREADS),)]
        assert st.con.execute("SELECT current_setting('threads')").fetchall() == [(3,)]
        with pytest.raises(RuntimeError), st.batch("b"):
            raise RuntimeError("fails")
        assert st.con.execute("SELECT current_setting('threads')").fetchall() == [(3,)]
    assert sys.getswitchinterval() == switch


def test_a_failed_write_names_the_table_not_the_staging_table(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        bad = patients(3).set_column(0, "id", pa.array(["a", None, "c"], pa.string()))
        with pytest.raises(StoreError, match=r"patient.*NOT NULL") as e, st.batch("bad") as b:
            b.add_arrow("patient", bad)
        assert ds.STAGE_PREFIX not in str(e.value)


def test_a_row_of_the_wrong_type_names_the_field_not_the_value(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        with pytest.raises(StoreError, match=r"patient\.birth_date") as e, st.batch("bad") as b:
            b.add("patient", {"id": "p1", "birth_date": "SECRET-1980", "sensitivity": "L2", "source": "t"})
            b.flush()
        assert "SECRET" not in str(e.value)
        assert st.count("patient") == 0


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["A", "B"])), max_size=120),
       st.lists(st.tuples(st.integers(0, 40), st.sampled_from(["A", "B"])), max_size=120))
def test_two_batches_end_as_the_last_value_of_each_id(tmp_path: Path, first: list[tuple[int, str]],
                                                      second: list[tuple[int, str]]) -> None:
    path = tmp_path / "h.duckdb"
    path.unlink(missing_ok=True)
    saved = ds.PIECE_ROWS, ds.CHUNK_ROWS
    try:
        ds.PIECE_ROWS, ds.CHUNK_ROWS = 5, 7  # many small chunks, so repeats cross chunks
        with Store(path) as st:
            expected: dict[str, str] = {}
            for rows in (first, second):
                stored = dict(expected)
                with st.batch("x") as b:
                    for i, name in rows:
                        b.add("patient", {"id": f"p{i}", "family_name": name, "sensitivity": "L2", "source": "t"})
                last = {f"p{i}": name for i, name in rows}
                c = b.report.tables.get("patient", ds.TableCounts())
                assert c.received == len(last)
                assert c.new == len(set(last) - set(stored))
                assert c.updated == sum(1 for k, v in last.items() if k in stored and stored[k] != v)
                expected.update(last)
                assert dict(st.con.execute("SELECT id, family_name FROM patient").fetchall()) == expected
    finally:
        ds.PIECE_ROWS, ds.CHUNK_ROWS = saved
