"""The hub database: Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL;
timestamps are stored and read as UTC; a naive one is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from medspace.hub.db import Base, Participant, current_revision, database_url, make_engine, migrate
from medspace.hub.errors import DatabaseError


def test_migrations_match_the_models(hub_url: str) -> None:
    engine = make_engine(hub_url)
    try:
        assert current_revision(engine) is None
        migrate(hub_url)
        assert current_revision(engine) is not None
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == [], diff
        migrate(hub_url)  # idempotent
    finally:
        engine.dispose()


def test_timestamps_are_utc_and_naive_ones_are_refused(hub_url: str) -> None:
    from sqlalchemy.exc import StatementError
    from sqlalchemy.orm import Session

    migrate(hub_url)
    engine = make_engine(hub_url)
    try:
        east = timezone(timedelta(hours=8))
        with Session(engine) as s, s.begin():
            s.add(Participant(name="h1", role="node", last_seen=datetime(2026, 1, 2, 8, 0, tzinfo=east)))
        with Session(engine) as s:
            p = s.get(Participant, "h1")
            assert p is not None and p.last_seen == datetime(2026, 1, 2, 0, 0, tzinfo=UTC)
            assert p.last_seen.tzinfo is not None
        with pytest.raises((DatabaseError, StatementError)), Session(engine) as s, s.begin():
            s.add(Participant(name="h2", role="node", last_seen=datetime(2026, 1, 2)))
    finally:
        engine.dispose()


def test_database_urls() -> None:
    assert database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("sqlite:///x.db") == "sqlite:///x.db"
    assert database_url("hub.sqlite").startswith("sqlite:////")
    with pytest.raises(DatabaseError):
        migrate("postgresql://nobody@127.0.0.1:1/none")
