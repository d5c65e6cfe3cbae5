"""FHIR R4 connector: mapping of each resource type, bundles and NDJSON, quarantine and strict mode."""

from __future__ import annotations

import base64
import copy
import gzip
import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from medspace.connect.base import MemorySink, Quarantined
from medspace.connect.errors import MappingError, Reason, SourceError
from medspace.connect.fhir import (
    MAPPED_TYPES,
    ingest_fhir_bundle,
    ingest_fhir_bytes,
    ingest_fhir_file,
    ingest_fhir_ndjson,
    map_resource,
)

FIXTURES = Path(__file__).parent / "fixtures" / "fhir"


def fixture(name: str) -> dict[str, Any]:
    return orjson.loads((FIXTURES / name).read_bytes())


def one(resource: dict[str, Any], **kw: Any) -> list[tuple[str, dict[str, Any]]]:
    return map_resource(resource, "test", **kw)


def ingest(doc: Any, strict: bool = False) -> MemorySink:
    sink = MemorySink()
    ingest_fhir_bytes(orjson.dumps(doc), "test", sink, strict=strict)
    return sink


def quarantined_one(doc: Any, strict: bool = False) -> Quarantined:
    sink = ingest(doc, strict)
    assert not sink.rows, sink.rows
    assert len(sink.quarantined) == 1
    return sink.quarantined[0]


