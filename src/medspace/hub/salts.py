"""The salts of the audit log's subject commitments in the hub database, for hubs on PostgreSQL.

Hub processes on several machines share one PostgreSQL database and one audit log; a patient's entries must be
found whichever process committed them, so the salts live in the shared database too (table ``salts``). An SQLite
hub keeps them in ``salts.sqlite`` (:class:`medspace.ledger.entry.SaltStore`), whose deleted pages are overwritten.
Same interface as that class; destroying a salt deletes its row (PostgreSQL reclaims the space at its next vacuum).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert

from medspace.hub.db import Salt
from medspace.hub.queue import HubDB
from medspace.ledger.entry import SALT_SIZE, commit_subject, destroy_subject, subject_bytes
from medspace.ledger.errors import EntryError


class DbSaltStore:
    """Salts of subject commitments in the hub's PostgreSQL database."""

    def __init__(self, db: HubDB) -> None:
        self.db = db

    def commit(self, value: str | bytes) -> str:
        """Commit to a subject with a fresh salt, keep the salt, return the commitment for the audit event."""
        return self.commit_many([value])[0]

    def commit_many(self, values: Sequence[str | bytes]) -> list[str]:
        """Commit to each value with a fresh salt, keeping the salts in one transaction."""
        pairs = [commit_subject(v) for v in values]
        if pairs:
            with self.db.engine.begin() as c:
                c.execute(insert(Salt), [{"commitment": cm, "salt": s} for cm, s in pairs])
        return [cm for cm, _ in pairs]

    def put(self, commitment: str, salt: bytes) -> None:
        """Keep the salt of a commitment."""
        if len(commitment) != 64 or len(salt) != SALT_SIZE:
            raise EntryError("not a commitment and salt")
        stmt = insert(Salt).values(commitment=commitment, salt=salt)
        with self.db.engine.begin() as c:
            c.execute(stmt.on_conflict_do_update(index_elements=[Salt.commitment], set_={"salt": salt}))

    def salt(self, commitment: str) -> bytes | None:
        """The salt of a commitment, or None once destroyed."""
        with self.db.engine.connect() as c:
            got = c.scalar(select(Salt.salt).where(Salt.commitment == commitment))
        return None if got is None else bytes(got)

    def find(self, value: str | bytes) -> list[str]:
        """Commitments to ``value``: its HMAC recomputed under every stored salt."""
        msg = subject_bytes(value)
        with self.db.engine.connect() as c:
            rows = c.execute(select(Salt.commitment, Salt.salt)).all()
        return [c for c, s in rows if hmac.compare_digest(hmac.digest(bytes(s), msg, "sha256").hex(), c)]

    def destroy_salt(self, commitment: str) -> bool:
        """Delete a salt (its commitment becomes unlinkable); True if there was one."""
        with self.db.engine.begin() as c:
            return c.execute(delete(Salt).where(Salt.commitment == commitment)).rowcount > 0

    def destroy_subject(self, value: str | bytes) -> int:
        """Delete every salt of a subject: none of their log entries can be linked to them again."""
        return destroy_subject(self, value)

    def __len__(self) -> int:
        with self.db.engine.connect() as c:
            return int(c.scalar(select(func.count()).select_from(Salt)) or 0)

    def close(self) -> None:
        """Nothing to release (the hub closes its database)."""
