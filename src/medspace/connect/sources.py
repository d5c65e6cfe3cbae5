"""Recognise what a path holds (FHIR bundle, FHIR NDJSON, HL7 v2, a CSV/Parquet mapping) and ingest it."""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO, cast

import orjson

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
_BOM = b"\xef\xbb\xbf"

# Detection reads at most this much of a JSON or NDJSON file (decompressed), and at most this many
# NDJSON lines, so that recognising a directory of large exports stays cheap.
SNIFF_BYTES = 1 << 20
SNIFF_LINES = 200
_CHUNK = 64 << 10
# A "resourceType" key, top-level or of a resource inside (a Bundle's entries, a contained resource).
_RESOURCE_TYPE_KEY = re.compile(rb'"resourceType"\s*:\s*"')


def _why(e: Exception) -> str:
    # gzip's own messages quote the file's first bytes: say what is wrong without them.
    if isinstance(e, gzip.BadGzipFile | EOFError | zlib.error):
        return "not complete, valid gzip data"
    return (e.strerror if isinstance(e, OSError) else None) or type(e).__name__


def _open(path: Path) -> IO[bytes]:
    try:
        if path.name.lower().endswith(".gz"):
            return cast(IO[bytes], gzip.open(path, "rb"))
        return path.open("rb")
    except OSError as e:
        raise SourceError(f"{path}: cannot read: {_why(e)}") from None


def _read(fh: IO[bytes], path: Path, n: int, line: bool = False) -> bytes:
    try:
        return fh.readline(n) if line else fh.read(n)
    except (OSError, EOFError, zlib.error) as e:
        raise SourceError(f"{path}: cannot read: {_why(e)}") from None


def _head(path: Path, n: int = 4096) -> bytes:
    with _open(path) as fh:
        return bytes(_read(fh, path, n))


def _is_fhir_json(path: Path) -> bool:
    """A JSON document holding FHIR: it opens an object (or an array) and a "resourceType" key comes within
    the first SNIFF_BYTES, or, for an uncompressed file, within its last chunk (where a serialiser that
    sorts keys puts a Bundle's own type, after its entries)."""
    with _open(path) as fh:
        started = False
        tail = b""
        read = 0
        while read < SNIFF_BYTES:
            chunk = _read(fh, path, _CHUNK)
            if not chunk:
                return False
            if not started:
                if read == 0 and chunk.startswith(_BOM):
                    chunk = chunk[3:]
                lead = chunk.lstrip()
                if lead:
                    if lead[:1] not in (b"{", b"["):
                        return False
                    started = True
            read += len(chunk)
            if _RESOURCE_TYPE_KEY.search(tail + chunk):
                return True
            tail = chunk[-64:]  # a key split across two chunks
        if path.name.lower().endswith(".gz"):
            return False
        try:
            fh.seek(max(read, path.stat().st_size - _CHUNK))
        except OSError:
            return False
        return _RESOURCE_TYPE_KEY.search(_read(fh, path, _CHUNK)) is not None


def _is_fhir_ndjson(path: Path) -> bool:
    """NDJSON holding FHIR: among its first SNIFF_LINES lines (and SNIFF_BYTES), one is a JSON object with
    a resourceType; blank lines, a byte-order mark and broken lines before it are passed over (the ingest
    quarantines the broken ones)."""
    budget = SNIFF_BYTES
    with _open(path) as fh:
        for n in range(SNIFF_LINES):
            line = _read(fh, path, budget, line=True)
            if not line:
                return False
            budget -= len(line)
            if n == 0 and line.startswith(_BOM):
                line = line[3:]
            text = line.strip()
            if not text:
                continue
            if budget <= 0 and not line.endswith(b"\n"):
                # A line longer than what detection reads (a bundle, a note with its attachment): judged by
                # its opening, as it cannot be parsed whole here.
                return text.startswith(b"{") and _RESOURCE_TYPE_KEY.search(text) is not None
            try:
                doc = orjson.loads(text)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("resourceType"), str):
                return True
    return False


def detect(path: Path) -> SourceKind | None:
    """The kind of source a file is, from its name and content; None if it is not one."""
    name = path.name.lower()
    if name.endswith(".toml"):
        return SourceKind.MAPPING
    if name.endswith((".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")):
        return SourceKind.FHIR_NDJSON if _is_fhir_ndjson(path) else None
    if name.endswith((".json", ".json.gz")):
        return SourceKind.FHIR_BUNDLE if _is_fhir_json(path) else None
    head = _head(path, 64).lstrip(b"\x0b\r\n \t\xef\xbb\xbf")
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
        sink.end_source(str(path))
