"""The node service (`medspace node serve`): one hospital's connection to the hub, opened by the hospital.

The node accepts no inbound traffic. Two threads long-poll the hub over mutual TLS (the node's space
certificate; the hub's is checked against the space's CA):

* **tasks** (``GET /v1/node/assignments?wait=…``): each claimed assignment is a task envelope the hub signed. The
  node checks the signature against the hub's certificate (fetched once and verified against the space CA), that
  the envelope is for this hospital, unexpired and never seen before (nonces are kept in the node's state file),
  and that the contract the task names permits this task now (purpose, requester, operation, fields, period,
  region, not revoked). The contract comes with the claimed assignment, read by the hub in the claim's transaction
  (as fresh as asking for it separately, without the extra round trip; asked for with ``GET
  /v1/node/contracts/{uid}`` when it is missing), so a contract revoked before the claim is refused even if the
  hub dispatched a task under it. The node applies its patients' consent on the linkage pseudonym, runs the task
  on its de-identified view (the DuckDB store is held open read-only while tasks come, closed after
  ``store_idle`` seconds without one), passes the result through disclosure control and answers; its audit event
  about the step travels with the answer, and the answer also asks for the next assignments (``POST
  /v1/node/assignments/{id}?wait=…``), so a task costs one round trip. A task it refuses is answered with the
  reason and the rule.
* **consent** (``GET /v1/node/consents?since=…&wait=…``): the node's replica of its hospital's consents, kept
  current within one round trip of a change. The sequence the replica has applied is written to the state file's
  ``status`` table once it is applied (:func:`read_status`), so tools can tell, without asking the node, which
  changes it enforces.

When the hub cannot be reached the node retries with exponential backoff (0.2 s doubling to 30 s, with jitter)
and goes on where it stopped: an assignment it had claimed but not answered is handed out again by the hub
after its lease.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from medspace.compute.count import CountQuery, run_count, view_tables
from medspace.compute.errors import QueryError
from medspace.ledger.entry import Action, AuditEvent, Purpose, Role
from medspace.ledger.errors import EntryError
from medspace.node.errors import ConnectionFailed, TaskError
from medspace.node.http import HubHttp, Reply
from medspace.policy.consent import ConsentRegistry, HospitalDefaults
from medspace.policy.consent_fhir import TABLE_CATEGORY
from medspace.policy.contract import Contract, TaskRequest
from medspace.policy.envelope import open_envelope
from medspace.policy.errors import ContractError, EnvelopeError, PolicyError
from medspace.policy.pki import Space, client_context
from medspace.privacy.disclosure import DisclosureRules

WAIT = 20.0
STORE_IDLE = 10.0
REPLICA_WAIT = 10.0  # seconds a task waits for the consent replica to catch up with the hub before it is refused
MAX_BACKOFF = 30.0
NONCE_PURGE_EVERY = 10.0  # seconds between deletions of expired nonces from the state file


@dataclass
class NodeConfig:
    """What a node service needs: its hospital name, the hub, its copy of the space, its store and state."""

    name: str
    hub_url: str
    space: Path  # the node's copy of the space (`medspace space export`): CA, CRL, its key and certificate
    store: Path  # the node's DuckDB store, with its de-identified views built
    state: Path  # the node's own state file (SQLite): nonces seen
    region: str = "CN"
    defaults: HospitalDefaults | None = None
    min_cell: int = 5
    wait: float = WAIT
    store_idle: float = STORE_IDLE  # seconds without a task after which the store is closed
    store_threads: int | None = 1  # DuckDB threads of the store's connection (None: DuckDB's default, one per core)


@dataclass
class NodeStats:
    """What the service did since it started (for tests, the demo and the bench)."""

    tasks_done: int = 0
    tasks_refused: int = 0
    consent_seq: int = 0
    reconnects: int = 0
    refusals: list[str] = field(default_factory=list)


class _State:
    """The node's state file: task nonces it accepted, kept until the envelopes expire (a replay is refused), and
    a small status table (the consent sequence its replica has applied) that tools read without asking the node.

    WAL mode: a reader of the status (``medspace`` tools, the bench) never blocks the node's writes.
    """

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, expires REAL NOT NULL)")
        self._db.execute("CREATE TABLE IF NOT EXISTS status (key TEXT PRIMARY KEY, value INTEGER NOT NULL, "
                         "at REAL NOT NULL)")
        self._lock = threading.Lock()
        self._next_purge = 0.0

    def first_use(self, nonce: str, expires: datetime) -> bool:
        """Record a nonce; False if it was seen before."""
        with self._lock:
            now = time.time()
            if now >= self._next_purge:  # expired nonces are refused by the envelope's expiry: drop them now and then
                self._db.execute("DELETE FROM nonces WHERE expires < ?", (now,))
                self._next_purge = now + NONCE_PURGE_EVERY
            try:
                self._db.execute("INSERT INTO nonces VALUES (?, ?)", (nonce, expires.timestamp()))
            except sqlite3.IntegrityError:
                return False
            return True

    def set_status(self, key: str, value: int) -> None:
        """Record a status value (and when)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO status VALUES (?, ?, ?)", (key, value, time.time()))

    def close(self) -> None:
        self._db.close()


