"""Disclosure control: suppression and verification time, and how much each rule suppresses. Prints tables.

    python bench/disclosure.py [--records 1000000] [--verify-max 5000]

Count tables: Poisson(8) interior cells (many small cells), default rules (min cell 5, zeros published,
hide presence, cost = value). Sum tables: record-level contributions (lognormal, per patient) grouped by
three columns through protect_sums. "verify" is the LP audit of every suppressed cell (ProtectedTable.verify,
which stops a cell's LPs once solutions prove its range); skipped ("-") when the table has more suppressed
cells than --verify-max.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from medspace.privacy.disclosure import DisclosureRules, protect_counts, protect_sums

console = Console(width=130)


def count_tables(verify_max: int) -> Table:
    """Protect and audit Poisson count tables of growing size."""
    out = Table(title="protect_counts (Poisson(8) cells)")
    for col in ("shape", "cells+margins", "small", "complementary", "suppressed %", "protect s", "verify s", "ok"):
        out.add_column(col, justify="right")
    rng = np.random.default_rng(2024)
    for shape in [(10, 10), (30, 30), (8, 6, 4), (20, 20, 5), (40, 30, 8), (6, 5, 4, 3)]:
        table = rng.poisson(8, size=shape)
        t0 = time.perf_counter()
        pt = protect_counts(table)
        t1 = time.perf_counter()
        s = pt.summary()
        if s["suppressed"] <= verify_max:
            audit = pt.verify()
            t2 = time.perf_counter()
            ver, ok = f"{t2 - t1:.2f}", str(audit.ok and not audit.determined)
        else:
            ver, ok = "-", "-"
        out.add_row("x".join(map(str, shape)), f"{s['cells']:,}", f"{s['small_cell']:,}", f"{s['complementary']:,}",
                    f"{100 * s['suppressed'] / s['cells']:.1f}", f"{t1 - t0:.3f}", ver, ok)
    return out


def sum_tables(records: int, verify_max: int) -> Table:
    """Protect record-level contributions grouped by three columns, with and without the p% rule."""
    out = Table(title=f"protect_sums ({records:,} contributions, 3 group columns, per-patient contributors)")
    for col in ("rules", "cells+margins", "small", "(n,k)", "p%", "complementary", "protect s", "verify s", "ok"):
        out.add_column(col, justify="right")
    rng = np.random.default_rng(7)
    data = {
        "site": rng.integers(0, 12, records),
        "age": np.minimum(rng.poisson(7, records), 17),
        "diag": rng.zipf(1.6, records) % 20,
        "patient": rng.integers(0, max(1, records // 4), records),
        "cost": np.round(rng.lognormal(5, 1.8, records), 2),
    }
    for label, rules in [("(2,85)", DisclosureRules()), ("(2,85)+p10", DisclosureRules(p_percent=10.0))]:
        t0 = time.perf_counter()
        pt = protect_sums(data, by=["site", "age", "diag"], value="cost", contributor="patient", rules=rules)
        t1 = time.perf_counter()
        s = pt.summary()
        if s["suppressed"] <= verify_max:
            audit = pt.verify()
            ver, ok = f"{time.perf_counter() - t1:.2f}", str(audit.ok and not audit.determined)
        else:
            ver, ok = "-", "-"
        out.add_row(label, f"{s['cells']:,}", f"{s['small_cell']:,}", f"{s['dominance_nk']:,}", f"{s['p_percent']:,}",
                    f"{s['complementary']:,}", f"{t1 - t0:.2f}", ver, ok)
    return out


def main() -> None:
    """Run both benchmarks and print their tables."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--verify-max", type=int, default=5000)
    args = ap.parse_args()
    import scipy.optimize  # noqa: F401  -- loaded up front so that the first verify is not charged for it
    console.print(count_tables(args.verify_max))
    console.print(sum_tables(args.records, args.verify_max))


if __name__ == "__main__":
    main()
