"""The FHIR connector keeps what senders send: uncoded, locally coded and mis-coded concepts, values that
fail their check in optional elements, stored and counted as data-quality findings; quarantine only for
what cannot be read, tied to a patient, or lacks what the model requires."""

from __future__ import annotations

import base64
import copy
import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from medspace.connect.base import Limits, MemorySink, set_limits
from medspace.connect.errors import FindingKind, Reason
from medspace.connect.fhir import (
    ingest_fhir_bundle,
    ingest_fhir_bytes,
    ingest_fhir_file,
    ingest_fhir_ndjson,
    map_resource,
    r4_resource_types,
)

FIXTURES = Path(__file__).parent / "fixtures" / "fhir"
PATIENT_URN = "urn:uuid:5cbc121b-cd71-4428-b8b7-31e53eba8184"
ENCOUNTER_URN = "urn:uuid:0b3b1a4e-1c2f-4e8f-9d4a-6a0f8c4f2c11"


def ingest(doc: Any, strict: bool = False) -> MemorySink:
    sink = MemorySink()
    ingest_fhir_bytes(orjson.dumps(doc), "test", sink, strict=strict)
    return sink


def kept_one(doc: Any) -> tuple[dict[str, Any], MemorySink]:
    sink = ingest(doc)
    assert not sink.quarantined, [(q.reason, q.detail) for q in sink.quarantined]
    [rows] = sink.rows.values()
    assert len(rows) == 1
    return rows[0], sink


def observation(**extra: Any) -> dict[str, Any]:
    obs = {
        "resourceType": "Observation", "id": "glu-1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": "2024-03-01T10:15:00+02:00",
        "valueQuantity": {"value": 7.8, "unit": "mmol/L"},
        "referenceRange": [{"low": {"value": 3.9}, "high": {"value": 5.6}}],
    }
    obs.update(extra)
    return obs


def condition(**extra: Any) -> dict[str, Any]:
    cond = {"resourceType": "Condition", "id": "c-1", "subject": {"reference": "Patient/p1"},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}]}}
    cond.update(extra)
    return cond


def medication_request(**extra: Any) -> dict[str, Any]:
    mr = {"resourceType": "MedicationRequest", "id": "mr-1", "status": "active", "intent": "order",
          "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "A10BA02"}]},
          "subject": {"reference": "Patient/p1"}, "authoredOn": "2024-01-15",
          "dosageInstruction": [{"timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
                                 "doseAndRate": [{"doseQuantity": {"value": 500, "unit": "mg"}}]}]}
    mr.update(extra)
    return mr


# --- the third-party generator's shapes (issue 10): each was quarantined, each is now kept ---


