"""Recognise what a path holds (FHIR bundle, FHIR NDJSON, HL7 v2, a CSV/Parquet mapping) and ingest it."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path

from medspace.connect.base import Sink
from medspace.connect.errors import SourceError
from medspace.gc_pause import gc_paused


class SourceKind(StrEnum):
    """Kinds of source file a node ingests."""

    FHIR_BUNDLE = "fhir-bundle"
    FHIR_NDJSON = "fhir-ndjson"
    HL7V2 = "hl7v2"
    MAPPING = "csv"  # a mapping file for CSV or Parquet sources


_HL7_SUFFIXES = {".hl7", ".hl7v2", ".er7", ".msg"}


def _head(path: Path, n: int = 4096) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            return bytes(fh.read(n))
    except (OSError, EOFError) as e:
        raise SourceError(f"{path}: cannot read: {e}") from None


def detect(path: Path) -> SourceKind | None:
    """The kind of source a file is, from its name and first bytes; None if it is not one."""
    name = path.name.lower()
    if name.endswith(".toml"):
        return SourceKind.MAPPING
    if name.endswith((".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")):
        first = _head(path).split(b"\n", 1)[0]
        return SourceKind.FHIR_NDJSON if b'"resourceType"' in first else None
    if name.endswith((".json", ".json.gz")):
        return SourceKind.FHIR_BUNDLE if b'"resourceType"' in _head(path) else None
    head = _head(path, 64).lstrip(b"\x0b\r\n \xef\xbb\xbf")
    if path.suffix.lower() in _HL7_SUFFIXES or head.startswith((b"MSH|", b"FHS|", b"BHS|")):
        return SourceKind.HL7V2
    return None


def discover(paths: list[Path]) -> Iterator[tuple[Path, SourceKind | None]]:
    """Every file under the given paths (directories recursively, in name order) with its kind."""
    for p in paths:
        if not p.exists():
            raise SourceError(f"{p}: no such file or directory")
        if p.is_dir():
            for f in sorted(x for x in p.rglob("*") if x.is_file()):
                yield f, detect(f)
        else:
            yield p, detect(p)


def ingest_file(path: Path, kind: SourceKind, sink: Sink, *, strict: bool = False) -> None:
    """Ingest one source file of a known kind into a sink."""
    # Parsing and mapping make millions of short-lived acyclic objects; the collector's passes over the
    # parsed document and the buffered rows cost a quarter of an ingest (see gc_pause).
    with gc_paused():
        if kind is SourceKind.MAPPING:
            from medspace.connect.tabular import ingest_mapping

            ingest_mapping(path, sink)  # tells the sink where each data file ends itself
            return
        if kind in (SourceKind.FHIR_BUNDLE, SourceKind.FHIR_NDJSON):
            from medspace.connect.fhir import ingest_fhir_file

            ingest_fhir_file(path, sink, strict=strict)
        else:
            from medspace.connect.hl7v2 import ingest_hl7_file

            ingest_hl7_file(path, sink)
        sink.end_source()
