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

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from medspace.hub.accounts import Principal, UserRole
from medspace.hub.errors import AuthError, BadRequest, Conflict, Forbidden, HubError, NotFound
from medspace.hub.service import Hub
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


async def person(request: Request) -> Principal:
    """The signed-in person making a request (bearer token), as their account says now."""
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthError("sign in first: send Authorization: Bearer <token> from POST /v1/auth/token")
    hub: Hub = request.app.state.hub
    return await run_in_threadpool(hub.authenticate, token.strip())


Person = Annotated[Principal, Depends(person)]


def create_app(hub: Hub) -> FastAPI:
    """The hub's API over one :class:`Hub`."""
    app = FastAPI(title="medspace hub", version="1",
                  description="Coordinator of a trusted medical data space: accounts, applications and contracts, "
                              "consent, task dispatch and the audit log. Usable, not visible.")
    app.state.hub = hub

    @app.exception_handler(HubError)
    async def _hub_error(_req: Request, exc: HubError) -> JSONResponse:
        status = next((code for cls, code in _STATUS if isinstance(exc, cls)), 500)
        body: dict[str, Any] = {"error": str(exc)}
        if isinstance(exc, Forbidden):
            body["rule"] = exc.rule
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
    def me(who: Person) -> dict[str, Any]:
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
        hub.register_participant(who, name=body.name, role=body.role, region=body.region, packs=body.packs)
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

    app.mount("/v1/audit", ledger_app(hub.log, access=None))
    return app


def _entry_json(raw: bytes) -> dict[str, Any]:
    from medspace.ledger.entry import AuditEvent

    return AuditEvent.from_bytes(raw).to_dict()