def generator_bundle() -> dict[str, Any]:
    """A transaction bundle in the shape a third-party generator writes (urn:uuid references, text on
    every concept), holding the three resources that used to be lost."""
    return {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": PATIENT_URN, "resource": {
                "resourceType": "Patient", "id": PATIENT_URN[9:], "gender": "female", "birthDate": "1961-04-12",
                "name": [{"use": "official", "family": "Kautzer", "given": ["Tamala"]}]},
             "request": {"method": "POST", "url": "Patient"}},
            {"fullUrl": ENCOUNTER_URN, "resource": {
                "resourceType": "Encounter", "id": ENCOUNTER_URN[9:], "status": "finished",
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
                "subject": {"reference": PATIENT_URN},
                "period": {"start": "2019-02-13T10:12:33-05:00", "end": "2019-02-13T10:42:33-05:00"}},
             "request": {"method": "POST", "url": "Encounter"}},
            {"fullUrl": "urn:uuid:3f4a9a0c-1b7e-4bd4-8d9a-5c3b2a1f0e01", "resource": {
                "resourceType": "MedicationRequest", "status": "stopped", "intent": "order",
                "medicationCodeableConcept": {"text": "Acetaminophen 325 MG Oral Tablet"},
                "subject": {"reference": PATIENT_URN}, "encounter": {"reference": ENCOUNTER_URN},
                "authoredOn": "2019-02-13T10:12:33-05:00"},
             "request": {"method": "POST", "url": "MedicationRequest"}},
            {"fullUrl": "urn:uuid:7d0e5e1c-8f71-4c52-9a36-2e3c9b1d4f02", "resource": {
                "resourceType": "Condition",
                "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                               "code": "active"}]},
                "code": {"coding": [{"system": "http://snomed.info/sct", "code": "73211008",
                                     "display": "Diabetes mellitus"}], "text": "Diabetes mellitus"},
                "subject": {"reference": PATIENT_URN}, "encounter": {"reference": ENCOUNTER_URN},
                "onsetDateTime": "2019-02-13T10:12:33-05:00"},
             "request": {"method": "POST", "url": "Condition"}},
            {"fullUrl": "urn:uuid:9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c03", "resource": {
                "resourceType": "Procedure", "status": "completed",
                "code": {"coding": [
                    {"system": "http://www.ama-assn.org/go/cpt", "code": "9921", "display": "Office visit"},
                    {"system": "http://snomed.info/sct", "code": "80146002", "display": "Appendectomy"},
                ], "text": "Appendectomy"},
                "subject": {"reference": PATIENT_URN}, "encounter": {"reference": ENCOUNTER_URN},
                "performedPeriod": {"start": "2019-02-13T10:12:33-05:00", "end": "2019-02-13T10:42:33-05:00"}},
             "request": {"method": "POST", "url": "Procedure"}},
        ],
    }


def test_generator_bundle_is_kept_whole_with_findings() -> None:
    sink = ingest(generator_bundle())
    assert sink.quarantined == []
    pid, eid = PATIENT_URN[9:], ENCOUNTER_URN[9:]

    [med] = sink.rows["medication"]  # medicationCodeableConcept with only text
    assert (med["code_status"], med["display"]) == ("text", "Acetaminophen 325 MG Oral Tablet")
    assert "code" not in med and "code_system" not in med
    assert (med["patient_id"], med["encounter_id"]) == (pid, eid)

    [cond] = sink.rows["condition"]  # SNOMED code whose Verhoeff check digit fails: kept as sent
    assert (cond["code"], cond["code_system"], cond["code_status"]) == ("73211008", "SNOMED", "invalid")
    assert cond["display"] == "Diabetes mellitus"

    [proc] = sink.rows["procedure"]  # malformed CPT passed over for the valid SNOMED coding
    assert (proc["code"], proc["code_system"], proc["code_status"]) == ("80146002", "SNOMED", "standard")
    assert proc["display"] == "Appendectomy"

    assert sink.finding_counts == {
        ("medication", "code", "text_only"): 1,
        ("condition", "code", "invalid_code"): 1,
        ("procedure", "code", "invalid_code_skipped"): 1,
    }
    assert {(f.table, f.position, f.source, f.connector) for f in sink.findings} == {
        ("medication", "entry 3", "test", "fhir"), ("condition", "entry 4", "test", "fhir"),
        ("procedure", "entry 5", "test", "fhir")}


def test_generator_resources_alone_in_ndjson(tmp_path: Path) -> None:
    resources = [e["resource"] for e in generator_bundle()["entry"]]
    path = tmp_path / "export.ndjson"
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in resources) + b"\n")
    sink = MemorySink()
    ingest_fhir_file(path, sink)
    assert sink.quarantined == []
    assert {(f.table, f.position, f.kind) for f in sink.findings} == {
        ("medication", "line 3", FindingKind.TEXT_ONLY), ("condition", "line 4", FindingKind.INVALID_CODE),
        ("procedure", "line 5", FindingKind.INVALID_CODE_SKIPPED)}
    # Resources without ids take a content hash: stable across runs.
    again = MemorySink()
    ingest_fhir_file(path, again)
    assert again.rows == sink.rows


