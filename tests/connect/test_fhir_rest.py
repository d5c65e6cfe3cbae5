"""Pulling from a real (small, loopback) FHIR REST server with paged searchset Bundles."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from medspace.connect.base import MemorySink
from medspace.connect.errors import Reason, SourceError
from medspace.connect.fhir_rest import pull_fhir_server


@dataclass
class FakeFhir:
    """What the fake server holds, how it misbehaves, and what it was asked."""

    resources: list[dict[str, Any]]
    fail_types: set[str] = field(default_factory=set)
    relative_links: bool = False
    foreign_next: bool = False
    port: int = 0
    requests: list[tuple[str, dict[str, list[str]], str]] = field(default_factory=list)


def _handler(state: FakeFhir) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            state.requests.append((url.path, query, self.headers.get("Accept", "")))
            rt = url.path.rsplit("/", 1)[-1]
            if rt in state.fail_types:
                self._send(500, {"resourceType": "OperationOutcome"})
                return
            count = int(query.get("_count", ["10"])[0])
            offset = int(query.get("_offset", ["0"])[0])
            matches = [r for r in state.resources if r["resourceType"] == rt]
            if rt == "MedicationRequest" and query.get("_include") == ["MedicationRequest:medication"]:
                included = [r for r in state.resources if r["resourceType"] == "Medication"]
            else:
                included = []
            page = matches[offset:offset + count]
            bundle: dict[str, Any] = {
                "resourceType": "Bundle", "type": "searchset", "total": len(matches),
                "link": [{"relation": "self", "url": self.path}],
                "entry": [{"fullUrl": f"http://127.0.0.1/fhir/{rt}/{r.get('id')}", "resource": r,
                           "search": {"mode": "match"}} for r in page]
                + [{"resource": r, "search": {"mode": "include"}} for r in included],
            }
            if offset + count < len(matches):
                nxt = f"{url.path}?_count={count}&_offset={offset + count}"
                if state.foreign_next:
                    nxt = f"http://example.org{nxt}"
                elif not state.relative_links:
                    nxt = f"http://127.0.0.1:{state.port}{nxt}"
                bundle["link"].append({"relation": "next", "url": nxt})
            self._send(200, bundle)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = orjson.dumps(body)
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def _resources() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(7):
        pid = f"p{i}"
        out.append({"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1960-01-01"})
        out.append({"resourceType": "Encounter", "id": f"e{i}", "status": "finished",
                    "class": {"code": "AMB"}, "subject": {"reference": f"Patient/{pid}"}})
        out.append({"resourceType": "Condition", "id": f"c{i}", "subject": {"reference": f"Patient/{pid}"},
                    "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I10"}]}})
        for j in range(2):
            out.append({"resourceType": "Observation", "id": f"o{i}-{j}", "status": "final",
                        "subject": {"reference": f"Patient/{pid}"},
                        "code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]},
                        "valueQuantity": {"value": 5.5 + j, "unit": "mmol/L"}})
    out.append({"resourceType": "Medication", "id": "med1",
                "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "C09AA03"}]}})
    out.append({"resourceType": "MedicationRequest", "id": "mr1", "status": "active", "intent": "order",
                "subject": {"reference": "Patient/p0"}, "medicationReference": {"reference": "Medication/med1"}})
    # One bad entry on a page: an ICD-10 code where a CodeableConcept belongs.
    out.append({"resourceType": "Condition", "id": "bad", "subject": {"reference": "Patient/p1"}, "code": "I10"})
    return out


@pytest.fixture
def server() -> Iterator[tuple[str, FakeFhir]]:
    state = FakeFhir(_resources())
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.port = httpd.server_port
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{state.port}/fhir/", state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def test_pull_pages_through_every_type(server: tuple[str, FakeFhir]) -> None:
    base, state = server
    sink = MemorySink()
    pull_fhir_server(base, sink, page_size=3)
    counts = {t: len(rows) for t, rows in sink.rows.items()}
    assert counts == {"patient": 7, "encounter": 7, "condition": 7, "observation": 14, "medication": 1}
    [med] = sink.rows["medication"]
    assert (med["code"], med["code_system"], med["patient_id"]) == ("C09AA03", "ATC", "p0")
    # The bad Condition is quarantined alone, with the page it came from as its source.
    [q] = sink.quarantined
    assert q.reason == Reason.WRONG_TYPE and q.connector == "fhir"
    assert q.source.startswith(f"{base.rstrip('/')}/Condition?") and "_offset=6" in q.source
    assert orjson.loads(q.raw)["id"] == "bad"
    # Paging happened, with the requested page size and the FHIR media type.
    observation_pages = [r for r in state.requests if r[0] == "/fhir/Observation"]
    assert len(observation_pages) == 5
    assert observation_pages[0][1]["_count"] == ["3"]
    assert all(accept == "application/fhir+json" for _, _, accept in state.requests)
    # Types with no hits (Procedure, AllergyIntolerance, DocumentReference) are empty bundles.
    assert sink.skipped["Bundle"] == 3 and sink.skipped["Medication"] == 1


def test_relative_next_links_and_since(server: tuple[str, FakeFhir]) -> None:
    base, state = server
    state.relative_links = True
    sink = MemorySink()
    with httpx.Client(timeout=5) as client:
        pull_fhir_server(base, sink, resource_types=["Observation"], page_size=4, client=client,
                         since="2024-01-01T00:00:00Z")
        assert not client.is_closed  # a caller's client is the caller's to close
    assert len(sink.rows["observation"]) == 14
    first = state.requests[0][1]
    assert first["_lastUpdated"] == ["ge2024-01-01T00:00:00Z"]


def test_server_error_raises_source_error(server: tuple[str, FakeFhir]) -> None:
    base, state = server
    state.fail_types = {"Condition"}
    sink = MemorySink()
    with pytest.raises(SourceError) as e:
        pull_fhir_server(base, sink, resource_types=["Patient", "Condition"])
    assert "500" in str(e.value) and "/fhir/Condition" in str(e.value)
    assert len(sink.rows["patient"]) == 7


def test_next_link_to_another_server_is_refused(server: tuple[str, FakeFhir]) -> None:
    base, state = server
    state.foreign_next = True
    with pytest.raises(SourceError, match="another server"):
        pull_fhir_server(base, MemorySink(), resource_types=["Observation"], page_size=5)


def test_unreachable_server_raises_source_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceError, match="cannot reach"):
        pull_fhir_server(f"http://127.0.0.1:{port}/fhir", MemorySink(), resource_types=["Patient"])


def test_medspace_pull_command_into_a_store(server: tuple[str, FakeFhir], tmp_path: Path) -> None:
    # The command, as a real process, against the real server on loopback.
    import json
    import shutil
    import subprocess
    import sys

    base, state = server
    medspace = shutil.which("medspace", path=str(Path(sys.executable).parent)) or "medspace"
    cmd = [medspace, "pull", base, "--store", str(tmp_path / "n.duckdb"), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["tables"]["patient"]["new"] == 7 and rep["tables"]["observation"]["new"] == 14
    assert rep["quarantined"] == {"wrong_type": 1}
    state.fail_types = {"Condition"}
    failed = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 2 and failed.stderr.startswith("error:")
    assert len(failed.stderr.strip().splitlines()) == 1
