"""Hub database fixtures: a fresh SQLite file, or a fresh PostgreSQL database (tests/conftest.py's pg_url) per test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["sqlite", "postgres"])
def hub_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated-to-nothing hub database URL on each backend."""
    if request.param == "sqlite":
        return str(tmp_path / "hub.db")
    return str(request.getfixturevalue("pg_url"))
