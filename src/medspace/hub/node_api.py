"""The hub's routes for nodes: authenticated by the node's space certificate (mutual TLS), never by a password.

A node opens every connection (hospitals accept no inbound traffic) and long-polls::

    GET  /v1/node/assignments?wait=S   claim this node's queued assignments (signed task envelopes) and the
                                       contracts they name; waits up to S s
    POST /v1/node/assignments/{id}?wait=S   the node's answer: {"result": ...} or {"error": ..., "rule": ...}, with
                                       the node's audit events about it ("events", appended with the answer);
                                       with wait, the answer also carries the node's next assignments
    GET  /v1/node/consents?since=N&wait=S   consent changes for this hospital after sequence N (FHIR Consent)
    GET  /v1/node/contracts/{uid}      a contract of this hospital (ODRL agreement, state, revocation)
    POST /v1/node/audit                audit events the node records about its own work (actor must be the node)

The certificate names the hospital: a node can claim, answer and read only its own hospital's assignments,
consents and contracts. A request without a certificate of this space's CA, or with a revoked or expired one, is
refused at the TLS handshake; a certificate of another role (a witness) is refused here, 403, naming the rule.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from cryptography import x509
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field, ValidationError

from medspace.hub.accounts import Principal
from medspace.hub.consents import defaults_digest
from medspace.hub.errors import AuthError, BadRequest, Forbidden
from medspace.hub.service import Hub, offload, read
from medspace.policy.errors import CertificateRejected, PkiError
from medspace.policy.pki import Identity, Space

MAX_WAIT = 30.0


class PeerCache:
    """Node certificates this hub process verified already, so a request on a known certificate skips what cannot
    change (parsing, the CA's signature, the identity it names) and checks again only what can: its validity
    period, the revocation list's expiry and the certificate's absence from it. On any doubt the full check runs,
    and its refusal names the reason."""

    def __init__(self, size: int = 1024) -> None:
        self.size = size
        self._seen: dict[bytes, tuple[Identity, int, datetime, datetime]] = {}

    def known(self, space: Space, der: bytes) -> Identity | None:
        """The identity of a certificate verified before and still good now, or None (verify it in full)."""
        hit = self._seen.get(der)
        if hit is None:
            return None
        ident, serial, not_before, not_after = hit
        now = datetime.now(UTC)
        try:
            crl = space.crl()
        except PkiError:
            return None
        next_update = crl.next_update_utc
        if (not not_before <= now <= not_after or next_update is None or now > next_update
                or crl.get_revoked_certificate_by_serial_number(serial) is not None):
            self._seen.pop(der, None)
            return None
        return ident

    def verify(self, space: Space, der: bytes) -> Identity:
        """Verify a certificate in full (Space.verify_peer) and remember it."""
        ident = space.verify_peer(der)
        cert = x509.load_der_x509_certificate(der)
        if len(self._seen) >= self.size:
            self._seen.clear()
        self._seen[der] = (ident, cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc)
        return ident


async def node_peer(request: Request) -> Principal:
    """The node calling, from its TLS client certificate; refused unless it is a node of this space."""
    from medspace.hub.tls import peer_der

    hub: Hub = request.app.state.hub
    der = peer_der(request.scope)
    if der is None or hub.space is None:
        raise AuthError("node routes need the node's space certificate (mutual TLS)")
    peers: PeerCache = request.app.state.peers
    ident = peers.known(hub.space, der)
    if ident is None:
        try:
            ident = await run_in_threadpool(peers.verify, hub.space, der)
        except CertificateRejected as e:
            raise AuthError(f"certificate refused: {e}") from None
    if ident.role != "node":
        raise Forbidden("service.node-only", f"a {ident.role} certificate cannot use node routes")
    return Principal(name=ident.name, role="node", hospital=ident.name, service=True)


Node = Annotated[Principal, Depends(node_peer)]


class Answer(BaseModel):
    """A node's answer to an assignment: a result, or an error (with the rule, when the node refused it)."""

    result: Any = None
    error: str | None = Field(default=None, max_length=1000)
    rule: str | None = Field(default=None, max_length=200)
    events: list[dict[str, Any]] = Field(default_factory=list, max_length=100,
                                         description="the node's audit events about this work (actor: the node)")


class JSONBytes(Response):
    """A JSON answer serialised by orjson in one call: the node routes' answers (signed envelopes, ODRL agreements)
    are nested, and FastAPI's own encoding of a returned dict walks them in Python."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """orjson's bytes of ``content``."""
        return orjson.dumps(content)


def _answer(raw: bytes) -> Answer:
    """A node's answer parsed and checked in one pass (pydantic's JSON parser); BadRequest names the field."""
    try:
        return Answer.model_validate_json(raw or b"null")
    except ValidationError as e:
        errs = e.errors()
        where = ".".join(str(x) for x in errs[0].get("loc", ())) if errs else ""
        raise BadRequest(f"body{'.' + where if where else ''}: {errs[0].get('msg', 'invalid') if errs else 'invalid'}"
                         ) from None


class NodeEvents(BaseModel):
    """Audit events a node records (the ledger's JSON form of AuditEvent)."""

    events: list[dict[str, Any]] = Field(max_length=1000)


def router() -> APIRouter:
    """The node routes."""
    r = APIRouter(prefix="/v1/node", tags=["nodes"])

    async def poll(request: Request, hub: Hub, node: Principal, wait: float) -> dict[str, Any]:
        """Claim this node's queued assignments, waiting up to ``wait`` seconds for one to arrive."""
        deadline = asyncio.get_running_loop().time() + wait
        first = True
        while True:
            wake = hub.db.notifier.wakeup("assignments")
            # a node that went away while it waited must not claim: its assignments would wait out their lease
            if not first and await request.is_disconnected():
                return {"assignments": [], "contracts": {}}
            first = False
            # on SQLite a read in the event loop tells whether there is anything to claim, so a poll that finds
            # nothing costs no write transaction and no worker thread (after an answer, or a wake-up for another
            # node's task); on PostgreSQL both are a round trip, and the claim alone is one
            if hub.db.postgres or await read(hub, hub.has_queued, node.name):
                got = await offload(hub.claim_for_node, node.name)
            else:
                got = {"assignments": [], "contracts": {}}
            left = deadline - asyncio.get_running_loop().time()
            if got["assignments"] or left <= 0:
                return got
            await wake.wait(left)

    @r.get("/assignments", response_class=JSONBytes)
    async def assignments(request: Request, node: Node,
                          wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 0) -> JSONBytes:
        """Claim this node's queued assignments, waiting up to ``wait`` seconds for one to arrive."""
        return JSONBytes(await poll(request, request.app.state.hub, node, wait))

    @r.post("/assignments/{assignment_id}", response_class=JSONBytes,
            openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                "schema": Answer.model_json_schema()}}}})
    async def answer(request: Request, assignment_id: int, node: Node,
                     wait: Annotated[float | None, Query(ge=0, le=MAX_WAIT)] = None) -> JSONBytes:
        """The node's answer to one of its claimed assignments (once), with its audit events (body: Answer); with
        ``wait``, then the node's next assignments as ``GET /assignments?wait=`` gives them (one round trip per
        task, not two)."""
        hub: Hub = request.app.state.hub
        body = _answer(await request.body())
        status = await offload(lambda: hub.answer_assignment(
            node.name, assignment_id, result=body.result, error=body.error, rule=body.rule, events=body.events))
        if wait is None:
            return JSONBytes({"task_status": status})
        return JSONBytes({"task_status": status, **await poll(request, hub, node, wait)})

    @r.get("/consents", response_class=JSONBytes)
    async def consents(request: Request, node: Node, since: Annotated[int, Query(ge=0)] = 0,
                       defaults: Annotated[str, Query(max_length=64)] = "",
                       wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 0) -> JSONBytes:
        """Consent changes for this hospital after sequence ``since`` and its defaults (when their digest is not
        ``defaults``), waiting up to ``wait`` s for either to change."""
        hub: Hub = request.app.state.hub
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            wake = hub.db.notifier.wakeup("consents")
            seq, resources = await read(hub, hub.consents_since, node.name, since)
            current = await read(hub, hub.consent_defaults, node.name)
            digest = defaults_digest(current)
            left = deadline - asyncio.get_running_loop().time()
            if resources or digest != defaults or left <= 0:
                return JSONBytes({"seq": seq, "resources": resources, "defaults": current, "defaults_digest": digest})
            await wake.wait(left)

    @r.get("/hub-certificate")
    def hub_certificate(request: Request, _node: Node) -> Response:
        """The hub's certificate (PEM), whose key signs task envelopes; nodes check it against the space CA."""
        hub: Hub = request.app.state.hub
        assert hub.space is not None
        return Response(hub.space.participant(hub.config.name).cert.read_bytes(), media_type="application/x-pem-file")

    @r.get("/contracts/{uid}")
    def contract(request: Request, uid: str, node: Node) -> dict[str, Any]:
        """A contract of this node's hospital."""
        hub: Hub = request.app.state.hub
        return hub.contract_for_node(node.name, uid)

    @r.post("/audit")
    def audit(request: Request, body: NodeEvents, node: Node) -> dict[str, Any]:
        """Record the node's own audit events; every event's actor must be this node."""
        hub: Hub = request.app.state.hub
        return {"indices": hub.record_node_events(node.name, body.events)}

    return r
