"""Alembic environment of the hub database: runs migrations online, on the URL the hub configured."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

from medspace.hub.db import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None
connectable = config.attributes.get("connection")
if connectable is None:
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                          transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
else:
    context.configure(connection=connectable, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