def test_local_codes_keep_their_system() -> None:
    row, sink = kept_one(condition(code={"coding": [{"system": "http://local.example/dx", "code": "DM2",
                                                     "display": "Type 2 diabetes"}]}))
    assert (row["code"], row["code_system"], row["code_status"]) == ("DM2", "local:http://local.example/dx", "local")
    assert row["display"] == "Type 2 diabetes"
    no_system, _ = kept_one(condition(code={"coding": [{"code": "DM2"}], "text": "diabetes"}))
    assert (no_system["code_system"], no_system["display"]) == ("local:unknown", "diabetes")
    assert sink.finding_counts == {("condition", "code", "local_code"): 1}
    # A valid LOINC code next to a local one is the one stored, and nothing is flagged.
    obs, sink = kept_one(observation(code={"coding": [{"system": "urn:oid:1.2.3", "code": "GLU"},
                                                      {"system": "http://loinc.org", "code": "2345-7"}]}))
    assert (obs["code"], obs["code_status"]) == ("2345-7", "standard") and not sink.findings


def test_invalid_loinc_and_text_only_observation() -> None:
    obs, sink = kept_one(observation(code={"coding": [{"system": "http://loinc.org", "code": "1234-5"}]}))
    assert (obs["code"], obs["code_system"], obs["code_status"]) == ("1234-5", "LOINC", "invalid")
    assert sink.finding_counts == {("observation", "code", "invalid_code"): 1}
    text, sink = kept_one(observation(code={"text": "Glucose, fasting"}))
    assert (text["display"], text["code_status"], text["value_num"]) == ("Glucose, fasting", "text", 7.8)
    assert sink.finding_counts == {("observation", "code", "text_only"): 1}


def test_text_only_hiv_diagnosis_is_l1_by_its_text() -> None:
    row, _ = kept_one(condition(code={"text": "HIV infection"}))
    assert (row["code_status"], row["sensitivity"]) == ("text", "L1")


def test_medication_reference_display_when_the_medication_is_not_there() -> None:
    mr = medication_request(medicationCodeableConcept=None,
                            medicationReference={"reference": "Medication/elsewhere", "display": "Metformin 500mg"})
    del mr["medicationCodeableConcept"]
    row, sink = kept_one(mr)
    assert (row["display"], row["code_status"]) == ("Metformin 500mg", "text")
    assert sink.finding_counts == {("medication", "code", "text_only"): 1}


# --- values that fail their check in optional elements: null and a finding ---