def observation(**extra: Any) -> dict[str, Any]:
    obs = {
        "resourceType": "Observation",
        "id": "glu-1",
        "status": "final",
        "category": [{"coding": [{"code": "laboratory"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7", "display": "Glucose"}]},
        "subject": {"reference": "Patient/p1", "display": "Jane Roe"},
        "encounter": {"reference": "Encounter/e1"},
        "effectiveDateTime": "2024-03-01T10:15:00+02:00",
        "valueQuantity": {"value": 7.8, "unit": "mmol/L", "system": "http://unitsofmeasure.org"},
        "referenceRange": [{"low": {"value": 3.9}, "high": {"value": 5.6}}],
        "interpretation": [{"coding": [{"code": "H"}]}],
    }
    obs.update(extra)
    return obs


def condition(code: Any = None, **extra: Any) -> dict[str, Any]:
    cond = {
        "resourceType": "Condition",
        "id": "c-1",
        "subject": {"reference": "Patient/p1"},
        "code": code if code is not None else {
            "coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}]
        },
    }
    cond.update(extra)
    return cond


# --- mapping of each resource type ---


def test_patient_with_chinese_identifiers_and_address() -> None:
    [(table, row)] = one(fixture("patient_cn.json"))
    assert table == "patient"
    assert row == {
        "id": "pat-cn-1",
        "national_id": "11010519491231002X",
        "mrn": "MRN-000123",
        "passport_id": "E12345678",
        "insurance_id": "INS-998877",
        "family_name": "张",
        "given_name": "三 丰",
        "email": "zhangsan@example.cn",
        "phone": "+86 138 0000 0000",
        "address_line": "朝阳路1号, 2单元",
        "district": "朝阳区",
        "city": "北京市",
        "province": "北京市",
        "postal_code": "100020",
        "country": "CN",
        "sex": "male",
        "birth_date": date(1949, 12, 31),
        # The locally recorded calendar date, not the UTC one (which would be 2021-03-03).
        "deceased_date": date(2021, 3, 4),
        "marital_status": "married",
        "ethnicity": "汉族",
        "sensitivity": "L2",
        "source": "fhir",
    }


def test_patient_identifier_types() -> None:
    patient = {
        "resourceType": "Patient",
        "id": "p",
        "identifier": [
            {"type": {"coding": [{"code": "SS"}]}, "value": "123-45-6789"},
            {"system": "urn:example:hospital-mrn", "value": "M1"},
            {"type": {"coding": [{"code": "MB"}]}, "value": "B1"},
            {"type": {"coding": [{"code": "NNGBR"}]}, "value": "ignored: national_id already set"},
        ],
    }
    [(_, row)] = one(patient)
    assert (row["national_id"], row["mrn"], row["insurance_id"]) == ("123-45-6789", "M1", "B1")


def test_transaction_bundle_resolves_urn_references() -> None:
    sink = MemorySink()
    ingest_fhir_bytes((FIXTURES / "transaction_bundle.json").read_bytes(), "bundle.json", sink)
    assert not sink.quarantined
    pid = "11111111-1111-4111-8111-111111111111"
    eid = "22222222-2222-4222-8222-222222222222"
    [patient] = sink.rows["patient"]
    assert patient["id"] == pid
    assert patient["national_id"] == "999-00-1234"
    assert patient["ethnicity"] == "White"
    assert (patient["family_name"], patient["given_name"]) == ("Doe", "Jane")

    [enc] = sink.rows["encounter"]
    assert enc == {
        "id": eid,
        "patient_id": pid,
        "encounter_class": "inpatient",
        "start_time": datetime(2024, 2, 1, 7, 0),  # 08:00+01:00 in UTC
        "end_time": datetime(2024, 2, 5, 12, 0),
        "department": "Endocrinology",
        "reason": "Hyperglycaemia",
        "discharge_disposition": "Home",
        "sensitivity": "L2",
        "source": "fhir",
    }
    conds = {c["id"]: c for c in sink.rows["condition"]}
    assert conds["cond-icd"]["code"] == "E11.9"
    assert conds["cond-icd"]["code_system"] == "ICD-10"
    assert conds["cond-icd"]["clinical_status"] == "active"
    assert conds["cond-icd"]["onset_date"] == date(2019, 6, 1)
    assert conds["cond-icd"]["recorded_date"] == date(2024, 2, 1)
    assert conds["cond-icd"]["encounter_id"] == eid
    assert conds["cond-sct"]["code_system"] == "SNOMED"
    assert conds["cond-sct"]["code"] == "73211009"
    assert all(c["patient_id"] == pid for c in conds.values())

    # medicationReference to a Medication entry elsewhere in the bundle.
    [med] = sink.rows["medication"]
    assert (med["id"], med["code"], med["code_system"]) == ("mr-bundled", "860975", "RxNorm")
    assert med["start_date"] == date(2024, 2, 5)
    assert sink.skipped == {"Medication": 1, "Organization": 1, "Bundle.entry without resource": 1}


def test_condition_snomed_hiv_is_l1() -> None:
    code = {"coding": [{"system": "http://snomed.info/sct", "code": "86406008"}]}
    [(_, row)] = one(condition(code))
    assert (row["code_system"], row["sensitivity"]) == ("SNOMED", "L1")


def test_medication_request_atc_with_dosage() -> None:
    mr = {
        "resourceType": "MedicationRequest",
        "id": "mr-1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {
            "coding": [
                {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975"},
                {"system": "http://www.whocc.no/atc", "code": "A10BA02", "display": "metformin"},
            ]
        },
        "subject": {"reference": "Patient/p1"},
        "encounter": {"reference": "Encounter/e1"},
        "authoredOn": "2024-01-15T09:30:00Z",
        "dosageInstruction": [{
            "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d",
                                  "boundsPeriod": {"end": "2024-04-15"}}},
            "route": {"coding": [{"system": "http://snomed.info/sct", "code": "26643006",
                                  "display": "Oral route"}]},
            "doseAndRate": [{"doseQuantity": {"value": 500, "unit": "mg"}}],
        }],
    }
    [(table, row)] = one(mr)
    assert table == "medication"
    # ATC is preferred over RxNorm (the catalogue's order), whatever the order of the codings.
    assert (row["code"], row["code_system"], row["display"]) == ("A10BA02", "ATC", "metformin")
    assert row["start_date"] == date(2024, 1, 15)
    assert row["end_date"] == date(2024, 4, 15)
    assert (row["dose_value"], row["dose_unit"]) == (500.0, "mg")
    assert row["route"] == "Oral route"
    assert row["frequency"] == "2 per 1 d"
    assert row["encounter_id"] == "e1"


def test_medication_request_rxnorm_contained_and_timing_code() -> None:
    mr = {
        "resourceType": "MedicationRequest",
        "id": "mr-2",
        "status": "active",
        "intent": "order",
        "contained": [{"resourceType": "Medication", "id": "m1", "code": {
            "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "314076"}]}}],
        "medicationReference": {"reference": "#m1"},
        "subject": {"reference": "Patient/p1"},
        "dosageInstruction": [{"timing": {"code": {"text": "BID"}}}],
    }
    [(_, row)] = one(mr)
    assert (row["code"], row["code_system"], row["frequency"]) == ("314076", "RxNorm", "BID")


def test_compounded_medication_is_named_by_its_first_coded_ingredient() -> None:
    mr = {
        "resourceType": "MedicationAdministration", "id": "ma-1", "status": "completed",
        "contained": [{"resourceType": "Medication", "id": "m1", "form": {"text": "Injection Solution"},
                       "ingredient": [{"itemCodeableConcept": {"coding": [
                           {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1719"}],
                           "text": "Amphotericin B"}}]}],
        "medicationReference": {"reference": "#m1"},
        "subject": {"reference": "Patient/p1"}, "effectiveDateTime": "2023-01-05",
    }
    [(_, row)] = one(mr)
    assert (row["code"], row["code_system"], row["code_status"]) == ("1719", "RxNorm", "standard")


def test_medication_statement_and_administration_ids_are_prefixed() -> None:
    concept = {"coding": [{"system": "http://www.whocc.no/atc", "code": "N02BE01"}]}
    stmt = {"resourceType": "MedicationStatement", "id": "x", "status": "active",
            "medicationCodeableConcept": concept, "subject": {"reference": "Patient/p1"},
            "effectivePeriod": {"start": "2023-01-01", "end": "2023-02-01"},
            "dosage": [{"doseAndRate": [{"doseQuantity": {"value": 1, "unit": "g"}}]}]}
    admin = {"resourceType": "MedicationAdministration", "id": "x", "status": "completed",
             "medicationCodeableConcept": concept, "subject": {"reference": "Patient/p1"},
             "context": {"reference": "Encounter/e9"}, "effectiveDateTime": "2023-01-05T08:00:00Z",
             "dosage": {"dose": {"value": 0.5, "unit": "g"}, "route": {"text": "IV"}}}
    [(_, s)] = one(stmt)
    [(_, a)] = one(admin)
    assert s["id"] == "MedicationStatement/x"
    assert (s["start_date"], s["end_date"], s["dose_value"]) == (date(2023, 1, 1), date(2023, 2, 1), 1.0)
    assert a["id"] == "MedicationAdministration/x"
    assert (a["encounter_id"], a["dose_value"], a["route"]) == ("e9", 0.5, "IV")


def test_observation_loinc_quantity() -> None:
    [(table, row)] = one(observation())
    assert table == "observation"
    assert row == {
        "id": "glu-1",
        "patient_id": "p1",
        "encounter_id": "e1",
        "status": "final",
        "category": "laboratory",
        "effective_time": datetime(2024, 3, 1, 8, 15),
        "code": "2345-7",
        "code_system": "LOINC",
        "display": "Glucose",
        "value_num": 7.8,
        "unit": "mmol/L",
        "ref_low": 3.9,
        "ref_high": 5.6,
        "interpretation": "H",
        "sensitivity": "L2",
        "source": "fhir", "code_status": "standard",
    }


def test_observation_text_values_and_censored_quantity() -> None:
    [(_, coded)] = one(observation(valueQuantity=None, valueCodeableConcept={"text": "positive"}))
    assert coded["value_text"] == "positive" and "value_num" not in coded
    [(_, censored)] = one(observation(valueQuantity={"value": 0.1, "comparator": "<", "unit": "mg/L"}))
    assert (censored["value_num"], censored["value_text"]) == (0.1, "<0.1")


def test_blood_pressure_components_become_rows() -> None:
    rows = one(fixture("observation_bp.json"))
    assert [t for t, _ in rows] == ["observation", "observation"]
    systolic, diastolic = (r for _, r in rows)
    assert (systolic["id"], systolic["code"], systolic["value_num"]) == ("bp-1.0", "8480-6", 142.0)
    assert (systolic["unit"], systolic["interpretation"]) == ("mmHg", "H")
    assert (diastolic["id"], diastolic["code"], diastolic["value_num"]) == ("bp-1.1", "8462-4", 91.5)
    assert diastolic["unit"] == "mm[Hg]"
    for r in (systolic, diastolic):
        assert r["effective_time"] == datetime(2024, 3, 1, 10, 15)
        assert (r["category"], r["patient_id"], r["encounter_id"]) == ("vital-signs", "p1", "e1")


def test_genomics_observation_maps_to_genetic_variant() -> None:
    [(table, row)] = one(fixture("observation_variant.json"))
    assert table == "genetic_variant"
    assert row == {
        "id": "var-1",
        "patient_id": "p1",
        "gene": "BRCA1",
        "hgvs": "NM_007294.3:c.5266dupC",
        "variant_id": "17677",
        "zygosity": "heterozygous",
        "significance": "pathogenic",
        "recorded_date": date(2023, 11, 20),
        "sensitivity": "L1",
        "source": "fhir",
    }


def test_gene_component_alone_makes_a_variant() -> None:
    obs = fixture("observation_variant.json")
    obs["code"] = {"coding": [{"system": "http://loinc.org", "code": "81247-9"}]}
    obs["component"] = [c for c in obs["component"] if c["code"]["coding"][0]["code"] in ("48018-6", "48005-3")]
    [(table, row)] = one(obs)
    assert (table, row["gene"], row["hgvs"]) == ("genetic_variant", "BRCA1", "p.Gln1756fs")


def test_procedure_and_allergy() -> None:
    proc = {"resourceType": "Procedure", "id": "pr1", "status": "completed",
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "80146002",
                                 "display": "Appendectomy"}]},
            "subject": {"reference": "Patient/p1"}, "encounter": {"reference": "Encounter/e1"},
            "performedPeriod": {"start": "2022-05-05T14:00:00Z", "end": "2022-05-05T15:00:00Z"}}
    [(t, row)] = one(proc)
    assert (t, row["code"], row["code_system"], row["status"]) == ("procedure", "80146002", "SNOMED", "completed")
    assert row["performed_time"] == datetime(2022, 5, 5, 14, 0)

    allergy = {"resourceType": "AllergyIntolerance", "id": "al1",
               "code": {"coding": [{"system": "http://snomed.info/sct", "code": "764146007",
                                    "display": "Penicillin"}]},
               "patient": {"reference": "Patient/p1"}, "category": ["medication"], "criticality": "high",
               "reaction": [{"manifestation": [{"text": "Hives"}, {"coding": [{"display": "Wheeze"}]}]}],
               "recordedDate": "2020-01-01"}
    [(t, row)] = one(allergy)
    assert (t, row["code"], row["category"], row["criticality"]) == ("allergy", "764146007", "medication", "high")
    assert (row["reaction"], row["recorded_date"]) == ("Hives; Wheeze", date(2020, 1, 1))


def test_document_reference_note() -> None:
    text = "出院小结：患者病情稳定。"
    doc = {"resourceType": "DocumentReference", "id": "d1", "status": "current",
           "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5",
                                "display": "Discharge summary"}]},
           "subject": {"reference": "Patient/p1"}, "date": "2024-02-05T16:00:00+08:00",
           "author": [{"reference": "Practitioner/dr7"}],
           "context": {"encounter": [{"reference": "Encounter/e1"}]},
           "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "language": "zh",
                                       "data": base64.b64encode(text.encode()).decode()}}]}
    [(t, row)] = one(doc)
    assert t == "note"
    assert (row["text"], row["language"], row["note_type"]) == (text, "zh", "Discharge summary")
    assert (row["authored_time"], row["author"], row["encounter_id"]) == (
        datetime(2024, 2, 5, 8, 0), "Practitioner/dr7", "e1")

    gb = {**doc, "content": [{"attachment": {"contentType": "text/plain; charset=GB18030",
                                             "data": base64.b64encode(text.encode("gb18030")).decode()}}]}
    assert one(gb)[0][1]["text"] == text
    # A PDF rendering next to the text one is passed over, not an error.
    pdf = {"attachment": {"contentType": "application/pdf", "data": "JVBERi0="}}
    assert one({**doc, "content": [pdf, *doc["content"]]})[0][1]["text"] == text


