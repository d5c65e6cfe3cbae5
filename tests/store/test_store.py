from datetime import date
from pathlib import Path

import duckdb
import pytest

from medspace.connect import Quarantined, Reason, complete
from medspace.model import TABLES
from medspace.store import (
    SCHEMA_VERSION,
    SchemaVersionError,
    Store,
    StoreError,
    StoreOpenError,
    data_quality,
    deid_views,
    node_stats,
    quarantined,
)


def _patient(pid: str, family: str = "Wang", born: date = date(1980, 1, 2)) -> dict:
    return complete("patient", {"id": pid, "family_name": family, "birth_date": born}, "test")


def _condition(cid: str, pid: str, code: str) -> dict:
    return complete("condition", {"id": cid, "patient_id": pid, "code": code, "code_system": "ICD-10"}, "test")


def test_schema_created_and_versioned(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        assert st.schema_version == SCHEMA_VERSION
        assert st.count("patient") == 0
    with Store(tmp_path / "n.duckdb", read_only=True) as st:
        assert st.schema_version == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "n.duckdb"
    Store(p).close()
    con = duckdb.connect(str(p))
    con.execute("UPDATE _medspace_meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(SchemaVersionError, match="999"):
        Store(p)


def test_read_only_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreOpenError):
        Store(tmp_path / "absent.duckdb", read_only=True)


def test_batch_commits_and_reingest_changes_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        for round_ in range(2):
            with st.batch("b") as b:
                b.add("patient", _patient("p1"))
                b.add("patient", _patient("p2", "Li"))
                b.add("condition", _condition("c1", "p1", "B20"))
                b.quarantine(Quarantined("csv", "f.csv", "row 3", Reason.BAD_DATE, "d", b"raw-bytes"))
            r = b.report
            assert r.committed
            if round_ == 0:
                assert (r.rows_new, r.rows_updated, r.quarantined_new) == (3, 0, 1)
                first = st.arrow("SELECT * FROM patient ORDER BY id")
            else:
                assert (r.rows_new, r.rows_updated, r.quarantined_new) == (0, 0, 0)
                assert r.tables["patient"].unchanged == 2
                assert st.arrow("SELECT * FROM patient ORDER BY id") == first
        assert st.count("patient") == 2 and st.count("quarantine") == 1
        raw = st.con.execute("SELECT raw, reason FROM quarantine").fetchall()
        assert raw == [(b"raw-bytes", "bad_date")]


def test_update_replaces_row(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        with st.batch("a") as b:
            b.add("patient", _patient("p1"))
        with st.batch("b") as b:
            b.add("patient", _patient("p1", "Zhang"))
        assert b.report.rows_updated == 1
        assert st.con.execute("SELECT family_name FROM patient").fetchall() == [("Zhang",)]


def test_batch_is_all_or_nothing(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        with pytest.raises(RuntimeError), st.batch("fails") as b:
            for i in range(60_000):  # more than one flush reaches DuckDB before the failure
                b.add("patient", _patient(f"p{i}"))
            raise RuntimeError("crash mid-batch")
        assert st.count("patient") == 0
        assert st.con.execute("SELECT count(*) FROM ingest_batch").fetchall() == [(0,)]


def test_duplicates_within_a_batch_keep_the_last(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        with st.batch("a") as b:
            for i in range(120_000):
                b.add("patient", _patient(f"p{i % 70_000}", family=f"F{i}"))
        assert st.count("patient") == 70_000
        assert st.con.execute("SELECT family_name FROM patient WHERE id = 'p0'").fetchall() == [("F70000",)]
        dup = st.con.execute("SELECT count(*) FROM (SELECT id FROM patient GROUP BY id HAVING count(*) > 1)")
        assert dup.fetchall() == [(0,)]


def test_stats_counts_levels_and_quarantine(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        with st.batch("a") as b:
            b.add("patient", _patient("p1"))
            b.add("condition", _condition("c1", "p1", "B20"))
            b.add("condition", _condition("c2", "p1", "E11.9"))
            b.quarantine(Quarantined("hl7v2", "x.hl7", "message 2", Reason.PARSE_ERROR, "no MSH", b"junk"))
        s = node_stats(st)
    assert s["tables"]["condition"] == {"rows": 2, "by_level": {"L1": 1, "L2": 1}}
    assert s["rows_by_level"]["L1"] == 1
    assert s["quarantine"] == {"total": 1, "by_reason": {"parse_error": 1}, "by_connector": {"hl7v2": 1}}
    assert s["batches"] == 1


def test_quarantined_lists_failures_without_their_bytes(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        with st.batch("a") as b:
            for n in (10, 2, 1):  # positions order by their number, not as text
                b.quarantine(Quarantined("hl7v2", "in/lab.hl7", f"message {n}", Reason.PARSE_ERROR, "no MSH",
                                         b"PID|Wang Wei|secret"))
            b.quarantine(Quarantined("csv", "pat.csv", "row 3", Reason.BAD_DATE, "birth_date", b"Wang,1980-02-31"))
        with st.batch("b") as b:
            b.quarantine(Quarantined("csv", "pat.csv", "row 4", Reason.BAD_DATE, "birth_date", b"Li,1980-02-30"))
        everything = quarantined(st)
        assert everything["total"] == 5
        assert [(q["file"], q["position"], q["batch"]) for q in everything["items"]] == [
            ("in/lab.hl7", "message 1", 1), ("in/lab.hl7", "message 2", 1), ("in/lab.hl7", "message 10", 1),
            ("pat.csv", "row 3", 1), ("pat.csv", "row 4", 2)]
        assert set(everything["items"][0]) == {"file", "position", "reason", "detail", "connector", "batch",
                                               "received_at"}
        assert "Wang" not in repr(everything) and "secret" not in repr(everything)
        dates = quarantined(st, reason="bad_date", limit=1)
        assert dates["total"] == 2 and [q["position"] for q in dates["items"]] == ["row 3"]
        assert quarantined(st, source="lab")["total"] == 3
        assert quarantined(st, source="lab", reason="bad_date") == {"total": 0, "items": []}


def test_findings_of_a_reingested_file_replace_its_earlier_ones(tmp_path: Path) -> None:
    from medspace.connect import Finding, FindingKind

    def finding(source: str) -> Finding:
        return Finding("csv", source, "row 2", "patient", "birth_date", FindingKind.BAD_DATE)

    with Store(tmp_path / "n.duckdb") as st:
        for source, n in (("a.csv", 2), ("a.csv", 3), ("b.csv", 2)):  # a file twice (changed), then another
            with st.batch(source) as b:
                b.add("patient", _patient("p1"))
                b.finding(finding(source), n=n)
                b.end_source(source)
        (f,) = data_quality(st)
        assert (f["count"], f["example"], f["sources"]) == (5, {"source": "a.csv", "position": "row 2"}, 2)
        assert node_stats(st)["data_quality"] == {"total": 5, "by_field_and_kind": {"patient.birth_date:bad_date": 5}}
        with st.batch("a.csv fixed") as b:  # the file fixed and ingested again: its findings are gone
            b.add("patient", _patient("p1"))
            b.end_source("a.csv")
        (f,) = data_quality(st)
        assert (f["count"], f["example"], f["sources"]) == (2, {"source": "b.csv", "position": "row 2"}, 1)
        assert st.count("data_quality") == 3  # the history stays


def test_deid_views_lists_schemas_with_their_policy_and_rows(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        assert deid_views(st) == []
        with st.batch("a") as b:
            b.add("patient", _patient("p1"))
        # A view built outside apply (no record of it) is still listed, its policy unknown.
        st.con.execute("CREATE SCHEMA deid_handmade")
        st.con.execute("CREATE TABLE deid_handmade.patient AS SELECT id FROM patient")
        (view,) = deid_views(st)
        assert view == {"view": "deid_handmade", "policy": None, "tables": {"patient": 1}, "rows": 1,
                        "built_at": None, "node_key_version": None, "policy_sha256": None}


def test_read_only_store_refuses_batches(tmp_path: Path) -> None:
    Store(tmp_path / "n.duckdb").close()
    with Store(tmp_path / "n.duckdb", read_only=True) as st, pytest.raises(StoreError):
        st.batch("x")


def test_a_failing_write_rolls_back_the_whole_batch(tmp_path: Path) -> None:
    # The writes run on a background thread: a failure there must still surface and undo everything.
    import pyarrow as pa

    with Store(tmp_path / "n.duckdb") as st:
        with pytest.raises(Exception, match="NOT NULL constraint failed"), st.batch("bad") as b:
            for i in range(60_000):
                b.add("patient", _patient(f"p{i}"))
            bad = pa.table({f.name: pa.nulls(1, f.arrow_type) for f in TABLES["condition"]})
            b.add_arrow("condition", bad)  # NULL in NOT NULL columns
        assert st.count("patient") == 0 and st.count("condition") == 0


def test_complete_levels_rows_as_the_catalogue_does() -> None:
    # complete() skips the code lookup for tables whose rows cannot be L1: it must agree with row_level.
    from medspace.model import row_level
    from medspace.model.sensitivity import L1_PREFIXES

    codes = [(None, None), ("ICD-10", "E11.9"), ("LOINC", "4548-4"), ("SNOMED", "73211009")]
    codes += [(system, prefix) for (_, system), prefixes in L1_PREFIXES.items() for prefix in list(prefixes)[:3]]
    for table, spec in TABLES.items():
        for system, code in codes:
            row = {f: "x" for f in spec.required}
            if system is not None:
                row |= {"code_system": system, "code": code}
            got = complete(table, row, "test")["sensitivity"]
            assert got == row_level(table, row.get("code_system"), row.get("code")).value, (table, system, code)
