"""The hub's HTTP API (FastAPI; OpenAPI at ``/openapi.json``, docs at ``/docs``).

People authenticate with a bearer token from ``POST /v1/auth/token``; nodes and witnesses with their space
certificate over mutual TLS (:mod:`medspace.hub.tls`). Every answer that refuses says why in one JSON object,
``{"error": ..., "rule": ...}``: 400 malformed, 401 not authenticated, 403 refused by a rule (named), 404 unknown,
409 conflicting with the current state. No answer carries a password hash, a key or a patient's pseudonym other
than the caller's own.

The audit log is mounted read-only at ``/v1/audit`` (the ledger's API: checkpoints, entries, proofs, bundles), so
a regulator verifies what the hub did with the same tools as any log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from medspace.hub.accounts import Principal, UserRole
from medspace.hub.errors import AuthError, BadRequest, Conflict, Forbidden, HubError, NotFound
from medspace.hub.node_api import JSONBytes, PeerCache
from medspace.hub.node_api import router as node_router
from medspace.hub.service import WORKER_THREADS, Hub, offload, read
from medspace.ledger.api import create_app as ledger_app
from medspace.ledger.entry import find

_STATUS: list[tuple[type[HubError], int]] = [(AuthError, 401), (Forbidden, 403), (NotFound, 404), (Conflict, 409),
                                             (BadRequest, 400)]


class TokenRequest(BaseModel):
    """Sign-in with a username and a password."""

    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class TokenAnswer(BaseModel):
    """A bearer token and when it expires (RFC 3339)."""

    access_token: str
    token_type: str = "bearer"
    expires_at: str


class NewUser(BaseModel):
    """An account to create."""

    username: str = Field(max_length=64)
    role: str
    password: str = Field(max_length=1024)
    hospital: str | None = None
    pseudonym: str | None = Field(default=None, description="a patient's linkage pseudonym (hex), from their node")


class UserView(BaseModel):
    """An account as others may see it."""

    username: str
    role: str
    hospital: str | None = None
    disabled: bool = False


class NewParticipant(BaseModel):
    """A hub, node or witness to register."""

    name: str = Field(max_length=64)
    role: str
    region: str | None = None
    packs: list[str] = ["sensitivity"]
    safeguards: list[str] = []


class Decision(BaseModel):
    """A steward's decision on an application for their hospital."""

    outcome: str = Field(description="approve, restrict or refuse")
    reason: str = Field(default="", max_length=1000)
    restrictions: dict[str, Any] = Field(default_factory=dict,
                                         description="fields_removed, operations_removed, end, min_cell_size, ...")


class Revocation(BaseModel):
    """Why a contract is revoked."""

    reason: str = Field(max_length=500)


class NewTask(BaseModel):
    """A task under contracts: the operation, its parameters, the purpose, one contract per hospital."""

    kind: str = "count"
    params: dict[str, Any] = Field(default_factory=dict)
    purpose: str = "HRESCH"
    contracts: dict[str, str] = Field(description="hospital -> contract uid")
    completion: str = Field(default="all", description="all: every hospital must answer; available: those that do")
    deadline_s: float | None = Field(default=None, gt=0, le=3600)


class SimpleConsent(BaseModel):
    """A patient's consent at one hospital, in a few words."""

    permit: list[str] = Field(default_factory=list, description="purposes permitted, e.g. HRESCH")
    categories: list[str] = Field(default_factory=list, description="data categories covered (empty: all)")
    deny_categories: list[str] = Field(default_factory=list, description="categories excepted")