def test_resource_without_id_uses_full_url_or_hash() -> None:
    cond = condition()
    del cond["id"]
    [(_, by_url)] = one(cond, full_url="urn:uuid:abcd-1")
    assert by_url["id"] == "abcd-1"
    [(_, hashed)] = one(cond)
    [(_, again)] = one(copy.deepcopy(cond))
    assert len(hashed["id"]) == 64 and hashed["id"] == again["id"]


def test_references_absolute_history_and_unresolved_urn() -> None:
    cond = condition(subject={"reference": "https://fhir.example.org/r4/Patient/p7/_history/3"},
                     encounter={"reference": "urn:uuid:not-in-bundle"})
    [(_, row)] = one(cond)
    assert (row["patient_id"], row["encounter_id"]) == ("p7", "not-in-bundle")
    [(_, mapped)] = one(cond, refs={"urn:uuid:not-in-bundle": "enc-42"})
    assert mapped["encounter_id"] == "enc-42"


def test_unmapped_types_are_skipped_not_quarantined() -> None:
    for rt in ("Organization", "Practitioner", "Immunization", "Claim", "ExplanationOfBenefit", "Provenance",
               "DiagnosticReport", "ImagingStudy", "CarePlan", "Medication", "Coverage"):
        sink = ingest({"resourceType": rt, "id": "x"})
        assert sink.skipped == {rt: 1} and not sink.quarantined and not sink.rows
    assert map_resource({"resourceType": "Organization"}, "t") == []


