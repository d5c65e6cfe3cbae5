"""Secure aggregation vs plain aggregation of one model update: time per round, split by phase, and bytes on the
wire. Prints tables.

    python bench/secagg.py [--params 1000000] [--nodes 7] [--rounds 5] [--dropouts 2]

One process simulates the relay (medspace.privacy.secagg.local.run_round): every message goes through its wire
form. "plain" is what a hub does without secure aggregation: each node serialises its float64 vector, the hub
parses and adds them (8 bytes per parameter per node). "secure" adds fixed-point encoding, fresh signed keys,
Shamir shares, masking, the masked vectors' signatures, and unmasking. Node times are added up over the nodes; on
real sites the nodes work in parallel, so "critical path" counts one node's share (the node time / nodes) plus
the server's time and the wire. The modelled column adds the time every byte of the round takes through the
hub's link (--link-gbps), which all traffic crosses. With dropouts, bytes are compared with plain aggregation of
the same senders. Medians over --rounds rounds (the first, warm-up, is dropped).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from medspace.policy.pki import init_space
from medspace.privacy.secagg import Encoding, NodeKey, RoundConfig, SecAggClient, SecAggServer
from medspace.privacy.secagg.local import RoundReport, run_round

console = Console(width=160)
NODE_STEPS = ("node advertise", "node share", "node mask", "node reveal")
SERVER_STEPS = ("server adverts", "server shares", "server sum", "server unmask")


def plain_round(vectors: dict[str, np.ndarray]) -> tuple[float, float, int]:
    """Seconds for the nodes to serialise, seconds for the hub to parse and add; bytes sent."""
    t0 = time.perf_counter()
    wire = {n: v.astype("<f8").tobytes() for n, v in vectors.items()}
    t1 = time.perf_counter()
    total = np.zeros(next(iter(vectors.values())).shape[0])
    for data in wire.values():
        total += np.frombuffer(data, dtype="<f8")
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1, sum(len(d) for d in wire.values())


def secure_round(round_id: str, names: list[str], keys: dict[str, NodeKey], space: object,
                 vectors: dict[str, np.ndarray], dropouts: int) -> tuple[float, RoundReport]:
    """Wall seconds and the report of one secure round (clients and server made inside the round)."""
    t0 = time.perf_counter()
    config = RoundConfig(round_id, names, len(next(iter(vectors.values()))),
                         encoding=Encoding.floats(frac_bits=24, bound=1e4))
    clients = {n: SecAggClient(config, n, keys[n], space) for n in names}  # type: ignore[arg-type]
    server = SecAggServer(config, space)  # type: ignore[arg-type]
    report = run_round(server, clients, vectors, drop_before_input=names[1:1 + dropouts])
    wall = time.perf_counter() - t0
    plain = np.sum([vectors[n] for n in report.survivors], axis=0)
    error = float(np.max(np.abs(report.total - plain)))
    assert error <= len(report.survivors) * config.encoding.precision, error
    return wall, report


def main() -> None:
    """Run the benchmark and print its tables."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--params", type=int, default=1_000_000)
    ap.add_argument("--nodes", type=int, default=7)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--dropouts", type=int, default=2)
    ap.add_argument("--link-gbps", type=float, default=1.0, help="the hub's link, for the modelled column")
    args = ap.parse_args()
    names = [f"h{i}" for i in range(1, args.nodes + 1)]
    rng = np.random.default_rng(0)  # the update's values only
    vectors = {n: rng.normal(0, 1, args.params) for n in names}
    with tempfile.TemporaryDirectory() as d:
        space = init_space(Path(d) / "space", "bench", nodes=names)
        keys = {n: NodeKey.load(space.participant(n).key, space.participant(n).cert) for n in names}
        plain = [plain_round(vectors) for _ in range(args.rounds + 1)][1:]
        runs: dict[int, list[tuple[float, RoundReport]]] = {}
        for drop in sorted({0, args.dropouts}):
            runs[drop] = [secure_round(f"bench-{drop}-{r}", names, keys, space, vectors, drop)
                          for r in range(args.rounds + 1)][1:]
    plain_node = statistics.median(p[0] for p in plain)
    plain_hub = statistics.median(p[1] for p in plain)
    plain_total = plain_node + plain_hub
    plain_bytes = plain[0][2]

    steps = Table(title=f"secure aggregation by step, {args.params:,} parameters, {args.nodes} nodes "
                        f"(median of {args.rounds} rounds; node steps added up over the nodes)")
    steps.add_column("step")
    for drop in runs:
        steps.add_column(f"{drop} dropped, s", justify="right")
    for step in (*NODE_STEPS, *SERVER_STEPS, "wire"):
        steps.add_row(step, *(f"{statistics.median(r.seconds.get(step, 0.0) for _, r in runs[d]):.4f}"
                              for d in runs))
    console.print(steps)

    out = Table(title=f"plain vs secure aggregation per round, {args.params:,} float64 parameters, {args.nodes} nodes")
    link = args.link_gbps * 1e9 / 8  # bytes per second through the hub's link (all traffic passes it)
    for col in ("aggregation", "one process, s", "x plain", "critical path, s", "x plain",
                f"+ {args.link_gbps:g} Gbit/s link (model), s", "x plain", "bytes on the wire", "x plain",
                "max |error|"):
        out.add_column(col, justify="right")
    plain_critical = plain_node / args.nodes + plain_hub
    plain_linked = plain_critical + plain_bytes / link
    out.add_row("plain", f"{plain_total:.4f}", "1.00", f"{plain_critical:.4f}", "1.00", f"{plain_linked:.4f}", "1.00",
                f"{plain_bytes:,}", "1.000", "0")
    for drop, rs in runs.items():
        wall = statistics.median(w for w, _ in rs)
        node = statistics.median(sum(r.seconds.get(s, 0.0) for s in NODE_STEPS) for _, r in rs)
        server = statistics.median(sum(r.seconds.get(s, 0.0) for s in (*SERVER_STEPS, "wire")) for _, r in rs)
        critical = node / args.nodes + server
        sent = rs[0][1].bytes_total
        linked = critical + sent / link
        # against plain aggregation of the same senders (a dropped node sends no vector either way)
        senders_bytes = plain_bytes * len(rs[0][1].survivors) // args.nodes
        senders_linked = plain_critical + senders_bytes / link
        error = max(float(np.max(np.abs(r.total - np.sum([vectors[n] for n in r.survivors], axis=0))))
                    for _, r in rs)
        out.add_row(f"secure, {drop} dropped", f"{wall:.4f}", f"{wall / plain_total:.1f}", f"{critical:.4f}",
                    f"{critical / plain_critical:.1f}", f"{linked:.4f}", f"{linked / senders_linked:.2f}", f"{sent:,}",
                    f"{sent / senders_bytes:.4f}", f"{error:.1e}")
    console.print(out)


if __name__ == "__main__":
    main()