async def person(request: Request) -> Principal:
    """The signed-in person making a request (bearer token), as their account says now."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("sign in first: send Authorization: Bearer <token> from POST /v1/auth/token")
    hub: Hub = request.app.state.hub
    return await read(hub, hub.authenticate, token.strip())


Person = Annotated[Principal, Depends(person)]


def create_app(hub: Hub) -> FastAPI:
    """The hub's API over one :class:`Hub`."""
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Sync routes run on worker threads. The hub's work is short and CPU-bound under one GIL: a few threads
        # keep the cores busy, while anyio's default of 40 makes them fight over the GIL and adds latency.
        anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS
        yield

    app = FastAPI(lifespan=lifespan, title="medspace hub", version="1",
                  description="Coordinator of a trusted medical data space: accounts, applications and contracts, "
                              "consent, task dispatch and the audit log. Usable, not visible.")
    app.state.hub = hub
    app.state.peers = PeerCache()

    @app.exception_handler(HubError)
    async def _hub_error(_req: Request, exc: HubError) -> JSONResponse:
        status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
        body: dict[str, Any] = {"error": str(exc)}
        if isinstance(exc, Forbidden):
            body["rule"] = exc.rule
            if exc.decision is not None:
                body["decision"] = exc.decision
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(body, status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        # name the field, never echo the value (it may be a password)
        errs = exc.errors()
        where = ".".join(str(x) for x in errs[0].get("loc", ())) if errs else "body"
        msg = errs[0].get("msg", "invalid") if errs else "invalid"
        return JSONResponse({"error": f"{where}: {msg}"}, status_code=400)

    @app.get("/healthz", tags=["service"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.post("/v1/auth/token", response_model=TokenAnswer, tags=["accounts"])
    def token(body: TokenRequest) -> TokenAnswer:
        """Sign in: a short-lived bearer token for a username and password."""
        tok, exp = hub.login(body.username, body.password)
        return TokenAnswer(access_token=tok, expires_at=exp.isoformat())

    @app.get("/v1/me", tags=["accounts"])
    async def me(who: Person) -> dict[str, Any]:
        """The caller's account."""
        return {"username": who.name, "role": who.role, "hospital": who.hospital}

    @app.post("/v1/users", response_model=UserView, status_code=201, tags=["accounts"])
    def create_user(body: NewUser, who: Person) -> UserView:
        """Create an account (admins: any; stewards: clinicians and stewards of their hospital)."""
        p = hub.create_user(who, username=body.username, role=body.role, password=body.password,
                            hospital=body.hospital, pseudonym=body.pseudonym)
        return UserView(username=p.name, role=p.role, hospital=p.hospital)

    @app.get("/v1/users", response_model=list[UserView], tags=["accounts"])
    def users(who: Person) -> list[dict[str, Any]]:
        """Accounts: all for an admin, a hospital's for its steward."""
        return hub.users(who)

    @app.post("/v1/participants", status_code=201, tags=["space"])
    def register(body: NewParticipant, who: Person) -> dict[str, str]:
        """Register a hub, node or witness (admin)."""
        hub.register_participant(who, name=body.name, role=body.role, region=body.region, packs=body.packs,
                                 safeguards=body.safeguards)
        return {"name": body.name, "role": body.role}

    @app.get("/v1/hospitals", tags=["space"])
    def hospitals(_who: Person) -> list[dict[str, Any]]:
        """The hospitals of the space."""
        return hub.hospitals()

    @app.get("/v1/audit/mine", tags=["audit"])
    def audit_mine(who: Person) -> dict[str, Any]:
        """A patient's own audit entries: every entry whose subject commitment opens to their pseudonym."""
        if who.role != UserRole.PATIENT or not who.pseudonym:
            raise hub.refuse(who, "audit.patient-own-entries", "only a patient lists the entries about them",
                             resource="audit:subject")
        indices = find(who.pseudonym, hub.salts, hub.log.store)
        entries = [hub.log.store.entry(i) for i in indices] if indices else []
        return {"indices": indices, "entries": [_entry_json(e) for e in entries]}

    # --- applications and contracts ----------------------------------------------------------------------

    @app.post("/v1/applications", status_code=201, tags=["applications"])
    def apply(body: dict[str, Any], who: Person) -> dict[str, Any]:
        """File a data-use application (purpose, DUO codes, fields, operations, period, region, hospitals)."""
        return hub.submit_application(who, body)

    @app.get("/v1/applications", tags=["applications"])
    async def applications(who: Person) -> list[dict[str, Any]]:
        """Applications the caller takes part in, one row per hospital with its negotiation state."""
        return await read(hub, hub.applications_for, who)

    @app.get("/v1/applications/{app_id}", tags=["applications"])
    def application(app_id: str, who: Person) -> dict[str, Any]:
        """An application, its negotiations and decisions."""
        return hub.application_view(who, app_id)

    @app.post("/v1/applications/{app_id}/decisions/{hospital}", tags=["applications"])
    def decide_on(app_id: str, hospital: str, body: Decision, who: Person) -> dict[str, Any]:
        """A steward's decision for their hospital: approve, restrict (an offer) or refuse."""
        return hub.decide_application(who, app_id, hospital, body.outcome, reason=body.reason,
                                      restrictions=body.restrictions)

    @app.get("/v1/contracts/{uid}", tags=["contracts"])
    async def contract(uid: str, who: Person) -> dict[str, Any]:
        """A contract: the ODRL agreement, its negotiation and state."""
        return await read(hub, hub.contract_view, who, uid)

    @app.post("/v1/contracts/{uid}/accept", tags=["contracts"])
    def accept(uid: str, who: Person) -> dict[str, Any]:
        """The applicant accepts a steward's restricted offer."""
        return hub.accept_offer(who, uid)

    @app.post("/v1/contracts/{uid}/revoke", tags=["contracts"])
    def revoke(uid: str, body: Revocation, who: Person) -> dict[str, Any]:
        """Revoke a contract (its hospital's steward or an admin); its running tasks end."""
        return hub.revoke_contract(who, uid, body.reason)

    # --- tasks ----------------------------------------------------------------------------------------

    @app.post("/v1/tasks", status_code=202, tags=["tasks"])
    async def submit(body: NewTask, who: Person) -> dict[str, Any]:
        """Submit a task under contracts; every hospital's part is checked, then dispatched to its node."""
        return await offload(lambda: hub.submit_task(
            who, kind=body.kind, params=body.params, purpose=body.purpose, contracts=body.contracts,
            completion=body.completion, deadline_s=body.deadline_s))

    @app.post("/v1/tasks/check", tags=["tasks"])
    async def check(body: NewTask, who: Person) -> dict[str, Any]:
        """What submitting this task would meet, without submitting it: per hospital allowed or refused, the rule
        that refused it and every applied rule (contract constraints, compliance packs) with its citation."""
        return await offload(lambda: hub.check_task(who, kind=body.kind, params=body.params, purpose=body.purpose,
                                                    contracts=body.contracts))

    @app.get("/v1/tasks/{task_id}", tags=["tasks"])
    async def task(task_id: str, who: Person, wait: Annotated[float, Query(ge=0, le=60)] = 0) -> dict[str, Any]:
        """A task's status and result; waits up to ``wait`` seconds for it to finish."""
        deadline = asyncio.get_running_loop().time() + wait
        while True:
            wake = hub.db.notifier.wakeup("tasks")
            view = await read(hub, hub.task_view, who, task_id)
            left = deadline - asyncio.get_running_loop().time()
            if view["status"] in ("done", "failed", "cancelled") or left <= 0:
                return view
            await wake.wait(left)

    # --- consent --------------------------------------------------------------------------------------

    @app.put("/v1/consents", tags=["consent"])
    async def put_consent(resource: dict[str, Any], who: Person) -> dict[str, Any]:
        """Record a new version of a FHIR R4 Consent (the patient's own, or a steward's hospital's)."""
        return await offload(hub.put_consent, who, resource)

    @app.post("/v1/consents/batch", tags=["consent"])
    async def put_consents(resources: list[dict[str, Any]], who: Person) -> list[dict[str, Any]]:
        """Record many consents at once, all or none (a steward importing their hospital's signed forms)."""
        return await offload(hub.put_consents, who, resources)

    @app.put("/v1/consents/mine/{hospital}", tags=["consent"])
    async def my_consent(hospital: str, body: SimpleConsent, who: Person) -> dict[str, Any]:
        """A patient sets their consent at a hospital: permitted purposes, covered and excepted categories."""
        return await offload(lambda: hub.consent_simple(who, hospital, permit=body.permit, categories=body.categories,
                                                        deny_categories=body.deny_categories))

    @app.delete("/v1/consents/mine/{hospital}", tags=["consent"])
    async def revoke_mine(hospital: str, who: Person) -> dict[str, Any]:
        """A patient revokes their consent at a hospital (a new, inactive version)."""
        return await offload(hub.revoke_consent, who, hospital)

    @app.delete("/v1/consents/mine", tags=["consent"])
    async def revoke_all_mine(who: Person) -> list[dict[str, Any]]:
        """A patient revokes their consent at every hospital of the space at once."""
        return await offload(hub.revoke_everywhere, who)

    @app.get("/v1/consents/mine", tags=["consent"], response_class=JSONBytes)
    async def consents_mine(who: Person, current: bool = False,
                            limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                            offset: Annotated[int, Query(ge=0)] = 0) -> JSONBytes:
        """A patient's consents (FHIR R4 Consent), every version newest first per hospital (``current``: only the
        version in force at each hospital), a page of at most ``limit`` from ``offset``."""
        return JSONBytes(await read(hub, lambda: hub.my_consents(who, current=current, limit=limit, offset=offset)))

    @app.put("/v1/hospitals/{hospital}/consent-defaults", tags=["consent"])
    def defaults(hospital: str, body: dict[str, Any], who: Person) -> dict[str, Any]:
        """A hospital's consent defaults: opt-in or opt-out per purpose and category (its steward)."""
        return hub.set_consent_defaults(who, hospital, body)

    app.include_router(node_router())
    app.mount("/v1/audit", ledger_app(hub.log, access=None))
    return app


def _entry_json(raw: bytes) -> dict[str, Any]:
    from medspace.ledger.entry import AuditEvent

    return AuditEvent.from_bytes(raw).to_dict()
