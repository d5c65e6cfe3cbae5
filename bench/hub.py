"""The data space's service figures (issue 13), measured on real processes over loopback TLS. Prints one table.

    python bench/hub.py [--patients 2000] [--tasks 200] [--consent-samples 20] [--clients 50] [--seconds 60]
                        [--quick] [--skip-postgres] [--workdir DIR] [--pg-admin postgresql://postgres@127.0.0.1/test]

Set-up: five synthetic hospitals (``synth.generate.generate_hospital``, ``--patients`` each) prepared as node
stores with the research view (``node.prepare.prepare_node``), a space CA with the hub's and the nodes' certificates
(``policy.pki.init_space``) and a hub directory (``hub.service.init_hub``). Then, as separate processes, the hub
(``medspace hub serve DIR --port 0``) and five nodes (``medspace node serve --name hN --hub URL --space COPY --store
FILE --state FILE --region US``), each with its own copy of the space. This process plays the people: an admin
registers the hospitals and accounts, the stewards set US-style defaults (research on L2 data unless the patient
objects) and approve researchers' applications (count of patient.sex, patient.birth_date, condition.code), patients
set and revoke their consent, researchers run tasks. Every request goes over TLS to the hub's port, through
``medspace.client.HubClient`` except the load generator's (below), as any client of the hub would send it.

Figures (each with p50/p95/p99/max over n samples):

1. **dispatch**: a trivial task, a count of all consenting patients without ``group_by`` under five contracts, timed
   at the researcher from ``POST /v1/tasks`` until ``GET /v1/tasks/{id}?wait=30`` returns it done with the five
   hospitals' answers, one task at a time after a warm-up. Between the two, each node receives its signed envelope
   with the contract (long-poll), checks the signature, the nonce, the contract and its patients' consent, counts
   on its DuckDB research view, applies disclosure control and answers with its audit event; the hub combines and
   logs the release. A count is the trivial task here rather than a special no-op kind, so the figure includes
   everything a real task pays except the size of its scan. The note gives the CPU time each task costs the hub,
   the five nodes and the researcher's client (Linux /proc): with two cores, half their sum bounds the latency from
   below, whatever the scheduling.
2. **consent**: each sample changes one patient's consent at each of the five hospitals at once (alternately a
   revocation, ``DELETE /v1/consents/mine/{h}``, and a permit, ``PUT``), from five threads, and times from the
   moment the requests start until every node's replica has applied its change. A node records the consent
   sequence its replica has applied in its state file (table ``status``, written after the change is applied,
   read here read-only, every 2 ms): the node's own statement, read without asking the node anything. Consents are
   kept per hospital, so a change reaches only its hospital's node; "one node" is each change on its own, "every
   node" the last of the five. At the end a revocation at every hospital is checked to lower the federated count
   by exactly five: the replica is what the nodes enforce.
3. **load**: ``--clients`` concurrent clients, each one keep-alive TLS connection sending its next request as soon
   as the last is answered (no pause: the hub is saturated), for ``--seconds`` after 2 s of warm-up: four in five
   are researchers' sessions (five researchers) reading ``GET /v1/me``, ``GET /v1/tasks/{id}``, ``GET
   /v1/applications`` and ``GET /v1/contracts/{uid}``; one in five a patient's session standing in turn for five
   patients (50 patients, 10 per hospital), reading ``GET /v1/me`` and ``GET /v1/consents/mine`` and changing the
   consent (``PUT``/``DELETE``, each a durable audit entry with a salted subject commitment and a wake-up of the
   hospital's node). Any non-2xx answer or transport error counts as an error. First one hub process on SQLite,
   then two hub processes sharing a fresh PostgreSQL database (clients split between them; nodes h1-h3 on the
   first, h4-h5 on the second; the database is created before and dropped after the run). The load generator is
   asyncio with a minimal HTTP/1.1 client (:class:`MiniHttp`; httpx would cost it as much CPU per request as the hub
   spends answering) in this process, on the same two cores as the hub, the nodes and PostgreSQL; the note gives
   the share of a core each used.

Samples are taken after a warm-up; nothing is discarded. ``--quick`` is a smoke run (300 patients per hospital, 20
tasks, 4 consent samples, 3 s of load).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import random
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import duckdb
from rich.console import Console

from medspace.client import HubClient
from medspace.compute.count import total
from medspace.deid.keys import new_key
from medspace.hub.service import init_hub
from medspace.node.prepare import prepare_node
from medspace.policy.pki import Space, init_space
from medspace.synth.generate import generate_hospital

console = Console(width=150)
SRC = Path(__file__).resolve().parents[1] / "src"
HOSPITALS = 5
PW = "bench-password-long-enough"
FIELDS = ["patient.sex", "patient.birth_date", "condition.code"]
RESEARCHERS = 5
PATIENTS_PER_HOSPITAL = 10
PATIENT_SESSIONS = 10  # of the load's clients, one in five is a patient's session (10 of 50)
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


# --- statistics --------------------------------------------------------------------------------------------------


def pct(sorted_xs: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of sorted samples."""
    return sorted_xs[max(0, math.ceil(p / 100 * len(sorted_xs)) - 1)]


