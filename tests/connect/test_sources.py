"""Source detection: what a file is, read past blank or broken first lines, past 4 KB, and past a BOM."""

from __future__ import annotations

import gzip
import random
import tempfile
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.connect import sources
from medspace.connect.base import MemorySink
from medspace.connect.errors import Reason, SourceError
from medspace.connect.sources import SourceKind, detect, discover, ingest_file

BOM = b"\xef\xbb\xbf"
PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female"}
CONDITION = {"resourceType": "Condition", "id": "c1", "subject": {"reference": "Patient/p1"},
             "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}]}}


def ndjson(*resources: dict[str, object]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in resources)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


@pytest.mark.parametrize("name", ["bulk.ndjson", "bulk.ndjson.gz", "bulk.jsonl"])
@pytest.mark.parametrize("lead", [b"\n", b"\r\n  \n\n", b'{"resourceType": "Pat\n', b"garbage\n\xff\xfe\n",
                                  BOM, BOM + b"\n", b'{"no": "type"}\n', b"[1, 2]\n"])
def test_ndjson_past_blank_broken_or_bom_first_lines(tmp_path: Path, name: str, lead: bytes) -> None:
    path = write(tmp_path / name, lead + ndjson(PATIENT, CONDITION))
    assert detect(path) is SourceKind.FHIR_NDJSON
    sink = MemorySink()
    ingest_file(path, SourceKind.FHIR_NDJSON, sink)
    assert len(sink.rows["patient"]) == 1 and len(sink.rows["condition"]) == 1
    # What was broken is quarantined, never silently dropped.
    assert {q.reason for q in sink.quarantined} <= {Reason.PARSE_ERROR, Reason.WRONG_TYPE}
    assert len(sink.quarantined) == len([x for x in lead.removeprefix(BOM).split(b"\n") if x.strip()])


def test_ndjson_that_is_not_fhir_is_not_a_source(tmp_path: Path) -> None:
    logs = b"".join(orjson.dumps({"level": "info", "msg": f"event {i}"}) + b"\n" for i in range(50))
    assert detect(write(tmp_path / "app.jsonl", logs)) is None
    assert detect(write(tmp_path / "empty.ndjson", b"")) is None
    assert detect(write(tmp_path / "blank.ndjson", b"\n\n  \n")) is None
    assert detect(write(tmp_path / "text.ndjson", b"hello\nworld\n")) is None


def test_ndjson_detection_is_bounded(tmp_path: Path) -> None:
    # The first FHIR line after more broken lines than detection reads: not recognised (and cheap).
    broken = b"{\n" * (sources.SNIFF_LINES + 1)
    assert detect(write(tmp_path / "late.ndjson", broken + ndjson(PATIENT))) is None
    # A first line longer than what detection reads is judged by its opening.
    note = {"resourceType": "DocumentReference", "id": "d", "subject": {"reference": "Patient/p1"},
            "content": [{"attachment": {"contentType": "text/plain", "data": "QUJD" * (sources.SNIFF_BYTES // 2)}}]}
    assert detect(write(tmp_path / "big.ndjson", ndjson(note, PATIENT))) is SourceKind.FHIR_NDJSON
    assert detect(write(tmp_path / "big.ndjson.gz", ndjson(note, PATIENT))) is SourceKind.FHIR_NDJSON
    assert detect(write(tmp_path / "bigtext.ndjson", b"x" * (sources.SNIFF_BYTES + 10) + b"\n")) is None


def bundle_with_big_header(pad: int) -> bytes:
    """A Bundle whose own resourceType and entries come after a large narrative."""
    return orjson.dumps({
        "id": "b1", "meta": {"lastUpdated": "2024-01-01T00:00:00Z"},
        "text": {"status": "generated", "div": "<div>" + "x" * pad + "</div>"},
        "resourceType": "Bundle", "type": "collection", "entry": [{"resource": PATIENT}],
    })


@pytest.mark.parametrize("name", ["b.json", "b.json.gz"])
def test_bundle_whose_resource_type_comes_after_4kb(tmp_path: Path, name: str) -> None:
    data = bundle_with_big_header(20_000)
    assert data.index(b'"resourceType"') > 4096
    path = write(tmp_path / name, data)
    assert detect(path) is SourceKind.FHIR_BUNDLE
    sink = MemorySink()
    ingest_file(path, SourceKind.FHIR_BUNDLE, sink)
    assert len(sink.rows["patient"]) == 1 and not sink.quarantined


def test_bundle_with_sorted_keys_and_a_huge_first_entry(tmp_path: Path) -> None:
    # Keys sorted, as some serialisers write them: the Bundle's resourceType comes after its entries, and
    # the only entry here has no resourceType near its start (a large element sorted before it).
    resource = {**PATIENT, "name": [{"text": "y" * (2 * sources.SNIFF_BYTES)}]}
    data = orjson.dumps({"entry": [{"resource": resource}], "resourceType": "Bundle", "type": "collection"},
                        option=orjson.OPT_SORT_KEYS)
    assert data.index(b'"resourceType"') > sources.SNIFF_BYTES
    assert detect(write(tmp_path / "sorted.json", data)) is SourceKind.FHIR_BUNDLE


def test_json_detection_is_bounded(tmp_path: Path) -> None:
    # A resourceType only in the middle of a large file, neither near its start nor at its end: detection
    # does not read the whole file to find it.
    pad = b" " * (2 * sources.SNIFF_BYTES)
    data = b'{"a": "' + pad + b'", "resourceType": "Patient", "z": "' + pad + b'"}'
    assert detect(write(tmp_path / "middle.json", data)) is None


def test_json_with_bom_and_spaces(tmp_path: Path) -> None:
    pretty = b'{\n  "resourceType" : "Patient",\n  "id" : "p1"\n}\n'
    for name, data in (("a.json", BOM + pretty), ("b.json.gz", BOM + pretty), ("c.json", b"\n\n" + pretty)):
        path = write(tmp_path / name, data)
        assert detect(path) is SourceKind.FHIR_BUNDLE, name
        sink = MemorySink()
        ingest_file(path, SourceKind.FHIR_BUNDLE, sink)
        assert [r["id"] for r in sink.rows["patient"]] == ["p1"] and not sink.quarantined


def test_json_that_is_not_fhir(tmp_path: Path) -> None:
    assert detect(write(tmp_path / "package.json", b'{"name": "x", "version": "1.0"}')) is None
    assert detect(write(tmp_path / "text.json", b'note: "resourceType": "Patient"')) is None
    assert detect(write(tmp_path / "empty.json", b"")) is None
    # An array of resources is FHIR content in a shape the node does not read: recognised, so that the
    # ingest quarantines it (with its bytes) instead of ignoring it.
    assert detect(write(tmp_path / "list.json", orjson.dumps([PATIENT]))) is SourceKind.FHIR_BUNDLE


def test_hl7_and_mapping_files(tmp_path: Path) -> None:
    msg = b"MSH|^~\\&|LAB|H|||20240101||ADT^A01|1|P|2.5\r"
    assert detect(write(tmp_path / "feed.txt", BOM + msg)) is SourceKind.HL7V2
    assert detect(write(tmp_path / "feed.hl7", b"")) is SourceKind.HL7V2
    assert detect(write(tmp_path / "site.toml", b"")) is SourceKind.MAPPING
    assert detect(write(tmp_path / "notes.txt", b"hello")) is None


def test_unreadable_files_are_source_errors(tmp_path: Path) -> None:
    fake = tmp_path / "bulk.ndjson.gz"
    fake.write_bytes(b"not gzip at all")
    with pytest.raises(SourceError, match="cannot read: not complete, valid gzip data") as e:
        detect(fake)
    assert "no" not in str(e.value).replace(str(fake), "").replace("not", "")  # the content is not quoted
    cut = tmp_path / "cut.json.gz"
    noise = random.Random(1).randbytes(100_000).hex().encode()
    cut.write_bytes(gzip.compress(b'{"a": "' + noise + b'"}')[:5000])  # cut before any resourceType
    with pytest.raises(SourceError, match="not complete, valid gzip data"):
        detect(cut)
    with pytest.raises(SourceError):
        detect(tmp_path / "missing.json")


def test_discover_names_every_file(tmp_path: Path) -> None:
    write(tmp_path / "a.ndjson", b"\n" + ndjson(PATIENT))
    write(tmp_path / "b.json", bundle_with_big_header(10_000))
    write(tmp_path / "c.txt", b"hello")
    found = {p.name: k for p, k in discover([tmp_path])}
    assert found == {"a.ndjson": SourceKind.FHIR_NDJSON, "b.json": SourceKind.FHIR_BUNDLE, "c.txt": None}


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400) | st.lists(st.sampled_from([b"\n", b"{", b"}", BOM, b'"resourceType"', b":", b'"P"',
                                                          b" ", b"\xff", b"MSH|"]), max_size=30).map(b"".join),
       st.sampled_from(["x.json", "x.ndjson", "x.jsonl", "x.txt", "x.hl7"]))
def test_detect_never_fails_on_content(data: bytes, name: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(data)
        kind = detect(path)
        assert kind is None or isinstance(kind, SourceKind)
        if kind in (SourceKind.FHIR_BUNDLE, SourceKind.FHIR_NDJSON):
            # Whatever detection accepts, the ingest settles: rows, skips or quarantine, never an exception.
            sink = MemorySink()
            ingest_file(path, kind, sink)
            assert sink.rows or sink.quarantined or sink.skipped
