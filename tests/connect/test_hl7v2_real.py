"""HL7 v2 as real senders send it: local codes, LOINC in the alternate triplet, ICD-9, text-only allergies,
broken dates, byte-order marks, and sample messages this project did not write. Kept, flagged, never lost."""

import io
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from medspace.connect import FindingKind, MemorySink, Reason
from medspace.connect.hl7v2 import ingest_hl7_file, ingest_hl7_stream, map_message_full
from medspace.connect.sources import SourceKind, detect
from medspace.store import Store, data_quality

FIXTURES = Path(__file__).parent / "fixtures" / "hl7"
BOM = b"\xef\xbb\xbf"


def ingest(name: str) -> MemorySink:
    sink = MemorySink()
    ingest_hl7_file(FIXTURES / name, sink)
    return sink


def by_id(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in rows}


def test_lab_results_with_local_codes_only() -> None:
    # OBX|1|NM|001347^Iron Bind.Cap.(TIBC)^L||476|ug/dL|...: kept as sent, the local system named after MSH-3.
    sink = ingest("real_lab_local_codes.hl7")
    assert not sink.quarantined
    obs = by_id(sink.rows["observation"])
    assert list(obs) == ["L55102-1", "L55102-2", "L55102-3", "L55102-4"]
    tibc = obs["L55102-1"]
    assert {k: tibc[k] for k in ("code", "code_system", "display", "code_status", "value_num", "unit", "ref_low",
                                 "ref_high", "interpretation", "status", "patient_id", "encounter_id")} == {
        "code": "001347", "code_system": "local:LAB", "display": "Iron Bind.Cap.(TIBC)", "code_status": "local",
        "value_num": 476.0, "unit": "ug/dL", "ref_low": 250.0, "ref_high": 450.0, "interpretation": "H",
        "status": "final", "patient_id": "84431", "encounter_id": "V20230912-7"}
    assert tibc["effective_time"] == datetime(2023, 9, 12, 7, 15)  # OBR-7
    assert {o["code_status"] for o in obs.values()} == {"local"}
    assert sink.finding_counts == Counter({("observation", "code", "local_code"): 4})
    (f,) = sink.findings
    assert (f.connector, f.position, f.kind) == ("hl7v2", "message 1, segment 6", FindingKind.LOCAL_CODE)
    assert len(sink.rows["patient"]) == len(sink.rows["encounter"]) == 1


def test_local_system_falls_back_to_the_sending_facility() -> None:
    raw = (FIXTURES / "real_lab_local_codes.hl7").read_bytes().replace(b"MSH|^~\\&|LAB|", b"MSH|^~\\&||")
    mapped = map_message_full(raw.replace(b"\n", b"\r"))
    assert {r["code_system"] for t, r in mapped.rows if t == "observation"} == {"local:WESTSIDE CLINIC"}


def test_loinc_in_the_alternate_triplet() -> None:
    # OBX|1|NM|wbc^Wbc^Local^6690-2^Wbc^LN||7.0|...: the standard code is taken, and that is said.
    sink = ingest("real_lab_alternate_loinc.hl7")
    assert not sink.quarantined
    obs = by_id(sink.rows["observation"])
    wbc = obs["L55103-1"]
    assert (wbc["code"], wbc["code_system"], wbc["display"], wbc["code_status"], wbc["value_num"]) == (
        "6690-2", "LOINC", "Wbc", "standard", 7.0)
    assert [o["code"] for o in obs.values()] == ["6690-2", "789-8", "718-7", "777-3"]
    assert sink.finding_counts == Counter({("observation", "code", "alternate_code"): 4})
    assert "encounter_id" not in wbc  # no PV1: no visit, and no finding about one


def test_icd9_diagnosis_text_only_allergy_and_unparseable_birth_date() -> None:
    sink = ingest("real_adt_icd9_text_allergy.hl7")
    assert not sink.quarantined
    (p,) = sink.rows["patient"]
    # PID-7 "196203520" is no HL7 date: the patient is stored without one, and that is counted.
    assert (p["id"], p["sex"], p["family_name"]) == ("2148790", "male", "DUCK")
    assert "birth_date" not in p
    (e,) = sink.rows["encounter"]
    assert (e["id"], e["encounter_class"], e["start_time"]) == ("V9900412", "inpatient", datetime(2014, 2, 10, 22, 53))
    # DG1|0001|I9|440.21^ATHEROSCLEROSIS W/INT CLAUDCTN^I9|...: ICD-9-CM, a standard for conditions.
    c1, c2 = sink.rows["condition"]
    assert (c1["id"], c1["code"], c1["code_system"], c1["code_status"], c1["display"]) == (
        "V9900412-DG1-0001", "440.21", "ICD-9-CM", "standard", "ATHEROSCLEROSIS W/INT CLAUDCTN")
    assert (c2["code"], c2["code_system"], c2["encounter_id"]) == ("250.00", "ICD-9-CM", "V9900412")
    # AL1|1|DA|PENICILLIN|SV|RASH: a bare name in AL1-3 is the allergy's text.
    a1, a2 = sink.rows["allergy"]
    assert {k: a1.get(k) for k in ("code", "code_system", "display", "code_status", "category", "criticality",
                                   "reaction")} == {
        "code": None, "code_system": None, "display": "PENICILLIN", "code_status": "text",
        "category": "medication", "criticality": "high", "reaction": "RASH"}
    assert a1["id"].startswith("2148790-AL1-") and "PENICILLIN" not in a1["id"]
    assert (a2["id"], a2["code"], a2["code_system"], a2["code_status"]) == ("2148790-AL1-70618", "70618", "RxNorm",
                                                                            "standard")
    assert sink.finding_counts == Counter({("patient", "birth_date", "bad_date"): 1,
                                           ("allergy", "code", "text_only"): 1})
    assert {(f.table, f.position) for f in sink.findings} == {("patient", "message 1, segment 3"),
                                                              ("allergy", "message 1, segment 7")}


