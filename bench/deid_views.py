"""De-identified views of a 100,000-patient node store: Safe Harbor, PIPL and research. Prints a table.

    python bench/deid_views.py [--patients 50000] [--workdir /tmp/medspace-bench-deid] [--runs 2]

Figure (issue 4): the Safe Harbor view of a 100,000-patient store in under 10 s. The store holds two
synthetic hospitals (a Chinese one from FHIR bundles, a US one from bulk NDJSON) of `--patients` each,
with every table and the free-text notes; it is built once and kept in the work directory.
"""

from __future__ import annotations

import argparse
import time
from datetime import date
from pathlib import Path

from rich.console import Console
from rich.table import Table

from medspace.connect.sources import discover, ingest_file
from medspace.deid.apply import apply_policy
from medspace.deid.keys import load_keyring
from medspace.deid.policy import load_policy
from medspace.store import Store
from medspace.synth import generate

console = Console(width=130)


def build_store(work: Path, patients: int) -> Path:
    """Generate two hospitals and ingest both into one store (skipped when the store exists)."""
    store = work / f"node-{2 * patients}.duckdb"
    if store.exists():
        return store
    src = work / f"src-{patients}"
    manifest = generate(src, hospitals=2, patients=patients, seed=17)
    with Store(store) as st, st.batch("bench") as batch:
        for h in manifest.hospitals:
            for path, kind in discover([src / h.dir]):
                if kind is not None:
                    ingest_file(path, kind, batch)
    return store


def main() -> None:
    """Time each built-in policy on the store."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=50_000, help="patients per hospital (two hospitals)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/medspace-bench-deid"))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--policies", default="safe-harbor,pipl,research")
    args = ap.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    store = build_store(args.workdir, args.patients)
    built = time.perf_counter() - t0
    ring = load_keyring(args.workdir / "bench.keys.json", create=True)
    table = Table(title=f"de-identified views of {store.name} (store ready in {built:.1f} s)", title_justify="left")
    for col in ("policy", "patients", "rows in view", "notes scrubbed", "best s", "runs s", "target"):
        table.add_column(col, justify="left" if col in ("policy", "target") else "right")
    with Store(store) as st:
        patients = st.count("patient")
        notes = st.count("note")
        for name in args.policies.split(","):
            policy = load_policy(name)
            times = []
            report = None
            for _ in range(args.runs):
                t = time.perf_counter()
                report = apply_policy(st, policy, ring, as_of=date(2026, 1, 1))
                times.append(time.perf_counter() - t)
            assert report is not None
            table.add_row(name, f"{patients:,}", f"{sum(report.rows_out.values()):,}", f"{notes:,}",
                          f"{min(times):.2f}", " / ".join(f"{x:.2f}" for x in times),
                          "< 10 s" if name == "safe-harbor" else "measured")
    console.print(table)


if __name__ == "__main__":
    main()
