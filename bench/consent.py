"""Dynamic consent: how fast a node filters its population, and how fast a replica takes changes. Prints a table.

    python bench/consent.py [--patients 100000] [--consents 1000 10000] [--changes 1000]

A hospital of --patients linkage pseudonyms, of whom --consents hold a consent (a mix of research permits with a
psychiatric deny exception, permits bounded by dataPeriod, research denies and revocations); US-style defaults
(research on L2 opt-out); "5 forms": every consent is one of five provision trees (consent forms), "all distinct":
each has its own period start. "filter cold" decides every consented patient once (ConsentRegistry.consent_filter);
"warm" reuses the cached filter; "excluded() list" and "mask() arrow" apply it to the whole population as a Python
list and as an Arrow array. "replica apply" is ConsentRegistry.apply_changes of --changes new versions pulled with
changes_since (each one validated against the FHIR R4 Consent model), and "hub put" the same number of put() calls.
"""

from __future__ import annotations

import argparse
import random
import secrets
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
from rich.console import Console
from rich.table import Table

from medspace.policy.consent import EXAMPLE_US_DEFAULTS, ConsentRegistry, HospitalDefaults
from medspace.policy.consent_fhir import Period, build_consent

console = Console(width=170)
HOSPITAL = "bench-hospital"
NOW = datetime(2025, 6, 1, tzinfo=UTC)


def templates() -> list[dict[str, Any]]:
    """Consent shapes, built once (and validated) with a placeholder pseudonym."""
    p = "0" * 32
    return [
        build_consent(p, HOSPITAL, permit_purposes=["HRESCH"], deny_categories=["psychiatric"], now=NOW),
        build_consent(p, HOSPITAL, permit_purposes=["HRESCH", "CLINTRCH"], categories=["condition", "medication"],
                      data_period=Period(date(2015, 1, 1), None), now=NOW),
        build_consent(p, HOSPITAL, deny_purposes=["HRESCH"], now=NOW),
        build_consent(p, HOSPITAL, permit_purposes=["HRESCH"], period=Period(date(2024, 1, 1), date(2026, 12, 31)),
                      now=NOW),
        {**build_consent(p, HOSPITAL, permit_purposes=["HRESCH"], now=NOW), "status": "inactive"},
    ]


def resources(pseudonyms: list[str], rng: random.Random, version: int = 1, *,
              distinct: bool = False) -> list[dict[str, Any]]:
    """One consent resource per pseudonym, in the shape a hub's changes_since() returns; `distinct` gives each its
    own provision period (the day it was signed), so no two provision trees are equal."""
    shapes = [orjson.dumps(t) for t in templates()]
    out = []
    for i, p in enumerate(pseudonyms):
        res = orjson.loads(rng.choice(shapes))
        res["id"] = f"c{i}"
        res["patient"]["identifier"]["value"] = p
        res["meta"]["versionId"] = str(version)
        if distinct:
            signed = NOW - timedelta(days=i % 3000, seconds=i)
            res["provision"]["period"] = {"start": signed.isoformat().replace("+00:00", "Z")}
        out.append(res)
    return out


def timed(fn: Any, repeat: int = 1) -> tuple[float, Any]:
    """Best wall time over `repeat` runs, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def run(patients: int, consent_counts: list[int], changes: int) -> Table:
    """The bench table."""
    out = Table(title=f"consent filtering for {patients:,} patients; replica sync of {changes:,} changes")
    for col in ("consents", "trees", "load s", "filter cold ms", "filter warm ms", "excluded() list ms",
                "mask() arrow ms", "excluded", "replica apply s", "per change ms", "hub put s"):
        out.add_column(col, justify="right")
    rng = random.Random(13)
    population = [secrets.token_hex(16) for _ in range(patients)]
    arrow = pa.array(population, pa.string())
    defaults = HospitalDefaults.from_dict({**EXAMPLE_US_DEFAULTS, "hospital": HOSPITAL})
    cats = ["condition", "medication"]
    for n, distinct in [(n, d) for n in consent_counts for d in (False, True)]:
        consented = rng.sample(population, n)
        t_load, hub = timed(lambda c=consented, d=distinct: ConsentRegistry.load(resources(c, rng, distinct=d)))
        seq = hub.sequence
        t_cold, flt = timed(lambda h=hub: h.consent_filter(HOSPITAL, "HRESCH", cats, NOW, defaults))
        t_warm, _ = timed(lambda h=hub: h.consent_filter(HOSPITAL, "HRESCH", cats, NOW + timedelta(hours=1),
                                                         defaults), repeat=5)
        t_list, excluded = timed(lambda f=flt: f.excluded(population), repeat=5)
        t_mask, _ = timed(lambda f=flt: f.mask(arrow), repeat=5)
        # Replica sync: the replica holds everything up to `seq`, the hub then takes `changes` new versions.
        replica = ConsentRegistry.load(hub.changes_since(0))
        updates = resources(rng.sample(consented, min(changes, n)), rng, version=2)
        for res in updates:
            res["id"] = hub.current(res["patient"]["identifier"]["value"], HOSPITAL).id  # type: ignore[union-attr]
        t_put, _ = timed(lambda h=hub, u=updates: [h.put(r, now=NOW) for r in u])
        batch = hub.changes_since(seq)
        t_apply, applied = timed(lambda r=replica, b=batch: r.apply_changes(b))
        assert applied == len(batch)
        out.add_row(f"{n:,}", "all distinct" if distinct else "5 forms", f"{t_load:.2f}", f"{1e3 * t_cold:.1f}",
                    f"{1e3 * t_warm:.2f}", f"{1e3 * t_list:.1f}",
                    f"{1e3 * t_mask:.1f}", f"{len(excluded):,}", f"{t_apply:.2f}",
                    f"{1e3 * t_apply / max(1, len(batch)):.2f}", f"{t_put:.2f}")
    return out


def main() -> None:
    """Parse the arguments and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=100_000)
    ap.add_argument("--consents", type=int, nargs="+", default=[1_000, 10_000])
    ap.add_argument("--changes", type=int, default=1_000)
    args = ap.parse_args()
    console.print(run(args.patients, args.consents, args.changes))


if __name__ == "__main__":
    main()
