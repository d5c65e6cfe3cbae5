"""Pulling from a real (small, loopback) FHIR REST server with paged searchset Bundles."""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from medspace.connect.base import MemorySink
from medspace.connect.errors import ConnectError, Reason, SourceError
from medspace.connect.fhir_rest import PullProgress, pull_fhir_server
from medspace.connect.smart_auth import (
    ASSERTION_TYPE,
    AuthError,
    BearerToken,
    SmartBackendAuth,
    credentials_for,
    load_signing_key,
)

CLIENT_ID = "medspace-node-a"
MEDSPACE = shutil.which("medspace", path=str(Path(sys.executable).parent)) or "medspace"


def _run(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """The `medspace` command as a real process, without any token the developer's shell may hold."""
    environ = {k: v for k, v in os.environ.items() if k != "MEDSPACE_FHIR_TOKEN"} | env
    return subprocess.run([MEDSPACE, *args], capture_output=True, text=True, timeout=120, env=environ)


@dataclass
class FakeFhir:
    """What the fake server holds, how it misbehaves, and what it was asked.

    It is also a SMART Backend Services authorization server: it publishes its smart-configuration and the
    client's JWKS, verifies client assertions with PyJWT and issues short-lived tokens; with `auth_required`,
    FHIR searches without a valid token get 401.
    """

    resources: list[dict[str, Any]]
    fail_types: set[str] = field(default_factory=set)
    relative_links: bool = False
    foreign_next: bool = False
    port: int = 0
    requests: list[tuple[str, dict[str, list[str]], str]] = field(default_factory=list)
    # Authorization
    auth_required: bool = False
    tokens: dict[str, float] = field(default_factory=dict)  # token -> monotonic expiry
    token_uses: dict[str, int] = field(default_factory=dict)
    revoke_after_uses: int | None = None  # a token is refused after this many uses, whatever it said
    token_lifetime: float = 300.0
    smart_config: bool = True
    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    jwks_client: Any = None
    seen_jti: set[str] = field(default_factory=set)
    assertions: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)  # (header, claims)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    token_refusals: list[str] = field(default_factory=list)
    unauthorized: int = 0
    page_delay: float = 0.0

    @property
    def token_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/auth/token"

    def issue(self) -> str:
        token = secrets.token_urlsafe(16)
        self.tokens[token] = time.monotonic() + self.token_lifetime
        return token

    def authorized(self, header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        token = header[7:]
        if time.monotonic() >= self.tokens.get(token, -math.inf):
            return False
        self.token_uses[token] = self.token_uses.get(token, 0) + 1
        return self.revoke_after_uses is None or self.token_uses[token] <= self.revoke_after_uses

    def check_assertion(self, form: dict[str, str]) -> str | None:
        """Why the token request is refused (an RFC 6749 error code), or None."""
        if form.get("grant_type") != "client_credentials":
            return "unsupported_grant_type"
        if form.get("client_assertion_type") != ASSERTION_TYPE or "client_assertion" not in form:
            return "invalid_request"
        assertion = form["client_assertion"]
        try:
            header = jwt.get_unverified_header(assertion)
            key = self.jwks_client.get_signing_key_from_jwt(assertion)
            claims = jwt.decode(assertion, key.key, algorithms=["RS384", "ES384"], audience=self.token_url,
                                issuer=CLIENT_ID, options={"require": ["iss", "sub", "aud", "exp", "jti"]})
        except jwt.PyJWTError as e:
            self.token_refusals.append(type(e).__name__)
            return "invalid_client"
        if claims["sub"] != CLIENT_ID or header.get("typ") != "JWT" or claims["exp"] > time.time() + 300:
            return "invalid_client"
        if claims["jti"] in self.seen_jti:  # a replayed assertion
            self.token_refusals.append("replayed jti")
            return "invalid_client"
        self.seen_jti.add(claims["jti"])
        if not form.get("scope", "").startswith("system/"):
            return "invalid_scope"
        self.assertions.append((header, claims))
        return None


def _handler(state: FakeFhir) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode("ascii")).items()}
            if urlsplit(self.path).path != "/auth/token":
                self._send(404, {"error": "not_found"})
                return
            state.token_forms.append(form)
            error = state.check_assertion(form)
            if error is not None:
                self._send(401 if error == "invalid_client" else 400, {"error": error,
                                                                       "error_description": "refused"})
                return
            self._send(200, {"access_token": state.issue(), "token_type": "bearer",
                             "expires_in": state.token_lifetime, "scope": form["scope"]})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            if url.path == "/fhir/.well-known/smart-configuration" and state.smart_config:
                self._send(200, {
                    "token_endpoint": state.token_url,
                    "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                    "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
                    "grant_types_supported": ["client_credentials"],
                    "scopes_supported": ["system/*.rs"],
                    "capabilities": ["client-confidential-asymmetric", "permission-v2"],
                })
                return
            if url.path == "/auth/jwks":
                self._send(200, state.jwks)
                return
            state.requests.append((url.path, query, self.headers.get("Accept", "")))
            if state.auth_required and not state.authorized(self.headers.get("Authorization")):
                state.unauthorized += 1
                self._send(401, {"resourceType": "OperationOutcome"})
                return
            if state.page_delay:
                time.sleep(state.page_delay)
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
    # The authorization server reads the client's registered keys from the JWKS it publishes.
    state.jwks_client = jwt.PyJWKClient(f"http://127.0.0.1:{state.port}/auth/jwks", cache_keys=False,
                                        cache_jwk_set=False)
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
    base, state = server
    cmd = ["pull", base, "--create", "--store", str(tmp_path / "n.duckdb"), "--json"]
    r = _run(cmd)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["tables"]["patient"]["new"] == 7 and rep["tables"]["observation"]["new"] == 14
    assert rep["quarantined"] == {"wrong_type": 1}
    state.fail_types = {"Condition"}
    failed = _run(cmd)
    assert failed.returncode == 2 and failed.stderr.startswith("error:")
    assert len(failed.stderr.strip().splitlines()) == 1