# --- broken input goes to quarantine, valid siblings still arrive ---


def test_truncated_document_is_a_parse_error() -> None:
    data = (FIXTURES / "transaction_bundle.json").read_bytes()[:700]
    sink = MemorySink()
    ingest_fhir_bytes(data, "t.json", sink)
    [q] = sink.quarantined
    assert (q.connector, q.source, q.position, q.reason) == ("fhir", "t.json", "document", Reason.PARSE_ERROR)
    assert q.raw == data and not sink.rows


def test_ndjson_one_truncated_line(tmp_path: Path) -> None:
    path = FIXTURES / "bulk_truncated_line.ndjson"
    lines = path.read_bytes().split(b"\n")
    for target in (path, tmp_path / "bulk.ndjson.gz"):
        if target.suffix == ".gz":
            target.write_bytes(gzip.compress(path.read_bytes()))
        sink = MemorySink()
        ingest_fhir_file(target, sink)
        [q] = sink.quarantined
        assert (q.position, q.reason, q.source) == ("line 4", Reason.PARSE_ERROR, str(target))
        assert q.raw == lines[3]
        assert {t: [r["id"] for r in rows] for t, rows in sink.rows.items()} == {
            "patient": ["b1"], "condition": ["c1"], "observation": ["o2"]}
        assert sink.skipped == {"Practitioner": 1}


