"""The fast dispatch path over real TLS on loopback: contracts sent with claims and re-checked by the node (a task
under a revoked contract is refused even if dispatched), node audit events sent with answers, group commit of the
audit log, the cache of node certificates, the node's state file and store, the monitor's delete duty."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from space_builder import ADMIN_PW, SpaceFiles, build_space
from sqlalchemy import select

from medspace.client import HubClient
from medspace.compute.count import CountQuery, total
from medspace.hub.core import GroupCommit
from medspace.hub.db import Assignment, Task, new_id, utcnow
from medspace.hub.errors import Forbidden
from medspace.hub.monitor import tick
from medspace.hub.queue import Part, enqueue
from medspace.hub.serve import running
from medspace.ledger.entry import Action, AuditEvent, Purpose, Role
from medspace.ledger.log import AuditLog, init_log
from medspace.node.errors import TaskError
from medspace.node.service import NodeConfig, NodeService, _Refusal, _Store, read_status, wait_until
from medspace.policy.envelope import seal, stamp
from medspace.policy.pki import Space, client_context

PW = "a-password-long-enough"
FIELDS = ["patient.sex", "patient.birth_date", "condition.code"]


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> SpaceFiles:
    return build_space(tmp_path_factory.mktemp("dispatch"), hospitals=1, patients=60)


@pytest.fixture(scope="module")
def world(space: SpaceFiles) -> Iterator[dict[str, Any]]:
    with running(space.hub_dir) as hub:
        ca = str(space.space / "ca" / "ca.pem")
        admin = HubClient(hub.url, verify=ca).login("root", ADMIN_PW)
        admin.register("h1", "node", region="US", packs=["sensitivity", "hipaa"])
        admin.register("hx", "node", region="US")  # a hospital without a running node: its queue stays put
        admin.create_user("s-h1", "steward", PW, hospital="h1")
        admin.create_user("r1", "researcher", PW)
        admin.create_user("p1", "patient", PW, pseudonym=space.linkage["h1"][0])
        steward = HubClient(hub.url, verify=ca).login("s-h1", PW)
        steward.set_defaults("h1", {"fallback": "opt-in", "modes": {"HRESCH": {"L2": "opt-out", "L3": "opt-out"}}})
        copy = space.root / "copies" / "h1"
        Space.open(space.space).export("h1", copy)
        state = space.root / "h1.state.sqlite"
        node = NodeService(NodeConfig(name="h1", hub_url=hub.url, space=copy, store=space.stores["h1"],
                                      state=state, region="US", wait=2.0)).start()
        assert wait_until(node.connected.is_set, 10)
        w = {"hub": hub, "ca": ca, "admin": admin, "steward": steward, "node": node, "state": state, "space": space,
             "r1": HubClient(hub.url, verify=ca).login("r1", PW), "p1": HubClient(hub.url, verify=ca).login("p1", PW)}
        try:
            yield w
        finally:
            node.stop()
            for c in w.values():  # an open keep-alive connection would hold the server's shutdown for 30 s
                if isinstance(c, HubClient):
                    c.close()


def approved(w: dict[str, Any]) -> str:
    now = datetime.now(UTC)
    a = w["r1"].apply(purpose="HRESCH", duo=["DUO:0000042"], fields=FIELDS, operations=["count"],
                      start=now - timedelta(minutes=1), end=now + timedelta(days=30), region="US", hospitals=["h1"])
    assert w["steward"].decide(a["id"], "h1", "approve")["state"] == "FINALIZED"
    return str(a["contracts"]["h1"])


def dispatch_anyway(w: dict[str, Any], hospital: str, uid: str | None) -> str:
    """Queue a signed task as submit_task does, but without the hub's own checks (a hub with a bug)."""
    hub = w["hub"].hub
    tid = new_id("t")
    now = utcnow()
    payload = stamp({"task": tid, "hospital": hospital, "kind": "count", "params": CountQuery().to_params(),
                     "purpose": "HRESCH", "contract": uid, "requester": "r1"}, now=now)
    task = Task(id=tid, kind="count", requester="r1", purpose="HRESCH", params="{}", completion="all",
                status="queued", deadline=now + timedelta(seconds=30))
    with hub.db.transaction("assignments") as s:
        enqueue(s, task, [Part(hospital, uid, seal(payload, hub.task_key))])
    return tid


def log_events(w: dict[str, Any]) -> list[AuditEvent]:
    log = w["hub"].hub.log
    return [AuditEvent.from_bytes(log.store.entry(i)) for i in range(log.store.size)]


