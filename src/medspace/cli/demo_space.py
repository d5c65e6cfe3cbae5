"""The data space part of `medspace demo`: a hub, one node per hospital and two witnesses as real processes on
loopback, an application walked through approval, a federated count under the contracts, a patient's consent
revoked and the count changing, and the audit log's witnessed checkpoint verified.

Every process the demo starts is stopped when it ends, fails or is interrupted (Ctrl-C): first asked (SIGTERM),
then killed after a grace period. Their output goes to ``<dir>/logs/``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import duckdb
from rich.console import Console
from rich.table import Table

from medspace.cli.common import InputError

CN_PACKS = ("sensitivity", "pipl")
US_PACKS = ("sensitivity", "hipaa")
CONSENTING = 0.7  # share of a Chinese hospital's patients whose signed research consent the steward imports
_CMD = [sys.executable, "-c", "from medspace.cli.entry import run; run()"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the witnesses take theirs as an argument)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """Child processes the demo owns: started with their output in log files, all stopped on exit."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._files: list[IO[bytes]] = []

    def start(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        """Start ``medspace <args>`` as process ``name``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        out = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop_all
        self._files.append(out)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        p = subprocess.Popen([*_CMD, *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        self.procs[name] = p
        return p

    def check(self) -> None:
        """InputError if a process has died (its log says why)."""
        for name, p in self.procs.items():
            if p.poll() is not None:
                raise InputError(f"the demo's {name} process ended (exit {p.returncode}); see "
                                 f"{self.logs / (name + '.log')}")

    def stop(self, name: str) -> None:
        """Stop one process (SIGTERM, then SIGKILL after 5 s)."""
        p = self.procs.pop(name, None)
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def kill(self, name: str) -> None:
        """Kill one process at once (SIGKILL: no clean-up, as a crash or a pulled plug would leave it)."""
        p = self.procs.pop(name, None)
        if p is not None and p.poll() is None:
            p.kill()
            p.wait(5)

    def stop_all(self) -> None:
        """Stop every process, then close the log files."""
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(5)
        self.procs.clear()
        for f in self._files:
            f.close()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()


def wait_for_line(path: Path, prefix: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> str:
    """The first line of a process's log starting with ``prefix`` (e.g. "hub listening on")."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith(prefix):
                    return line
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise InputError(f"{path.stem} did not start (see {path})")


@dataclass
class DemoHospital:
    """One hospital of the demo: its id, flavour (cn, us), name and store."""

    id: str
    flavour: str
    name: str
    store: Path


def _linkage_ids(store: Path, diabetes_only: bool = False) -> list[str]:
    with duckdb.connect(str(store), read_only=True) as con:
        if diabetes_only:
            sql = ("SELECT DISTINCT p.linkage_id FROM deid_research.patient p JOIN deid_research.condition c "
                   "ON c.patient_id = p.id WHERE starts_with(c.code, 'E11') AND p.linkage_id IS NOT NULL ORDER BY 1")
        else:
            sql = "SELECT linkage_id FROM deid_research.patient WHERE linkage_id IS NOT NULL ORDER BY 1"
        return [r[0] for r in con.execute(sql).fetchall()]


@contextmanager
def space_processes(workdir: Path, hospitals: list[DemoHospital], console: Console) -> Iterator[dict[str, Any]]:
    """Create the space, the hub and the witnesses' keys, start every process, yield the hub's URL and paths."""
    from medspace.hub.service import init_hub
    from medspace.ledger.checkpoint import generate_key_files
    from medspace.ledger.log import WitnessConfig, read_config, write_config
    from medspace.policy.pki import Space, init_space

    ids = [h.id for h in hospitals]
    space_dir = workdir / "space"
    init_space(space_dir, "medspace-demo", nodes=ids, witnesses=["w1", "w2"])
    space = Space.open(space_dir)
    admin_pw = secrets.token_urlsafe(18)
    hub_dir = workdir / "hub"
    init_hub(hub_dir, origin="medspace.demo/hub", admin="admin", password=admin_pw, space=space_dir)
    witnesses = {}
    for w in ("w1", "w2"):
        wdir = workdir / "witnesses" / w
        wdir.mkdir(parents=True)
        vkey = generate_key_files(f"medspace.demo/{w}", wdir / "witness.key", wdir / "witness.vkey", cosigner=True)
        witnesses[w] = (wdir, vkey, free_port())
    cfg = read_config(hub_dir / "log")
    cfg.witnesses = [WitnessConfig(f"https://127.0.0.1:{port}", vkey) for _, vkey, port in witnesses.values()]
    cfg.quorum = 2
    write_config(hub_dir / "log", cfg)
    for hid in [*ids, *witnesses]:
        space.export(hid, workdir / "copies" / hid)

    with Processes(workdir / "logs") as procs:
        for w, (wdir, _vkey, port) in witnesses.items():
            procs.start(w, ["witness", "serve", "--state", str(wdir / "state.sqlite"), "--key",
                            str(wdir / "witness.key"), "--log-key", str(hub_dir / "log" / "log.vkey"),
                            "--port", str(port), "--no-access-log", "--space", str(workdir / "copies" / w),
                            "--name", w])
        hub = procs.start("hub", ["hub", "serve", str(hub_dir), "--port", "0"])
        url = wait_for_line(procs.logs / "hub.log", "hub listening on", hub).split()[-1]
        for h in hospitals:
            procs.start(h.id, ["node", "serve", "--name", h.id, "--hub", url, "--space", str(workdir / "copies" / h.id),
                               "--store", str(h.store), "--region", h.flavour.upper()])
        console.print(f"started a hub ({url}), {len(hospitals)} nodes and 2 witnesses as processes on loopback "
                      f"(logs in {procs.logs}/)", highlight=False)
        yield {"url": url, "ca": str(space_dir / "ca" / "ca.pem"), "admin_pw": admin_pw, "procs": procs,
               "hub_dir": hub_dir, "witness_vkeys": [v for _, v, _ in witnesses.values()]}


def run_space_demo(workdir: Path, hospitals: list[DemoHospital], console: Console) -> None:
    """Walk a study through the space and print what each party sees; SIGTERM and Ctrl-C stop every process."""
    def _terminated(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt  # a SIGTERM ends the demo like Ctrl-C: its processes are stopped on the way out

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        _walk(workdir, hospitals, console)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _walk(workdir: Path, hospitals: list[DemoHospital], console: Console) -> None:
    from medspace.client import HubClient
    from medspace.compute.count import total
    from medspace.policy.consent import EXAMPLE_CN_DEFAULTS, EXAMPLE_US_DEFAULTS, build_consent

    with space_processes(workdir, hospitals, console) as sp:
        procs: Processes = sp["procs"]
        pw = secrets.token_urlsafe(16)
        admin = HubClient(sp["url"], verify=sp["ca"]).login("admin", sp["admin_pw"])
        for h in hospitals:
            cn = h.flavour == "cn"
            admin.register(h.id, "node", region="CN" if cn else "US", packs=CN_PACKS if cn else US_PACKS)
            admin.create_user(f"steward-{h.id}", "steward", pw, hospital=h.id)
        admin.create_user("dr-researcher", "researcher", pw)
        stewards = {h.id: HubClient(sp["url"], verify=sp["ca"]).login(f"steward-{h.id}", pw) for h in hospitals}

        # each hospital's consent defaults; the Chinese hospitals import their patients' signed research consents
        consented = 0
        applied: dict[str, int] = {}  # hospital -> the consent sequence its node must have applied
        for h in hospitals:
            defaults = EXAMPLE_CN_DEFAULTS if h.flavour == "cn" else EXAMPLE_US_DEFAULTS
            stewards[h.id].set_defaults(h.id, {k: v for k, v in defaults.items() if k != "hospital"})
            if h.flavour == "cn":
                # which patients signed is the story's choice: the diabetic ones first, so that the study's counts
                # do not depend on the run's fresh linkage key (the subset is otherwise drawn by its order)
                diabetic = set(_linkage_ids(h.store, diabetes_only=True))
                ids = sorted(_linkage_ids(h.store), key=lambda p: p not in diabetic)
                chosen = ids[: int(len(ids) * CONSENTING)]
                forms = [build_consent(p, h.id, permit_purposes=["HRESCH"], version=None) for p in chosen]
                out = stewards[h.id].put_consents(forms)
                applied[h.id] = max(o["seq"] for o in out)
                consented += len(forms)
        console.print(f"consent: US hospitals opt-out for research (HIPAA), Chinese hospitals opt-in (PIPL art. 29); "
                      f"{consented:,} signed research consents imported by the Chinese hospitals' stewards")

        _wait_for_consents(hospitals, applied, procs)

        # the demo patient: a diabetic patient of the first hospital who consented
        first = hospitals[0]
        diabetic = set(_linkage_ids(first.store, diabetes_only=True))
        pool = sorted(_linkage_ids(first.store), key=lambda p: p not in diabetic)
        if first.flavour == "cn":
            pool = pool[: int(len(pool) * CONSENTING)]
        patient = next((p for p in pool if p in diabetic), pool[0])
        admin.create_user("patient-demo", "patient", pw, pseudonym=patient)

        # the application, the stewards' decisions, the contracts
        r = HubClient(sp["url"], verify=sp["ca"]).login("dr-researcher", pw)
        now = datetime.now(UTC)
        app = r.apply(purpose="HRESCH", duo=["DUO:0000042"], fields=["patient.sex", "patient.birth_date",
                                                                      "condition.code"],
                      operations=["count"], start=now - timedelta(minutes=1), end=now + timedelta(days=90),
                      region="CN", hospitals=[h.id for h in hospitals])
        states = Table(title=f"application {app['id'][:14]}… (HRESCH, DUO:0000042 general research use): "
                             "negotiation per hospital (Dataspace Protocol states)", title_justify="left")
        for col in ("hospital", "steward's decision", "state", "contract"):
            states.add_column(col)
        for i, h in enumerate(hospitals):
            uid = app["contracts"][h.id]
            if i == len(hospitals) - 1 and len(hospitals) > 1:
                stewards[h.id].decide(app["id"], h.id, "restrict", restrictions={"min_cell_size": 10})
                state = r.accept(uid)["state"]
                decision = "approved with a restriction (cells of 10+); researcher accepted"
            else:
                state = stewards[h.id].decide(app["id"], h.id, "approve")["state"]
                decision = "approved"
            states.add_row(h.id, decision, state, uid[:14] + "…")
        console.print(states)

        # the federated count
        params = {"group_by": ["sex"], "filters": [{"table": "condition", "field": "code", "op": "prefix",
                                                     "value": "E11"}]}
        t0 = time.perf_counter()
        res = r.run_task(contracts=app["contracts"], params=params, wait=120)
        procs.check()
        if res["status"] != "done":
            raise InputError(f"the federated count did not finish: {res.get('error', res['status'])}")
        seconds = time.perf_counter() - t0
        before = res["result"]
        table = Table(title="federated count: patients with type 2 diabetes (ICD-10 E11) by sex, across "
                            f"{len(hospitals)} hospitals (only protected aggregates left the nodes)",
                      title_justify="left")
        table.add_column("sex")
        table.add_column("patients", justify="right")
        for row in before["rows"]:
            label = "all" if row[0] is None else ("not disclosed (k-anonymity)" if row[0] == "*" else row[0])
            table.add_row(str(label), "suppressed" if row[1] is None else f"{row[1]:,}")
        console.print(table)
        console.print(f"answered in {seconds:.2f} s (first task; the nodes were connecting)")

        # the patient revokes consent: the count drops
        p = HubClient(sp["url"], verify=sp["ca"]).login("patient-demo", pw)
        change = p.revoke_consent(first.id)
        _wait_for_consents([first], {first.id: change["seq"]}, procs)  # within a second of the change
        after = r.run_task(contracts=app["contracts"], params=params, wait=60)["result"]
        b, a = total(before), total(after)
        console.print(f"a patient of {first.id} revoked consent: total {b if b is not None else 'suppressed'} -> "
                      f"{a if a is not None else 'suppressed'}; the patient sees "
                      f"{len(p.my_audit()['entries'])} audit entries about them")

        # the log's witnessed checkpoint, verified here with the hub's and the witnesses' public keys
        _show_checkpoint(sp, console, procs)


def _wait_for_consents(hospitals: list[DemoHospital], applied: dict[str, int], procs: Processes,
                       timeout: float = 60) -> None:
    """Wait until each node's replica has applied the consent changes up to its sequence (the node's own state
    file says which it has applied), so that a count reads every consent recorded before it."""
    from medspace.node.service import read_status

    deadline = time.monotonic() + timeout
    for h in hospitals:
        want = applied.get(h.id)
        if want is None:
            continue
        state = h.store.with_name(h.store.name + ".node.sqlite")
        while read_status(state).get("consent_seq", 0) < want:
            procs.check()
            if time.monotonic() > deadline:
                raise InputError(f"node {h.id} did not apply the consent changes in {timeout:.0f} s (see its log)")
            time.sleep(0.02)


def _show_checkpoint(sp: dict[str, Any], console: Console, procs: Processes) -> None:
    import httpx

    from medspace.ledger.checkpoint import Checkpoint, load_verifier, verify_signatures
    from medspace.ledger.log import AuditLog

    hub_dir: Path = sp["hub_dir"]
    with AuditLog(hub_dir / "log", readonly=True) as log:
        size = log.store.size
    verifiers = [load_verifier(str(hub_dir / "log" / "log.vkey"))] + [load_verifier(v) for v in sp["witness_vkeys"]]
    import ssl

    ctx = ssl.create_default_context(cafile=sp["ca"])
    deadline = time.monotonic() + 30
    note = ""
    cp = None
    while time.monotonic() < deadline:
        procs.check()
        r = httpx.get(sp["url"] + "/v1/audit/checkpoint", verify=ctx)
        if r.status_code == 200:
            note = r.text
            text, valid, invalid, _ = verify_signatures(note, verifiers)
            cp = Checkpoint.from_text(text)
            if cp.size >= size and len(valid) == 3 and not invalid:
                break
        time.sleep(0.5)
    if cp is None:
        raise InputError("the hub published no checkpoint (see the hub's and witnesses' logs)")
    text, valid, invalid, _ = verify_signatures(note, verifiers)
    ok = "verified" if len(valid) == 3 and not invalid else "NOT verified"
    console.print(f"audit log: checkpoint of {cp.size} entries, root {cp.root_hash.hex()[:16]}…, signed by "
                  f"{', '.join(s.name for s in valid)}: {ok}")
    console.print(note.rstrip(), highlight=False, markup=False)