# --- progress ---------------------------------------------------------------------------------------------------


def test_progress_hears_every_page_and_every_type(server: tuple[str, FakeFhir]) -> None:
    base, _ = server
    seen: list[PullProgress] = []
    pull_fhir_server(base, MemorySink(), resource_types=["Patient", "Observation"], page_size=4,
                     progress=seen.append)
    assert [(p.resource_type, p.types_done, p.pages, p.resources) for p in seen] == [
        ("Patient", 0, 1, 4), ("Patient", 0, 2, 7), ("Patient", 1, 2, 7),
        ("Observation", 1, 3, 11), ("Observation", 1, 4, 15), ("Observation", 1, 5, 19),
        ("Observation", 1, 6, 21), ("Observation", 2, 6, 21),
    ]
    assert all(p.types_total == 2 for p in seen)


# --- credentials ------------------------------------------------------------------------------------------------


def _write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, mode: int = 0o600) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(mode)
    return path


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def smart(server: tuple[str, FakeFhir], rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> tuple[str, FakeFhir, Path]:
    """The server requiring SMART tokens, with the client's RSA key registered; the key file's path."""
    base, state = server
    key_file = _write_key(tmp_path / "client.pem", rsa_key)
    state.jwks = load_signing_key(key_file).public_jwks()
    state.auth_required = True
    return base, state, key_file


def test_static_bearer_token(server: tuple[str, FakeFhir]) -> None:
    base, state = server
    state.auth_required = True
    state.tokens["s3cr3t-static-token"] = math.inf
    sink = MemorySink()
    pull_fhir_server(base, sink, resource_types=["Patient"], page_size=3,
                     auth=credentials_for(base, environ={"MEDSPACE_FHIR_TOKEN": "s3cr3t-static-token"}))
    assert len(sink.rows["patient"]) == 7 and state.unauthorized == 0
    with pytest.raises(AuthError, match=r"requires authentication \(HTTP 401\)") as e:
        pull_fhir_server(base, MemorySink(), resource_types=["Patient"])
    assert len(str(e.value).splitlines()) == 1
    with pytest.raises(AuthError, match=r"refused the credentials \(HTTP 401\)") as e:
        pull_fhir_server(base, MemorySink(), resource_types=["Patient"], auth=BearerToken("wrong-token", "test"))
    assert "wrong-token" not in str(e.value)


def test_medspace_pull_with_token_from_env_and_from_file(server: tuple[str, FakeFhir], tmp_path: Path) -> None:
    base, state = server
    token = "tok-" + secrets.token_urlsafe(12)
    state.auth_required = True
    state.tokens[token] = math.inf
    # The default variable, then a named one.
    r = _run(["pull", base, "--create", "--store", str(tmp_path / "a.duckdb"), "--types", "Patient", "--json"],
             MEDSPACE_FHIR_TOKEN=token)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tables"]["patient"]["new"] == 7
    r = _run(["pull", base, "--store", str(tmp_path / "a.duckdb"), "--types", "Patient", "--json",
              "--token-env", "HOSPITAL_FHIR_TOKEN"], HOSPITAL_FHIR_TOKEN=token)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["tables"]["patient"]["unchanged"] == 7
    # A file only its owner may read.
    token_file = tmp_path / "fhir.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    cmd = ["pull", base, "--create", "--store", str(tmp_path / "b.duckdb"), "--types", "Patient,Condition",
           "--token-file", str(token_file)]
    r = _run(cmd)
    assert r.returncode == 0, r.stderr
    assert "patient" in r.stdout and token not in r.stdout + r.stderr
    # The same file readable by others is refused, in one line that does not hold the token.
    token_file.chmod(0o644)
    r = _run(cmd)
    assert r.returncode == 2 and r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert "group or others" in r.stderr and token not in r.stderr


