"""The `medspace` executable's entry point: start-up kept short, then the typer app."""

from __future__ import annotations

import sys


class _NoPandas:
    """An import finder that refuses pandas (installed alongside, e.g. by a test dependency)."""

    @staticmethod
    def find_spec(name: str, path: object = None, target: object = None) -> None:
        if name == "pandas":
            raise ImportError("pandas is not used by medspace")


def _without_pyarrow_pandas() -> None:
    """Tell pyarrow that pandas is absent, for this process.

    pyarrow imports pandas, when it is installed, the first time it converts Python objects, only to ask
    whether they are pandas objects: 0.2 s of every command's start-up, for a package medspace never uses.
    pyarrow asks once and remembers the answer, so the import is made to fail for that one question and
    pandas is importable again right after (only pyarrow's `to_pandas` then says pandas is missing).
    """
    if "pandas" in sys.modules:
        return
    import pyarrow as pa

    sys.meta_path.insert(0, _NoPandas())
    try:
        pa.array([0])  # the first conversion: pyarrow tries `import pandas`, fails, and remembers
    finally:
        del sys.meta_path[0]


def run() -> None:
    """Run the `medspace` command."""
    _without_pyarrow_pandas()
    from medspace.cli.main import app

    app()