@pytest.mark.parametrize(
    ("doc", "table", "field", "kind"),
    [
        (observation(valueQuantity={"value": "7.8", "unit": "mmol/L"}), "observation", "value_num", "bad_value"),
        (observation(valueQuantity={"value": True}), "observation", "value_num", "bad_value"),
        (observation(valueQuantity=None, valueInteger=1.5), "observation", "value_num", "bad_value"),
        (observation(valueQuantity=None, valueBoolean="yes"), "observation", "value_text", "bad_value"),
        (observation(referenceRange=[{"low": {"value": "3.9"}}]), "observation", "ref_low", "bad_value"),
        (observation(effectiveDateTime="2020-02-30T10:00:00Z"), "observation", "effective_time", "bad_date"),
        (observation(effectiveDateTime="2024-01-01T10"), "observation", "effective_time", "bad_date"),
        (observation(encounter={"reference": "#enc1"}), "observation", "encounter_id", "bad_reference"),
        (observation(encounter={"reference": "Patient/p1"}), "observation", "encounter_id", "bad_reference"),
        (observation(encounter={"display": "the visit"}), "observation", "encounter_id", "bad_reference"),
        ({"resourceType": "Patient", "id": "p", "birthDate": "2020-13-45"}, "patient", "birth_date", "bad_date"),
        ({"resourceType": "Patient", "id": "p", "birthDate": "2024-01-01T10"}, "patient", "birth_date", "bad_date"),
        ({"resourceType": "Patient", "id": "p", "birthDate": 19700101}, "patient", "birth_date", "bad_date"),
        ({"resourceType": "Patient", "id": "p", "deceasedDateTime": "0001-01-01T00:00:00+14:00"},
         "patient", "deceased_date", "bad_date"),
        ({"resourceType": "Patient", "id": "p", "gender": "M"}, "patient", "sex", "bad_value"),
        ({"resourceType": "Patient", "id": "p", "gender": 1}, "patient", "sex", "bad_value"),
        (condition(onsetDateTime="2019-02-29"), "condition", "onset_date", "bad_date"),
        (condition(recordedDate="yesterday"), "condition", "recorded_date", "bad_date"),
        (condition(encounter={"reference": "#e"}), "condition", "encounter_id", "bad_reference"),
        (medication_request(authoredOn="2024-02-30"), "medication", "start_date", "bad_date"),
        (medication_request(dosageInstruction=[{"doseAndRate": [{"doseQuantity": {"value": "500"}}]}]),
         "medication", "dose_value", "bad_value"),
        (medication_request(dosageInstruction=[{"timing": {"repeat": {"frequency": "2", "period": 1,
                                                                      "periodUnit": "d"}}}]),
         "medication", "frequency", "bad_value"),
        ({"resourceType": "MedicationAdministration", "id": "ma", "status": "completed",
          "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "N02BE01"}]},
          "subject": {"reference": "Patient/p1"}, "context": {"reference": "EpisodeOfCare/ep1"}},
         "medication", "encounter_id", "bad_reference"),
        ({"resourceType": "Encounter", "id": "e", "subject": {"reference": "Patient/p1"},
          "period": {"start": "2024-01-01T25:00:00Z"}}, "encounter", "start_time", "bad_date"),
        ({"resourceType": "Procedure", "id": "pr", "subject": {"reference": "Patient/p1"},
          "code": {"coding": [{"system": "http://snomed.info/sct", "code": "80146002"}]},
          "performedDateTime": "2022-05-05T14"}, "procedure", "performed_time", "bad_date"),
        ({"resourceType": "AllergyIntolerance", "id": "a", "patient": {"reference": "Patient/p1"},
          "code": {"text": "Penicillin"}, "recordedDate": "2020-00-01"}, "allergy", "recorded_date", "bad_date"),
        ({"resourceType": "DocumentReference", "id": "d", "subject": {"reference": "Patient/p1"},
          "date": "2024-02-30T10:00:00Z", "content": [{"attachment": {"contentType": "text/plain",
                                                                      "data": base64.b64encode(b"ok").decode()}}]},
         "note", "authored_time", "bad_date"),
    ],
)
def test_bad_optional_values_are_stored_as_null_with_a_finding(doc: dict[str, Any], table: str, field: str,
                                                                kind: str) -> None:
    row, sink = kept_one(doc)
    assert field not in row
    assert (table, field, kind) in sink.finding_counts
    [finding] = [f for f in sink.findings if (f.table, f.field) == (table, field)]
    assert (finding.position, finding.source) == ("document", "test")


def test_a_panel_counts_a_shared_finding_once_per_row() -> None:
    bp = orjson.loads((FIXTURES / "observation_bp.json").read_bytes())
    bp["effectivePeriod"] = {"start": "2024-02-30T10:15:00Z"}
    bp["component"][1]["code"] = {"text": "Diastolic"}
    sink = ingest(bp)
    assert len(sink.rows["observation"]) == 2
    assert all("effective_time" not in r for r in sink.rows["observation"])
    assert sink.finding_counts == {("observation", "effective_time", "bad_date"): 2,
                                   ("observation", "code", "text_only"): 1}


