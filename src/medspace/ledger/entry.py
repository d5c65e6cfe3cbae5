"""Typed audit events, their canonical byte encoding (what a leaf hashes), and salted subject commitments.

Canonical encoding (version 1): compact JSON, keys sorted, UTF-8, no whitespace, every key present::

    {"action":..,"actor":..,"contract_id":..|null,"input_hashes":[..],"output_hashes":[..],"purpose":..,
     "resource":..,"role":..,"subject_commitment":..|null,"time":"YYYY-MM-DDTHH:MM:SS.ffffffZ","v":1}

Every value is validated to a restricted ASCII alphabet, so the JSON needs no escapes and one event has exactly one
encoding; :meth:`AuditEvent.from_bytes` refuses any other byte string for the same event.

An entry never holds patient data. Where a patient must be findable, the entry carries a commitment
``HMAC-SHA256(key=salt, "medspace.subject.v1:" || value)`` with a fresh 32-byte salt per commitment (so two entries
about one patient are not linkable by their commitments). The salts live apart from the log in a :class:`SaltStore`;
:func:`find` recomputes the commitment of a value under every stored salt, and :func:`destroy_salt` deletes one,
after which its commitment can no longer be linked to anyone while the log still verifies.
"""

from __future__ import annotations

import hmac
import re
import secrets
import sqlite3
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from medspace.ledger.errors import EntryError, StorageError

if TYPE_CHECKING:
    from medspace.ledger.store import LogStore

VERSION = 1
SALT_SIZE = 32
_COMMIT_CONTEXT = b"medspace.subject.v1:"
MAX_HASHES = 1024


class Role(StrEnum):
    """Who acts: the parties of the data space and its services."""

    RESEARCHER = "researcher"
    STEWARD = "steward"
    CLINICIAN = "clinician"
    PATIENT = "patient"
    REGULATOR = "regulator"
    ADMIN = "admin"
    HUB = "hub"
    NODE = "node"
    WITNESS = "witness"


class Purpose(StrEnum):
    """Purpose of use, from the HL7 v3 PurposeOfUse value set (the subset medspace uses)."""

    TREAT = "TREAT"  # treatment
    ETREAT = "ETREAT"  # emergency treatment
    BTG = "BTG"  # break the glass
    CAREMGT = "CAREMGT"  # care management
    HRESCH = "HRESCH"  # healthcare research
    CLINTRCH = "CLINTRCH"  # clinical trial research
    PUBHLTH = "PUBHLTH"  # public health
    HPAYMT = "HPAYMT"  # healthcare payment
    HOPERAT = "HOPERAT"  # healthcare operations
    HQUALIMP = "HQUALIMP"  # quality improvement
    HSYSADMIN = "HSYSADMIN"  # system administration
    HLEGAL = "HLEGAL"  # legal / regulatory oversight
    PATRQT = "PATRQT"  # patient request


class Action(StrEnum):
    """What was done: every operation on data the architecture logs."""

    APPLICATION_SUBMIT = "application.submit"
    APPLICATION_APPROVE = "application.approve"
    APPLICATION_REFUSE = "application.refuse"
    CONTRACT_CREATE = "contract.create"
    CONTRACT_REVOKE = "contract.revoke"
    CONTRACT_EXPIRE = "contract.expire"
    TASK_SUBMIT = "task.submit"
    TASK_DISPATCH = "task.dispatch"
    TASK_REFUSE = "task.refuse"
    TASK_END = "task.end"
    NODE_COMPUTE = "node.compute"
    RESULT_RELEASE = "result.release"
    BUDGET_SPEND = "budget.spend"
    LOOKUP_EMERGENCY = "lookup.emergency"
    LOOKUP_BREAK_GLASS = "lookup.break_glass"
    CONSENT_GRANT = "consent.grant"
    CONSENT_REVOKE = "consent.revoke"
    CONSENT_UPDATE = "consent.update"
    DATA_INGEST = "data.ingest"
    SUBJECT_UNLINK = "subject.unlink"
    PARTICIPANT_REGISTER = "participant.register"
    PARTICIPANT_REVOKE = "participant.revoke"
    ACCESS_REFUSE = "access.refuse"
    DUTY_PERFORM = "duty.perform"
    USER_REGISTER = "user.register"
    KEY_ROTATE = "key.rotate"


