"""The synthetic data space: deterministic, valid in every format, with a ground truth that holds."""

from __future__ import annotations

import base64
import csv
import re
import tomllib
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.model import TABLES, canonical_system, code_valid
from medspace.synth import Manifest, gb11643, generate, generate_hospital, terminology, write_manifest
from medspace.synth.generate import Hospital
from medspace.synth.profiles import CN_REGIONS, RESTRICTED_PLACES
from medspace.synth.study import RESPONSE_EXTENSION

HOSPITALS, PATIENTS, SEED = 5, 600, 11
CODED = {"ICD-10", "ICD-10-CM", "SNOMED", "LOINC", "ATC", "RxNorm"}
V2_SYSTEMS = {"I10": "ICD-10", "I10C": "ICD-10-CM", "SCT": "SNOMED", "LN": "LOINC", "WHOATC": "ATC",
              "RXNORM": "RxNorm"}


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    out = tmp_path_factory.mktemp("space")
    return out, generate(out, HOSPITALS, PATIENTS, SEED)


# --- reading what was written, independently of the connectors ---


def hospital(manifest: Manifest, hid: str) -> Hospital:
    return next(h for h in manifest.hospitals if h.id == hid)


def fhir_resources(root: Path, h: Hospital) -> Iterator[tuple[str, dict[str, Any]]]:
    """(id as stored, resource) for every FHIR resource of a hospital's sources."""
    for s in h.sources:
        path = root / h.dir / s.path
        if s.kind == "fhir-bundle":
            doc = orjson.loads(path.read_bytes())
            for e in doc["entry"]:
                res = e["resource"]
                yield res.get("id") or e["fullUrl"].removeprefix("urn:uuid:"), res
        elif s.kind == "fhir-ndjson":
            for line in path.read_bytes().splitlines():
                res = orjson.loads(line)
                yield res["id"], res


def hl7_messages(root: Path, h: Hospital) -> Iterator[list[list[str]]]:
    """Every HL7 message as segments split into fields."""
    for s in h.sources:
        if s.kind == "hl7v2":
            text = (root / h.dir / s.path).read_bytes().decode("utf-8")
            for msg in text.split("\n"):
                if msg:
                    yield [seg.split("|") for seg in msg.split("\r") if seg]


def csv_tables(root: Path, h: Hospital) -> Iterator[tuple[str, dict[str, Any], list[dict[str, str]]]]:
    """(model table, column rules, rows) for every [[table]] of the hospital's mappings."""
    for s in h.sources:
        if s.kind == "csv":
            mapping = root / h.dir / s.path
            doc = tomllib.loads(mapping.read_text(encoding="utf-8"))
            delim = doc["source"].get("delimiter", ",")
            for block in doc["table"]:
                with (mapping.parent / block["file"]).open(encoding="utf-8", newline="") as fh:
                    rows = list(csv.DictReader(fh, delimiter=delim))
                yield block["table"], block["columns"], rows


def column(rules: dict[str, Any], field: str) -> str | None:
    rule = rules.get(field)
    return rule if isinstance(rule, str) else rule.get("column") if isinstance(rule, dict) else None