@dataclass
class Figure:
    """One row of the table: latency samples in seconds, the targets on p50 and p99, and notes."""

    name: str
    samples: list[float]
    p50_target: float | None = None
    p99_target: float | None = None
    max_target: float | None = None
    errors: int = 0
    note: str = ""

    @property
    def ok(self) -> bool | None:
        """Whether every target holds (None: informative row without a target)."""
        if self.p50_target is None and self.p99_target is None and self.max_target is None:
            return None
        if not self.samples:
            return False
        xs = sorted(self.samples)
        return (self.errors == 0 and (self.p50_target is None or pct(xs, 50) < self.p50_target)
                and (self.p99_target is None or pct(xs, 99) < self.p99_target)
                and (self.max_target is None or xs[-1] < self.max_target))

    def target(self) -> str:
        """The targets in words."""
        parts = []
        if self.p50_target is not None:
            parts.append(f"p50 < {self.p50_target * 1000:g} ms")
        if self.p99_target is not None:
            parts.append(f"p99 < {self.p99_target * 1000:g} ms")
        if self.max_target is not None:
            parts.append(f"max < {self.max_target * 1000:g} ms")
        if self.errors or (self.p99_target is not None and "load" in self.name):
            parts.append("no error")
        return ", ".join(parts) or "-"


def ms(x: float) -> str:
    """Milliseconds, 1 decimal."""
    return f"{x * 1000:.1f}"


# --- the data space ----------------------------------------------------------------------------------------------


@dataclass
class Built:
    """Node stores, the space and a few patients' pseudonyms per hospital."""

    root: Path
    space: Path
    hospitals: list[str]
    stores: dict[str, Path]
    pseudonyms: dict[str, list[str]]
    patients: dict[str, int]


def build(root: Path, patients: int) -> Built:
    """Generate and prepare the five hospitals and create the space (reused when ``root`` holds them already)."""
    hospitals = [f"h{i}" for i in range(1, HOSPITALS + 1)]
    stores = {h: root / "nodes" / f"{h}.duckdb" for h in hospitals}
    marker = root / f"built-{patients}"
    if not marker.exists():
        if root.exists():
            shutil.rmtree(root)
        key = new_key()
        for i, h in enumerate(hospitals, 1):
            t0 = time.perf_counter()
            result = generate_hospital(root / "sources", i, HOSPITALS, patients, seed=13)
            stores[h].parent.mkdir(parents=True, exist_ok=True)
            prepare_node(stores[h], [root / "sources" / result.hospital.dir], key)
            console.print(f"  prepared {h}: {patients:,} patients in {time.perf_counter() - t0:.1f} s",
                          highlight=False)
        shutil.rmtree(root / "sources")
        init_space(root / "space", "bench-space", nodes=hospitals)
        marker.write_text("ok\n")
    pseudonyms: dict[str, list[str]] = {}
    held: dict[str, int] = {}
    for h in hospitals:
        with duckdb.connect(str(stores[h]), read_only=True) as con:
            rows = con.execute("SELECT linkage_id FROM deid_research.patient WHERE linkage_id IS NOT NULL "
                               "ORDER BY linkage_id LIMIT 50").fetchall()
            pseudonyms[h] = [r[0] for r in rows]
            n = con.execute("SELECT count(*) FROM deid_research.patient").fetchone()
            held[h] = int(n[0]) if n else 0
    return Built(root, root / "space", hospitals, stores, pseudonyms, held)


