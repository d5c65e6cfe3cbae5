"""The hub's HTTP API over real HTTP on loopback, on SQLite and PostgreSQL: sign-in, accounts, rules that refuse
(named and logged), the mounted audit log, and no secret in any answer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hub_serving import serving

from medspace.hub.app import create_app
from medspace.hub.service import Hub, init_hub
from medspace.ledger.entry import AuditEvent

ADMIN_PW = "correct horse battery staple"
PSEUDO = "ab" * 32


@pytest.fixture
def hub(tmp_path: Path, hub_url: str) -> Iterator[tuple[Hub, str]]:
    db = None if not hub_url.startswith("postgres") else hub_url
    init_hub(tmp_path / "hub", origin="medspace.test/hub", admin="root", password=ADMIN_PW, database=db)
    h = Hub.open(tmp_path / "hub")
    try:
        with serving(create_app(h)) as url:
            yield h, url
    finally:
        h.close()


def login(c: httpx.Client, user: str, pw: str) -> dict[str, str]:
    r = c.post("/v1/auth/token", json={"username": user, "password": pw})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_accounts_roles_and_refusals(hub: tuple[Hub, str]) -> None:
    h, url = hub
    with httpx.Client(base_url=url) as c:
        assert c.get("/v1/me").status_code == 401
        bad = c.post("/v1/auth/token", json={"username": "root", "password": "wrong password!"})
        nobody = c.post("/v1/auth/token", json={"username": "nobody", "password": "wrong password!"})
        assert bad.status_code == nobody.status_code == 401 and bad.json() == nobody.json()
        root = login(c, "root", ADMIN_PW)
        assert c.get("/v1/me", headers=root).json() == {"username": "root", "role": "admin", "hospital": None}
        assert c.post("/v1/participants", headers=root, json={"name": "h1", "role": "node", "region": "CN",
                                                              "packs": ["sensitivity", "pipl"]}).status_code == 201
        assert c.post("/v1/participants", headers=root, json={"name": "h2", "role": "node",
                                                              "region": "US"}).status_code == 201
        r = c.post("/v1/users", headers=root, json={"username": "s1", "role": "steward", "hospital": "h1",
                                                    "password": "steward-one-pw!"})
        assert r.status_code == 201, r.text
        assert c.post("/v1/users", headers=root, json={"username": "s1", "role": "researcher",
                                                       "password": "another-pw-123"}).status_code == 409
        assert c.post("/v1/users", headers=root, json={"username": "p1", "role": "patient",
                                                       "password": "patient-pw-123",
                                                       "pseudonym": PSEUDO}).status_code == 201
        s1 = login(c, "s1", "steward-one-pw!")
        # a steward creates staff of their own hospital only, and no other roles
        assert c.post("/v1/users", headers=s1, json={"username": "c1", "role": "clinician", "hospital": "h1",
                                                     "password": "clinician-pw-1"}).status_code == 201
        r = c.post("/v1/users", headers=s1, json={"username": "c2", "role": "clinician", "hospital": "h2",
                                                  "password": "clinician-pw-2"})
        assert r.status_code == 403 and r.json()["rule"] == "hospital.own-only"
        r = c.post("/v1/users", headers=s1, json={"username": "r9", "role": "researcher", "password": "research-pw-1"})
        assert r.status_code == 403 and r.json()["rule"] == "accounts.steward-creates-hospital-staff"
        assert [u["username"] for u in c.get("/v1/users", headers=s1).json()] == ["c1", "s1"]
        # malformed input names the field, never echoes the value
        r = c.post("/v1/users", headers=root, json={"username": "x", "role": "researcher", "password": "short"})
        assert r.status_code == 400 and "short" not in r.text
        r = c.post("/v1/users", headers=root, json={"username": "r1", "role": "researcher",
                                                    "password": "pw-long-enough",
                                                    "hospital": "h1"})
        assert r.status_code == 400 and "hospital" in r.json()["error"]
        # a patient sees the entries about them: their registration; not someone else's
        p1 = login(c, "p1", "patient-pw-123")
        mine = c.get("/v1/audit/mine", headers=p1).json()
        assert [e["action"] for e in mine["entries"]] == ["user.register"]
        r = c.get("/v1/audit/mine", headers=s1)
        assert r.status_code == 403 and r.json()["rule"] == "audit.patient-own-entries"
        # every step is in the mounted log, refusals included; no secret anywhere in it
        n = h.log.store.size
        entries = [AuditEvent.from_bytes(h.log.store.entry(i)) for i in range(n)]
        assert [e.action.value for e in entries].count("access.refuse") == 3
        assert c.get("/v1/audit/entries", params={"start": 0, "end": n}).status_code == 200
        blob = b"".join(h.log.store.entry(i) for i in range(n))
        for secret in (ADMIN_PW, "steward-one-pw!", PSEUDO):
            assert secret.encode() not in blob
        # OpenAPI describes the API
        paths = c.get("/openapi.json").json()["paths"]
        assert {"/v1/auth/token", "/v1/users", "/v1/audit/mine"} <= set(paths)


def test_tokens_expire_and_disabled_accounts_are_refused_at_once(hub: tuple[Hub, str]) -> None:
    h, url = hub
    from datetime import UTC, datetime, timedelta

    from medspace.hub.accounts import Principal
    from medspace.hub.db import User

    old, _ = h.signer.issue(Principal("root", "admin"), now=datetime.now(UTC) - timedelta(hours=1))
    with httpx.Client(base_url=url) as c:
        r = c.get("/v1/me", headers={"Authorization": f"Bearer {old}"})
        assert r.status_code == 401 and "expired" in r.json()["error"]
        forged = old[:-4] + ("AAAA" if not old.endswith("AAAA") else "BBBB")
        assert c.get("/v1/me", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
        root = login(c, "root", ADMIN_PW)
        from sqlalchemy import update

        with h.db.transaction() as s:
            s.execute(update(User).where(User.username == "root").values(disabled=True))
        assert c.get("/v1/me", headers=root).status_code == 401