def patients(root: Path, h: Hospital) -> dict[str, dict[str, Any]]:
    """Per stored patient id: national ID, names, sex, birth date, MRN, phone, e-mail, address."""
    out: dict[str, dict[str, Any]] = {}
    for rid, res in fhir_resources(root, h):
        if res["resourceType"] == "Patient":
            ids = {i["type"]["coding"][0]["code"]: i["value"] for i in res["identifier"]}
            name = res["name"][0]
            telecom = {t["system"]: t["value"] for t in res["telecom"]}
            out[rid] = {"national_id": ids.get("NNCHN") or ids.get("SS"), "mrn": ids["MR"],
                        "family": name["family"], "given": " ".join(name["given"]), "sex": res["gender"],
                        "birth": date.fromisoformat(res["birthDate"]), "phone": telecom["phone"],
                        "email": telecom.get("email"), "address": res["address"][0]["line"][0]}
    for msg in hl7_messages(root, h):
        pid = next(s for s in msg if s[0] == "PID")
        ids = {c.split("^")[4]: c.split("^")[0] for c in pid[3].split("~")}
        fam, giv, mid = pid[5].split("^")[:3]
        phones = pid[13].split("~")
        email = next((p.split("^")[3] for p in phones if "^NET^" in p), None)
        out.setdefault(ids["MR"], {"national_id": ids.get("NNCHN") or ids.get("SS"), "mrn": ids["MR"], "family": fam,
                             "given": f"{giv} {mid}".strip(), "sex": "male" if pid[8] == "M" else "female",
                             "birth": date(int(pid[7][:4]), int(pid[7][4:6]), int(pid[7][6:8])),
                             "phone": phones[0].split("^")[6] or phones[0].split("^")[0], "email": email,
                             "address": pid[11].split("^")[0]})
    for table, rules, rows in csv_tables(root, h):
        if table != "patient":
            continue
        sex = rules["sex"]
        birth = rules["birth_date"]
        for r in rows:
            out[r[column(rules, "id") or ""]] = {
                "national_id": r[column(rules, "national_id") or ""], "mrn": r[column(rules, "mrn") or ""],
                "family": r[column(rules, "family_name") or ""], "given": r[column(rules, "given_name") or ""],
                "sex": sex["values"][r[sex["column"]]],
                "birth": datetime.strptime(r[birth["column"]], birth["format"]).date(),
                "phone": r[column(rules, "phone") or ""], "email": r[column(rules, "email") or ""] or None,
                "address": r[column(rules, "address_line") or ""]}
    return out


# --- determinism ---


def _bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_and_different_seed_differs(tmp_path: Path) -> None:
    generate(tmp_path / "a", 3, 120, seed=5)
    generate(tmp_path / "b", 3, 120, seed=5)
    generate(tmp_path / "c", 3, 120, seed=6)
    a, b, c = _bytes(tmp_path / "a"), _bytes(tmp_path / "b"), _bytes(tmp_path / "c")
    assert a == b
    assert set(a) & set(c)
    assert all(a[k] != c[k] for k in set(a) & set(c) if k.endswith((".hl7", ".jsonl", "ground_truth.json")))


def test_hospitals_generated_separately_in_any_order_match_generate(tmp_path: Path) -> None:
    generate(tmp_path / "all", 3, 100, seed=3)
    results = [generate_hospital(tmp_path / "parts", i, 3, 100, 3) for i in (3, 1, 2)]
    manifest = write_manifest(tmp_path / "parts", results, 3, 100)
    assert _bytes(tmp_path / "all") == _bytes(tmp_path / "parts")
    assert Manifest.load(tmp_path / "parts") == manifest
    assert Manifest.load(tmp_path / "parts" / "manifest.json").hospitals[0].expected_rows["patient"] == 100


def test_manifest_describes_every_hospital(space: tuple[Path, Manifest]) -> None:
    root, manifest = space
    assert Manifest.load(root) == manifest
    assert [h.id for h in manifest.hospitals] == [f"h{i}" for i in range(1, HOSPITALS + 1)]
    assert [h.flavour for h in manifest.hospitals] == ["cn", "us", "cn", "us", "cn"]
    assert [h.format for h in manifest.hospitals] == ["fhir-bundle", "fhir-ndjson", "hl7v2", "csv", "mixed"]
    kinds = {s.kind for h in manifest.hospitals for s in h.sources}
    assert kinds == {"fhir-bundle", "fhir-ndjson", "hl7v2", "csv"}
    for h in manifest.hospitals:
        assert h.patients == PATIENTS
        assert set(h.rows) == set(TABLES)
        assert all((root / h.dir / s.path).is_file() for s in h.sources)
    assert b"resourceType" not in (root / "ground_truth.json").read_bytes()  # never mistaken for a bundle


# --- identifiers ---