def read_status(state: Path) -> dict[str, int]:
    """A node's status from its state file, read-only (e.g. ``consent_seq``: the consent sequence its replica has
    applied); empty while the node has recorded none."""
    from urllib.parse import quote

    try:
        db = sqlite3.connect(f"file:{quote(str(state.absolute()))}?mode=ro", uri=True)
    except sqlite3.Error:
        return {}
    try:
        return {str(k): int(v) for k, v in db.execute("SELECT key, value FROM status")}
    except sqlite3.Error:
        return {}
    finally:
        db.close()


class NodeService:
    """A running node: the task and consent loops, each on its own thread."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.space = Space.open(config.space)
        self.registry = ConsentRegistry()
        self.stats = NodeStats()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._state = _State(config.state)
        self._store = _Store(config.store, config.store_idle, config.store_threads)
        self._hub_key: ec.EllipticCurvePublicKey | None = None
        self._tls = client_context(self.space, config.name)
        self.consent_changed = threading.Condition()
        self.connected = threading.Event()
        self._defaults_digest = ""

    # --- lifecycle ----------------------------------------------------------------------------------------

    def start(self) -> NodeService:
        """Start the loops in daemon threads."""
        for name, target in (("tasks", self._task_loop), ("consents", self._consent_loop)):
            t = threading.Thread(target=self._forever, args=(target,), name=f"medspace-node-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Ask the loops to end and wait for them (a long-poll in flight ends at its timeout)."""
        self._stop.set()
        for t in self._threads:
            t.join(self.config.wait + 5)
        self._state.close()
        self._store.close()

    def run(self) -> None:
        """Run until stopped (what `medspace node serve` does)."""
        self.start()
        try:
            while not self._stop.wait(0.5):
                pass
        finally:
            self.stop()

    def _client(self) -> HubHttp:
        return HubHttp(self.config.hub_url, self._tls, timeout=self.config.wait + 10)

    def _forever(self, loop: Callable[[HubHttp], None]) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                with self._client() as c:
                    loop(c)
                    backoff = 0.2
            except ConnectionFailed:
                self.connected.clear()
                self.stats.reconnects += 1
                self._stop.wait(backoff * (0.5 + random.random()))  # jitter: nodes do not return in lockstep
                backoff = min(backoff * 2, MAX_BACKOFF)

    # --- consent ------------------------------------------------------------------------------------------

    def _consent_loop(self, c: HubHttp) -> None:
        while not self._stop.is_set():
            r = c.get("/v1/node/consents", params={"since": self.stats.consent_seq, "wait": self.config.wait,
                                                   "defaults": self._defaults_digest})
            _check(r)
            self.connected.set()
            body = r.json()
            changed = False
            if body.get("defaults_digest") != self._defaults_digest:
                self.config.defaults = HospitalDefaults.from_dict({**body["defaults"], "hospital": self.config.name})
                self._defaults_digest = str(body["defaults_digest"])
                changed = True
            if body["resources"]:
                self.registry.apply_changes(body["resources"])
            if body["seq"] != self.stats.consent_seq:
                self._state.set_status("consent_seq", int(body["seq"]))
                changed = True
            if changed:
                with self.consent_changed:
                    self.stats.consent_seq = int(body["seq"])
                    self.consent_changed.notify_all()

    def _replica_at(self, seq: int, digest: str | None, timeout: float = REPLICA_WAIT) -> bool:
        """Wait until this node's consent replica holds the hub's state at dispatch (sequence ``seq``, defaults
        ``digest``); False if it does not within ``timeout`` seconds."""
        def caught_up() -> bool:
            return self.stats.consent_seq >= seq and (digest is None or self._defaults_digest == digest)

        with self.consent_changed:
            return self.consent_changed.wait_for(caught_up, timeout)

    # --- tasks --------------------------------------------------------------------------------------------

    def _hub_public_key(self, c: HubHttp) -> ec.EllipticCurvePublicKey:
        if self._hub_key is None:
            r = c.get("/v1/node/hub-certificate")
            _check(r)
            cert = x509.load_pem_x509_certificate(r.text.encode())
            from cryptography.hazmat.primitives.serialization import Encoding

            self.space.verify_peer(cert.public_bytes(Encoding.DER), roles=["hub"])
            key = cert.public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey):
                raise ConnectionFailed("the hub's certificate does not hold an EC key")
            self._hub_key = key
        return self._hub_key

    def _task_loop(self, c: HubHttp) -> None:
        hub_key = self._hub_public_key(c)
        body: dict[str, Any] | None = None
        linked = False
        while not self._stop.is_set():
            # while the store is held open, wake up in time to let it go when tasks stop coming
            wait = min(self.config.wait, self.config.store_idle) if self._store.is_open else self.config.wait
            if body is None:  # the first poll of a connection returns at once: the link is known to work
                r = c.get("/v1/node/assignments", params={"wait": wait if linked else 0})
                _check(r)
                body = r.json()
            if not linked:  # tools and tests read when the task link last (re)connected from the state file
                self._state.set_status("tasks_connected_at", int(time.time()))
                linked = True
            self.connected.set()
            items = body.get("assignments") or []
            contracts = body.get("contracts") or {}
            # consent changes made before these tasks were dispatched must be in force when they run
            behind = bool(items) and not self._replica_at(int(body.get("consent_seq") or 0),
                                                           body.get("defaults_digest"))
            body = None
            if not items:
                self._store.close_if_idle()
            for i, a in enumerate(items):
                # the last answer of a batch also asks for the next assignments: one round trip per task
                body = self._handle(c, hub_key, a, contracts, poll=wait if i == len(items) - 1 else None,
                                    behind=behind)

    def _handle(self, c: HubHttp, hub_key: ec.EllipticCurvePublicKey, assignment: dict[str, Any],
                contracts: dict[str, Any] | None = None, *, poll: float | None = None,
                behind: bool = False) -> dict[str, Any] | None:
        """Check, run and answer one assignment; the node's audit event travels with the answer. With ``poll``, the
        answer waits up to that long for the next assignments and returns them (None if the hub did not)."""
        aid = int(assignment["id"])
        envelope = assignment.get("envelope") or {}
        body = orjson.dumps(envelope, option=orjson.OPT_SORT_KEYS)
        params = {"wait": poll} if poll is not None else None
        answer: dict[str, Any]
        try:
            payload = self._check_envelope(hub_key, envelope)
            if behind:
                raise _Refusal("consent.replica-current", "this node's consent replica has not caught up with the "
                               f"consent changes made before the task (within {REPLICA_WAIT:g} s)", payload)
            info = self._contract_info(c, payload, contracts or {})
            result, contract_uid = self._run(payload, info)
        except _Refusal as e:
            self.stats.tasks_refused += 1
            self.stats.refusals.append(e.rule)
            ev = self._event(Action.TASK_REFUSE, e.purpose, f"task:{e.task}", e.contract, inputs=[body])
            answer = {"error": e.message, "rule": e.rule, "events": [ev]}
        else:
            out = orjson.dumps(result, option=orjson.OPT_SORT_KEYS)
            ev = self._event(Action.NODE_COMPUTE, payload["purpose"], f"task:{payload['task']}", contract_uid,
                             inputs=[body], outputs=[out])
            answer = {"result": result, "events": [ev]}
        r = c.post(f"/v1/node/assignments/{aid}", params=params, json=answer)
        _check(r, conflict_ok=True)  # 409: the task ended meanwhile (cancelled, past its deadline)
        if "result" in answer:
            self.stats.tasks_done += 1
        got = r.json() if r.status_code < 300 else {}
        return got if "assignments" in got else None

    def _check_envelope(self, hub_key: ec.EllipticCurvePublicKey, envelope: dict[str, Any]) -> dict[str, Any]:
        try:
            payload = open_envelope(envelope, hub_key, hospital=self.config.name)
        except EnvelopeError as e:
            raise _Refusal("task.envelope", str(e)) from None
        if not self._state.first_use(str(payload["nonce"]), datetime.fromisoformat(payload["expires_at"])):
            raise _Refusal("task.replay", "task envelope: already received (replayed)", payload)
        return payload

    def _contract_info(self, c: HubHttp, payload: dict[str, Any], contracts: dict[str, Any]) -> dict[str, Any]:
        """The contract a task names, as the hub holds it now: sent along with the claimed assignment (read in the
        claim's transaction, so as fresh as a request of its own), else asked for."""
        uid = str(payload.get("contract") or "")
        info = contracts.get(uid)
        if isinstance(info, dict):
            return info
        r = c.get(f"/v1/node/contracts/{uid}")
        if r.status_code in (403, 404):
            raise _Refusal("contract.unknown", f"contract {uid} is not one of this hospital's", payload)
        _check(r)
        return dict(r.json())

    def _run(self, payload: dict[str, Any], info: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """Check the task against its contract (``info``: the hub's view of it) and run it; a _Refusal otherwise."""
        uid = str(payload.get("contract") or "")
        try:
            query = CountQuery.from_params(payload.get("params") or {})
        except QueryError as e:
            raise _Refusal("task.malformed", str(e), payload) from None
        now = datetime.now(UTC)
        contract = self.check_contract(payload, info, query, now)
        categories = ["patient", *(TABLE_CATEGORY.get(t, t) for t in query.tables)]
        rules = DisclosureRules(min_cell=max(self.config.min_cell, contract.min_cell_size or 0), nk=None)
        try:
            result = self._count(query, str(payload["purpose"]), categories, now, rules)
        except (QueryError, TaskError) as e:
            raise _Refusal("task.cannot-run", str(e), payload) from None
        return result, uid

    def check_contract(self, payload: dict[str, Any], info: dict[str, Any], query: CountQuery,
                       now: datetime) -> Contract:
        """The contract of a task if it permits the task now at this hospital; a refusal naming the rule if not (a
        contract of another hospital, revoked or ended, or whose terms do not cover the task)."""
        uid = str(payload.get("contract") or "")
        if info.get("revoked_at") or info.get("ended") == "revoked":
            raise _Refusal("contract.revoked", f"contract {uid} was revoked", payload)
        try:
            contract = _parse_contract(orjson.dumps(info["odrl"], option=orjson.OPT_SORT_KEYS))
            if contract.uid != uid:
                raise _Refusal("contract.unknown", f"the hub sent another contract than {uid}", payload)
            if contract.assigner != self.config.name:
                raise _Refusal("contract.assigner", f"contract {uid} was not made by this hospital", payload)
            request = TaskRequest(contract=uid, requester=str(payload["requester"]),
                                  purpose=Purpose(payload["purpose"]), operation=str(payload["kind"]),
                                  fields=query.fields, hospital=self.config.name,
                                  destination=contract.region)
            decision = contract.permits(request, now)
        except (ContractError, PolicyError, ValueError, KeyError, TypeError) as e:
            raise _Refusal("contract.invalid", f"contract {uid}: {e}", payload) from None
        if not decision.allowed:
            first = decision.refusals[0] if decision.refusals else None
            raise _Refusal(first.rule_id if first else "contract.refused", decision.reason, payload)
        return contract

    def _count(self, query: CountQuery, purpose: str, categories: list[str], now: datetime,
               rules: DisclosureRules) -> dict[str, Any]:
        import duckdb

        con = self._store.connection()
        try:
            ids = self._store.pseudonyms(query.view)
            excluded = self.registry.excluded(ids, self.config.name, purpose, categories, now, self._defaults())
            return run_count(con, query, excluded, rules=rules, tables=self._store.tables(query.view))
        except duckdb.Error as e:
            self._store.close()  # a broken connection is not reused: the next task opens the store again
            raise TaskError(f"the node's store cannot be read now ({type(e).__name__})") from None

    def _defaults(self) -> HospitalDefaults:
        if self.config.defaults is None:
            self.config.defaults = HospitalDefaults.from_dict({"hospital": self.config.name})
        return self.config.defaults

    def _event(self, action: Action, purpose: str, resource: str, contract: str | None, *,
               inputs: Sequence[bytes] = (), outputs: Sequence[bytes] = ()) -> dict[str, Any]:
        """An audit event of this node's own work (sent with its answer; the hub appends it to the log)."""
        try:
            p = Purpose(purpose)
        except ValueError:
            p = Purpose.HSYSADMIN
        fields: dict[str, Any] = {"actor": f"node:{self.config.name}", "role": Role.NODE, "action": action,
                                  "purpose": p, "time": datetime.now(UTC),
                                  "input_hashes": tuple(hashlib.sha256(b).hexdigest() for b in inputs),
                                  "output_hashes": tuple(hashlib.sha256(b).hexdigest() for b in outputs)}
        try:
            ev = AuditEvent(**fields, resource=resource, contract_id=contract or None)
        except EntryError:  # an id the log refuses (a hub's bug must not stop the node): the event says so
            ev = AuditEvent(**fields, resource="task:malformed-id")
        return ev.to_dict()


@functools.lru_cache(maxsize=256)
def _parse_contract(odrl: bytes) -> Contract:
    """A contract from its ODRL JSON (canonical bytes), parsed once per text: Contract is immutable, and a changed
    contract (a revocation) is a new text."""
    return Contract.from_odrl(orjson.loads(odrl))


class _Store:
    """The node's DuckDB store, opened read-only on the first task and kept open while tasks come (opening costs
    more than a small count); closed after ``idle`` seconds without a task, so the hospital's own tools (ingest,
    view builds), which need the file to themselves, run between bursts of tasks."""

    def __init__(self, path: Path, idle: float, threads: int | None = None) -> None:
        self.path = path
        self.idle = idle
        # DuckDB's default is a thread per core; a node's counts are small and one at a time, where waking a thread
        # pool costs more CPU (and time) than it saves
        self.threads = threads
        self._con: Any = None
        self._used = 0.0
        self._ids: dict[str, Any] = {}
        self._tables: dict[str, frozenset[str]] = {}

    @property
    def is_open(self) -> bool:
        """Whether the store is held open now."""
        return self._con is not None

    def connection(self) -> Any:
        """The read-only connection (opened if needed); TaskError when the store cannot be opened."""
        import duckdb

        self._used = time.monotonic()
        if self._con is None:
            try:
                con = duckdb.connect(str(self.path), read_only=True)
                if self.threads:
                    # a setting, not a connect option: DuckDB refuses a second connection to one file in one process
                    # with other options (tests run several nodes' stores in one process)
                    con.execute(f"SET threads TO {int(self.threads)}")
                self._con = con
            except duckdb.Error as e:
                raise TaskError(f"the node's store cannot be read now ({type(e).__name__})") from None
        return self._con

    def tables(self, view: str) -> frozenset[str]:
        """The tables of a de-identified view, read once per opening (the store does not change while held open)."""
        have = self._tables.get(view)
        if have is None:
            have = self._tables[view] = view_tables(self.connection(), view)
        return have

    def pseudonyms(self, view: str) -> Any:
        """The linkage pseudonyms of a de-identified view's patients (an Arrow array), read once per opening: the
        store does not change while the node holds it open."""
        import duckdb

        ids = self._ids.get(view)
        if ids is None:
            schema = "deid_" + view.replace("-", "_")
            try:
                ids = self.connection().sql(f"SELECT linkage_id FROM {schema}.patient WHERE linkage_id IS NOT NULL"
                                            ).to_arrow_table().column(0)
            except duckdb.CatalogException:
                raise TaskError(f"the node has no de-identified view {view}") from None
            self._ids[view] = ids
        return ids

    def close_if_idle(self) -> None:
        """Close the store when no task used it for ``idle`` seconds."""
        if self._con is not None and time.monotonic() - self._used >= self.idle:
            self.close()

    def close(self) -> None:
        """Close the connection (the next task opens it again)."""
        con, self._con = self._con, None
        self._ids = {}
        self._tables = {}
        if con is not None:
            with contextlib.suppress(Exception):
                con.close()


class _Refusal(Exception):
    def __init__(self, rule: str, message: str, payload: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        payload = payload or {}
        self.task = str(payload.get("task") or "unknown")
        self.contract = str(payload["contract"]) if payload.get("contract") else None
        self.purpose = str(payload.get("purpose") or "HSYSADMIN")


def _check(r: Reply, *, conflict_ok: bool = False) -> None:
    if r.status_code < 300 or (conflict_ok and r.status_code == 409):
        return
    try:
        msg = r.json().get("error", "")
    except ValueError:
        msg = ""
    raise ConnectionFailed(f"the hub answered {r.status_code}: {msg}"[:300])


def wait_until(pred: Callable[[], bool], timeout: float) -> bool:
    """Poll ``pred`` until true or ``timeout`` seconds pass (tests and the demo)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return pred()

