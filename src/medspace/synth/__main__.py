"""`python -m medspace.synth OUT [--hospitals N] [--patients M] [--seed S] [--jobs J]`."""

from __future__ import annotations

import argparse
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from medspace.synth.generate import generate_hospital, write_manifest


def main(argv: list[str] | None = None) -> None:
    """Generate synthetic hospitals from the command line."""
    ap = argparse.ArgumentParser(prog="python -m medspace.synth", description=__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--hospitals", type=int, default=5)
    ap.add_argument("--patients", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--jobs", type=int, default=1, help="hospitals generated in parallel processes")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    indices = range(1, args.hospitals + 1)
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs) as pool:
            results = list(pool.map(generate_hospital, [args.out] * args.hospitals, indices,
                                    [args.hospitals] * args.hospitals, [args.patients] * args.hospitals,
                                    [args.seed] * args.hospitals))
    else:
        results = [generate_hospital(args.out, i, args.hospitals, args.patients, args.seed) for i in indices]
    manifest = write_manifest(args.out, results, args.seed, args.patients)
    print(f"wrote {len(manifest.hospitals)} hospitals to {args.out} in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