def test_findings_are_recorded_only_for_stored_units() -> None:
    # A bad date and a local code in a resource that is quarantined anyway (no subject): no finding.
    cond = condition(recordedDate="yesterday", code={"coding": [{"system": "urn:x", "code": "1"}]})
    del cond["subject"]
    sink = ingest({"resourceType": "Bundle", "type": "collection",
                   "entry": [{"resource": cond}, {"resource": condition(id="c-2", recordedDate="2020-02-30")}]})
    assert [q.position for q in sink.quarantined] == ["entry 1"]
    assert [(f.position, f.field) for f in sink.findings] == [("entry 2", "recorded_date")]
    # Strict mode is unchanged: the R4B model refuses the impossible date, and nothing is flagged.
    strict = ingest(condition(recordedDate="2020-02-30"), strict=True)
    assert [q.reason for q in strict.quarantined] == [Reason.INVALID_RESOURCE] and not strict.findings


def test_map_resource_hands_back_findings() -> None:
    found: list[tuple[str, str, FindingKind, int]] = []
    [(_, row)] = map_resource(condition(recordedDate="2020-02-30"), "t", findings=found)
    assert "recorded_date" not in row
    assert found == [("condition", "recorded_date", FindingKind.BAD_DATE, 1)]


def test_a_number_beyond_double_range_costs_one_value_not_the_document() -> None:
    good = orjson.dumps(observation(id="o1")).decode()
    bad = orjson.dumps(observation(id="o2")).decode().replace("7.8", "1e400")
    doc = f'{{"resourceType": "Bundle", "type": "collection", "entry": [{{"resource": {good}}}, ' \
          f'{{"resource": {bad}}}]}}'
    sink = MemorySink()
    ingest_fhir_bytes(doc.encode(), "t", sink)
    assert not sink.quarantined
    o1, o2 = sink.rows["observation"]
    assert o1["value_num"] == 7.8 and "value_num" not in o2
    assert sink.finding_counts == {("observation", "value_num", "bad_value"): 1}
    # NaN is still not JSON.
    sink = MemorySink()
    ingest_fhir_bytes(doc.replace("1e400", "NaN").encode(), "t", sink)
    assert [q.reason for q in sink.quarantined] == [Reason.PARSE_ERROR]


# --- notes and attachments ---


def note(*attachments: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "DocumentReference", "id": "d1", "status": "current",
            "subject": {"reference": "Patient/p1"}, "content": [{"attachment": a} for a in attachments]}


def text_attachment(text: str) -> dict[str, Any]:
    return {"contentType": "text/plain; charset=utf-8", "data": base64.b64encode(text.encode()).decode()}


def test_an_unreadable_attachment_is_passed_over_for_a_readable_one() -> None:
    row, sink = kept_one(note({"contentType": "text/plain", "data": "not base64!"}, text_attachment("Stable.")))
    assert row["text"] == "Stable."
    assert sink.finding_counts == {("note", "text", "bad_value"): 1}
    only_bad = ingest(note({"contentType": "text/plain; charset=x-klingon", "data": "SGk="}))
    assert [(q.reason, q.detail) for q in only_bad.quarantined] == [
        (Reason.BAD_VALUE, "DocumentReference.content[0].attachment.contentType names an unknown charset")]


# --- string limits ---


@pytest.fixture
def small_limits() -> Iterator[Limits]:
    old = set_limits(Limits(value_chars=64, text_chars=1000))
    try:
        yield old
    finally:
        set_limits(old)


def test_a_huge_family_name_is_quarantined_with_a_clear_reason() -> None:
    patient = {"resourceType": "Patient", "id": "p", "name": [{"family": "X" * (5 << 20)}]}
    sink = ingest({"resourceType": "Bundle", "type": "collection",
                   "entry": [{"resource": patient}, {"resource": condition()}]})
    [q] = sink.quarantined
    assert (q.position, q.reason) == ("entry 1", Reason.BAD_VALUE)
    assert "patient.family_name is longer than 65,536 characters" in q.detail and "XXX" not in q.detail
    assert len(sink.rows["condition"]) == 1 and "patient" not in sink.rows


