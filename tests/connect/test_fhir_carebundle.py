"""The FHIR connector on data nobody here wrote: carebundle's US Core R4 bundles and bulk NDJSON."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any, cast

import carebundle
import orjson
import pytest

from medspace.connect.base import MemorySink
from medspace.connect.errors import Reason
from medspace.connect.fhir import MAPPED_TYPES, ingest_fhir_bytes, ingest_fhir_file

SEED = 20240501
COUNT = 50
LOCAL = "urn:oid:1.2.840.114350.1.13.0.1.7.2.696580"  # the site-local system carebundle injects


@pytest.fixture(scope="module")
def cohort() -> list[Any]:
    return carebundle.generate_cohort(count=COUNT, seed=SEED)


@pytest.fixture(scope="module")
def bundles(cohort: list[Any]) -> list[bytes]:
    return [_bytes(carebundle.to_json(b)) for b in cohort]


def _bytes(doc: str | bytes) -> bytes:
    return doc.encode() if isinstance(doc, str) else doc


def _ids(sink: MemorySink) -> dict[str, set[tuple[str, str]]]:
    return {t: {(r["id"], r["patient_id"] if t != "patient" else r["id"]) for r in rows}
            for t, rows in sink.rows.items()}


def test_cohort_bundles_map_without_quarantine(bundles: list[bytes]) -> None:
    sink = MemorySink()
    for i, data in enumerate(bundles):
        ingest_fhir_bytes(data, f"cohort/{i}.json", sink)
    assert sink.quarantined == []
    assert sink.findings == []  # clean US Core data: every code standard, every value valid
    counts = {t: len(rows) for t, rows in sink.rows.items()}
    assert counts["patient"] == COUNT
    assert counts["encounter"] == COUNT
    assert counts["observation"] >= COUNT * 10  # lab panels plus vitals, blood pressure as two rows
    assert counts["condition"] >= COUNT // 5
    assert counts["medication"] >= COUNT // 5
    assert set(sink.skipped) <= {"Practitioner", "DiagnosticReport"}
    # Every clinical row points at a patient of the cohort.
    patients = {r["id"] for r in sink.rows["patient"]}
    for table, rows in sink.rows.items():
        if table != "patient":
            assert {r["patient_id"] for r in rows} <= patients
    # Transaction bundles carry no ids: rows take their entry's urn:uuid, as the references do.
    encounters = {r["id"] for r in sink.rows["encounter"]}
    assert {r["encounter_id"] for r in sink.rows["condition"]} <= encounters
    bp = [r for r in sink.rows["observation"] if r["code"] in ("8480-6", "8462-4")]
    assert len(bp) == 2 * COUNT and all(r["id"].endswith((".0", ".1")) for r in bp)
    assert all(r["code_system"] == "LOINC" for r in sink.rows["observation"])


def test_bulk_ndjson_matches_bundles(cohort: list[Any], bundles: list[bytes], tmp_path: Path) -> None:
    from_bundles = MemorySink()
    for data in bundles:
        ingest_fhir_bytes(data, "b", from_bundles)
    from_bulk = MemorySink()
    for n, (rt, text) in enumerate(sorted(carebundle.to_ndjson(cohort).items())):
        # Half the streams compressed, as bulk-export servers often serve them.
        if n % 2:
            path = tmp_path / f"{rt}.ndjson.gz"
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path = tmp_path / f"{rt}.ndjson"
            path.write_text(text, encoding="utf-8")
        ingest_fhir_file(path, from_bulk)
    assert from_bulk.quarantined == []
    assert from_bulk.skipped == from_bundles.skipped
    assert _ids(from_bulk) == _ids(from_bundles)


def test_all_profiles_and_histories(tmp_path: Path) -> None:
    sink = MemorySink()
    for profile in carebundle.PROFILES:
        for index in range(4):
            b = carebundle.generate_bundle(profile=profile, seed=SEED, index=index, sex="FM"[index % 2])
            ingest_fhir_bytes(_bytes(carebundle.to_json(b)), profile, sink)
        history = carebundle.generate_history(profile=profile, seed=SEED, visits=3)
        ingest_fhir_bytes(_bytes(carebundle.to_json(history)), f"{profile}-history", sink)
    assert sink.quarantined == []
    assert len(sink.rows["patient"]) == 5 * len(carebundle.PROFILES)


def test_strict_mode_accepts_the_cohort(bundles: list[bytes]) -> None:
    sink = MemorySink()
    for data in bundles[:20]:
        ingest_fhir_bytes(data, "strict", sink, strict=True)
    assert [(q.position, q.detail) for q in sink.quarantined] == []
    assert len(sink.rows["patient"]) == 20


def test_injected_defects_are_kept_and_reported(cohort: list[Any]) -> None:
    imperfection = carebundle.Imperfection(unknown_code_system=0.3, unparseable_value=0.3, missing_field=0.3,
                                           out_of_order_timestamp=0.3, duplicate_entry=0.1)
    expected: set[tuple[int, str]] = set()
    kinds: set[str] = set()
    sink = MemorySink()
    for i, bundle in enumerate(cohort[:15]):
        dirty, defects = carebundle.inject_defects(orjson.loads(carebundle.to_json(bundle)), imperfection, seed=i)
        kinds.update(d.kind for d in defects)
        for n, entry in enumerate(dirty["entry"], 1):
            res = entry["resource"]
            # A site-local code system is kept as a local code, unless a second coding in an accepted
            # system remains (pulse oximetry has two LOINC codes) or it hits a panel code, which is not
            # stored (its components are). Near-duplicates carry it too.
            if (res["resourceType"] in MAPPED_TYPES and "component" not in res
                    and [c["system"] for c in res.get("code", {}).get("coding", ())] == [LOCAL]):
                expected.add((i, f"entry {n}"))
        ingest_fhir_bytes(orjson.dumps(dirty), str(i), sink)
    assert expected and kinds == set(carebundle.imperfection.DEFECT_KINDS)
    # Nothing carebundle injects makes a resource unreadable or untied: nothing is lost.
    assert sink.quarantined == []
    assert {(int(f.source), f.position) for f in sink.findings} == expected
    assert set(sink.finding_counts) <= {(t, "code", "local_code") for t in ("observation", "condition", "allergy")}
    local = [r for rows in sink.rows.values() for r in rows if r.get("code_status") == "local"]
    assert len(local) == len(expected)
    assert {r["code_system"] for r in local} == {f"local:{LOCAL}"}
    # Results typed as free text ("<0.1", "QNS") are kept as text, not rejected.
    assert any("value_num" not in r and r.get("value_text") for r in sink.rows["observation"])


# The defects of real exports that carebundle does not inject, each with what becomes of the entry: a
# finding (table, field, kind) when it is kept, a quarantine reason when it cannot be tied to a patient.
REAL_WORLD_DEFECTS = ("text_only", "invalid_code", "bad_date", "bad_value", "bad_reference", "untied", "not_a_patient")
_DATE_KEYS = {"Patient": ("birthDate", "birth_date"), "Observation": ("effectiveDateTime", "effective_time"),
              "Condition": ("onsetDateTime", "onset_date"), "MedicationRequest": ("authoredOn", "start_date"),
              "AllergyIntolerance": ("recordedDate", "recorded_date")}
_TABLES = {"Observation": "observation", "Condition": "condition", "MedicationRequest": "medication",
           "AllergyIntolerance": "allergy", "Encounter": "encounter", "Patient": "patient"}


def _damage(res: dict[str, Any], kind: str) -> tuple[str, str, str] | str | None:
    """Apply one real-world defect to a resource; the finding (table, field, kind) or quarantine reason
    it should give, or None if it does not apply to this resource."""
    rt = res["resourceType"]
    table = _TABLES.get(rt)
    concept_key = "medicationCodeableConcept" if rt == "MedicationRequest" else "code"
    concept = res.get(concept_key)
    coded = table not in (None, "patient", "encounter") and isinstance(concept, dict) and "component" not in res
    if kind == "text_only" and coded and concept.get("coding"):
        concept.setdefault("text", concept["coding"][0].get("display") or "as typed")
        del concept["coding"]
        return (cast(str, table), "code", "text_only")
    if kind == "invalid_code" and coded and len(concept.get("coding", ())) == 1:
        concept["coding"][0]["code"] += "!"  # fails the format of every code system
        return (cast(str, table), "code", "invalid_code")
    if kind == "bad_date" and rt in _DATE_KEYS and _DATE_KEYS[rt][0] in res and "component" not in res:
        key, field = _DATE_KEYS[rt]
        res[key] = "2024-01-01T10"  # the one that used to recurse
        return (cast(str, table), field, "bad_date")
    if kind == "bad_value" and rt == "Observation" and "valueQuantity" in res:
        res["valueQuantity"]["value"] = str(res["valueQuantity"]["value"])  # a number sent as a string
        return ("observation", "value_num", "bad_value")
    if kind == "bad_value" and rt == "Patient":
        res["gender"] = "F"
        return ("patient", "sex", "bad_value")
    if kind == "bad_reference" and "encounter" in res and rt != "Encounter" and "component" not in res:
        res["encounter"] = {"reference": "#visit"}  # a contained resource that is not there
        return (cast(str, table), "encounter_id", "bad_reference")
    if kind == "untied" and table not in (None, "patient") and "subject" in res:
        del res["subject"]
        return Reason.MISSING_FIELD.value
    if kind == "not_a_patient" and table not in (None, "patient") and "subject" in res:
        res["subject"] = {"reference": "Group/ward-7"}
        return Reason.BAD_REFERENCE.value
    return None


def test_real_world_defects_lose_only_untied_resources(cohort: list[Any]) -> None:
    import random

    rng = random.Random(SEED)
    sink = MemorySink()
    findings: set[tuple[int, str, str, str, str]] = set()
    quarantine: set[tuple[int, str, str]] = set()
    resources = 0
    for i, bundle in enumerate(cohort):
        doc = orjson.loads(carebundle.to_json(bundle))
        for n, entry in enumerate(doc["entry"], 1):
            resources += 1
            if rng.random() < 0.3:
                outcome = _damage(entry["resource"], rng.choice(REAL_WORLD_DEFECTS))
                if isinstance(outcome, tuple):
                    findings.add((i, f"entry {n}", *outcome))
                elif outcome is not None:
                    quarantine.add((i, f"entry {n}", outcome))
        ingest_fhir_bytes(orjson.dumps(doc), str(i), sink)
    assert {(int(q.source), q.position, q.reason.value) for q in sink.quarantined} == quarantine
    assert {q.reason for q in sink.quarantined} == {Reason.MISSING_FIELD, Reason.BAD_REFERENCE}
    assert all("subject" in q.detail for q in sink.quarantined)
    # Every other defect is stored and reported where it was found.
    got = {(int(f.source), f.position, f.table, f.field, f.kind.value) for f in sink.findings}
    assert got == findings
    assert {kind for *_, kind in got} == {"text_only", "invalid_code", "bad_date", "bad_value", "bad_reference"}