def test_a_task_under_a_revoked_contract_is_refused_by_the_node_even_if_dispatched(world: dict[str, Any]) -> None:
    w = world
    uid = approved(w)
    first = w["r1"].run_task(contracts={"h1": uid}, params={})
    assert first["status"] == "done", first  # the node has seen (and parsed) this contract
    w["steward"].revoke(uid, "the ethics approval was withdrawn")
    tid = dispatch_anyway(w, "h1", uid)
    assert wait_until(lambda: w["hub"].hub.task_finished(tid), 10)
    view = w["r1"].task(tid)
    assert view["status"] == "failed" and "contract.revoked" in view["error"], view
    assert "contract.revoked" in w["node"].stats.refusals
    refused = [e for e in log_events(w) if e.action is Action.TASK_REFUSE and e.actor == "node:h1"]
    assert refused and refused[-1].resource == f"task:{tid}"


def test_the_node_checks_the_contract_it_is_given(world: dict[str, Any]) -> None:
    w = world
    uid = approved(w)
    hub, node = w["hub"].hub, w["node"]
    info = hub.contract_for_node("h1", uid)
    payload = {"task": "t-1", "contract": uid, "requester": "r1", "purpose": "HRESCH", "kind": "count"}
    now = datetime.now(UTC)
    assert node.check_contract(payload, info, CountQuery(), now).uid == uid

    def refused(p: dict[str, Any], given: dict[str, Any]) -> str:
        with pytest.raises(_Refusal) as e:
            node.check_contract(p, given, CountQuery(), now)
        return e.value.rule

    assert refused(payload, {**info, "revoked_at": now.isoformat()}) == "contract.revoked"
    assert refused(payload, {**info, "ended": "revoked"}) == "contract.revoked"
    assert refused({**payload, "contract": approved(w)}, info) == "contract.unknown"  # not the contract named
    assert refused(payload, {**info, "odrl": {**info["odrl"], "assigner": "h2"}}) in ("contract.assigner",
                                                                               "contract.invalid")
    assert refused(payload, {**info, "odrl": None}) == "contract.invalid"
    assert refused({**payload, "requester": "r2"}, info).startswith("contract.")  # not a party to it


def test_an_answer_carries_the_node_events_and_a_forged_one_refuses_it(world: dict[str, Any]) -> None:
    w = world
    hub = w["hub"].hub
    tid = dispatch_anyway(w, "hx", None)
    got = hub.claim_for_node("hx")
    assert [a["task"] for a in got["assignments"]] == [tid] and got["contracts"] == {}
    aid = got["assignments"][0]["id"]

    def event(actor: str) -> dict[str, Any]:
        return AuditEvent(actor=actor, role=Role.NODE, action=Action.NODE_COMPUTE, purpose=Purpose.HRESCH,
                          resource=f"task:{tid}", time=datetime.now(UTC)).to_dict()

    result = {"group_by": [], "rows": [[12, 0]], "min_cell": 5}
    with pytest.raises(Forbidden) as e:
        hub.answer_assignment("hx", aid, result=result, error=None, events=[event("node:h1")])
    assert e.value.rule == "audit.actor-is-caller"
    assert not hub.task_finished(tid)  # refused as a whole: the answer was not taken
    size = hub.log.store.size
    assert hub.answer_assignment("hx", aid, result=result, error=None, events=[event("node:hx")]) == "done"
    new = [AuditEvent.from_bytes(hub.log.store.entry(i)) for i in range(size, hub.log.store.size)]
    assert [(e.actor, e.action) for e in new] == [("node:hx", Action.NODE_COMPUTE), ("hub", Action.RESULT_RELEASE)]