def test_notes_from_attachments_have_the_larger_text_limit(small_limits: Limits) -> None:
    text = "出院小结。" * 150  # 750 characters: over the value limit, under the text limit
    row, _ = kept_one(note(text_attachment(text)))
    assert row["text"] == text
    too_long = ingest(note(text_attachment(text * 2)))
    [q] = too_long.quarantined
    assert q.reason == Reason.BAD_VALUE and "note.text is longer than 1,000 characters" in q.detail
    # Everything else keeps the value limit, a note's type too.
    typed = ingest({**note(text_attachment("ok")), "type": {"text": "t" * 100}})
    assert [q.detail.split(" is ")[0] for q in typed.quarantined] == ["note.note_type"]


# --- resource types ---


def test_unknown_resource_types_are_quarantined_known_ones_skipped() -> None:
    types = r4_resource_types()
    assert types is not None
    assert {"Patient", "Organization", "Practitioner", "Immunization", "Bundle", "Binary", "Parameters",
            "MedicinalProduct", "DeviceUseStatement"} <= types
    assert not {"Patientt", "Address", "Coding", "DomainResource", "Resource", "patient"} & types
    entries = [{"resource": {"resourceType": rt, "id": "x"}}
               for rt in ("Patientt", "Immunization", "Organization", "MedicinalProduct", "Observationn")]
    sink = ingest({"resourceType": "Bundle", "type": "collection", "entry": entries})
    assert sink.skipped == {"Immunization": 1, "Organization": 1, "MedicinalProduct": 1}
    assert [(q.position, q.reason) for q in sink.quarantined] == [
        ("entry 1", Reason.INVALID_RESOURCE), ("entry 5", Reason.INVALID_RESOURCE)]
    assert all("Patientt" not in q.detail and "Observationn" not in q.detail for q in sink.quarantined)
    with pytest.raises(Exception) as e:
        map_resource({"resourceType": "Patientt"}, "t")
    assert getattr(e.value, "reason", None) == Reason.INVALID_RESOURCE


# --- byte-order marks ---


BOM = b"\xef\xbb\xbf"


def test_a_bom_is_accepted_in_json_and_ndjson(tmp_path: Path) -> None:
    bundle = orjson.dumps(generator_bundle())
    sink = MemorySink()
    ingest_fhir_bytes(BOM + bundle, "t", sink)
    assert not sink.quarantined and len(sink.rows["patient"]) == 1

    (tmp_path / "b.json").write_bytes(BOM + bundle)
    (tmp_path / "b.json.gz").write_bytes(gzip.compress(BOM + bundle))
    lines = [orjson.dumps(e["resource"]) for e in generator_bundle()["entry"]]
    (tmp_path / "r.ndjson").write_bytes(BOM + b"\r\n".join(lines) + b"\r\n")
    (tmp_path / "r.ndjson.gz").write_bytes(gzip.compress(BOM + b"\n".join(lines)))
    for name in ("b.json", "b.json.gz", "r.ndjson", "r.ndjson.gz"):
        sink = MemorySink()
        ingest_fhir_file(tmp_path / name, sink)
        assert not sink.quarantined, (name, sink.quarantined)
        assert len(sink.rows["patient"]) == 1 and len(sink.rows["procedure"]) == 1, name


def test_a_bom_only_first_line_is_blank_and_a_later_bom_is_an_error() -> None:
    line = orjson.dumps(condition())
    sink = MemorySink()
    ingest_fhir_ndjson([BOM + b"\n", line + b"\n", BOM + line + b"\n"], "s", sink)
    assert len(sink.rows["condition"]) == 1
    assert [(q.position, q.reason) for q in sink.quarantined] == [("line 3", Reason.PARSE_ERROR)]


def test_a_parsed_bundle_is_not_mutated() -> None:
    bundle = generator_bundle()
    before = copy.deepcopy(bundle)
    sink = MemorySink()
    ingest_fhir_bundle(bundle, "t", sink)
    assert bundle == before and len(sink.findings) == 3