def test_ndjson_streams_from_an_open_stream() -> None:
    sink = MemorySink()
    with (FIXTURES / "bulk_truncated_line.ndjson").open("rb") as fh:
        ingest_fhir_ndjson(fh, "stream", sink)
    assert len(sink.quarantined) == 1 and len(sink.rows["observation"]) == 1


def test_bundle_entry_failures_are_isolated() -> None:
    bad = condition(code="E11.9", id="bad")
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": observation()}, {"resource": bad}, {"resource": condition()}, 42]}
    sink = ingest(bundle)
    assert [q.position for q in sink.quarantined] == ["entry 2", "entry 4"]
    assert [q.reason for q in sink.quarantined] == [Reason.WRONG_TYPE, Reason.WRONG_TYPE]
    assert orjson.loads(sink.quarantined[0].raw) == bad
    assert len(sink.rows["observation"]) == 1 and len(sink.rows["condition"]) == 1


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        (condition(code="E11.9"), Reason.WRONG_TYPE),
        (condition(code={"coding": {"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}}),
         Reason.WRONG_TYPE),
        (condition(subject="Patient/p1"), Reason.WRONG_TYPE),
        (observation(status=["final"]), Reason.WRONG_TYPE),
        # An object or array where a number, date or code belongs is a wrong structure, not a bad value.
        (observation(valueQuantity={"value": {"v": 7.8}}), Reason.WRONG_TYPE),
        ({"resourceType": "Patient", "id": "p", "birthDate": {"y": 1970}}, Reason.WRONG_TYPE),
        ({"resourceType": "Patient", "id": "p", "gender": ["male"]}, Reason.WRONG_TYPE),
        (observation(encounter="Encounter/e1"), Reason.WRONG_TYPE),
        # A coded concept with neither a code nor a text: nothing to keep.
        (condition(code={"coding": [{"system": "http://hl7.org/fhir/sid/icd-10"}]}), Reason.MISSING_FIELD),
        (condition(code={}), Reason.MISSING_FIELD),
        ({k: v for k, v in condition().items() if k != "code"}, Reason.MISSING_FIELD),
        ({k: v for k, v in condition().items() if k != "subject"}, Reason.MISSING_FIELD),
        (condition(subject={"reference": "Group/g1"}), Reason.BAD_REFERENCE),
        (condition(subject={"identifier": {"value": "123"}}), Reason.BAD_REFERENCE),
        ({"resourceType": "MedicationRequest", "id": "m", "subject": {"reference": "Patient/p"},
          "medicationReference": {"reference": "Medication/nowhere"}}, Reason.BAD_REFERENCE),
        ({"resourceType": "DocumentReference", "id": "d", "subject": {"reference": "Patient/p"},
          "content": [{"attachment": {"contentType": "application/pdf", "data": "JVBERi0="}}]}, Reason.BAD_VALUE),
        ({"resourceType": "DocumentReference", "id": "d", "subject": {"reference": "Patient/p"},
          "content": [{"attachment": {"contentType": "text/plain", "data": "not base64!"}}]}, Reason.BAD_VALUE),
        ({"resourceType": "Patient", "id": 7}, Reason.WRONG_TYPE),
        ({"id": "p"}, Reason.PARSE_ERROR),
        ([1, 2, 3], Reason.WRONG_TYPE),
        ("Patient", Reason.WRONG_TYPE),
        ({"resourceType": 5}, Reason.WRONG_TYPE),
        ({"resourceType": "not a type"}, Reason.INVALID_RESOURCE),
        ({"resourceType": "Patientt", "id": "p"}, Reason.INVALID_RESOURCE),
        ({"resourceType": "patient", "id": "p"}, Reason.INVALID_RESOURCE),
        ({"resourceType": "Address", "id": "p"}, Reason.INVALID_RESOURCE),  # a data type, not a resource
        ({"resourceType": "", "id": "p"}, Reason.INVALID_RESOURCE),
        ({"resourceType": "Bundle", "entry": {"resource": {}}}, Reason.WRONG_TYPE),
    ],
)
def test_broken_resources_are_quarantined(doc: Any, reason: Reason) -> None:
    q = quarantined_one(doc)
    assert q.reason == reason, q.detail
    assert (q.connector, q.position) == ("fhir", "document")
    assert q.raw == orjson.dumps(doc)


def test_map_resource_raises_mapping_error() -> None:
    with pytest.raises(MappingError) as e:
        map_resource(condition(code="E11.9"), "t")
    assert e.value.reason == Reason.WRONG_TYPE
    assert "Condition.code" in e.value.detail


def test_details_never_echo_values() -> None:
    secrets = {"name": "Zhuang Xiaoming", "dob": "1970-02-31", "code": "QQ-NOT-A-CODE", "ssn": "987-65-4321",
               "type": "ZhuangXiaoming"}
    quarantined = [
        {"resourceType": "Patient", "id": "p", "name": [{"family": secrets["name"]}],
         "identifier": [{"value": secrets["ssn"], "type": 5}]},
        {"resourceType": "Patient", "id": "p", "name": [{"family": secrets["name"], "given": secrets["name"]}]},
        {"resourceType": secrets["type"], "id": "p", "name": [{"family": secrets["name"]}]},
        {"resourceType": "Patient", "id": "p", "name": [{"family": secrets["name"] * 5000}]},
        condition(subject={"reference": f"Group/{secrets['ssn']}", "display": secrets["name"]}),
        observation(valueQuantity={"value": {"v": secrets["ssn"]}}),
    ]
    kept = [
        {"resourceType": "Patient", "id": "p", "name": [{"family": secrets["name"]}], "birthDate": secrets["dob"]},
        condition(code={"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": secrets["code"]}]},
                  subject={"reference": "Patient/p", "display": secrets["name"]}),
        observation(subject={"reference": "Patient/p", "display": secrets["name"]},
                    effectiveDateTime=secrets["dob"]),
        observation(valueQuantity={"value": secrets["ssn"]}),
        {"resourceType": "Patient", "id": "p", "gender": secrets["name"]},
    ]
    for doc in quarantined:
        q = quarantined_one(doc)
        for value in secrets.values():
            assert value not in q.detail, (q.reason, q.detail)
    for doc in kept:
        # Kept and flagged: a finding names its table, field and kind, never the value.
        sink = ingest(doc)
        assert not sink.quarantined and sink.findings, sink.quarantined
        for f in sink.findings:
            assert all(value not in repr(f) for value in secrets.values()), f
    for doc in quarantined + kept:
        # Strict mode names element paths only, too.
        q = quarantined_one({**doc, secrets["ssn"].replace("-", ""): secrets["name"]}, strict=True)
        assert all(value not in q.detail for value in secrets.values()), q.detail


