"""Shared test set-up: this folder is on sys.path, so tests import helpers such as `store_holder`; and a fresh
PostgreSQL database at 127.0.0.1:5432 per test, for the hub's and the audit log's PostgreSQL tests."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def pg_available() -> bool:
    """Whether the PostgreSQL server the suite uses is reachable."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards: nothing another test made can be mistaken for ours.
    Skips the test when the server is not reachable."""
    yield from fresh_pg_database()


@pytest.fixture(scope="module")
def pg_module_url() -> Iterator[str]:
    """As ``pg_url``, one database for a whole test module (a space of processes set up once)."""
    yield from fresh_pg_database()


def fresh_pg_database() -> Iterator[str]:
    """Create a new PostgreSQL database, yield its URL, drop it; skip when the server is not reachable."""
    if not pg_available():
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    import psycopg

    name = "medspace_t_" + secrets.token_hex(6)
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