def test_resident_ids_are_valid_and_match_sex_and_birth(space: tuple[Path, Manifest]) -> None:
    root, manifest = space
    for h in manifest.hospitals:
        people = patients(root, h)
        assert len({p["national_id"] for p in people.values()}) == len(people) == PATIENTS
        for p in people.values():
            nid = p["national_id"]
            if h.flavour == "cn":
                assert gb11643.is_valid(nid), nid
                assert gb11643.sex_of(nid) == p["sex"]
                assert gb11643.birth_date_of(nid) == p["birth"]
                assert re.fullmatch(r"1[3-9]\d{9}", p["phone"])
            else:
                m = re.fullmatch(r"(\d{3})-(\d{2})-(\d{4})", nid)
                assert m and m.group(1) not in ("000", "666") and not m.group(1).startswith("9"), nid
                assert m.group(2) != "00" and m.group(3) != "0000"
                assert re.fullmatch(r"\(\d{3}\) [2-9]\d{2}-\d{4}", p["phone"]), p["phone"]


def test_cn_area_codes_are_real_districts(space: tuple[Path, Manifest]) -> None:
    root, manifest = space
    areas = {code for r in CN_REGIONS for code, _ in r.districts}
    for p in patients(root, hospital(manifest, "h1")).values():
        assert int(p["national_id"][:6]) in areas


def test_us_zip_codes_include_restricted_prefixes(space: tuple[Path, Manifest]) -> None:
    root, manifest = space
    restricted = {p.zip3 for p in RESTRICTED_PLACES}
    zips = [res["address"][0]["postalCode"] for _, res in fhir_resources(root, hospital(manifest, "h2"))
            if res["resourceType"] == "Patient"]
    assert all(re.fullmatch(r"\d{5}", z) for z in zips)
    assert any(z[:3] in restricted for z in zips)


def test_patients_shared_between_hospitals_are_the_same_people(space: tuple[Path, Manifest]) -> None:
    root, manifest = space
    truth = orjson.loads((root / "ground_truth.json").read_bytes())
    pairs = {tuple(p["hospitals"]): p["shared_patients"] for p in truth["overlap"]["pairs"]}
    assert set(pairs) == {("h1", "h3"), ("h1", "h5"), ("h3", "h5"), ("h2", "h4")}
    a = {p["national_id"]: p for p in patients(root, hospital(manifest, "h1")).values()}
    b = {p["national_id"]: p for p in patients(root, hospital(manifest, "h3")).values()}
    shared = a.keys() & b.keys()
    assert len(shared) == pairs[("h1", "h3")] == round(0.05 * PATIENTS / 2)
    for nid in shared:
        assert (a[nid]["family"], a[nid]["given"], a[nid]["birth"], a[nid]["sex"]) == \
            (b[nid]["family"], b[nid]["given"], b[nid]["birth"], b[nid]["sex"])
        assert a[nid]["mrn"] != b[nid]["mrn"]
    for hid, per in truth["overlap"]["per_hospital"].items():
        assert 0.04 * PATIENTS <= per["shared_patients"] <= 0.06 * PATIENTS, hid


@given(area=st.sampled_from([code for r in CN_REGIONS for code, _ in r.districts]),
       birth=st.dates(min_value=date(1900, 1, 1), max_value=date(2024, 12, 31)),
       seq=st.integers(min_value=0, max_value=999), pos=st.integers(min_value=0, max_value=16),
       delta=st.integers(min_value=1, max_value=9))
@settings(max_examples=300, deadline=None)
def test_gb11643_round_trip(area: int, birth: date, seq: int, pos: int, delta: int) -> None:
    rid = gb11643.make(area, birth, seq)
    assert gb11643.is_valid(rid)
    assert gb11643.sex_of(rid) == ("male" if seq % 2 else "female")
    assert gb11643.birth_date_of(rid) == birth
    body = gb11643.bodies(np.array([area]), np.array([birth], dtype="datetime64[D]"), np.array([seq]))
    assert gb11643.make_many(body) == [rid]
    # MOD 11-2 catches every single-digit error.
    wrong = rid[:pos] + str((int(rid[pos]) + delta) % 10) + rid[pos + 1:]
    assert wrong == rid or gb11643.check_char(wrong[:17]) != rid[17]


def test_gb11643_known_example() -> None:
    assert gb11643.check_char("11010519491231002") == "X"
    assert gb11643.is_valid("11010519491231002X")
    assert not gb11643.is_valid("110105194912310021")
    assert not gb11643.is_valid("11010519490230002X")  # 30 February