# --- strict mode: the R4B models ---


def test_strict_rejects_unknown_element_that_default_accepts() -> None:
    obs = observation(favouriteColour="blue")
    assert len(ingest(obs).rows["observation"]) == 1
    q = quarantined_one(obs, strict=True)
    assert q.reason == Reason.INVALID_RESOURCE
    assert "Observation.favouriteColour" in q.detail and "blue" not in q.detail


def test_strict_accepts_valid_r4_resources() -> None:
    mr = {"resourceType": "MedicationRequest", "id": "mr", "status": "active", "intent": "order",
          "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "A10BA02"}]},
          "subject": {"reference": "Patient/p1"}, "authoredOn": "2024-01-15"}
    for doc in (fixture("patient_cn.json"), mr, observation(), fixture("observation_bp.json"),
                fixture("observation_variant.json")):
        sink = ingest(doc, strict=True)
        assert not sink.quarantined, sink.quarantined
    sink = MemorySink()
    ingest_fhir_bytes((FIXTURES / "transaction_bundle.json").read_bytes(), "b", sink, strict=True)
    assert not sink.quarantined and len(sink.rows["medication"]) == 1


def test_strict_reports_r4b_type_errors_with_paths() -> None:
    q = quarantined_one({"resourceType": "Patient", "id": "p", "active": "maybe"}, strict=True)
    assert q.reason == Reason.INVALID_RESOURCE and "Patient.active" in q.detail