def medspace_cmd() -> list[str]:
    """How to run the `medspace` command with this checkout's sources."""
    return [sys.executable, "-c", "from medspace.cli.entry import run; run()"]


def child_env() -> dict[str, str]:
    """The environment of the hub and node processes: this checkout's sources first."""
    path = os.environ.get("PYTHONPATH", "")
    return {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{path}" if path else str(SRC), "NO_COLOR": "1"}


@dataclass
class Proc:
    """A child process of the bench and where its output goes."""

    name: str
    popen: subprocess.Popen[str]
    out: TextIO

    def stop(self) -> None:
        """Terminate it (SIGTERM, then SIGKILL after 10 s) and close its output."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.out.close()


def start_hub(hub_dir: Path, logs: Path, tag: str) -> tuple[Proc, str]:
    """`medspace hub serve DIR --port 0` as a child process; its URL once it listens."""
    out = (logs / f"hub-{tag}.log").open("w+")
    cmd = [*medspace_cmd(), "hub", "serve", str(hub_dir), "--port", "0"]
    popen = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=child_env())
    proc = Proc(f"hub-{tag}", popen, out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        text = (logs / f"hub-{tag}.log").read_text()
        m = re.search(r"https://[0-9.]+:\d+", text)
        if m:
            return proc, m.group(0)
        if popen.poll() is not None:
            break
        time.sleep(0.05)
    proc.stop()
    raise RuntimeError(f"the hub did not start; see {logs / f'hub-{tag}.log'}")


def start_node(b: Built, name: str, hub_url: str, copy: Path, state: Path, logs: Path) -> Proc:
    """`medspace node serve ...` as a child process."""
    out = (logs / f"node-{name}.log").open("a")
    cmd = [*medspace_cmd(), "node", "serve", "--name", name, "--hub", hub_url, "--space", str(copy),
           "--store", str(b.stores[name]), "--state", str(state), "--region", "US"]
    return Proc(f"node-{name}", subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True,
                                                 env=child_env()), out)


@dataclass
class World:
    """A running data space: hub process(es), node processes, accounts, contracts, finished tasks."""

    built: Built
    urls: list[str]
    ca: str
    procs: list[Proc]
    states: dict[str, Path]
    researchers: dict[str, HubClient] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    contracts: dict[str, dict[str, str]] = field(default_factory=dict)  # researcher -> hospital -> contract
    applications: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, list[str]] = field(default_factory=dict)  # researcher -> finished task ids
    patients: dict[str, tuple[str, HubClient]] = field(default_factory=dict)  # username -> (hospital, client)

    def client(self, i: int = 0) -> HubClient:
        """A new client of hub process ``i``."""
        return HubClient(self.urls[i % len(self.urls)], verify=self.ca, timeout=60)

    def stop(self) -> None:
        """Stop every process (nodes first) and close the clients."""
        for c in [*self.researchers.values(), *(c for _, c in self.patients.values())]:
            c.close()
        for p in reversed(self.procs):
            with contextlib.suppress(Exception):
                p.stop()


@contextlib.contextmanager
def world(b: Built, work: Path, tag: str, *, database: str | None = None, hubs: int = 1) -> Iterator[World]:
    """Start a hub (``hubs`` processes on one database), five nodes and the accounts; stop them afterwards."""
    hub_dir = work / f"hub-{tag}"
    logs = work / f"logs-{tag}"
    logs.mkdir(parents=True, exist_ok=True)
    init_hub(hub_dir, origin=f"medspace.bench/{tag}", admin="root", password=PW, space=b.space, database=database)
    procs: list[Proc] = []
    w: World | None = None
    try:
        urls = []
        for i in range(hubs):
            p, url = start_hub(hub_dir, logs, f"{tag}{i}")
            procs.append(p)
            urls.append(url)
        ca = str(b.space / "ca" / "ca.pem")
        states = {h: work / f"state-{tag}" / f"{h}.sqlite" for h in b.hospitals}
        w = World(b, urls, ca, procs, states)
        setup_accounts(w)
        space = Space.open(b.space)
        for i, h in enumerate(b.hospitals):
            copy = work / f"copies-{tag}" / h
            if not copy.exists():
                space.export(h, copy)
            states[h].parent.mkdir(parents=True, exist_ok=True)
            # with two hub processes the nodes are split between them, as hospitals would be by a load balancer
            procs.append(start_node(b, h, urls[(i * hubs) // len(b.hospitals)], copy, states[h], logs))
        setup_contracts(w)
        yield w
    finally:
        if w is not None:
            w.stop()
        else:
            for p in procs:
                p.stop()


def setup_accounts(w: World) -> None:
    """Hospitals, stewards with defaults, researchers, patients (two per hospital)."""
    b = w.built
    with w.client().login("root", PW) as admin:
        for h in b.hospitals:
            admin.register(h, "node", region="US", packs=["sensitivity", "hipaa"])
            admin.create_user(f"s-{h}", "steward", PW, hospital=h)
        for r in range(1, RESEARCHERS + 1):
            admin.create_user(f"r{r}", "researcher", PW)
        for h in b.hospitals:
            for k in range(PATIENTS_PER_HOSPITAL):
                admin.create_user(f"p-{h}-{k}", "patient", PW, pseudonym=b.pseudonyms[h][k])
    for h in b.hospitals:
        with w.client().login(f"s-{h}", PW) as s:  # US hospitals: research on L2 data unless the patient objects
            s.set_defaults(h, {"fallback": "opt-in", "modes": {"HRESCH": {"L2": "opt-out", "L3": "opt-out"}}})
    for r in range(1, RESEARCHERS + 1):
        c = w.client(r).login(f"r{r}", PW)
        w.researchers[f"r{r}"] = c
        w.tokens[f"r{r}"] = c._token or ""
    for i, h in enumerate(b.hospitals):
        for k in range(PATIENTS_PER_HOSPITAL):
            name = f"p-{h}-{k}"
            c = w.client(i + k).login(name, PW)
            c.set_consent(h, permit=["HRESCH"])
            w.patients[name] = (h, c)
            w.tokens[name] = c._token or ""


def setup_contracts(w: World) -> None:
    """Each researcher's application, approved at every hospital; three finished tasks each (the first waits for
    the nodes to connect)."""
    b = w.built
    now = datetime.now(UTC)
    stewards = {h: w.client().login(f"s-{h}", PW) for h in b.hospitals}
    try:
        for name, r in w.researchers.items():
            a = r.apply(purpose="HRESCH", duo=["DUO:0000042"], fields=FIELDS, operations=["count"],
                        start=now - timedelta(minutes=1), end=now + timedelta(days=30), region="US",
                        hospitals=b.hospitals)
            for h, s in stewards.items():
                s.decide(a["id"], h, "approve")
            w.contracts[name] = dict(a["contracts"])
            w.applications[name] = a["id"]
    finally:
        for s in stewards.values():
            s.close()
    for name, r in w.researchers.items():
        w.tasks[name] = []
        for _ in range(3):
            t = r.run_task(contracts=w.contracts[name], params={"group_by": []}, wait=60)
            if t["status"] != "done":
                raise RuntimeError(f"a set-up task ended {t['status']}: {t.get('error')}")
            w.tasks[name].append(t["id"])


# --- figure 1: dispatch ------------------------------------------------------------------------------------------


def cpu_seconds(pids: Sequence[int]) -> float:
    """User and system CPU time of processes so far (Linux /proc), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total_ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total_ticks += int(fields[11]) + int(fields[12])
    return total_ticks / tick