def test_group_commit_appends_concurrent_batches_once_each_in_order(tmp_path: Path) -> None:
    init_log(tmp_path / "log", "medspace.test/group")
    log = AuditLog(tmp_path / "log", create=True)
    writes: list[int] = []

    def write(events: list[AuditEvent]) -> list[int]:
        writes.append(len(events))
        return log.append(events)

    gc = GroupCommit(write, threading.Lock())
    got: dict[int, list[int]] = {}
    start = threading.Barrier(16)

    def caller(k: int) -> None:
        evs = [AuditEvent(actor=f"caller{k}", role=Role.HUB, action=Action.TASK_DISPATCH, purpose=Purpose.HRESCH,
                          resource=f"task:t{k}/{j}", time=datetime.now(UTC)) for j in range(5)]
        start.wait()
        got[k] = gc.append(evs)

    threads = [threading.Thread(target=caller, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        indices = sorted(i for v in got.values() for i in v)
        assert indices == list(range(80)) and sum(writes) == 80
        for k, idx in got.items():
            assert idx == list(range(idx[0], idx[0] + 5))  # each caller's events together, in its order
            assert [AuditEvent.from_bytes(log.store.entry(i)).resource for i in idx] == [f"task:t{k}/{j}"
                                                                                          for j in range(5)]
    finally:
        log.close()

    def broken(events: list[AuditEvent]) -> list[int]:
        raise OSError("disk full")

    with pytest.raises(OSError):
        GroupCommit(broken, threading.Lock()).append(
            [AuditEvent(actor="x", role=Role.HUB, action=Action.TASK_END, purpose=Purpose.HRESCH, resource="task:x",
                        time=datetime.now(UTC))])


def enrolled(w: dict[str, Any], name: str) -> tuple[Space, Path]:
    """A new node certificate of the space, exported: the space and the node's copy."""
    sp = Space.open(w["space"].space)
    sp.issue(name, "node")
    copy = w["space"].root / "copies" / name
    sp.export(name, copy)
    return sp, copy


def test_a_node_certificate_revoked_after_it_was_accepted_is_refused(world: dict[str, Any]) -> None:
    w = world
    sp, copy = enrolled(w, "h8")
    with httpx.Client(base_url=w["hub"].url, verify=client_context(copy, "h8")) as c:
        assert c.get("/v1/node/assignments").status_code == 200  # verified in full, then remembered
        assert c.get("/v1/node/assignments").status_code == 200  # remembered
        sp.revoke("h8", "key_compromise")
        r = c.get("/v1/node/assignments")  # the same TLS connection: the route's check must see the revocation
        assert r.status_code == 401 and "revoked" in r.json()["error"]


def test_the_node_records_the_consent_sequence_it_applied(world: dict[str, Any]) -> None:
    w = world
    seq = int(w["p1"].revoke_consent("h1")["seq"])
    assert wait_until(lambda: read_status(w["state"]).get("consent_seq", 0) >= seq, 10)
    assert read_status(w["state"].with_name("absent.sqlite")) == {}


def test_the_store_is_held_open_and_let_go_when_idle(space: SpaceFiles) -> None:
    store = _Store(space.stores["h1"], idle=3600)
    try:
        ids = store.pseudonyms("research")
        assert store.is_open and len(ids) == len(space.linkage["h1"])
        assert store.pseudonyms("research") is ids  # read once per opening
        store.close_if_idle()
        assert store.is_open  # used a moment ago
        store.idle = 0
        store.close_if_idle()
        assert not store.is_open
        assert len(store.pseudonyms("research")) == len(ids) and store.is_open  # opened again on demand
        with pytest.raises(TaskError):
            store.pseudonyms("no-such-view")
    finally:
        store.close()


def test_the_delete_duty_erases_results_whose_retention_passed(world: dict[str, Any]) -> None:
    # last in this module: a tick a year ahead also ends every contract
    w = world
    hub = w["hub"].hub
    uid = approved(w)
    t = w["r1"].run_task(contracts={"h1": uid}, params={})
    assert t["status"] == "done" and "result" in t
    assert tick(hub, duties=False)["deleted"] == 0
    done = tick(hub, now=utcnow() + timedelta(days=400))
    assert done["deleted"] >= 1
    assert "result" not in w["r1"].task(t["id"])
    erased = [e for e in log_events(w) if e.action is Action.DUTY_PERFORM and e.resource == f"task:{t['id']}"]
    assert len(erased) == 1 and erased[0].input_hashes
    assert done["expired"] >= 1


def test_a_node_gone_while_it_waited_claims_nothing(world: dict[str, Any]) -> None:
    w = world
    _, copy = enrolled(w, "hx")
    url = httpx.URL(w["hub"].url)
    raw = socket.create_connection((url.host, url.port))
    tls = client_context(copy, "hx").wrap_socket(raw, server_hostname=url.host)
    tls.sendall(f"GET /v1/node/assignments?wait=20 HTTP/1.1\r\nHost: {url.host}\r\n\r\n".encode())
    time.sleep(0.5)  # the hub is waiting for assignments on this poll
    tls.close()  # the node goes away (a crash closes its sockets the same way)
    time.sleep(0.5)
    tid = dispatch_anyway(w, "hx", None)
    time.sleep(1.0)  # the wake-up reaches the abandoned poll, which must not claim for nobody
    with w["hub"].hub.db.sessions() as s:
        status = s.scalar(select(Assignment.status).where(Assignment.task_id == tid))
    assert status == "queued"


def test_a_task_runs_under_the_consent_state_it_was_dispatched_in(world: dict[str, Any]) -> None:
    w = world
    uid = approved(w)
    us = {"fallback": "opt-in", "modes": {"HRESCH": {"L2": "opt-out", "L3": "opt-out"}}}
    before = total(w["r1"].run_task(contracts={"h1": uid}, params={})["result"])
    assert before is not None and before > 0
    # research now needs each patient's explicit consent, which nobody gave: the very next task counts nobody
    w["steward"].set_defaults("h1", {"fallback": "opt-in"})
    assert total(w["r1"].run_task(contracts={"h1": uid}, params={})["result"]) in (0, None)
    w["steward"].set_defaults("h1", us)
    assert total(w["r1"].run_task(contracts={"h1": uid}, params={})["result"]) == before
    # a replica that cannot catch up within the wait is not used
    node = w["node"]
    assert not node._replica_at(node.stats.consent_seq + 1000, None, timeout=0.1)
    assert node._replica_at(node.stats.consent_seq, None, timeout=0.1)