# --- files ---


def test_ingest_file_dispatch_and_errors(tmp_path: Path) -> None:
    sink = MemorySink()
    ingest_fhir_file(FIXTURES / "observation_bp.json", sink)
    assert len(sink.rows["observation"]) == 2
    gz = tmp_path / "patient.json.gz"
    gz.write_bytes(gzip.compress((FIXTURES / "patient_cn.json").read_bytes()))
    ingest_fhir_file(gz, sink)
    assert len(sink.rows["patient"]) == 1
    with pytest.raises(SourceError):
        ingest_fhir_file(tmp_path / "missing.ndjson", sink)
    with pytest.raises(SourceError):
        ingest_fhir_file(tmp_path / "missing.json", sink)
    (tmp_path / "notes.txt").write_text("{}")
    with pytest.raises(SourceError):
        ingest_fhir_file(tmp_path / "notes.txt", sink)
    broken = tmp_path / "cut.ndjson.gz"
    broken.write_bytes(gzip.compress((FIXTURES / "bulk_truncated_line.ndjson").read_bytes())[:-12])
    with pytest.raises(SourceError):
        ingest_fhir_file(broken, sink)


def test_ingest_fhir_bundle_on_parsed_dict() -> None:
    sink = MemorySink()
    ingest_fhir_bundle(fixture("transaction_bundle.json"), "b", sink)
    assert len(sink.rows["condition"]) == 2 and not sink.quarantined


# --- properties: any input ends as rows, a skip or a quarantine record, and nothing raises ---

KEYS = ["resourceType", "id", "subject", "patient", "code", "coding", "system", "display", "text", "value",
        "valueQuantity", "component", "effectiveDateTime", "birthDate", "reference", "identifier", "name",
        "category", "entry", "resource", "fullUrl", "medicationReference", "dosageInstruction", "content"]
scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
           | st.text(max_size=12) | st.sampled_from(["http://loinc.org", "2345-7", "Patient/p", "2020-01-01"]))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), children, max_size=5),
    max_leaves=25,
)
resource_types = st.sampled_from([*sorted(MAPPED_TYPES), "Organization", "Observation", "Patient"])
fhir_like = st.builds(
    lambda rt, body: {**body, "resourceType": rt},
    resource_types,
    st.dictionaries(st.sampled_from(KEYS), json_values, max_size=6),
)
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def outcomes(sink: MemorySink) -> int:
    """How many units a single-unit document produced outcomes for: must be exactly one."""
    return (1 if sink.rows else 0) + len(sink.quarantined) + sum(sink.skipped.values())


