"""The third-party ingest bench's data loader: which FHIR examples it takes, how it copies them, how it parses."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import orjson
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import ingest_thirdparty as tp

COMPARTMENT = {
    "resourceType": "CompartmentDefinition", "id": "patient", "code": "Patient",
    "resource": [{"code": "Observation", "param": ["subject"]}, {"code": "Patient", "param": ["link"]},
                 {"code": "Condition", "param": ["patient"]}, {"code": "Practitioner"}],
}
PATIENT = {"resourceType": "Patient", "id": "pat1", "gender": "female"}
OBSERVATION = {
    "resourceType": "Observation", "id": "obs1", "status": "final",
    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
    "subject": {"reference": "Patient/pat1"}, "performer": [{"reference": "http://example.org/fhir/Practitioner/d1"}],
    "hasMember": [{"reference": "#inline"}],
}
CONDITION = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/pat1"},
             "code": {"text": "asthma"}}
CLINICAL_BUNDLE = {
    "resourceType": "Bundle", "id": "b1", "type": "transaction",
    "entry": [
        {"fullUrl": "urn:uuid:b0a4b18e-94e7-4b1b-8031-c7ae4bdd8db9",
         "resource": {"resourceType": "Patient", "gender": "male"}},
        {"fullUrl": "urn:uuid:8200dab6-18a2-4550-b913-a7db480c0804",
         "resource": {"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                      "subject": {"reference": "urn:uuid:b0a4b18e-94e7-4b1b-8031-c7ae4bdd8db9"}}},
        {"fullUrl": "http://example.org/fhir/Practitioner/d1",
         "resource": {"resourceType": "Practitioner", "id": "d1"}},
    ],
}
DEFINITIONS_BUNDLE = {"resourceType": "Bundle", "id": "vs", "type": "collection",
                      "entry": [{"resource": {"resourceType": "ValueSet", "id": "v", "status": "active"}}]}


def _package(tmp_path: Path, members: dict[str, dict[str, Any]]) -> Path:
    tgz = tmp_path / f"{tp.EXAMPLES_PACKAGE}-{tp.EXAMPLES_VERSION}.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        for name, doc in {"package.json": {"name": tp.EXAMPLES_PACKAGE}, **members}.items():
            data = orjson.dumps(doc)
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return tgz


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return _package(tmp_path, {
        "CompartmentDefinition-patient.json": COMPARTMENT,
        "Patient-pat1.json": PATIENT,
        "Observation-obs1.json": OBSERVATION,
        "Condition-c1.json": CONDITION,
        "Practitioner-d1.json": {"resourceType": "Practitioner", "id": "d1"},  # referenced by the observation
        "Task-t1.json": {"resourceType": "Task", "id": "t1", "status": "draft", "intent": "order"},  # neither
        "ValueSet-v.json": {"resourceType": "ValueSet", "id": "v", "status": "active"},
        "Bundle-b1.json": CLINICAL_BUNDLE,
        "Bundle-vs.json": DEFINITIONS_BUNDLE,
    })


def test_takes_the_patient_compartment_and_clinical_bundles(package: Path) -> None:
    resources, bundles = tp.read_examples(package)
    assert sorted(r["resourceType"] for r in resources) == ["Condition", "Observation", "Patient", "Practitioner"]
    assert [b["id"] for b in bundles] == ["b1"]


def test_fetch_uses_the_cached_package(package: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_npm(*args: object, **kwargs: object) -> None:
        raise AssertionError("npm was called although the package is cached")

    monkeypatch.setattr(subprocess, "run", no_npm)
    assert tp.fetch_npm_package(tp.EXAMPLES_PACKAGE, tp.EXAMPLES_VERSION, package.parent) == package


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "reference" and isinstance(v, str)] + [
            r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_copies_are_distinct_and_keep_their_references(package: Path, tmp_path: Path) -> None:
    resources, bundles = tp.read_examples(package)
    info = tp.write_examples(tmp_path / "set", resources, bundles, copies=3)
    assert info.resources == 3 * (len(resources) + len(CLINICAL_BUNDLE["entry"]))
    ndjson = [orjson.loads(line) for f in sorted(info.path.glob("*.ndjson")) for line in f.read_bytes().splitlines()]
    assert len(ndjson) == 3 * len(resources)
    ids = {(r["resourceType"], r["id"]) for r in ndjson}
    assert len(ids) == len(ndjson)
    assert ("Patient", "pat1") in ids and ("Patient", "pat1-c2") in ids and ("Practitioner", "d1-c1") in ids
    # Every relative reference of a copy points at a resource of the same copy; contained ones are untouched.
    for r in ndjson:
        suffix = r["id"][len(r["id"].split("-c")[0]):]
        for ref in _refs(r):
            if ref.startswith("Patient/"):
                assert ("Patient", ref.removeprefix("Patient/")) in ids
                assert ref.endswith(f"pat1{suffix}")
            elif ref.startswith("http"):
                assert ref == f"http://example.org/fhir/Practitioner/d1{suffix}"
            else:
                assert ref == "#inline"
    copied = [orjson.loads(f.read_bytes()) for f in sorted(info.path.glob("bundle-*.json"))]
    assert len(copied) == 3
    full_urls = [e["fullUrl"] for b in copied for e in b["entry"]]
    assert len(set(full_urls)) == len(full_urls)
    for b in copied:
        urls = {e["fullUrl"] for e in b["entry"]}
        assert all(ref in urls for e in b["entry"] for ref in _refs(e["resource"]))
        assert b["entry"][2]["resource"]["id"] == b["entry"][2]["fullUrl"].rsplit("/", 1)[1]
    assert copied[0] == CLINICAL_BUNDLE  # copy 0 is the example as published


def test_fhir_resources_parser_counts_valid_and_invalid(tmp_path: Path) -> None:
    bad = {**OBSERVATION, "id": "bad", "effectiveDateTime": "yesterday"}  # not a FHIR dateTime
    (tmp_path / "Observation.ndjson").write_bytes(b"\n".join(orjson.dumps(r) for r in (OBSERVATION, bad)) + b"\n\n")
    (tmp_path / "b.json").write_bytes(orjson.dumps(CLINICAL_BUNDLE))
    (tmp_path / "one.json").write_bytes(orjson.dumps({"resourceType": "Patientt", "id": "x"}))
    timing = tp.time_fhir_resources(tmp_path, repeats=1)
    assert timing.report == {"resources": 6, "valid": 4, "invalid": 2}
    assert timing.seconds > 0


def test_summary_of_an_ingest_report() -> None:
    report = {
        "tables": {"patient": {"received": 2}, "observation": {"received": 5}},
        "quarantined": {"missing_field": 3}, "skipped": {"Practitioner": 4},
        "findings": [{"connector": "fhir", "table": "observation", "field": "code", "kind": "local_code", "count": 7},
                     {"connector": "fhir", "table": "condition", "field": "code", "kind": "text_only", "count": 1}],
    }
    s = tp.summarise(report)
    assert (s["rows"], s["quarantined"], s["skipped"]) == (7, {"missing_field": 3}, 4)
    assert (s["findings_rows"], s["findings_kinds"]) == (8, 2)
    assert s["top_findings"][0] == ("observation.code:local_code", 7)
    assert tp.summarise({})["findings_rows"] == 0


def test_verdict_judges_only_sets_that_measure_throughput() -> None:
    assert tp.verdict(663, 1.4) == "start-up"
    assert tp.verdict(45_000, 6.2) == "yes"
    assert tp.verdict(45_000, 4.0) == "NO"


def test_carebundle_cohorts_share_their_first_patients(tmp_path: Path) -> None:
    small, large = tp.write_carebundle(tmp_path, [5, 3])  # sets come smallest first
    assert (small.files, large.files) == (3, 5)
    assert 0 < small.resources < large.resources
    first = sorted(small.path.iterdir())
    assert [f.name for f in first] == [f"patient-{i:05d}.json" for i in range(3)]
    assert all(f.read_bytes() == (large.path / f.name).read_bytes() for f in first)
    entries = sum(len(orjson.loads(f.read_bytes())["entry"]) for f in large.path.iterdir())
    assert entries == large.resources


def test_option_values() -> None:
    assert tp.sizes("1000, 3000") == [1000, 3000]
    for bad in ("", "0", "ten"):
        with pytest.raises(argparse.ArgumentTypeError):
            tp.sizes(bad)
    assert tp.tp_sets("fhir-examples") == ("fhir-examples",)
    with pytest.raises(SystemExit):
        tp.tp_sets("carebundle,synthea")