# --- codes ---


def test_reference_codes_pass_their_validators() -> None:
    for c in (*terminology.CONDITIONS, *terminology.HIV_CONDITIONS, *terminology.PSYCH_CONDITIONS):
        assert code_valid("ICD-10", c.icd10) and code_valid("ICD-10-CM", c.icd10cm) and code_valid("SNOMED", c.snomed)
    for d in terminology.DRUGS:
        assert code_valid("ATC", d.atc) and code_valid("RxNorm", d.rxnorm)
    for x in terminology.TESTS:
        assert code_valid("LOINC", x.loinc_cn) and code_valid("LOINC", x.loinc_us)
    for item in (*terminology.PROCEDURES, *terminology.ALLERGENS, *terminology.REACTIONS):
        assert code_valid("SNOMED", item.snomed)
    assert all(code_valid("ICD-10", c[0]) and code_valid("ICD-10-CM", c[1]) for c in terminology.T2D_CODES)


def _codings(node: Any) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        if "system" in node and "code" in node:
            yield node["system"], node["code"]
        for v in node.values():
            yield from _codings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _codings(v)


def test_every_code_written_is_valid(space: tuple[Path, Manifest]) -> None:
    root, manifest = space
    seen: Counter[str] = Counter()
    for h in manifest.hospitals:
        for _, res in fhir_resources(root, h):
            for system, code in _codings(res):
                canon = canonical_system(system)
                if canon == "LOINC" and code.startswith("LA"):
                    continue  # LOINC answer codes (Present, Heterozygous, ...) are not test codes
                if canon in CODED:
                    assert code_valid(canon, code), (h.id, system, code)
                    seen[canon] += 1
        for msg in hl7_messages(root, h):
            for seg in msg[1:]:
                for value in seg[1:]:
                    for rep in value.split("~"):
                        parts = rep.split("^")
                        if len(parts) >= 3 and parts[2] in V2_SYSTEMS:
                            assert code_valid(V2_SYSTEMS[parts[2]], parts[0]), (h.id, rep)
                            seen["hl7:" + parts[2]] += 1
        for table, rules, rows in csv_tables(root, h):
            if "code" not in rules:
                continue
            system_rule = rules["code_system"]
            for r in rows:
                system = system_rule["value"] if isinstance(system_rule, dict) else r[system_rule]
                canon = canonical_system(system)
                assert canon in CODED and code_valid(canon, r[column(rules, "code") or ""]), (table, system)
                seen["csv:" + str(canon)] += 1
    for kind in ("ICD-10", "SNOMED", "LOINC", "ATC", "RxNorm", "hl7:I10", "hl7:LN", "hl7:WHOATC", "hl7:SCT",
                 "csv:ICD-10-CM", "csv:RxNorm", "csv:LOINC"):
        assert seen[kind] > 0, kind


# --- formats ---


def test_fhir_sources_parse_and_bundles_use_urn_uuid_references(space: tuple[Path, Manifest]) -> None:
    root, manifest = space
    bundle_types: Counter[str] = Counter()
    urn_refs = 0
    for s in hospital(manifest, "h1").sources:
        doc = orjson.loads((root / "h1" / s.path).read_bytes())
        assert doc["resourceType"] == "Bundle" and doc["entry"]
        bundle_types[doc["type"]] += 1
        full_urls = {e["fullUrl"] for e in doc["entry"]}
        for e in doc["entry"]:
            if doc["type"] == "transaction":
                assert e["fullUrl"].startswith("urn:uuid:") and e["request"]["method"] == "POST"
                for ref in re.findall(rb'"reference":"([^"]+)"', orjson.dumps(e["resource"])):
                    assert ref.decode() in full_urls  # every reference resolves inside the bundle
                    urn_refs += 1
    assert bundle_types["transaction"] and bundle_types["collection"]
    assert urn_refs > 0
    counts: Counter[str] = Counter(res["resourceType"] for _, res in fhir_resources(root, hospital(manifest, "h2")))
    assert {"Patient", "Encounter", "Condition", "MedicationRequest", "Observation", "Procedure",
            "AllergyIntolerance", "DocumentReference"} <= set(counts)


