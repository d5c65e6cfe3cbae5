"""The hub's database: SQLAlchemy 2 models, engines for SQLite (embedded default) and PostgreSQL (several hub
processes), and Alembic migrations shipped with the package.

The hub holds no raw record and no direct identifier. Patients appear only as linkage pseudonyms (HMAC outputs
computed by the nodes with a key the hub never holds), in accounts of role ``patient`` and in consent rows.
Bodies that other modules define (applications, ODRL contracts, negotiations, FHIR Consent resources, task
parameters and results) are stored as JSON text written with sorted keys, so a row's bytes are reproducible.

The schema is created and upgraded only by migrations (:func:`migrate`); a test checks that the migrations and
these models describe the same schema.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.pool import NullPool

from medspace.hub.errors import DatabaseError

MIGRATIONS = Path(__file__).with_name("migrations")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (every timestamp the hub stores)."""
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A fresh identifier: ``prefix-`` and 32 random hex digits (the audit log accepts it as neutral, never as a
    number or a date that could be patient data)."""
    return f"{prefix}-{uuid.uuid4().hex}"


def dumps(obj: Any) -> str:
    """JSON text with sorted keys: how the hub stores a body."""
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every backend (SQLite keeps no zone: the hub stores and reads UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Store UTC; refuse a naive datetime (its zone would be a guess)."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise DatabaseError("naive datetime given to the hub database (timestamps are UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        """Read back as aware UTC."""
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base of the hub's models."""


