"""Subject-commitment salts in the hub database (PostgreSQL: shared by hub processes on several machines), and a
hub database made by an older medspace brought up to date when the hub opens it."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import inspect

from medspace.hub.core import HubCore, init_hub
from medspace.hub.db import alembic_config, current_revision, head_revision, make_engine, migrate
from medspace.hub.queue import HubDB
from medspace.hub.salts import DbSaltStore
from medspace.ledger.entry import commit_subject


def test_salts_kept_by_one_hub_process_are_found_by_another(pg_url: str) -> None:
    migrate(pg_url)
    a_db, b_db = HubDB(pg_url), HubDB(pg_url)  # two processes' engines (two machines' hubs)
    try:
        a, b = DbSaltStore(a_db), DbSaltStore(b_db)
        c1 = a.commit("patient-7")
        c2 = b.commit("patient-7")
        other, = a.commit_many(["patient-8"])
        assert sorted(b.find("patient-7")) == sorted([c1, c2]) and a.find(" patient-7 ") == b.find("patient-7")
        salt = b.salt(c1)
        assert salt is not None and commit_subject("patient-7", salt)[0] == c1
        assert len(a) == 3
        # erasure: every salt of the subject goes, for every process; another subject's stays
        assert b.destroy_subject("patient-7") == 2
        assert a.find("patient-7") == [] and a.salt(c1) is None and a.find("patient-8") == [other]
        assert not a.destroy_salt(c1)
    finally:
        a_db.close()
        b_db.close()


def test_a_hub_on_postgresql_keeps_salts_in_the_database(tmp_path: Path, pg_url: str) -> None:
    init_hub(tmp_path / "hub", origin="medspace.test/hub", admin="root", password="a-password-long-enough",
             database=pg_url)
    hub = HubCore.open(tmp_path / "hub")
    try:
        assert isinstance(hub.salts, DbSaltStore)
        c = hub.salts.commit("patient-1")
        assert DbSaltStore(hub.db).find("patient-1") == [c]
        many = hub.salts.commit_many(["patient-2", "patient-2", "patient-3"])
        assert len(set(many)) == 3 and sorted(hub.salts.find("patient-2")) == sorted(many[:2])
        assert not (tmp_path / "hub" / "salts.sqlite").exists()
    finally:
        hub.close()


def test_an_older_hub_database_is_upgraded_when_the_hub_opens_it(tmp_path: Path) -> None:
    init_hub(tmp_path / "hub", origin="medspace.test/hub", admin="root", password="a-password-long-enough")
    url = str(tmp_path / "hub" / "hub.sqlite")
    command.downgrade(alembic_config(url), "0001")  # as the previous release left it
    engine = make_engine(url)
    assert current_revision(engine) == "0001" and "salts" not in inspect(engine).get_table_names()
    engine.dispose()
    HubCore.open(tmp_path / "hub").close()
    engine = make_engine(url)
    try:
        assert current_revision(engine) == head_revision() and "salts" in inspect(engine).get_table_names()
    finally:
        engine.dispose()