def test_fhir_shapes_are_r4(space: tuple[Path, Manifest]) -> None:
    root, manifest = space
    checked: Counter[str] = Counter()
    for _, res in fhir_resources(root, hospital(manifest, "h2")):
        rt = res["resourceType"]
        if rt == "Encounter":
            assert set(res["class"]) >= {"system", "code"}
        elif rt == "MedicationRequest":
            assert "medicationCodeableConcept" in res and res["intent"] == "order"
            for ext in res.get("extension", []):
                assert ext["url"] == RESPONSE_EXTENSION and ext["valueString"] in ("responder", "non-responder")
        elif rt == "DocumentReference":
            att = res["content"][0]["attachment"]
            assert att["contentType"] == "text/plain; charset=utf-8" and att["language"] == "en"
            assert base64.b64decode(att["data"]).decode("utf-8")
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", res["date"])
        elif rt == "Observation":
            assert res["subject"]["reference"].startswith("Patient/")
        checked[rt] += 1
    assert checked["Encounter"] and checked["MedicationRequest"] and checked["DocumentReference"]


def test_hl7_messages_are_v25(space: tuple[Path, Manifest]) -> None:
    root, manifest = space
    h = hospital(manifest, "h3")
    controls: set[str] = set()
    types: Counter[str] = Counter()
    for msg in hl7_messages(root, h):
        msh = msg[0]
        assert msh[0] == "MSH" and msh[1] == "^~\\&"
        assert msh[11] == "2.5" and msh[17] == "UNICODE UTF-8"  # msh[i] is MSH-(i+1): MSH-1 is the separator
        assert re.fullmatch(r"\d{14}[+-]\d{4}", msh[6])
        controls.add(msh[9])
        types[msh[8]] += 1
        pid = next(s for s in msg if s[0] == "PID")
        id_types = {c.split("^")[4] for c in pid[3].split("~")}
        assert {"MR", "NNCHN"} <= id_types
    assert len(controls) == sum(types.values())
    assert {"ADT^A01^ADT_A01", "ADT^A04^ADT_A01", "ADT^A08^ADT_A01", "ADT^A03^ADT_A03", "ORU^R01^ORU_R01",
            "RDE^O11^RDE_O11"} <= set(types)
    raw = (root / "h3" / "hl7" / "adt.hl7").read_bytes()
    assert raw.startswith(b"MSH|") and b"\rPID|" in raw and b"\r\nMSH|" in raw and b"\rZPI|" in raw
    segs = {s[0] for msg in hl7_messages(root, h) for s in msg}
    assert {"EVN", "PV1", "PV2", "DG1", "AL1", "PR1", "OBR", "OBX", "ORC", "RXE", "TQ1", "RXR"} <= segs


def test_hl7_parses_with_the_hl7_library(space: tuple[Path, Manifest]) -> None:
    hl7 = pytest.importorskip("hl7")
    root, manifest = space
    for s in hospital(manifest, "h3").sources:
        if s.kind == "hl7v2":
            text = (root / "h3" / s.path).read_bytes().decode("utf-8")
            first = text.split("\n", 1)[0]
            msg = hl7.parse(first)
            assert str(msg.segment("MSH")[12]) == "2.5"


def test_csv_mappings_name_model_fields_and_existing_columns(space: tuple[Path, Manifest]) -> None:
    root, manifest = space
    seen_formats = set()
    for hid in ("h4", "h5"):
        h = hospital(manifest, hid)
        mapping = next(root / h.dir / s.path for s in h.sources if s.kind == "csv")
        doc = tomllib.loads(mapping.read_text(encoding="utf-8"))
        assert doc["source"]["format"] == "csv"
        for block in doc["table"]:
            spec = TABLES[block["table"]]
            path = mapping.parent / block["file"]
            with path.open(encoding="utf-8", newline="") as fh:
                header = next(csv.reader(fh, delimiter=doc["source"].get("delimiter", ",")))
            for fname, rule in block["columns"].items():
                assert fname in spec and fname not in ("sensitivity", "source", "code_status"), (hid, fname)
                col = rule if isinstance(rule, str) else rule.get("column")
                assert col is None or col in header, (hid, col)
                if isinstance(rule, dict) and "format" in rule:
                    seen_formats.add(rule["format"])
            assert set(spec.required) - {"sensitivity", "source", "code_status"} <= set(block["columns"])
    assert seen_formats - {"%Y-%m-%d", "%Y-%m-%d %H:%M:%S"}