def dispatch(w: World, tasks: int, warmup: int) -> list[Figure]:
    """Sequential trivial tasks, submit to result, at the researcher."""
    r = w.researchers["r1"]
    contracts = w.contracts["r1"]
    whole: list[float] = []
    submit: list[float] = []
    hubs = [p.popen.pid for p in w.procs if p.name.startswith("hub")]
    nodes = [p.popen.pid for p in w.procs if p.name.startswith("node")]
    cpu0 = (0.0, 0.0, 0.0)
    for i in range(warmup + tasks):
        if i == warmup:
            cpu0 = (cpu_seconds(hubs), cpu_seconds(nodes), time.process_time())
        t0 = time.perf_counter()
        tid = r.submit(contracts=contracts, params={"group_by": []})["id"]
        t1 = time.perf_counter()
        res = r.task(tid, wait=30)
        t2 = time.perf_counter()
        if res["status"] != "done" or len(res["result"]["hospitals"]) != HOSPITALS:
            raise RuntimeError(f"task {i} ended {res['status']}: {res.get('error')}")
        if i >= warmup:
            whole.append(t2 - t0)
            submit.append(t1 - t0)
    hub_cpu, node_cpu, me_cpu = (cpu_seconds(hubs) - cpu0[0], cpu_seconds(nodes) - cpu0[1],
                                 time.process_time() - cpu0[2])
    note = (f"CPU per task: hub {hub_cpu / tasks * 1000:.1f} ms, 5 nodes {node_cpu / tasks * 1000:.1f} ms, "
            f"researcher's client {me_cpu / tasks * 1000:.1f} ms")
    return [Figure("1. dispatch hub -> 5 nodes -> hub, trivial count", whole, p50_target=0.020, p99_target=0.100,
                   note=note),
            Figure("   of which POST /v1/tasks (checked, signed, queued, logged)", submit)]