def assert_one_outcome(doc: Any, strict: bool = False) -> MemorySink:
    sink = MemorySink()
    ingest_fhir_bytes(json.dumps(doc).encode(), "prop", sink, strict=strict)
    assert outcomes(sink) == 1, (sink.rows, sink.quarantined, sink.skipped)
    for q in sink.quarantined:
        assert isinstance(q.reason, Reason) and q.detail
    return sink


@PROPERTY
@given(json_values | fhir_like)
def test_any_json_document(doc: Any) -> None:
    assume(not (isinstance(doc, dict) and doc.get("resourceType") == "Bundle"))
    assert_one_outcome(doc)


@PROPERTY
@given(st.binary(max_size=300))
def test_any_bytes(data: bytes) -> None:
    sink = MemorySink()
    ingest_fhir_bytes(data, "prop", sink)
    assert outcomes(sink) >= 1


@PROPERTY
@given(st.lists(st.binary(max_size=80) | json_values.map(lambda v: json.dumps(v).encode()), max_size=6))
def test_any_ndjson_lines(lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ").replace(b"\r", b" ") for line in lines]
    assume(not any(b'"Bundle"' in line for line in lines))
    sink = MemorySink()
    ingest_fhir_ndjson([line + b"\n" for line in lines], "prop", sink)
    # A byte-order mark opening the stream is no content.
    content = [line.removeprefix(b"\xef\xbb\xbf") if i == 0 else line for i, line in enumerate(lines)]
    nonblank = sum(1 for line in content if line.strip())
    settled = len(sink.quarantined) + sum(sink.skipped.values())
    assert settled <= nonblank <= settled + sum(len(rows) for rows in sink.rows.values())
    for q in sink.quarantined:
        assert q.raw == content[int(q.position.removeprefix("line ")) - 1]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _valid_resources() -> list[dict[str, Any]]:
    bundle = fixture("transaction_bundle.json")
    return [fixture("patient_cn.json"), fixture("observation_bp.json"), fixture("observation_variant.json"),
            observation(), condition(), *(e["resource"] for e in bundle["entry"] if "resource" in e)]


VALID = _valid_resources()


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    resource = copy.deepcopy(draw(st.sampled_from(VALID)))
    path = draw(st.sampled_from(_paths(resource)))
    node = resource
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = draw(json_values)
    return resource


@PROPERTY
@given(mutated())
def test_mutated_valid_resources(resource: dict[str, Any]) -> None:
    assume(resource.get("resourceType") != "Bundle")
    assert_one_outcome(resource)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_valid_resources_strict(resource: dict[str, Any]) -> None:
    assume(resource.get("resourceType") != "Bundle")
    assert_one_outcome(resource, strict=True)


@PROPERTY
@given(st.lists(mutated() | fhir_like | st.sampled_from(VALID), min_size=1, max_size=5))
def test_bundle_entries_are_independent(resources: list[dict[str, Any]]) -> None:
    # Medication entries would legitimately resolve references in their siblings.
    assume(all(r.get("resourceType") not in ("Bundle", "Medication") for r in resources))
    whole = MemorySink()
    ingest_fhir_bytes(json.dumps({"resourceType": "Bundle", "type": "collection",
                                  "entry": [{"resource": r} for r in resources]}).encode(), "b", whole)
    rows: list[tuple[str, Any]] = []
    reasons: list[Reason] = []
    skipped = 0
    for r in resources:
        alone = assert_one_outcome({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r}]})
        rows += [(t, row["id"]) for t, table_rows in alone.rows.items() for row in table_rows]
        reasons += [q.reason for q in alone.quarantined]
        skipped += sum(alone.skipped.values())
    assert sorted((t, row["id"]) for t, table_rows in whole.rows.items() for row in table_rows) == sorted(rows)
    assert [q.reason for q in whole.quarantined] == reasons
    assert sum(whole.skipped.values()) == skipped


def test_treatment_response_extension_maps_to_response() -> None:
    from medspace.model.extensions import TREATMENT_RESPONSE

    res = {
        "resourceType": "MedicationRequest", "id": "m1", "status": "completed", "intent": "order",
        "subject": {"reference": "Patient/p1"}, "authoredOn": "2020-01-02",
        "medicationCodeableConcept": {"coding": [{"system": "http://www.whocc.no/atc", "code": "A10BA02"}]},
        "extension": [{"url": TREATMENT_RESPONSE, "valueString": "responder"}],
    }
    rows = map_resource(res, "t")
    assert rows[0][1]["response"] == "responder"