def test_smart_backend_services_pull(smart: tuple[str, FakeFhir, Path]) -> None:
    base, state, key_file = smart
    sink = MemorySink()
    key = load_signing_key(key_file)
    with SmartBackendAuth(base, CLIENT_ID, key) as auth:
        pull_fhir_server(base, sink, auth=auth, page_size=3)
        assert auth.token_url == state.token_url  # discovered from .well-known/smart-configuration
        assert auth.tokens_fetched == 1
    counts = {t: len(rows) for t, rows in sink.rows.items()}
    assert counts == {"patient": 7, "encounter": 7, "condition": 7, "observation": 14, "medication": 1}
    assert state.unauthorized == 0
    # The server verified one assertion: signed RS384 with the registered key, the claims SMART asks for.
    [(header, claims)] = state.assertions
    assert header == {"alg": "RS384", "kid": key.kid, "typ": "JWT"}
    assert claims["iss"] == claims["sub"] == CLIENT_ID and claims["aud"] == state.token_url
    assert 0 < claims["exp"] - time.time() <= 300
    [form] = state.token_forms
    assert form["grant_type"] == "client_credentials" and form["scope"] == "system/*.rs"
    assert form["client_assertion_type"] == ASSERTION_TYPE


def test_smart_es384_key_and_given_token_url(server: tuple[str, FakeFhir], tmp_path: Path) -> None:
    base, state = server
    key_file = _write_key(tmp_path / "ec.pem", ec.generate_private_key(ec.SECP384R1()))
    key = load_signing_key(key_file, kid="node-a-2026")
    state.jwks = key.public_jwks()
    state.auth_required = True
    state.smart_config = False  # no discovery: the token URL is given
    sink = MemorySink()
    with SmartBackendAuth(base, CLIENT_ID, key, token_url=state.token_url, scope="system/Patient.rs") as auth:
        pull_fhir_server(base, sink, resource_types=["Patient"], auth=auth)
    assert len(sink.rows["patient"]) == 7
    [(header, _)] = state.assertions
    assert header["alg"] == "ES384" and header["kid"] == "node-a-2026"
    assert state.token_forms[0]["scope"] == "system/Patient.rs"
    # Without a token URL and without a smart-configuration: one line saying what to give.
    with SmartBackendAuth(base, CLIENT_ID, key) as auth, pytest.raises(AuthError, match="give the token URL"):
        auth.access_token()


def test_expiring_token_is_renewed_mid_pull(smart: tuple[str, FakeFhir, Path]) -> None:
    base, state, key_file = smart
    state.token_lifetime = 1.0
    state.page_delay = 0.12
    sink = MemorySink()
    with SmartBackendAuth(base, CLIENT_ID, load_signing_key(key_file)) as auth:
        pull_fhir_server(base, sink, auth=auth, page_size=2)
        fetched = auth.tokens_fetched
    # ~23 pages at >= 0.12 s each outlive a 1 s token at least twice; every page still got through.
    assert fetched >= 3 and len(state.assertions) == fetched
    assert len(sink.rows["observation"]) == 14 and len(sink.rows["patient"]) == 7
    assert len(state.seen_jti) == fetched  # a fresh assertion (new jti) each time