def test_sources_ingest_to_the_expected_rows(space: tuple[Path, Manifest]) -> None:
    from medspace.connect.base import MemorySink
    from medspace.connect.sources import detect, ingest_file

    root, manifest = space
    for h in manifest.hospitals:
        hid = h.id
        sink = MemorySink()
        for s in h.sources:
            path = root / h.dir / s.path
            kind = detect(path)
            assert kind is not None and kind.value == s.kind
            ingest_file(path, kind, sink)
        assert not sink.quarantined, (hid, sink.reasons)
        assert {t: len({r["id"] for r in rows}) for t, rows in sink.rows.items()} == h.rows, hid


# --- notes ---


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdigit())


def test_note_spans_point_at_the_embedded_phi(space: tuple[Path, Manifest]) -> None:
    root, manifest = space
    ages = 0
    for h in manifest.hospitals:
        people = patients(root, h)
        stored: dict[str, tuple[str, str]] = {}  # note id -> (text, author) as written to the sources
        for rid, res in fhir_resources(root, h):
            if res["resourceType"] == "DocumentReference":
                text = base64.b64decode(res["content"][0]["attachment"]["data"]).decode("utf-8")
                stored[rid] = (text, res["author"][0]["display"])
        for table, rules, rows in csv_tables(root, h):
            if table == "note":
                stored.update({r[column(rules, "id") or ""]: (r[column(rules, "text") or ""],
                                                              r[column(rules, "author") or ""]) for r in rows})
        types: Counter[str] = Counter()
        lines = (root / h.dir / "notes_labels.jsonl").read_bytes().splitlines()
        assert len(lines) == h.rows["note"] == len(stored)
        for line in lines:
            label = orjson.loads(line)
            text, author = stored[label["note_id"]]
            assert text == label["text"]
            assert label["language"] == ("zh" if h.flavour == "cn" else "en")
            p = people[label["patient_id"]]
            names = {p["family"] + p["given"], f"{p['given']} {p['family']}", f"{p['family']}, {p['given']}",
                     p["family"], author}
            for span in label["spans"]:
                value = text[span["start"]:span["end"]]
                kind = span["type"]
                types[kind] += 1
                if kind == "NAME":
                    assert value in names, value
                elif kind == "ID":
                    assert value == p["national_id"]
                elif kind == "MRN":
                    assert value == p["mrn"]
                elif kind == "PHONE":
                    assert _digits(value).endswith(_digits(p["phone"])[-10:])
                elif kind == "EMAIL":
                    assert value == p["email"]
                elif kind == "ADDRESS":
                    assert p["address"] in value
                elif kind == "URL":
                    assert value.startswith("https://") and value.endswith(p["mrn"])
                elif kind == "AGE":
                    assert int(value) > 89
                    ages += 1
                else:
                    assert kind == "DATE" and re.search(r"\d{4}", value), (kind, value)
        assert {"NAME", "ID", "PHONE", "ADDRESS", "DATE", "MRN", "EMAIL", "URL"} <= set(types), h.id
    assert ages > 0


# --- ground truth ---