# --- figure 2: consent -------------------------------------------------------------------------------------------


class StatusReader:
    """Reads one node's status table from its state file (read-only connection, kept open)."""

    def __init__(self, state: Path) -> None:
        from urllib.parse import quote

        self._db = sqlite3.connect(f"file:{quote(str(state.absolute()))}?mode=ro", uri=True,
                                   check_same_thread=False)

    def consent_seq(self) -> int:
        """The consent sequence the node's replica has applied (0: none yet)."""
        try:
            row = self._db.execute("SELECT value FROM status WHERE key = 'consent_seq'").fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


def consent(w: World, samples: int) -> list[Figure]:
    """Consent changes at every hospital at once, until every node's replica has applied its change."""
    b = w.built
    first = {h: c for _, (h, c) in sorted(w.patients.items()) if _.endswith("-0")}
    readers = {h: StatusReader(w.states[h]) for h in b.hospitals}
    each: list[float] = []
    every: list[float] = []
    try:
        for k in range(samples + 1):  # the last round is the enforcement check's revocation, not a sample
            revoke = k % 2 == 0
            start = threading.Barrier(len(b.hospitals) + 1)
            done: dict[str, float] = {}
            failed: list[str] = []

            def change(h: str, c: HubClient, revoke: bool = revoke, start: threading.Barrier = start,
                       done: dict[str, float] = done, failed: list[str] = failed) -> None:
                start.wait()
                try:
                    seq = int((c.revoke_consent(h) if revoke else c.set_consent(h, permit=["HRESCH"]))["seq"])
                    limit = time.monotonic() + 10
                    while readers[h].consent_seq() < seq:
                        if time.monotonic() > limit:
                            raise TimeoutError(f"{h} did not apply consent seq {seq} within 10 s")
                        time.sleep(0.002)
                    done[h] = time.perf_counter()
                except Exception as e:
                    failed.append(f"{h}: {e}")

            if k == samples:
                before = total(w.researchers["r1"].run_task(contracts=w.contracts["r1"], params={})["result"])
            threads = [threading.Thread(target=change, args=(h, c)) for h, c in first.items()]
            for t in threads:
                t.start()
            start.wait()
            t0 = time.perf_counter()
            for t in threads:
                t.join()
            if failed:
                raise RuntimeError("; ".join(failed))
            if k < samples:
                each += [t - t0 for t in done.values()]
                every.append(max(done.values()) - t0)
        after = total(w.researchers["r1"].run_task(contracts=w.contracts["r1"], params={})["result"])
    finally:
        for rd in readers.values():
            rd.close()
    enforced = before is not None and after is not None and after == before - len(b.hospitals)
    note = (f"count {before} -> {after} after one revocation at each hospital: "
            + ("enforced" if enforced else "NOT ENFORCED"))
    return [Figure("2. consent change -> applied at every node (5 at once)", every, max_target=1.0,
                   errors=0 if enforced else 1, note=note),
            Figure("   one node applies its change", each)]