class User(Base):
    """A person's account: researcher, steward or clinician of a hospital, patient, regulator or admin."""

    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    hospital: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # a patient's linkage pseudonym (never a name or a national ID): what consent rows and commitments are keyed on
    pseudonym: Mapped[str | None] = mapped_column(String(128), nullable=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Participant(Base):
    """A service of the space with a certificate: the hub, a hospital's node, a witness."""

    __tablename__ = "participants"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(2), nullable=True)  # ISO 3166-1 alpha-2, for nodes
    packs: Mapped[str] = mapped_column(String(128), default="sensitivity")  # compliance packs, comma-separated
    safeguards: Mapped[str] = mapped_column(String(256), default="")  # declared safeguards, comma-separated
    consent_defaults: Mapped[str | None] = mapped_column(String, nullable=True)  # HospitalDefaults as JSON
    status: Mapped[str] = mapped_column(String(16), default="active")
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Application(Base):
    """A researcher's data-use application (body: medspace.policy's Application as JSON)."""

    __tablename__ = "applications"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    applicant: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Approval(Base):
    """One hospital steward's decision on an application."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("application_id", "hospital"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    application_id: Mapped[str] = mapped_column(String(64), ForeignKey("applications.id"))
    hospital: Mapped[str] = mapped_column(String(64))
    steward: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    body: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Contract(Base):
    """A usage contract between one hospital and an applicant: an ODRL agreement and its negotiation."""

    __tablename__ = "contracts"
    uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    application_id: Mapped[str] = mapped_column(String(64), ForeignKey("applications.id"))
    hospital: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    odrl: Mapped[str] = mapped_column(String)
    negotiation: Mapped[str] = mapped_column(String)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    ended: Mapped[str | None] = mapped_column(String(16), nullable=True)  # revoked, expired
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Consent(Base):
    """One version of a patient's FHIR Consent at one hospital; ``seq`` orders every change for node replicas."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("pseudonym", "hospital", "version"),
                      Index("ix_consents_hospital_seq", "hospital", "seq"))
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pseudonym: Mapped[str] = mapped_column(String(128), index=True)
    hospital: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    resource: Mapped[str] = mapped_column(String)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Task(Base):
    """A computation a researcher (or clinician) asked for, over one or more hospitals."""

    __tablename__ = "tasks"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    requester: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(16))
    params: Mapped[str] = mapped_column(String)
    # "all": every hospital must answer; "available": a hospital that fails is left out (the contract says which)
    completion: Mapped[str] = mapped_column(String(16), default="all")
    status: Mapped[str] = mapped_column(String(16))  # queued, running, done, failed, cancelled
    result: Mapped[str | None] = mapped_column(String, nullable=True)
    error: Mapped[str | None] = mapped_column(String, nullable=True)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Assignment(Base):
    """A task's part for one hospital: the queue nodes claim from (``FOR UPDATE SKIP LOCKED`` on PostgreSQL)."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("task_id", "hospital"),
        Index("ix_assignments_queue", "hospital", "status", "id"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(64), ForeignKey("tasks.id"))
    hospital: Mapped[str] = mapped_column(String(64))
    contract_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # queued, claimed, done, failed, cancelled
    payload: Mapped[str] = mapped_column(String)  # the signed task as the node receives it
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    result: Mapped[str | None] = mapped_column(String, nullable=True)
    error: Mapped[str | None] = mapped_column(String, nullable=True)


class Setting(Base):
    """Small hub-wide values (e.g. the schema's purpose), written once."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class Salt(Base):
    """The salt of a subject commitment in the audit log (on PostgreSQL; an SQLite hub keeps them in a file of
    their own, ``salts.sqlite``, whose deleted pages are overwritten). Destroying it makes the entries unlinkable."""

    __tablename__ = "salts"
    commitment: Mapped[str] = mapped_column(String(64), primary_key=True)
    salt: Mapped[bytes] = mapped_column(LargeBinary)


_PG = re.compile(r"^postgres(?:ql)?(?:\+psycopg)?://")


def database_url(url: str) -> str:
    """The SQLAlchemy URL for a hub database: a file path means SQLite; ``postgresql://`` uses psycopg 3."""
    if _PG.match(url):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:"):
        return url
    return f"sqlite:///{Path(url).resolve()}"


def is_postgres(url: str) -> bool:
    """Whether a hub database URL names PostgreSQL."""
    return bool(_PG.match(url))


WRITE = "medspace_write"  # execution option of the engine that write transactions use (SQLite: BEGIN IMMEDIATE)


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    """An engine for the hub database. SQLite runs in WAL mode with a busy timeout, so readers never wait for the
    writer and a second writer waits instead of failing; PostgreSQL gets a connection pool. Write transactions use
    ``engine.execution_options(medspace_write=True)`` (:data:`WRITE`)."""
    sa_url = database_url(url)
    if sa_url.startswith("sqlite"):
        # a pool of connections (a checkout belongs to one thread until it is returned): opening one per session
        # and setting its pragmas cost more than the queries of a typical request
        engine = create_engine(sa_url, pool_size=pool_size, max_overflow=64,
                               connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:
            # pysqlite's own transaction handling would defer BEGIN; we issue BEGIN ourselves (below)
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # a write transaction takes the write lock at the start: a read-then-write transaction (claim a task)
            # cannot be overtaken; a read transaction is a snapshot that neither waits for nor blocks the writer
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

        return engine
    # A ping before each checkout costs a round trip per request (bench/hub.py: about a quarter of the load
    # throughput on PostgreSQL) but survives a database restart without failing the first request on each stale
    # connection: the robust choice for a service.
    return create_engine(sa_url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def alembic_config(url: str) -> Any:
    """An Alembic configuration for the hub database at ``url``, with the migrations shipped in the package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", database_url(url).replace("%", "%%"))
    return cfg


MIGRATION_LOCK = 0x6D656473  # PostgreSQL advisory lock key: hub processes starting together migrate one at a time


def head_revision() -> str:
    """The newest migration shipped with this package."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def migrate(url: str, revision: str = "head") -> None:
    """Create or upgrade the hub database at ``url`` to ``revision`` (all or nothing per migration); on PostgreSQL
    under an advisory lock, so that hub processes starting at once do not race."""
    from alembic import command

    try:
        if is_postgres(url):
            engine = create_engine(database_url(url), poolclass=NullPool)
            try:
                with engine.connect() as conn:
                    conn.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATION_LOCK})")
                    try:
                        command.upgrade(alembic_config(url), revision)
                    finally:
                        conn.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATION_LOCK})")
            finally:
                engine.dispose()
        else:
            command.upgrade(alembic_config(url), revision)
    except Exception as e:  # Alembic and the drivers raise many types; the CLI needs one line
        raise DatabaseError(f"cannot migrate the hub database: {type(e).__name__}: {_first_line(e)}") from e


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for a database the hub never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0][:200]
