"""Differential privacy at one node: time to add its share of discrete Gaussian noise to an integer vector with
OpenDP's sampler (exact sampling from the OS CSPRNG, one FFI call per vector), and the accountant's costs. Prints
tables.

    python bench/dp.py [--length 1000000] [--repeats 3] [--workers 1,2] [--sigmas 2,20,2000]

"convert" is the cost of handing the vector to OpenDP and back without noise (OpenDP's identity transformation on
the same i64 vector): what the FFI costs by itself. Medians over --repeats runs (OpenDP's measurement for each
scale is built on a short vector first, so construction is not timed).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import opendp.prelude as dp
from rich.console import Console
from rich.table import Table

from medspace.privacy.dp import Accountant, NoisePlan, add_noise_share
from medspace.privacy.dp.opendp_bridge import epsilon_for_rho

console = Console(width=140)


def median_seconds(step: Callable[[], object], repeats: int, warm_up: bool = True) -> float:
    """The median wall time of ``step`` over ``repeats`` runs, after one warm-up run if ``warm_up``."""
    if warm_up:
        step()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def noise_table(lengths: list[int], sigmas: list[float], workers: list[int], repeats: int) -> Table:
    """Seconds to noise one node's vector, per length, node sigma and thread count."""
    table = Table(title="one node's noise share (OpenDP discrete Gaussian on i64 vectors)")
    for col in ("entries", "node sigma", "threads", "seconds", "µs / entry", "entries / s", "sample var / s²"):
        table.add_column(col, justify="right")
    identity = dp.t.make_identity(dp.vector_domain(dp.atom_domain(T="i64")), dp.symmetric_distance())
    for n in lengths:
        x = np.zeros(n, dtype=np.int64)
        convert = median_seconds(lambda x=x: np.asarray(identity(x.tolist()), dtype=np.int64), repeats,
                                 warm_up=False)
        table.add_row(f"{n:,}", "convert", "1", f"{convert:.3f}", f"{convert / n * 1e6:.2f}", f"{n / convert:,.0f}",
                      "")
        for s in sigmas:
            plan = NoisePlan(sigma=s, n_nodes=1, min_nodes=1)
            for w in workers:
                out: list[np.ndarray] = []

                def step(x: np.ndarray = x, plan: NoisePlan = plan, w: int = w, out: list[np.ndarray] = out) -> None:
                    out[:] = [add_noise_share(x, plan, workers=w)]

                add_noise_share(x[:16], plan, workers=w)  # warm-up: builds OpenDP's measurement for this scale
                sec = median_seconds(step, repeats, warm_up=False)
                var = float(np.var(out[0])) / plan.node_sigma**2
                table.add_row(f"{n:,}", f"{plan.node_sigma:g}", str(w), f"{sec:.3f}", f"{sec / n * 1e6:.2f}",
                              f"{n / sec:,.0f}", f"{var:.4f}")
    return table


def accountant_table(repeats: int) -> Table:
    """Milliseconds per accountant operation (OpenDP conversions dominate; results are cached per rho)."""
    table = Table(title="accountant (contract epsilon=1, delta=1e-6)")
    table.add_column("operation")
    table.add_column("ms", justify="right")
    rows: list[tuple[str, Callable[[], object]]] = []
    counter = iter(range(10**9))
    rows.append(("new accountant (rho budget by bisection over OpenDP)",
                 lambda: Accountant(f"c-{next(counter)}", 1.0 + next(counter) * 1e-9, 1e-6)))
    acc = Accountant("c-bench", 1.0, 1e-6)
    rows.append(("zCDP -> (epsilon, delta) conversion, uncached",
                 lambda: epsilon_for_rho(1e-3 + next(counter) * 1e-12, 1e-6)))
    rows.append(("charge", lambda: acc.charge(f"q{next(counter)}", 1e-9)))
    rows.append(("calibrate sigma (histogram, 5 nodes, fraction 0.1)",
                 lambda: acc.calibrate(l2=1.0, l1=1.0, dim=100, min_nodes=5, fraction=0.1)))
    rows.append(("to_dict / from_dict with the charges so far", lambda: Accountant.from_dict(acc.to_dict())))
    for label, step in rows:
        table.add_row(label, f"{median_seconds(step, repeats) * 1e3:.2f}")
    table.caption = f"{len(acc.charges)} charges in the state at the end"
    return table


def main() -> None:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--sigmas", default="2,20,2000")
    args = parser.parse_args()
    lengths = sorted({10_000, 100_000, args.length})
    sigmas = [float(s) for s in args.sigmas.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    console.print(noise_table(lengths, sigmas, workers, args.repeats))
    console.print(accountant_table(max(args.repeats, 5)))


if __name__ == "__main__":
    main()