def test_ground_truth_response_depends_on_age_band_and_hospital(space: tuple[Path, Manifest]) -> None:
    root, _ = space
    truth = orjson.loads((root / "ground_truth.json").read_bytes())
    bands = truth["study"]["age_bands"]
    per = {h["id"]: h for h in truth["hospitals"]}
    # True probabilities fall with age and differ between hospitals.
    for h in per.values():
        p = [h["study"]["bands"][b]["p_true"] for b in bands]
        assert p == sorted(p, reverse=True) and p[0] > p[-1]
    assert len({h["study"]["bands"]["50-64"]["p_true"] for h in per.values()}) == HOSPITALS
    # Realised rates follow: young above old overall, the best hospital above the worst.
    pooled = {b: (sum(h["study"]["bands"][b]["responders"] for h in per.values()),
                  sum(h["study"]["bands"][b]["treated"] for h in per.values())) for b in bands}
    assert pooled[bands[0]][0] / pooled[bands[0]][1] > pooled[bands[-1]][0] / pooled[bands[-1]][1] + 0.2
    rate = {hid: h["study"]["responders"] / h["study"]["treated"] for hid, h in per.items()}
    assert rate["h4"] > rate["h2"]
    for h in per.values():
        assert h["study"]["treated"] == sum(h["study"]["bands"][b]["treated"] for b in bands)


def test_ground_truth_counts_match_the_files(space: tuple[Path, Manifest]) -> None:
    root, manifest = space
    truth = {h["id"]: h for h in orjson.loads((root / "ground_truth.json").read_bytes())["hospitals"]}
    # The CSV hospital's outcome column holds exactly the recorded responses.
    rows = next(r for t, _, r in csv_tables(root, hospital(manifest, "h4")) if t == "medication")
    outcome = Counter(r["outcome"] for r in rows)
    assert outcome["responder"] == truth["h4"]["study"]["responders"]
    assert outcome["responder"] + outcome["non-responder"] == truth["h4"]["study"]["treated"]
    # The HL7 hospital sends the study drug's orders, with their outcome, in the FHIR side file.
    statements = [res for _, res in fhir_resources(root, hospital(manifest, "h3"))
                  if res["resourceType"] == "MedicationStatement"]
    assert len(statements) == truth["h3"]["study"]["treated"]
    assert all(s["extension"][0]["url"] == RESPONSE_EXTENSION for s in statements)
    for h in manifest.hospitals:
        t = truth[h.id]
        assert t["rows"] == h.rows
        assert 0 < t["hiv_patients"] < 0.03 * PATIENTS and 0 < t["psychiatric_patients"] < 0.1 * PATIENTS
        assert 0.02 * PATIENTS < t["variant_patients"] < 0.09 * PATIENTS
        assert t["l1_rows"]["genetic_variant"] == h.rows["genetic_variant"] and t["l1_rows"]["condition"] > 0


def test_age_mix_differs_between_hospitals(space: tuple[Path, Manifest]) -> None:
    root, manifest = space
    ref = date(2025, 1, 1)

    def ages(hid: str) -> list[float]:
        return [(ref - p["birth"]).days / 365.25 for p in patients(root, hospital(manifest, hid)).values()]

    paediatric, geriatric = ages("h3"), ages("h2")
    assert np.mean([a < 18 for a in paediatric]) > 0.4 > np.mean([a < 18 for a in geriatric])
    assert np.median(geriatric) > 60 > np.median(paediatric)
    assert any(a > 89 for a in geriatric)


def test_many_hospitals_cycle_with_unique_ids_and_same_flavour_overlap(tmp_path: Path) -> None:
    manifest = generate(tmp_path, 12, 60, seed=2)
    assert [h.format for h in manifest.hospitals[5:10]] == ["fhir-bundle", "fhir-ndjson", "hl7v2", "csv", "mixed"]
    assert len({h.name for h in manifest.hospitals}) == 12
    ids = {h.id: {p["national_id"] for p in patients(tmp_path, h).values()} for h in manifest.hospitals}
    assert all(len(v) == 60 for v in ids.values())
    flavour = {h.id: h.flavour for h in manifest.hospitals}
    truth = orjson.loads((tmp_path / "ground_truth.json").read_bytes())
    for pair in truth["overlap"]["pairs"]:
        a, b = pair["hospitals"]
        assert flavour[a] == flavour[b] and len(ids[a] & ids[b]) == pair["shared_patients"]


def test_hospital_results_cross_process_boundaries(tmp_path: Path) -> None:
    import pickle

    result = generate_hospital(tmp_path, 2, 2, 30, 1)
    assert pickle.loads(pickle.dumps(result)) == result
    with pytest.raises(ValueError):
        generate_hospital(tmp_path, 3, 2, 30, 1)
