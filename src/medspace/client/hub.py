"""A typed Python client for the hub's HTTP API (httpx underneath).

    hub = HubClient("https://127.0.0.1:8443", verify="space/ca/ca.pem")
    hub.login("r1", password)
    app = hub.apply(purpose="HRESCH", duo=["DUO:0000042"], fields=[...], operations=["count"], ...)
    result = hub.run_task(contracts=app["contracts"], params={"group_by": ["sex"]})

Every refusal raises :class:`ClientError` carrying the HTTP status, the hub's one-line message and, for a 403,
the rule that refused it.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import httpx

MAX_WAIT = 60.0  # the longest a single long-poll of the hub waits


class ClientError(Exception):
    """The hub refused or failed a request: ``status``, ``message``, (403) the ``rule`` and, where the decision
    engine decided, its ``decision`` (every applied rule with its citation)."""

    def __init__(self, status: int, message: str, rule: str | None = None,
                 decision: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status}: {message}" + (f" (rule {rule})" if rule and rule not in message else ""))
        self.status = status
        self.message = message
        self.rule = rule
        self.decision = decision


class HubClient:
    """One person's session with a hub."""

    def __init__(self, url: str, *, verify: str | bool | ssl.SSLContext = True, timeout: float = 30.0) -> None:
        if isinstance(verify, str):  # a CA file: the space's CA, not the system's roots
            verify = ssl.create_default_context(cafile=verify)
        self._http = httpx.Client(base_url=url, verify=verify, timeout=timeout)
        self._token: str | None = None

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- plumbing -----------------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kw: Any) -> Any:
        """Send a request with the session's token; the JSON answer, or ClientError."""
        headers = dict(kw.pop("headers", {}) or {})
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        r = self._http.request(method, path, headers=headers, **kw)
        if r.status_code >= 400:
            try:
                body = r.json()
                message, rule = str(body.get("error", r.reason_phrase)), body.get("rule")
                decision = body.get("decision")
            except ValueError:
                message, rule, decision = r.reason_phrase, None, None
            raise ClientError(r.status_code, message, rule, decision)
        return r.json() if r.content else None

    # --- accounts -----------------------------------------------------------------------------------------

    def login(self, username: str, password: str) -> HubClient:
        """Sign in; later calls carry the token."""
        self._token = self.request("POST", "/v1/auth/token", json={"username": username, "password": password})[
            "access_token"]
        return self

    def me(self) -> dict[str, Any]:
        """The signed-in account."""
        return dict(self.request("GET", "/v1/me"))

    def create_user(self, username: str, role: str, password: str, *, hospital: str | None = None,
                    pseudonym: str | None = None) -> dict[str, Any]:
        """Create an account (admin, or a steward for their hospital's staff)."""
        return dict(self.request("POST", "/v1/users", json={"username": username, "role": role, "password": password,
                                                            "hospital": hospital, "pseudonym": pseudonym}))

    def register(self, name: str, role: str, *, region: str | None = None, packs: Sequence[str] = ("sensitivity",),
                 safeguards: Sequence[str] = ()) -> None:
        """Register a participant (admin)."""
        self.request("POST", "/v1/participants", json={"name": name, "role": role, "region": region,
                                                       "packs": list(packs), "safeguards": list(safeguards)})

    # --- applications and contracts -----------------------------------------------------------------------

    def apply(self, *, purpose: str, duo: Sequence[str], fields: Sequence[str], operations: Sequence[str],
              start: datetime, end: datetime, region: str, hospitals: Sequence[str], **more: Any) -> dict[str, Any]:
        """File an application; its id and one contract uid per hospital."""
        body = {"purpose": purpose, "duo": list(duo), "fields": list(fields), "operations": list(operations),
                "start": start.isoformat(), "end": end.isoformat(), "region": region, "hospitals": list(hospitals),
                **more}
        return dict(self.request("POST", "/v1/applications", json=body))

    def decide(self, application: str, hospital: str, outcome: str, *, reason: str = "",
               restrictions: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A steward's decision for their hospital."""
        return dict(self.request("POST", f"/v1/applications/{application}/decisions/{hospital}",
                                 json={"outcome": outcome, "reason": reason, "restrictions": dict(restrictions or {})}))

    def accept(self, contract: str) -> dict[str, Any]:
        """Accept a restricted offer."""
        return dict(self.request("POST", f"/v1/contracts/{contract}/accept"))

    def contract(self, uid: str) -> dict[str, Any]:
        """A contract with its ODRL agreement and negotiation."""
        return dict(self.request("GET", f"/v1/contracts/{uid}"))

    def revoke(self, contract: str, reason: str) -> dict[str, Any]:
        """Revoke a contract."""
        return dict(self.request("POST", f"/v1/contracts/{contract}/revoke", json={"reason": reason}))

    # --- tasks --------------------------------------------------------------------------------------------

    def submit(self, *, contracts: Mapping[str, str], params: Mapping[str, Any] | None = None, kind: str = "count",
               purpose: str = "HRESCH", completion: str = "all", deadline_s: float | None = None) -> dict[str, Any]:
        """Submit a task; its id."""
        return dict(self.request("POST", "/v1/tasks", json={
            "kind": kind, "params": dict(params or {}), "purpose": purpose, "contracts": dict(contracts),
            "completion": completion, "deadline_s": deadline_s}))

    def check_task(self, *, contracts: Mapping[str, str], params: Mapping[str, Any] | None = None,
                   kind: str = "count", purpose: str = "HRESCH") -> dict[str, Any]:
        """What submitting a task would meet, per hospital, without submitting it (nothing runs, nothing is logged)."""
        return dict(self.request("POST", "/v1/tasks/check", json={
            "kind": kind, "params": dict(params or {}), "purpose": purpose, "contracts": dict(contracts)}))

    def task(self, task_id: str, *, wait: float = 0) -> dict[str, Any]:
        """A task's status and result, waiting up to ``wait`` seconds for it to end."""
        return dict(self.request("GET", f"/v1/tasks/{task_id}", params={"wait": wait},
                                 timeout=max(30.0, wait + 10)))

    def run_task(self, *, contracts: Mapping[str, str], params: Mapping[str, Any] | None = None,
                 wait: float = 60, **kw: Any) -> dict[str, Any]:
        """Submit a task and wait for its end."""
        t = self.submit(contracts=contracts, params=params, **kw)
        end = time.monotonic() + wait
        while True:
            view = self.task(t["id"], wait=min(MAX_WAIT, max(0.0, end - time.monotonic())))
            if view["status"] in ("done", "failed", "cancelled") or time.monotonic() >= end:
                return view

    # --- consent ------------------------------------------------------------------------------------------

    def set_consent(self, hospital: str, *, permit: Sequence[str] = (), categories: Sequence[str] = (),
                    deny_categories: Sequence[str] = ()) -> dict[str, Any]:
        """A patient's consent at a hospital."""
        return dict(self.request("PUT", f"/v1/consents/mine/{hospital}", json={
            "permit": list(permit), "categories": list(categories), "deny_categories": list(deny_categories)}))

    def revoke_consent(self, hospital: str) -> dict[str, Any]:
        """A patient revokes their consent at a hospital."""
        return dict(self.request("DELETE", f"/v1/consents/mine/{hospital}"))

    def my_consents(self, *, current: bool = False, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
        """A patient's consents (FHIR Consent), newest version first per hospital; ``current``: only those in force."""
        return list(self.request("GET", "/v1/consents/mine", params={"current": current, "limit": limit,
                                                                      "offset": offset}))

    def revoke_consent_everywhere(self) -> list[dict[str, Any]]:
        """A patient revokes their consent at every hospital of the space."""
        return list(self.request("DELETE", "/v1/consents/mine"))

    def put_consent(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """Record a FHIR R4 Consent resource."""
        return dict(self.request("PUT", "/v1/consents", json=dict(resource)))

    def put_consents(self, resources: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Record many FHIR R4 Consent resources at once (all or none)."""
        return list(self.request("POST", "/v1/consents/batch", json=[dict(r) for r in resources]))

    def set_defaults(self, hospital: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
        """A hospital's consent defaults (its steward)."""
        return dict(self.request("PUT", f"/v1/hospitals/{hospital}/consent-defaults", json=dict(defaults)))

    # --- audit --------------------------------------------------------------------------------------------

    def my_audit(self) -> dict[str, Any]:
        """A patient's own audit entries."""
        return dict(self.request("GET", "/v1/audit/mine"))

    def checkpoint(self) -> str:
        """The audit log's latest witnessed checkpoint (signed note text)."""
        r = self._http.get("/v1/audit/checkpoint")
        if r.status_code >= 400:
            raise ClientError(r.status_code, r.text[:200])
        return r.text
