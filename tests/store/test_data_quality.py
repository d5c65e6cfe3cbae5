"""Data-quality findings and the schema-2 migration: kept rows, counted findings, one quarantine row per failure."""

from pathlib import Path

import duckdb

from medspace.connect import Finding, FindingKind, Quarantined, Reason, complete
from medspace.store import Store, data_quality, node_stats
from medspace.store.schema import _V1_TABLES, BATCH_DDL, quarantine_ddl


def _local_obs(oid: str) -> dict:
    row = {"id": oid, "patient_id": "p1", "code": "001347", "code_system": "local:LAB",
           "display": "Iron Bind.Cap.(TIBC)", "code_status": "local", "value_num": 476.0}
    return complete("observation", row, "hl7v2")


def test_findings_are_counted_stored_and_listed(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        with st.batch("one") as b:
            for i in range(3):
                b.add("observation", _local_obs(f"o{i}"))
                b.finding(Finding("hl7v2", "lab.hl7", f"message {i + 1}", "observation", "code",
                                  FindingKind.LOCAL_CODE))
        report = b.report.to_dict()
        assert report["findings"] == [{"connector": "hl7v2", "table": "observation", "field": "code",
                                       "kind": "local_code", "count": 3,
                                       "example": {"source": "lab.hl7", "position": "message 1"}}]
        (row,) = st.arrow("SELECT code, code_system, code_status FROM observation WHERE id = 'o0'").to_pylist()
        assert row == {"code": "001347", "code_system": "local:LAB", "code_status": "local"}
        listed = data_quality(st)
        assert [(f["table"], f["field"], f["kind"], f["count"]) for f in listed] == [
            ("observation", "code", "local_code", 3)]
        assert node_stats(st)["data_quality"] == {"total": 3, "by_field_and_kind": {"observation.code:local_code": 3}}


def test_failed_batch_stores_no_findings(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        try:
            with st.batch("fails") as b:
                b.add("observation", _local_obs("o1"))
                b.finding(Finding("hl7v2", "lab.hl7", "message 1", "observation", "code", FindingKind.LOCAL_CODE))
                raise RuntimeError("stop")
        except RuntimeError:
            pass
        assert st.count("data_quality") == 0 and st.count("observation") == 0


def test_text_only_concept_with_l1_words_is_l1() -> None:
    row = complete("condition", {"id": "c1", "patient_id": "p1", "display": "HIV infection",
                                 "code_status": "text"}, "hl7v2")
    assert row["sensitivity"] == "L1"
    row = complete("condition", {"id": "c2", "patient_id": "p1", "display": "Hearing loss",
                                 "code_status": "text"}, "hl7v2")
    assert row["sensitivity"] == "L2"


def test_one_quarantine_row_per_failure(tmp_path: Path) -> None:
    raw = b"p1,2023-13-45,XX"
    with Store(tmp_path / "n.duckdb") as st:
        for _ in range(2):  # re-ingest adds nothing
            with st.batch("csv") as b:
                b.quarantine(Quarantined("csv", "a.csv", "row 2", Reason.BAD_DATE, "patient.birth_date: bad", raw))
                b.quarantine(Quarantined("csv", "a.csv", "row 2", Reason.BAD_VALUE, "encounter.class: bad", raw))
        assert st.count("quarantine") == 2


def test_version_1_store_migrates(tmp_path: Path) -> None:
    p = tmp_path / "old.duckdb"
    con = duckdb.connect(str(p))
    con.execute("CREATE TABLE _medspace_meta (key VARCHAR, value VARCHAR)")
    for ddl in _V1_TABLES.values():
        con.execute(ddl)
    con.execute(quarantine_ddl())
    con.execute(BATCH_DDL)
    con.execute("INSERT INTO _medspace_meta VALUES ('schema_version', '1')")
    con.execute("INSERT INTO condition (id, patient_id, code, code_system, sensitivity, source) "
                "VALUES ('c1', 'p1', 'E11.9', 'ICD-10', 'L2', 'fhir')")
    con.close()
    with Store(p) as st:
        assert st.schema_version == 3
        assert len(st.store_id) == 36
        (row,) = st.arrow("SELECT code, code_status FROM condition").to_pylist()
        assert row == {"code": "E11.9", "code_status": "standard"}
        with st.batch("after") as b:
            b.add("condition", complete("condition", {"id": "c2", "patient_id": "p1", "display": "Back pain",
                                                      "code_status": "text"}, "hl7v2"))
        assert st.count("condition") == 2


def test_non_duckdb_file_is_refused_without_network(tmp_path: Path) -> None:
    import sqlite3

    import pytest

    from medspace.store import StoreOpenError

    p = tmp_path / "not-a-store.db"
    sqlite3.connect(p).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(StoreOpenError):
        Store(p)