_HEX64 = re.compile(r"[0-9a-f]{64}")
_ACTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}")
_RESOURCE = re.compile(r"[a-z][a-z0-9_]{0,31}:[A-Za-z0-9._:/-]{1,160}")
_CONTRACT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
# Identifiers that are safe however many digits they hold: UUIDs and long lower-case hex (hashes, key ids).
_NEUTRAL = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-f]{32,}")
_PHI = (
    # nine or more digits, single separators allowed: phone numbers, SSNs, resident IDs (GB 11643), MRNs
    re.compile(r"\d(?:[-./]?\d){8,}"),
    # calendar dates (birth dates, admission dates): dates go in `time`, nowhere else
    re.compile(r"(?:19|20)\d\d[-./]?(?:0[1-9]|1[0-2])[-./]?(?:0[1-9]|[12]\d|3[01])"),
    re.compile(r"(?:0[1-9]|[12]\d|3[01])[-./](?:0[1-9]|1[0-2])[-./](?:19|20)\d\d"),
)
# All of them in one search (one pass over the value instead of three: events are validated by the thousand).
_PHI_ANY = re.compile("|".join(f"(?:{p.pattern})" for p in _PHI))


_FORMATS = {
    "actor": "1-128 letters, digits and . _ : @ / + - (e.g. dr-chen@h1)",
    "resource": "kind:id, kind lower-case, id up to 160 letters, digits and . _ : / - (e.g. study:metformin-age)",
    "contract_id": "1-64 letters, digits and . _ : - (e.g. C-17)",
}


def _check_token(name: str, value: object, pattern: re.Pattern[str]) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise EntryError(f"field {name!r} is not in its format: {_FORMATS[name]}")
    if _PHI_ANY.search(_NEUTRAL.sub("", value)):
        raise EntryError(f"field {name!r} looks like patient data (a date or an identifier number)")
    return value