# --- figure 3: load ----------------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    """Latencies and errors of a load run."""

    latencies: list[float]
    errors: int
    by_op: dict[str, list[float]]
    seconds: float
    error_kinds: dict[str, int]


class MiniHttp:
    """A minimal HTTP/1.1 keep-alive client over one TLS connection, for the load generator: it sends a request and
    reads the whole answer (status line, headers, a Content-Length body), and nothing else. httpx costs the load
    generator about as much CPU per request as the hub spends answering it, on the cores the hub needs."""

    def __init__(self, url: str, ssl_ctx: Any) -> None:
        m = re.fullmatch(r"https://([^:/]+):(\d+)", url)
        if m is None:
            raise ValueError(f"not an https://host:port URL: {url}")
        self.host, self.port = m.group(1), int(m.group(2))
        self.ssl_ctx = ssl_ctx
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, token: str, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request (with a bearer token) and read its whole answer; (status, body)."""
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port, ssl=self.ssl_ctx,
                                                                     server_hostname=self.host)
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Length: {len(body)}\r\n" + ("Content-Type: application/json\r\n" if body else "") + "\r\n")
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            await self.close()
            raise ConnectionError("no HTTP answer")
        length = None
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length is None:
            await self.close()
            raise ConnectionError("an answer without Content-Length")
        return int(parts[1]), await self.reader.readexactly(length)

    async def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def _client_loop(w: World, i: int, deadline: float, res: LoadResult, ssl_ctx: Any) -> None:
    rng = random.Random(i)
    researcher = i % 5 != 0
    if researcher:
        users = [f"r{1 + i % RESEARCHERS}"]
        ops = [("GET /v1/me", 2), ("GET /v1/tasks/{id}", 3), ("GET /v1/applications", 2),
               ("GET /v1/contracts/{uid}", 3)]
    else:  # a patient's session stands for several patients in turn: many patients, each changing now and then
        everyone = sorted(w.patients)
        users = everyone[(i // 5) % PATIENT_SESSIONS::PATIENT_SESSIONS]
        ops = [("GET /v1/me", 5), ("GET /v1/consents/mine", 3), ("PUT /v1/consents/mine/{h}", 2)]
    names = [o for o, _ in ops]
    weights = [wt for _, wt in ops]
    permit = False
    c = MiniHttp(w.urls[i % len(w.urls)], ssl_ctx)
    turn = 0
    try:
        while time.perf_counter() < deadline:
            op = rng.choices(names, weights)[0]
            user = users[turn % len(users)]
            token = w.tokens[user]
            turn += 1
            t0 = time.perf_counter()
            try:
                if op == "GET /v1/me":
                    status, _ = await c.request("GET", "/v1/me", token)
                elif op == "GET /v1/tasks/{id}":
                    status, _ = await c.request("GET", f"/v1/tasks/{rng.choice(w.tasks[user])}", token)
                elif op == "GET /v1/applications":
                    status, _ = await c.request("GET", "/v1/applications", token)
                elif op == "GET /v1/contracts/{uid}":
                    uid = rng.choice(list(w.contracts[user].values()))
                    status, _ = await c.request("GET", f"/v1/contracts/{uid}", token)
                elif op == "GET /v1/consents/mine":
                    status, _ = await c.request("GET", "/v1/consents/mine", token)
                else:
                    h = w.patients[user][0]
                    permit = not permit
                    if permit:
                        status, _ = await c.request("PUT", f"/v1/consents/mine/{h}", token, b'{"permit": ["HRESCH"]}')
                    else:
                        status, _ = await c.request("DELETE", f"/v1/consents/mine/{h}", token)
                dt = time.perf_counter() - t0
            except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                res.errors += 1
                kind = f"{op}: {type(e).__name__}"
                res.error_kinds[kind] = res.error_kinds.get(kind, 0) + 1
                await c.close()
                continue
            if status >= 300:
                res.errors += 1
                res.error_kinds[f"{op}: {status}"] = res.error_kinds.get(f"{op}: {status}", 0) + 1
                continue
            res.latencies.append(dt)
            res.by_op.setdefault(op, []).append(dt)
    finally:
        await c.close()


async def _load(w: World, clients: int, seconds: float) -> LoadResult:
    import ssl

    ctx = ssl.create_default_context(cafile=w.ca)
    res = LoadResult([], 0, {}, seconds, {})
    # warm up: every client's TLS connection made and a few requests served, not timed
    warm = LoadResult([], 0, {}, 0, {})
    end = time.perf_counter() + 2
    await asyncio.gather(*(_client_loop(w, i, end, warm, ctx) for i in range(clients)))
    t0 = time.perf_counter()
    await asyncio.gather(*(_client_loop(w, i, t0 + seconds, res, ctx) for i in range(clients)))
    res.seconds = time.perf_counter() - t0
    return res


def load(w: World, clients: int, seconds: float, label: str) -> list[Figure]:
    """The API under ``clients`` concurrent clients for ``seconds``."""
    hubs = [p.popen.pid for p in w.procs if p.name.startswith("hub")]
    nodes = [p.popen.pid for p in w.procs if p.name.startswith("node")]
    cpu0 = (cpu_seconds(hubs), cpu_seconds(nodes), time.process_time())
    res = asyncio.run(_load(w, clients, seconds))
    cpu1 = (cpu_seconds(hubs), cpu_seconds(nodes), time.process_time())
    n = len(res.latencies)
    note = (f"{n / res.seconds:,.0f} requests/s; CPU busy (of {os.cpu_count()} cores, warm-up included): "
            f"hub {(cpu1[0] - cpu0[0]) / (res.seconds + 2):.2f}, nodes {(cpu1[1] - cpu0[1]) / (res.seconds + 2):.2f}, "
            f"load generator {(cpu1[2] - cpu0[2]) / (res.seconds + 2):.2f}")
    if res.error_kinds:
        note += "; errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(res.error_kinds.items()))
    rows = [Figure(f"3. load: {clients} clients x {seconds:g} s, {label}", res.latencies, p99_target=0.200,
                   errors=res.errors, note=note)]
    for op, xs in sorted(res.by_op.items()):
        rows.append(Figure(f"   {op}", xs))
    return rows


# --- PostgreSQL --------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def pg_database(admin: str) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    import psycopg

    name = "medspace_bench_" + secrets.token_hex(6)
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    base = admin.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# --- the table ---------------------------------------------------------------------------------------------------


def machine() -> str:
    """CPU model and count, OS, Python."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({model or platform.processor() or 'unknown CPU'}), {platform.system()} " \
           f"{platform.release()}, Python {platform.python_version()}"