def test_findings_reach_the_store_with_the_rows(tmp_path: Path) -> None:
    with Store(tmp_path / "n.duckdb") as st:
        with st.batch("real") as b:
            for name in ("real_lab_local_codes.hl7", "real_lab_alternate_loinc.hl7",
                         "real_adt_icd9_text_allergy.hl7"):
                ingest_hl7_file(FIXTURES / name, b)
        assert not b.report.to_dict()["quarantined"]
        got = {(f["table"], f["field"], f["kind"]): f["count"] for f in data_quality(st)}
        assert got == {("observation", "code", "local_code"): 4, ("observation", "code", "alternate_code"): 4,
                       ("patient", "birth_date", "bad_date"): 1, ("allergy", "code", "text_only"): 1}
        assert st.count("observation") == 8 and st.count("allergy") == 2
        rows = st.arrow("SELECT code_system, count(*) AS n FROM observation GROUP BY 1 ORDER BY 1").to_pylist()
        assert rows == [{"code_system": "LOINC", "n": 4}, {"code_system": "local:LAB", "n": 4}]


@pytest.mark.parametrize("framing", ["plain", "crlf", "mllp"])
def test_a_byte_order_mark_is_accepted(framing: str, tmp_path: Path) -> None:
    text = (FIXTURES / "real_lab_local_codes.hl7").read_bytes()
    if framing == "crlf":
        text = text.replace(b"\n", b"\r\n")
    elif framing == "mllp":
        text = b"\x0b" + text.replace(b"\n", b"\r") + b"\x1c\r"
    for path in (tmp_path / "feed.hl7", tmp_path / "feed.txt"):  # recognised by name, and by content
        path.write_bytes(BOM + text)
        assert detect(path) is SourceKind.HL7V2
        sink = MemorySink()
        ingest_hl7_file(path, sink)
        assert not sink.quarantined
        assert len(sink.rows["observation"]) == 4 and sink.rows["patient"][0]["id"] == "84431"
    # Exports concatenated as they are (`cat a.hl7 b.hl7`): a mark before each file's first MSH.
    sink = MemorySink()
    ingest_hl7_stream(io.BytesIO(BOM + text + BOM + text), "two", sink)
    assert not sink.quarantined and len(sink.rows["patient"]) == 2


# --- third-party samples -------------------------------------------------------------------------------

SAMPLES = FIXTURES / "real_python_hl7_samples.hl7"  # python-hl7's test samples (BSD; see the .LICENSE beside)


def test_python_hl7_samples_keep_everything_that_can_be_tied_to_a_patient() -> None:
    if not SAMPLES.exists():
        pytest.skip("python-hl7 sample messages are not present")
    sink = MemorySink()
    ingest_hl7_file(SAMPLES, sink)
    # Only the batch whose header is followed by no MSH cannot be read as a message.
    assert [(q.position, q.reason) for q in sink.quarantined] == [("message 6", Reason.PARSE_ERROR)]
    assert "MSH" in sink.quarantined[0].detail
    assert [p["id"] for p in sink.rows["patient"]] == ["555-44-4444", "2148790", "0000112234", "0000112234",
                                                       "0000112234"]
    eve, _, batch, _, _ = sink.rows["patient"]
    assert "birth_date" not in eve  # PID-7 "196203520"
    assert "sex" not in batch and batch["birth_date"] == date(1013, 11, 13)  # PID-8 "1"; a date HL7 allows
    glucose, formatted = sink.rows["observation"]
    assert (glucose["id"], glucose["code"], glucose["code_status"], glucose["value_num"]) == (
        "1045813-1", "1554-5", "local", 182.0)  # OBX-3.3 holds the LOINC name, not a system
    assert formatted["value_text"] == "^182"
    (dg1,) = sink.rows["condition"]
    assert (dg1["code"], dg1["code_system"], dg1["code_status"]) == ("440.21", "ICD-9-CM", "standard")
    assert sink.finding_counts == Counter({("patient", "birth_date", "bad_date"): 1,
                                           ("observation", "code", "local_code"): 2,
                                           ("patient", "sex", "bad_value"): 3})
    assert sink.skipped == Counter()  # no Z-segments