def _check_hashes(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise EntryError(f"field {name!r} must be a list of hashes")
    out = tuple(value)
    if len(out) > MAX_HASHES:
        raise EntryError(f"field {name!r} has more than {MAX_HASHES} hashes")
    for pos, h in enumerate(out):
        if not isinstance(h, str) or not _HEX64.fullmatch(h):
            raise EntryError(f"field {name!r} item {pos} is not a lower-case hex SHA-256")
    return out


def _enum(name: str, cls: type[StrEnum], value: object) -> Any:
    member = cls._value2member_map_.get(value) if isinstance(value, str) else None  # the fast path: a dict look-up
    if member is not None:
        return member
    try:
        return cls(str(value))
    except ValueError:
        allowed = ", ".join(m.value for m in cls.__members__.values())
        raise EntryError(f"field {name!r} is not in its vocabulary; allowed: {allowed}") from None


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with microseconds, the one spelling the encoding uses."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One operation on data: who, in which role, did what, for which purpose, under which contract, when."""

    actor: str
    role: Role
    action: Action
    purpose: Purpose
    resource: str
    time: datetime
    contract_id: str | None = None
    input_hashes: tuple[str, ...] = ()
    output_hashes: tuple[str, ...] = ()
    subject_commitment: str | None = None

    def __post_init__(self) -> None:
        role = _enum("role", Role, self.role)
        object.__setattr__(self, "role", role)
        object.__setattr__(self, "action", _enum("action", Action, self.action))
        object.__setattr__(self, "purpose", _enum("purpose", Purpose, self.purpose))
        if role is Role.PATIENT:
            # A patient acting on their own consent is named by a commitment, never by an identifier.
            if not isinstance(self.actor, str) or not _HEX64.fullmatch(self.actor):
                raise EntryError("field 'actor' of a patient must be a subject commitment")
        else:
            _check_token("actor", self.actor, _ACTOR)
        _check_token("resource", self.resource, _RESOURCE)
        if self.contract_id is not None:
            _check_token("contract_id", self.contract_id, _CONTRACT)
        if not isinstance(self.time, datetime) or self.time.tzinfo is None:
            raise EntryError("field 'time' must be a timezone-aware datetime")
        object.__setattr__(self, "time", self.time.astimezone(UTC))
        object.__setattr__(self, "input_hashes", _check_hashes("input_hashes", self.input_hashes))
        object.__setattr__(self, "output_hashes", _check_hashes("output_hashes", self.output_hashes))
        if self.subject_commitment is not None and (
            not isinstance(self.subject_commitment, str) or not _HEX64.fullmatch(self.subject_commitment)
        ):
            raise EntryError("field 'subject_commitment' is not a lower-case hex commitment")

    def to_dict(self) -> dict[str, Any]:
        """The event as the JSON object of the encoding (plain str / list / None values)."""
        return {
            "action": self.action.value,
            "actor": self.actor,
            "contract_id": self.contract_id,
            "input_hashes": list(self.input_hashes),
            "output_hashes": list(self.output_hashes),
            "purpose": self.purpose.value,
            "resource": self.resource,
            "role": self.role.value,
            "subject_commitment": self.subject_commitment,
            "time": format_time(self.time),
            "v": VERSION,
        }

    def encode(self) -> bytes:
        """Canonical bytes: sorted-key compact JSON (the module docstring gives the layout)."""
        return orjson.dumps(self.to_dict(), option=orjson.OPT_SORT_KEYS)

    @classmethod
    def from_bytes(cls, data: bytes) -> AuditEvent:
        """Decode an entry, refusing anything that is not the canonical encoding of a valid event."""
        try:
            obj = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise EntryError("entry is not JSON") from None
        if not isinstance(obj, dict) or set(obj) != _KEYS or obj["v"] != VERSION:
            raise EntryError("entry does not have the fields of a version 1 audit event")
        if not isinstance(obj["time"], str) or not _TIME.fullmatch(obj["time"]):
            raise EntryError("field 'time' is not in its format")
        event = cls(
            actor=obj["actor"],
            role=obj["role"],
            action=obj["action"],
            purpose=obj["purpose"],
            resource=obj["resource"],
            time=datetime.strptime(obj["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC),
            contract_id=obj["contract_id"],
            input_hashes=obj["input_hashes"],
            output_hashes=obj["output_hashes"],
            subject_commitment=obj["subject_commitment"],
        )
        if event.encode() != bytes(data):
            raise EntryError("entry is not in canonical form")
        return event


_KEYS = {f.name for f in fields(AuditEvent)} | {"v"}


# --- subject commitments ------------------------------------------------------------------------------------------


def subject_bytes(value: str | bytes) -> bytes:
    """The bytes a subject commitment's HMAC covers (context, then the NFC-normalised value)."""
    if isinstance(value, str):
        # One patient, one spelling: NFC and trimmed, so a lookup by the same identifier finds the commitment.
        value = unicodedata.normalize("NFC", value.strip()).encode()
    if not value:
        raise EntryError("empty subject value")
    return _COMMIT_CONTEXT + bytes(value)


def commit_subject(value: str | bytes, salt: bytes | None = None) -> tuple[str, bytes]:
    """Salted commitment to a subject: (hex HMAC-SHA256 keyed by the salt, salt); a fresh salt unless given."""
    if salt is None:
        salt = secrets.token_bytes(SALT_SIZE)
    elif len(salt) != SALT_SIZE:
        raise EntryError(f"a salt is {SALT_SIZE} bytes")
    return hmac.digest(salt, subject_bytes(value), "sha256").hex(), salt


@contextmanager
def _sql_errors(what: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise StorageError(f"{what}: {exc}") from exc


class Salts(Protocol):
    """Where the salts of subject commitments are kept (a file, :class:`SaltStore`, or a hub's database)."""

    def commit(self, value: str | bytes) -> str:
        """Commit to a subject with a fresh salt, keep the salt, return the commitment."""
        ...

    def commit_many(self, values: Sequence[str | bytes]) -> list[str]:
        """Commit to each value with a fresh salt, keeping the salts in one durable write."""
        ...

    def find(self, value: str | bytes) -> list[str]:
        """Commitments to ``value`` under the salts still kept."""
        ...

    def destroy_salt(self, commitment: str) -> bool:
        """Delete a salt; True if there was one."""
        ...

    def close(self) -> None:
        """Release the store."""
        ...


class SaltStore:
    """The salts of subject commitments, kept apart from the log so that the operator can destroy them.

    A SQLite file in rollback-journal mode with ``secure_delete``: a destroyed salt's bytes are overwritten in the
    database file and no WAL keeps an old copy of the page (the file system underneath may still, like any).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with _sql_errors("cannot open the salt store"):
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            c = self._conn
            c.execute("PRAGMA journal_mode=DELETE")
            c.execute("PRAGMA secure_delete=ON")
            c.execute("PRAGMA synchronous=FULL")
            c.execute("CREATE TABLE IF NOT EXISTS salts (commitment TEXT PRIMARY KEY, salt BLOB NOT NULL)")

    def commit(self, value: str | bytes) -> str:
        """Commit to a subject with a fresh salt, keep the salt, return the commitment for the audit event."""
        return self.commit_many([value])[0]

    def commit_many(self, values: Sequence[str | bytes]) -> list[str]:
        """Commit to each value with a fresh salt, keeping the salts in one durable write (one sync, not one each)."""
        pairs = [commit_subject(v) for v in values]
        with _sql_errors("cannot store the salts"):
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO salts VALUES (?, ?)", pairs)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return [c for c, _ in pairs]

    def put(self, commitment: str, salt: bytes) -> None:
        """Keep the salt of a commitment."""
        if not _HEX64.fullmatch(commitment) or len(salt) != SALT_SIZE:
            raise EntryError("not a commitment and salt")
        with _sql_errors("cannot store the salt"):
            self._conn.execute("INSERT OR REPLACE INTO salts VALUES (?, ?)", (commitment, salt))

    def salt(self, commitment: str) -> bytes | None:
        """The salt of a commitment, or None once destroyed."""
        with _sql_errors("cannot read the salt"):
            row = self._conn.execute("SELECT salt FROM salts WHERE commitment = ?", (commitment,)).fetchone()
        return None if row is None else bytes(row[0])

    def find(self, value: str | bytes) -> list[str]:
        """Commitments to ``value``: its HMAC recomputed under every stored salt."""
        msg = subject_bytes(value)
        with _sql_errors("cannot read the salts"):
            rows = self._conn.execute("SELECT commitment, salt FROM salts").fetchall()
        digest = hmac.digest
        return [c for c, s in rows if hmac.compare_digest(digest(s, msg, "sha256").hex(), c)]

    def destroy_salt(self, commitment: str) -> bool:
        """Delete a salt (its commitment becomes unlinkable); True if there was one."""
        with _sql_errors("cannot delete the salt"):
            cur = self._conn.execute("DELETE FROM salts WHERE commitment = ?", (commitment,))
        return cur.rowcount > 0

    def destroy_subject(self, value: str | bytes) -> int:
        """Delete every salt of a subject: none of their log entries can be linked to them again."""
        return destroy_subject(self, value)

    def __len__(self) -> int:
        with _sql_errors("cannot count the salts"):
            return int(self._conn.execute("SELECT count(*) FROM salts").fetchone()[0])

    def close(self) -> None:
        """Close the file."""
        self._conn.close()

    def __enter__(self) -> SaltStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def destroy_subject(salts: Salts, value: str | bytes) -> int:
    """Delete every salt of a subject from ``salts``: none of their log entries can be linked to them again."""
    found = salts.find(value)
    for c in found:
        salts.destroy_salt(c)
    return len(found)


def destroy_salt(salts: Salts, commitment: str) -> bool:
    """Destroy the salt of one commitment (the operator's erasure step); True if there was one."""
    return salts.destroy_salt(commitment)


def find(value: str | bytes, salts: Salts, log: LogStore, *, chunk: int = 65536) -> list[int]:
    """Indices of the log entries whose subject commitment is one of ``value``'s (via the salts still kept)."""
    wanted = {c.encode() for c in salts.find(value)}
    if not wanted:
        return []
    hits: list[int] = []
    size = log.size
    for start in range(0, size, chunk):
        # A byte search first (commitments are hex, the encoding has no escapes), the decode only for candidates.
        for i, d in log.scan_entries(start, min(start + chunk, size)):
            if any(w in d for w in wanted):
                sc = AuditEvent.from_bytes(d).subject_commitment
                if sc is not None and sc.encode() in wanted:
                    hits.append(i)
    return hits


def encode_all(events: Sequence[AuditEvent]) -> list[bytes]:
    """Canonical bytes of many events (the batch to hand to LogStore.append)."""
    return [e.encode() for e in events]
