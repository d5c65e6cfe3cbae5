"""The data space end to end, as real processes over TLS on loopback: two witnesses, a hub and three hospital
nodes on synthetic data (each a `medspace` command); a researcher's application through approval to a federated
count, consent revoked and the count changing, the attacks of issue 13 each refused with its reason and logged,
a node killed and rejoining, and the log's checkpoint cosigned by both witnesses."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from space_builder import ADMIN_PW, SpaceFiles, build_space
from space_procs import space_processes
from sqlalchemy import text

from medspace.client import ClientError, HubClient
from medspace.compute.count import total
from medspace.hub.core import read_config
from medspace.hub.db import make_engine
from medspace.ledger.checkpoint import Checkpoint, load_verifier, verify_signatures
from medspace.ledger.log import AuditLog
from medspace.node.service import wait_until
from medspace.policy.pki import Space, client_context, init_space

PW = "a-password-long-enough"
FIELDS = ["patient.sex", "patient.birth_date", "condition.code"]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def space(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> SpaceFiles:
    database = request.getfixturevalue("pg_module_url") if request.param == "postgres" else None
    return build_space(tmp_path_factory.mktemp("space"), hospitals=3, patients=300, database=database)


@pytest.fixture(scope="module")
def world(space: SpaceFiles) -> Iterator[dict[str, Any]]:
    with space_processes(space) as sp:
        ca = sp.ca
        admin = HubClient(sp.url, verify=ca).login("root", ADMIN_PW)
        for h in space.hospitals:
            admin.register(h, "node", region="US", packs=["sensitivity", "hipaa"])
            admin.create_user(f"s-{h}", "steward", PW, hospital=h)
        admin.create_user("r1", "researcher", PW)
        admin.create_user("r2", "researcher", PW)
        admin.create_user("reg", "regulator", PW)
        p_h1 = space.linkage["h1"][0]
        admin.create_user("p1", "patient", PW, pseudonym=p_h1)
        admin.create_user("p2", "patient", PW, pseudonym=space.linkage["h2"][0])
        stewards = {h: HubClient(sp.url, verify=ca).login(f"s-{h}", PW) for h in space.hospitals}
        for h, s in stewards.items():  # US hospitals: research on L2 data unless the patient objects
            s.set_defaults(h, {"fallback": "opt-in", "modes": {"HRESCH": {"L2": "opt-out", "L3": "opt-out"}}})
        sp.start_nodes(*space.hospitals)
        yield {"sp": sp, "url": sp.url, "ca": ca, "admin": admin, "stewards": stewards, "space": space,
               "r1": HubClient(sp.url, verify=ca).login("r1", PW),
               "r2": HubClient(sp.url, verify=ca).login("r2", PW),
               "p1": HubClient(sp.url, verify=ca).login("p1", PW),
               "p2": HubClient(sp.url, verify=ca).login("p2", PW)}


def apply(w: dict[str, Any], *, days: float = 30, hospitals: list[str] | None = None, **more: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return w["r1"].apply(purpose="HRESCH", duo=["DUO:0000042"], fields=FIELDS, operations=["count"],
                         start=now - timedelta(minutes=1), end=now + timedelta(days=days), region="US",
                         hospitals=hospitals or w["space"].hospitals, **more)


def approved(w: dict[str, Any], **kw: Any) -> dict[str, str]:
    a = apply(w, **kw)
    for h in a["contracts"]:
        assert w["stewards"][h].decide(a["id"], h, "approve")["state"] == "FINALIZED"
    return dict(a["contracts"])


def test_application_to_count_and_consent_revocation_changes_it(world: dict[str, Any]) -> None:
    w = world
    a = apply(w)
    s1, s2, s3 = (w["stewards"][h] for h in ("h1", "h2", "h3"))
    assert s1.decide(a["id"], "h1", "approve")["state"] == "FINALIZED"
    assert s2.decide(a["id"], "h2", "approve")["state"] == "FINALIZED"
    # h3 narrows the terms: an offer the researcher must accept
    offer = s3.decide(a["id"], "h3", "restrict", restrictions={"min_cell_size": 10})
    assert offer["state"] == "OFFERED"
    assert w["r1"].accept(a["contracts"]["h3"])["state"] == "FINALIZED"
    odrl = w["r1"].contract(a["contracts"]["h3"])["odrl"]
    assert odrl["@type"] == "Agreement" and odrl["prohibition"] == [{"action": "distribute"}]

    res = w["r1"].run_task(contracts=a["contracts"], params={"group_by": []})
    assert res["status"] == "done", res
    before = total(res["result"])
    assert before is not None and before > 500
    by_sex = w["r1"].run_task(contracts=a["contracts"], params={"group_by": ["sex"]})["result"]
    assert by_sex["hospitals"] == ["h1", "h2", "h3"] and total(by_sex) in (before, None)

    # the patient revokes at h1: within a second h1's node has it, and the count drops by one
    sp = w["sp"]
    seq = sp.consent_seq("h1")
    w["p1"].revoke_consent("h1")
    assert wait_until(lambda: sp.consent_seq("h1") > seq, 10)
    after = total(w["r1"].run_task(contracts=a["contracts"], params={"group_by": []})["result"])
    assert after == before - 1

    # the patient sees the uses of their data: their consent change is in their own audit trail
    mine = w["p1"].my_audit()
    assert "consent.revoke" in [e["action"] for e in mine["entries"]]
    # every step is in the log: application, decisions, contracts, dispatch, node computation, release
    actions = {e.action.value for e in w["sp"].log_events()}
    assert {"application.submit", "application.approve", "contract.create", "task.dispatch", "node.compute",
            "result.release", "consent.revoke"} <= actions
    nodes_logged = {e.actor for e in w["sp"].log_events() if e.action.value == "node.compute"}
    assert nodes_logged == {"node:h1", "node:h2", "node:h3"}


def test_refusals_name_their_rule_and_are_logged(world: dict[str, Any]) -> None:
    w = world
    contracts = approved(w)

    def refused(fn: Any, rule: str) -> None:
        with pytest.raises(ClientError) as e:
            fn()
        assert e.value.status == 403 and e.value.rule is not None and e.value.rule.startswith(rule), e.value

    # a researcher without a contract of their own
    refused(lambda: w["r2"].submit(contracts=contracts, params={}), "contract.recipient")
    # a wrong purpose
    refused(lambda: w["r1"].submit(contracts=contracts, params={}, purpose="TREAT"), "contract.purpose")
    # a field outside the contract
    refused(lambda: w["r1"].submit(contracts=contracts, params={"group_by": ["province"]}), "contract.field")
    # a steward approving for another hospital
    a = apply(w)
    refused(lambda: w["stewards"]["h1"].decide(a["id"], "h2", "approve"), "roles.steward-own-hospital")
    # a patient changing another patient's consent
    other = w["space"].linkage["h2"][0]
    from medspace.policy.consent import build_consent

    refused(lambda: w["p1"].put_consent(build_consent(other, "h2", permit_purposes=["HRESCH"], version=None)),
            "consent.own-only")
    # a regulator cannot run tasks; a patient cannot read others' audit trail (only their own)
    assert w["p2"].my_audit()["entries"] == [] or all(
        e["action"] != "consent.revoke" for e in w["p2"].my_audit()["entries"])
    kinds = [e.action.value for e in w["sp"].log_events()]
    assert kinds.count("task.refuse") >= 3 and kinds.count("access.refuse") >= 2

    # the decision engine's whole answer comes with a refusal: every applied rule, each with its citation
    with pytest.raises(ClientError) as e:
        w["r1"].submit(contracts=contracts, params={}, purpose="TREAT")
    d = e.value.decision
    assert d is not None and d["allowed"] is False and all(o["citation"] for o in d["outcomes"])
    assert any(o["rule_id"] == e.value.rule and not o["satisfied"] for o in d["outcomes"])
    # and a researcher may ask before submitting: per hospital, nothing dispatched and nothing logged
    size = w["sp"].log_size()
    ok = w["r1"].check_task(contracts=contracts, params={"group_by": ["sex"]})
    assert ok["allowed"] and set(ok["hospitals"]) == set(contracts)
    packs = {o["pack"] for h in ok["hospitals"].values() for o in h["outcomes"]}
    assert {"contract", "hipaa"} <= packs
    assert all(o["citation"] and o["satisfied"] for h in ok["hospitals"].values() for o in h["outcomes"])
    no = w["r1"].check_task(contracts=contracts, params={"group_by": ["province"]})
    assert not no["allowed"] and all(h["rule"].startswith("contract.field") for h in no["hospitals"].values())
    assert w["sp"].log_size() == size


def test_revoked_and_expired_contracts_end_their_tasks(world: dict[str, Any]) -> None:
    w = world
    contracts = approved(w)
    assert w["r1"].run_task(contracts=contracts, params={})["status"] == "done"
    w["stewards"]["h2"].revoke(contracts["h2"], "the ethics approval was withdrawn")
    with pytest.raises(ClientError) as e:
        w["r1"].submit(contracts=contracts, params={})
    assert e.value.rule == "contract.status" and "revoked" in e.value.message
    # a contract whose period ends: the monitor ends it, and it permits nothing
    short = approved(w, days=3 / 86400)
    assert wait_until(lambda: w["r1"].contract(short["h1"])["ended"] == "expired", 10)
    with pytest.raises(ClientError) as e:
        w["r1"].submit(contracts=short, params={})
    assert e.value.rule == "contract.dateTime" and "expired" in e.value.message
    actions = [ev.action.value for ev in w["sp"].log_events()]
    assert "contract.revoke" in actions and "contract.expire" in actions


def test_replayed_altered_and_forged_messages_are_refused(world: dict[str, Any]) -> None:
    w = world
    sp = w["sp"]
    contracts = approved(w, hospitals=["h1"])
    t = w["r1"].run_task(contracts=contracts, params={})
    assert t["status"] == "done"
    # someone with write access to the hub's database queues tasks for h1 while its node is away: one carries
    # the envelope h1 already ran (a replay), one that envelope with its parameters changed (an altered task)
    db = make_engine(read_config(sp.files.hub_dir).database)
    with db.connect() as c:
        sent = c.execute(text("SELECT payload FROM assignments WHERE task_id = :t"), {"t": t["id"]}).scalar_one()
    envelope = orjson.loads(sent)
    body = orjson.loads(base64.b64decode(envelope["payload"]))
    body["params"] = {"group_by": ["sex"]}
    altered = {"payload": base64.b64encode(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).decode(),
               "sig": envelope["sig"]}
    sp.procs.stop("h1")
    forged = {}
    for payload, rule in ((sent, "task.replay"), (orjson.dumps(altered).decode(), "task.envelope")):
        task = w["r1"].submit(contracts=contracts, params={}, deadline_s=60)
        with db.begin() as c:
            c.execute(text("UPDATE assignments SET payload = :p WHERE task_id = :t"), {"p": payload, "t": task["id"]})
        forged[task["id"]] = rule
    db.dispose()
    sp.start_nodes("h1")  # its state file kept the nonces it saw before it stopped
    for task_id, rule in forged.items():
        view = w["r1"].task(task_id, wait=30)
        assert view["status"] == "failed" and f"rule {rule}" in view["error"], view
    # a task's end is in the log before anyone can read it ended
    assert sum(e.action.value == "task.refuse" and e.actor == "node:h1" for e in sp.log_events()) >= 2
    assert {f"task:{t}" for t in forged} <= {e.resource for e in sp.log_events() if e.action.value == "task.end"}
    # the node still runs honest tasks
    assert w["r1"].run_task(contracts=contracts, params={})["status"] == "done"
    # a node forging another actor in an audit event
    ctx = client_context(w["space"].root / "copies" / "h1", "h1")
    with httpx.Client(base_url=w["url"], verify=ctx) as c:
        ev = {"actor": "node:h2", "role": "node", "action": "node.compute", "purpose": "HRESCH",
              "resource": "task:forged", "time": datetime.now(UTC).isoformat()}
        r = c.post("/v1/node/audit", json={"events": [ev]})
        assert r.status_code == 403 and r.json()["rule"] == "audit.actor-is-caller"
        # and a node reading another hospital's contract
        assert c.get(f"/v1/node/contracts/{approved(w, hospitals=['h2'])['h2']}").status_code == 404


def test_certificates_of_another_ca_or_revoked_are_refused(world: dict[str, Any], tmp_path: Path) -> None:
    w = world
    other = init_space(tmp_path / "other", "other-space", nodes=["h1"])
    ctx = client_context(other, "h1")
    with httpx.Client(base_url=w["url"], verify=ctx) as c, pytest.raises(httpx.ConnectError):
        c.get("/v1/node/assignments")
    # no certificate at all: the node routes refuse
    with httpx.Client(base_url=w["url"], verify=ssl.create_default_context(cafile=w["ca"])) as c:
        assert c.get("/v1/node/assignments").status_code == 401
    # a revoked node certificate: refused (the route re-reads the space's revocation list on every request)
    sp = Space.open(w["space"].space)
    sp.issue("h9", "node")
    copy = w["space"].root / "copies" / "h9"
    sp.export("h9", copy)
    sp.revoke("h9", "key_compromise")
    with httpx.Client(base_url=w["url"], verify=client_context(copy, "h9")) as c:
        try:
            r = c.get("/v1/node/assignments")
            assert r.status_code == 401 and "revoked" in r.json()["error"]
        except httpx.ConnectError:
            pass  # refused at the handshake instead (the listener's CRL was reloaded)


def test_a_killed_node_fails_or_is_left_out_as_the_task_says_and_rejoins(world: dict[str, Any]) -> None:
    w = world
    sp = w["sp"]
    contracts = approved(w)
    sp.procs.kill("h3")  # SIGKILL: no goodbye to the hub
    failed = w["r1"].run_task(contracts=contracts, params={}, deadline_s=3, completion="all")
    assert failed["status"] == "failed" and "h3" in failed["error"]
    partial = w["r1"].run_task(contracts=contracts, params={}, deadline_s=3, completion="available")
    assert partial["status"] == "done" and partial["result"]["hospitals"] == ["h1", "h2"]
    assert "h3" in partial["result"]["left_out"]
    # both were finished by the monitor at their deadline; each one's end was logged before it could be read
    events = sp.log_events()
    assert f"task:{partial['id']}" in {e.resource for e in events if e.action.value == "result.release"}
    assert f"task:{failed['id']}" in {e.resource for e in events if e.action.value == "task.end"}
    sp.start_nodes("h3")
    again = w["r1"].run_task(contracts=contracts, params={})
    assert again["status"] == "done" and again["result"]["hospitals"] == ["h1", "h2", "h3"]


def test_the_log_is_checkpointed_and_cosigned_by_both_witnesses(world: dict[str, Any]) -> None:
    w = world
    sp = w["sp"]
    assert w["r1"].run_task(contracts=approved(w), params={})["status"] == "done"
    size = sp.log_size()
    hub_key = load_verifier(str(sp.files.hub_dir / "log" / "log.vkey"))
    verifiers = [hub_key] + [load_verifier(v) for v in sp.witness_vkeys]
    ctx = ssl.create_default_context(cafile=w["ca"])

    def cosigned() -> bool:
        r = httpx.get(w["url"] + "/v1/audit/checkpoint", verify=ctx)
        if r.status_code != 200:
            return False
        text, valid, invalid, _ = verify_signatures(r.text, verifiers)
        cp = Checkpoint.from_text(text)
        if cp.size < size or len(valid) != 3 or invalid:
            return False
        with AuditLog(sp.files.hub_dir / "log", readonly=True) as log:
            assert log.store.root(cp.size) == cp.root_hash
        return True

    assert wait_until(cosigned, 30)


def test_a_patient_revokes_everywhere_and_reads_only_their_own(world: dict[str, Any]) -> None:
    w = world
    contracts = approved(w)
    before = total(w["r1"].run_task(contracts=contracts, params={})["result"])
    sp = w["sp"]
    seq = sp.consent_seq("h2")
    out = w["p2"].revoke_consent_everywhere()
    assert len(out) == 3 and {o["status"] for o in out} == {"inactive"}
    assert wait_until(lambda: sp.consent_seq("h2") > seq, 10)
    mine = w["p2"].request("GET", "/v1/consents/mine")
    assert {c["organization"][0]["identifier"]["value"] for c in mine if c["status"] == "inactive"} == \
        {"h1", "h2", "h3"}
    now = w["p2"].my_consents(current=True)  # the version in force at each hospital, one each
    assert len(now) == 3 and {c["status"] for c in now} == {"inactive"}
    pages = [w["p2"].my_consents(limit=1, offset=i) for i in range(len(mine) + 1)]
    assert [p[0] for p in pages[:-1]] == mine and pages[-1] == []
    assert total(w["r1"].run_task(contracts=contracts, params={})["result"]) == (before or 0) - 1
    # another party's records stay closed to a patient: a contract, a task, another patient's consent trail
    t = w["r1"].submit(contracts=contracts, params={})
    for path, rule in ((f"/v1/contracts/{contracts['h1']}", "contract.parties-only"),
                       (f"/v1/tasks/{t['id']}", "task.requester-only")):
        with pytest.raises(ClientError) as e:
            w["p2"].request("GET", path)
        assert e.value.status == 403 and e.value.rule == rule
    assert all(e["subject_commitment"] for e in w["p2"].my_audit()["entries"])
