"""All of issue 4's figures: k-anonymity (Adult, IHIS-shaped 1.2M rows, measuring 1M rows), note scrubbing,
de-identified views of a 100,000-patient store, disclosure control. Runs each bench script and prints its table.

    python bench/deid.py [--quick]

Targets: optimal 5-anonymity on Adult < 0.5 s and on 1.2M rows x 8 QIs < 2.5 s; k, l and t of 1M rows < 1 s;
notes >= 5 MB/s with recall >= 0.98 for direct identifiers; Safe Harbor view of 100,000 patients < 10 s.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    """Run the parts one after the other (each in its own process, so memory and imports do not mix)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small inputs: a smoke run, not the figures")
    args = ap.parse_args()
    parts: list[list[str]] = [
        ["deid_anonymity.py", *(["--quick", "--repeat", "1"] if args.quick else [])],
        ["deid_text.py", *(["--patients", "300", "--runs", "1"] if args.quick else [])],
        ["deid_views.py", *(["--patients", "300", "--runs", "1", "--workdir", "/tmp/medspace-bench-deid-quick"]
                            if args.quick else [])],
        ["disclosure.py", *(["--records", "20000", "--verify-max", "500"] if args.quick else [])],
    ]
    for script, *rest in parts:
        print(f"\n== bench/{script} {' '.join(rest)}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *rest], check=True)


if __name__ == "__main__":
    main()