def test_token_refused_early_is_renewed_once(smart: tuple[str, FakeFhir, Path]) -> None:
    base, state, key_file = smart
    state.revoke_after_uses = 3  # the server drops tokens long before the expires_in it announced
    sink = MemorySink()
    with SmartBackendAuth(base, CLIENT_ID, load_signing_key(key_file)) as auth:
        pull_fhir_server(base, sink, auth=auth, page_size=2)
        fetched = auth.tokens_fetched
    assert state.unauthorized == fetched - 1 >= 5
    assert len(sink.rows["observation"]) == 14
    # A server that refuses every token: renewed once, then one clear line.
    state.revoke_after_uses = 0
    with SmartBackendAuth(base, CLIENT_ID, load_signing_key(key_file)) as auth, \
            pytest.raises(AuthError, match=r"refused the credentials \(HTTP 401\)"):
        pull_fhir_server(base, MemorySink(), auth=auth)


def test_medspace_pull_smart_and_a_wrong_key(smart: tuple[str, FakeFhir, Path], tmp_path: Path) -> None:
    base, state, key_file = smart
    store = tmp_path / "n.duckdb"
    r = _run(["pull", base, "--create", "--store", str(store), "--json", "--types", "Patient,Observation",
              "--smart-client-id", CLIENT_ID, "--smart-key", str(key_file)])
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["tables"]["patient"]["new"] == 7 and rep["tables"]["observation"]["new"] == 14
    # A key the server does not know: refused in one line, without the assertion, before the store is touched.
    other = _write_key(tmp_path / "other.pem", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    other_store = tmp_path / "other.duckdb"
    r = _run(["pull", base, "--create", "--store", str(other_store),
              "--smart-client-id", CLIENT_ID, "--smart-key", str(other)])
    assert r.returncode == 2 and r.stderr.startswith("error:"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "invalid_client" in r.stderr and f"refused client {CLIENT_ID}" in r.stderr
    assert "eyJ" not in r.stderr and "Traceback" not in r.stderr  # no JWT, no traceback
    assert not other_store.exists()
    assert state.token_refusals[-1] == "PyJWKClientError"  # the server saw an unknown key id
    # The registered key under another key id is refused too.
    with SmartBackendAuth(base, CLIENT_ID, load_signing_key(key_file, kid="not-registered")) as auth, \
            pytest.raises(AuthError, match="invalid_client"):
        auth.access_token()
    # A key file others may read: one line, no key material.
    key_file.chmod(0o640)
    r = _run(["pull", base, "--create", "--store", str(other_store), "--smart-client-id", CLIENT_ID, "--smart-key",
              str(key_file)])
    assert r.returncode == 2 and "group or others" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "PRIVATE KEY" not in r.stderr


def test_replayed_or_forged_assertions_are_refused_by_the_server(smart: tuple[str, FakeFhir, Path]) -> None:
    # The loopback authorization server really checks: a replayed jti and a wrong audience are refused.
    base, state, key_file = smart
    auth = SmartBackendAuth(base, CLIENT_ID, load_signing_key(key_file), token_url=state.token_url)
    with httpx.Client(timeout=5) as http:
        form = {"grant_type": "client_credentials", "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": auth.client_assertion(), "scope": "system/*.rs"}
        assert http.post(state.token_url, data=form).status_code == 200
        assert http.post(state.token_url, data=form).json() == {"error": "invalid_client",
                                                                "error_description": "refused"}
        form["client_assertion"] = auth.client_assertion(audience="https://elsewhere.example/token")
        assert http.post(state.token_url, data=form).status_code == 401
    assert state.token_refusals == ["replayed jti", "InvalidAudienceError"]
    auth.close()


def test_unreachable_token_endpoint_and_malformed_urls(smart: tuple[str, FakeFhir, Path], tmp_path: Path) -> None:
    base, _, key_file = smart
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with SmartBackendAuth(base, CLIENT_ID, load_signing_key(key_file),
                          token_url=f"http://127.0.0.1:{port}/token") as auth, \
            pytest.raises(AuthError, match="cannot reach the SMART token endpoint"):
        auth.access_token()
    with pytest.raises(AuthError, match="plain http"):
        credentials_for(base.replace("127.0.0.1", "fhir.example.org"), environ={"MEDSPACE_FHIR_TOKEN": "t"})
    for bad in ("http://[bad", "fhir.example.org/r4", "ftp://fhir.example.org/", "https:///r4"):
        with pytest.raises(ConnectError, match="FHIR base URL"):
            pull_fhir_server(bad, MemorySink())
    r = _run(["pull", "http://[bad", "--create", "--store", str(tmp_path / "x.duckdb")])
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "not a URL" in r.stderr and not (tmp_path / "x.duckdb").exists()
