"""A prepared space run as real processes on loopback: two witnesses, the hub and one node per hospital, each a
`medspace` command of its own, as `medspace demo` and an operator start them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from space_builder import SpaceFiles

from medspace.cli.demo_space import Processes, free_port, wait_for_line
from medspace.ledger.checkpoint import generate_key_files
from medspace.ledger.entry import AuditEvent
from medspace.ledger.log import AuditLog, WitnessConfig, read_config, write_config
from medspace.node.service import read_status
from medspace.policy.pki import Space


@dataclass
class SpaceProcs:
    """The running space: its files, its processes, the hub's URL and the witnesses' verifier keys."""

    files: SpaceFiles
    procs: Processes
    url: str
    ca: str
    witness_vkeys: list[str] = field(default_factory=list)

    def state(self, hospital: str) -> Path:
        """A node's state file (nonces seen, the consent sequence applied, when its task link connected)."""
        return self.files.root / f"{hospital}.state.sqlite"

    def status(self, hospital: str) -> dict[str, int]:
        """A node's status, read from its state file without asking the node."""
        return read_status(self.state(hospital))

    def consent_seq(self, hospital: str) -> int:
        """The consent sequence a node's replica has applied."""
        return self.status(hospital).get("consent_seq", 0)

    def start_nodes(self, *hospitals: str, timeout: float = 60) -> None:
        """Start hospitals' node processes and wait until each one's task link is connected to the hub."""
        since = int(time.time())
        for h in hospitals:
            copy = self.files.root / "copies" / h
            if not copy.exists():
                Space.open(self.files.space).export(h, copy)
            self.procs.start(h, ["node", "serve", "--name", h, "--hub", self.url, "--space", str(copy), "--store",
                                 str(self.files.stores[h]), "--state", str(self.state(h)), "--region", "US"])
        deadline = time.monotonic() + timeout
        for h in hospitals:
            while self.status(h).get("tasks_connected_at", 0) < since:
                p = self.procs.procs[h]
                if p.poll() is not None or time.monotonic() > deadline:
                    log = (self.procs.logs / f"{h}.log").read_text(errors="replace")
                    raise AssertionError(f"node {h} did not connect:\n{log}")
                time.sleep(0.05)

    def log_events(self) -> list[AuditEvent]:
        """Every event in the hub's audit log, read from its store on disk (read-only)."""
        with AuditLog(self.files.hub_dir / "log", readonly=True) as log:
            return [AuditEvent.from_bytes(log.store.entry(i)) for i in range(log.store.size)]

    def log_size(self) -> int:
        """The number of entries in the hub's audit log."""
        with AuditLog(self.files.hub_dir / "log", readonly=True) as log:
            return log.store.size


@contextmanager
def space_processes(ts: SpaceFiles, witnesses: int = 2) -> Iterator[SpaceProcs]:
    """Start the witnesses, the hub (its log cosigned by every witness) and every hospital's node; stop all after."""
    log_dir = ts.hub_dir / "log"
    wit: list[tuple[Path, str, int]] = []
    for i in range(1, witnesses + 1):
        wdir = ts.root / "witnesses" / f"w{i}"
        wdir.mkdir(parents=True, exist_ok=True)
        vkey = generate_key_files(f"medspace.test/w{i}", wdir / "witness.key", wdir / "witness.vkey", cosigner=True)
        wit.append((wdir, vkey, free_port()))
    cfg = read_config(log_dir)
    cfg.witnesses = [WitnessConfig(f"https://127.0.0.1:{port}", vkey) for _, vkey, port in wit]
    cfg.quorum = len(wit)
    write_config(log_dir, cfg)
    with Processes(ts.root / "logs") as procs:
        for i, (wdir, _vkey, port) in enumerate(wit, 1):
            copy = ts.root / "copies" / f"w{i}"  # the witness's certificate of the space: it serves HTTPS
            Space.open(ts.space).export(f"w{i}", copy)
            procs.start(f"w{i}", ["witness", "serve", "--state", str(wdir / "state.sqlite"), "--key",
                                  str(wdir / "witness.key"), "--log-key", str(log_dir / "log.vkey"),
                                  "--port", str(port), "--no-access-log", "--space", str(copy), "--name", f"w{i}"])
        hub = procs.start("hub", ["hub", "serve", str(ts.hub_dir), "--port", "0"])
        url = wait_for_line(procs.logs / "hub.log", "hub listening on", hub).split()[-1]
        sp = SpaceProcs(ts, procs, url, str(ts.space / "ca" / "ca.pem"), [v for _, v, _ in wit])
        yield sp