def render(rows: list[Figure], notes: list[str]) -> None:
    """Print the figures as a markdown table, then the notes."""
    print("| figure | n | p50 ms | p95 ms | p99 ms | max ms | target | ok |")
    print("|---|---:|---:|---:|---:|---:|---|---|")
    for f in rows:
        xs = sorted(f.samples)
        cells = [ms(pct(xs, p)) for p in (50, 95, 99)] + [ms(xs[-1])] if xs else ["-"] * 4
        ok = {True: "yes", False: "**NO**", None: ""}[f.ok]
        print(f"| {f.name} | {len(xs)} | {' | '.join(cells)} | {f.target()} | {ok} |")
    print()
    for f in rows:
        if f.note:
            print(f"- {f.name.strip()}: {f.note}")
    for n in notes:
        print(f"- {n}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the bench; 0 when it ran (the table says which targets hold)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=2000, help="patients per hospital")
    ap.add_argument("--tasks", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--consent-samples", type=int, default=20)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--quick", action="store_true", help="a smoke run: small hospitals, few samples, 3 s of load")
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--pg-admin", default=PG_ADMIN, help="a PostgreSQL database to create and drop others from")
    ap.add_argument("--workdir", type=Path, help="keep the node stores here and reuse them (default: a temp dir)")
    a = ap.parse_args(argv)
    if a.quick:
        a.patients, a.tasks, a.warmup, a.consent_samples = 300, 20, 5, 4
        a.seconds = min(a.seconds, 3.0)
    temp = None
    if a.workdir is None:
        temp = tempfile.mkdtemp(prefix="medspace-bench-hub-")
        a.workdir = Path(temp)
    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    rows: list[Figure] = []
    notes: list[str] = []
    try:
        console.print(f"building {HOSPITALS} synthetic hospitals of {a.patients:,} patients in {a.workdir}",
                      highlight=False)
        b = build(a.workdir / f"space-{a.patients}", a.patients)
        runs = a.workdir / f"run-{secrets.token_hex(3)}"
        console.print("SQLite hub: dispatch, consent, load", highlight=False)
        with world(b, runs, "sqlite") as w:
            rows += dispatch(w, a.tasks, a.warmup)
            rows += consent(w, a.consent_samples)
            rows += load(w, a.clients, a.seconds, "1 hub process, SQLite")
        if a.skip_postgres:
            notes.append("PostgreSQL run skipped (--skip-postgres)")
        else:
            console.print("PostgreSQL hubs: load, dispatch", highlight=False)
            with pg_database(a.pg_admin) as url, world(b, runs, "pg", database=url, hubs=2) as w:
                rows += load(w, a.clients, a.seconds, "2 hub processes, PostgreSQL")
                rows += [Figure(f.name.replace("1. dispatch", "   dispatch, 2 PostgreSQL hubs,") if f.name.startswith(
                    "1.") else f.name, f.samples) for f in dispatch(w, a.tasks, a.warmup)[:1]]
        held = sum(b.patients.values())
        notes += [f"data: {HOSPITALS} synthetic hospitals (synth.generate, seed 13), {a.patients:,} patients generated "
                  f"each, {held:,} in the research views",
                  f"machine: {machine()}; hub, 5 nodes and the load generator share it (load average "
                  f"{load_before:.1f} before the run, {os.getloadavg()[0]:.1f} after: other work on the machine "
                  "shows here)",
                  f"wall time {time.perf_counter() - started:.0f} s"]
        render(rows, notes)
        return 0
    finally:
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
