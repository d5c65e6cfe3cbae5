"""The FHIR connector on data nobody here wrote: carebundle's US Core R4 bundles and bulk NDJSON."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import carebundle
import orjson
import pytest

from medspace.connect.base import MemorySink
from medspace.connect.errors import Reason
from medspace.connect.fhir import MAPPED_TYPES, ingest_fhir_bytes, ingest_fhir_file

SEED = 20240501
COUNT = 50


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


def test_injected_defects_are_quarantined_exactly(cohort: list[Any]) -> None:
    imperfection = carebundle.Imperfection(unknown_code_system=0.3, unparseable_value=0.3, missing_field=0.3)
    expected: set[tuple[int, str]] = set()
    sink = MemorySink()
    for i, bundle in enumerate(cohort[:15]):
        dirty, defects = carebundle.inject_defects(orjson.loads(carebundle.to_json(bundle)), imperfection, seed=i)
        entries = dirty["entry"]
        for d in defects:
            res = entries[d.entry_index]["resource"]
            # A site-local code system is the only injected defect the model cannot hold, unless a
            # second coding in an accepted system remains (pulse oximetry has two LOINC codes) or it
            # hits a panel code, which is not stored (its components are).
            if (d.kind == "unknown_code_system" and res["resourceType"] in MAPPED_TYPES
                    and "component" not in res and len(res["code"]["coding"]) == 1):
                expected.add((i, f"entry {d.entry_index + 1}"))
        ingest_fhir_bytes(orjson.dumps(dirty), str(i), sink)
    assert expected
    assert {(int(q.source), q.position) for q in sink.quarantined} == expected
    assert {q.reason for q in sink.quarantined} == {Reason.UNKNOWN_CODE_SYSTEM}
    # Results typed as free text ("<0.1", "QNS") are kept as text, not rejected.
    assert any("value_num" not in r and r.get("value_text") for r in sink.rows["observation"])
