"""The hub's directory, configuration and core: accounts, sign-in, participants, refusals, the audit trail.

A hub directory holds ``hub.toml`` (where the database and the audit log are), ``token.key`` (the Ed25519 key
that signs access tokens, mode 0600), ``log/`` (the audit log, :mod:`medspace.ledger`) and ``salts.sqlite`` (the
salts of the subject commitments, so a patient can find the entries about them). Several hub processes may open
one directory when ``database`` is PostgreSQL.

Every refusal names its rule (``Forbidden.rule``) and is itself an audit entry (``access.refuse``).
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError

from medspace.hub.accounts import (
    HOSPITAL_ROLES,
    Principal,
    TokenSigner,
    UserRole,
    check_account,
    check_username,
    hash_password,
    needs_rehash,
    verify_password,
)
from medspace.hub.db import Participant, User, is_postgres, migrate, utcnow
from medspace.hub.errors import AuthError, BadRequest, ConfigError, Conflict, Forbidden, NotFound
from medspace.hub.queue import HubDB
from medspace.ledger.entry import Action, AuditEvent, Purpose, Role, Salts, SaltStore
from medspace.ledger.errors import LedgerError
from medspace.ledger.log import AuditLog, init_log
from medspace.ledger.log import read_config as read_log_config
from medspace.ledger.log import write_config as write_log_config
from medspace.policy.pki import Space
from medspace.private_files import PrivateFileError, read_private_file

CONFIG = "hub.toml"
TOKEN_CACHE = 10_000  # access tokens whose signature this process checked already (cleared when full)


@dataclass(frozen=True)
class HubConfig:
    """What ``hub.toml`` says."""

    directory: Path
    database: str
    origin: str
    space: Path | None = None
    name: str = "hub"  # the hub's participant name in the space (its certificate and key)
    token_minutes: int = 15

    @property
    def log_dir(self) -> Path:
        """The audit log's directory."""
        return self.directory / "log"


def read_config(directory: Path) -> HubConfig:
    """Read a hub directory's configuration; a missing or malformed file is ConfigError naming the setting."""
    path = directory / CONFIG
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{directory} is not a hub directory (no {CONFIG}); create one with `medspace hub init`") \
            from None
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}") from None
    try:
        db = str(raw["database"])
        if not db.startswith(("postgres", "sqlite:")):
            db = str((directory / db).resolve())
        space = raw.get("space")
        return HubConfig(directory=directory, database=db, origin=str(raw["origin"]),
                         space=(directory / space).resolve() if space else None,
                         name=str(raw.get("name", "hub")), token_minutes=int(raw.get("token_minutes", 15)))
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{path}: setting {e} is missing or malformed") from None


def init_hub(directory: Path, *, origin: str, admin: str, password: str, database: str | None = None,
             space: Path | None = None) -> HubConfig:
    """Create a hub directory: configuration, token key, audit log, migrated database, the first admin account."""
    check_username(admin)
    pw_hash = hash_password(password)
    if (directory / CONFIG).exists():
        raise ConfigError(f"{directory} already holds a hub")
    directory.mkdir(parents=True, exist_ok=True)
    db = database or "hub.sqlite"
    lines = [f'origin = "{origin}"', f'database = "{db}"']
    if space is not None:
        lines.append(f'space = "{space.resolve()}"')
    TokenSigner.create_file(directory / "token.key")
    try:
        # on PostgreSQL the log lives in the hub's database too, so every hub process appends to one log
        init_log(directory / "log", origin, store=database if database and is_postgres(database) else None)
        if space is not None:  # the space's witnesses serve HTTPS with certificates of the space's CA
            log_cfg = read_log_config(directory / "log")
            log_cfg.witness_ca = str((space / "ca" / "ca.pem").resolve())
            write_log_config(directory / "log", log_cfg)
    except LedgerError as e:
        raise ConfigError(f"cannot create the hub's audit log: {e}") from None
    (directory / CONFIG).write_text("\n".join(lines) + "\n")
    cfg = read_config(directory)
    migrate(cfg.database)
    hub = HubCore(cfg, create=True)
    try:
        with hub.db.transaction() as s:
            s.add(User(username=admin, role=UserRole.ADMIN.value, password_hash=pw_hash))
        hub.record(Action.USER_REGISTER, actor="hub", role=Role.HUB, purpose=Purpose.HSYSADMIN,
                   resource=f"user:{admin}")
    finally:
        hub.close()
    return cfg


def _load_task_key(space: Space, name: str) -> ec.EllipticCurvePrivateKey:
    """The hub's certificate key, which signs task envelopes (nodes verify with the hub's certificate)."""
    p = space.participant(name)
    try:
        data = read_private_file(p.key, "the hub's key", 64 * 1024)
        key = serialization.load_pem_private_key(data, password=None)
    except PrivateFileError as e:
        raise ConfigError(str(e)) from None
    except ValueError:
        raise ConfigError(f"{p.key} is not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{p.key} is not an EC key")
    return key


_READING_INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("medspace_reading_inline", default=False)


@contextlib.contextmanager
def reading_inline() -> Iterator[None]:
    """Mark a read run on the event loop: a refusal in it is raised as DeferredRefusal, not logged in place."""
    token = _READING_INLINE.set(True)
    try:
        yield
    finally:
        _READING_INLINE.reset(token)


class DeferredRefusal(Exception):
    """A refusal met in a read on the event loop, to be logged (HubCore.refuse) on a worker thread and raised."""

    def __init__(self, who: Principal, rule: str, message: str, resource: str, purpose: Purpose | str) -> None:
        super().__init__(rule)
        self.who, self.rule, self.message, self.resource, self.purpose = who, rule, message, resource, purpose


class GroupCommit:
    """Appends to the audit log that callers on several threads make at once, written as one batch: one durable
    commit (an fsync) for all of them instead of one each, in the order they arrived.

    A caller queues its events; if no batch is being written it takes every queued event and writes them (the
    leader), else it waits for the batch in flight and then for its own. Each caller gets its own indices, or the
    error of the batch its events were in.
    """

    def __init__(self, write: Callable[[list[AuditEvent]], list[int]], lock: threading.Lock) -> None:
        self._write = write
        self._lock = lock  # held while writing (the checkpoint publisher takes it too)
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._writing = False

    def append(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append ``events`` (in one batch with whatever other threads append now); their indices."""
        mine = _Pending(list(events))
        with self._cond:
            self._queue.append(mine)
            while not mine.done and self._writing:
                self._cond.wait()
            if mine.done:
                return mine.result()
            batch, self._queue = self._queue, []
            self._writing = True
        try:
            with self._lock:
                indices = self._write([e for p in batch for e in p.events])
            at = 0
            for p in batch:
                p.indices = indices[at:at + len(p.events)]
                at += len(p.events)
        except BaseException as e:
            for p in batch:
                p.error = e
            raise
        finally:
            with self._cond:
                for p in batch:
                    p.done = True
                self._writing = False
                self._cond.notify_all()
        return mine.result()


@dataclass
class _Pending:
    events: list[AuditEvent]
    indices: list[int] | None = None
    error: BaseException | None = None
    done: bool = False

    def result(self) -> list[int]:
        if self.error is not None:
            raise self.error
        assert self.indices is not None
        return self.indices


# the account a token speaks for, read on every request (a statement built once)
_ACCOUNT = (select(User.username, User.role, User.hospital, User.pseudonym, User.disabled)
            .where(User.username == bindparam("b_username")))


def _audit_role(role: str) -> Role:
    return Role(role)


def _upgrade(db: HubDB, url: str) -> None:
    """Bring a hub database made by an older medspace up to this one's migrations (upgrades only add)."""
    from medspace.hub.db import current_revision, head_revision

    try:
        behind = current_revision(db.engine) != head_revision()
    except Exception as e:  # the drivers raise many types; the CLI needs one line
        db.close()
        raise ConfigError(f"cannot read the hub database's revision: {type(e).__name__}") from None
    if behind:
        try:
            migrate(url)
        except Exception:
            db.close()
            raise


class HubCore:
    """One hub process's view of the space: database, token signer, audit log, the space's CA (for node
    certificates and the hub's signing key)."""

    def __init__(self, config: HubConfig, *, pool_size: int = 10, create: bool = False) -> None:
        self.config = config
        self.signer = TokenSigner.from_file(config.directory / "token.key", timedelta(minutes=config.token_minutes))
        self.db = HubDB(config.database, pool_size=pool_size)
        if not create:
            _upgrade(self.db, config.database)
        try:
            self.log = AuditLog(config.log_dir, create=create)
        except LedgerError as e:
            self.db.close()
            raise ConfigError(f"cannot open the hub's audit log: {e}") from None
        self.salts: Salts
        if self.db.postgres:  # hub processes on several machines find every patient's entries
            from medspace.hub.salts import DbSaltStore

            self.salts = DbSaltStore(self.db)
        else:
            self.salts = SaltStore(config.directory / "salts.sqlite")
        self.space: Space | None = None
        self.task_key: ec.EllipticCurvePrivateKey | None = None
        if config.space is not None:
            self.space = Space.open(config.space)
            self.task_key = _load_task_key(self.space, config.name)
        self._log_lock = threading.Lock()
        self._tokens: dict[str, tuple[float, dict[str, Any]]] = {}
        self._appender = GroupCommit(lambda evs: self.log.append(evs), self._log_lock)

    @classmethod
    def open(cls, directory: Path, **kw: Any) -> Self:
        """Open a hub directory."""
        return cls(read_config(directory), **kw)

    def close(self) -> None:
        """Release the database, the log and the salts."""
        self.db.close()
        self.log.close()
        self.salts.close()

    # --- audit ----------------------------------------------------------------------------------------------

    def event(self, action: Action, *, actor: str, role: Role | str, purpose: Purpose | str, resource: str,
              contract_id: str | None = None, subject: str | None = None, inputs: Sequence[bytes] = (),
              outputs: Sequence[bytes] = ()) -> AuditEvent:
        """An audit event to append (with :meth:`append`); ``subject`` (a linkage pseudonym) is kept only as a salted
        commitment."""
        commitment = self.salts.commit(subject) if subject is not None else None
        return AuditEvent(actor=actor, role=Role(role), action=action, purpose=Purpose(purpose), resource=resource,
                          time=utcnow(), contract_id=contract_id,
                          input_hashes=tuple(hashlib.sha256(b).hexdigest() for b in inputs),
                          output_hashes=tuple(hashlib.sha256(b).hexdigest() for b in outputs),
                          subject_commitment=commitment)

    def append(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append events durably, in order; their indices. Concurrent callers share one commit (group commit)."""
        return self._appender.append(events) if events else []

    def record(self, action: Action, *, actor: str, role: Role | str, purpose: Purpose | str, resource: str,
               contract_id: str | None = None, subject: str | None = None, inputs: Sequence[bytes] = (),
               outputs: Sequence[bytes] = ()) -> int:
        """Append one audit event; ``subject`` (a linkage pseudonym) is stored only as a salted commitment."""
        ev = self.event(action, actor=actor, role=role, purpose=purpose, resource=resource, contract_id=contract_id,
                        subject=subject, inputs=inputs, outputs=outputs)
        return self.append([ev])[0]

    def record_all(self, events: Sequence[AuditEvent]) -> list[int]:
        """Append several audit events in one batch (all or none)."""
        return self.append(list(events)) if events else []

    def refuse(self, who: Principal, rule: str, message: str, *, resource: str,
               purpose: Purpose | str = Purpose.HSYSADMIN) -> Forbidden:
        """Log a refusal and return the exception to raise. In a read run on the event loop (:func:`~medspace.hub.
        service.read`) it raises DeferredRefusal instead, and the read logs it on a worker thread (a durable append
        must not stall the loop)."""
        if _READING_INLINE.get():
            raise DeferredRefusal(who, rule, message, resource, purpose)
        self.record(Action.ACCESS_REFUSE, actor=who.name if not who.pseudonym else self.salts.commit(who.pseudonym),
                    role=who.role, purpose=purpose, resource=resource)
        return Forbidden(rule, message)

    # --- accounts -------------------------------------------------------------------------------------------

    def login(self, username: str, password: str) -> tuple[str, Any]:
        """A fresh access token for a correct username and password; AuthError otherwise (one message for all)."""
        with self.db.sessions() as s:
            user = s.scalars(select(User).where(User.username == username)).first()
            stored = user.password_hash if user is not None and not user.disabled else None
            ok = verify_password(stored, password)
            if not ok or user is None:
                raise AuthError("wrong username or password")
            if needs_rehash(user.password_hash):
                with self.db.transaction() as w:
                    u = w.get(User, user.id)
                    if u is not None:
                        u.password_hash = hash_password(password)
            return self.signer.issue(self._principal(user))

    @staticmethod
    def _principal(user: User) -> Principal:
        return Principal(name=user.username, role=user.role, hospital=user.hospital, pseudonym=user.pseudonym)

    def authenticate(self, token: str) -> Principal:
        """The person a token speaks for, as their account says now (disabled accounts are refused)."""
        claims = self._token_claims(token)
        with self.db.engine.connect() as c:
            user = c.execute(_ACCOUNT, {"b_username": claims["sub"]}).first()
        if user is None or user.disabled:
            raise AuthError("the access token is not valid")
        return Principal(name=user.username, role=user.role, hospital=user.hospital, pseudonym=user.pseudonym)

    def _token_claims(self, token: str) -> dict[str, Any]:
        # a token's signature is checked once: it cannot change, and its expiry is checked again on every use
        hit = self._tokens.get(token)
        if hit is not None and time.time() < hit[0]:
            return hit[1]
        claims = self.signer.verify(token)
        if len(self._tokens) >= TOKEN_CACHE:
            self._tokens.clear()
        self._tokens[token] = (float(claims["exp"]), claims)
        return claims

    def create_user(self, who: Principal, *, username: str, role: str, password: str, hospital: str | None = None,
                    pseudonym: str | None = None) -> Principal:
        """Create an account. Admins create any; a steward creates clinicians and stewards of their own hospital."""
        check_username(username)
        r = check_account(role, hospital, pseudonym)
        if who.role == UserRole.STEWARD:
            if r not in HOSPITAL_ROLES:
                raise self.refuse(who, "accounts.steward-creates-hospital-staff",
                                  "a steward creates only clinician and steward accounts", resource=f"user:{username}")
            if hospital != who.hospital:
                raise self.refuse(who, "hospital.own-only", "a steward acts only for their own hospital",
                                  resource=f"user:{username}")
        elif who.role != UserRole.ADMIN:
            raise self.refuse(who, "accounts.admin-only", "only an admin or a steward creates accounts",
                              resource=f"user:{username}")
        if hospital is not None:
            self._require_hospital(hospital)
        pw = hash_password(password)
        try:
            with self.db.transaction() as s:
                s.add(User(username=username, role=r.value, hospital=hospital, pseudonym=pseudonym, password_hash=pw))
        except IntegrityError:
            raise Conflict(f"the username {username} is taken") from None
        self.record(Action.USER_REGISTER, actor=who.name, role=_audit_role(who.role), purpose=Purpose.HSYSADMIN,
                    resource=f"user:{username}", subject=pseudonym)
        return Principal(name=username, role=r.value, hospital=hospital, pseudonym=pseudonym)

    def users(self, who: Principal) -> list[dict[str, Any]]:
        """Accounts an admin (all) or a steward (their hospital's) may see; never a hash or a pseudonym."""
        if who.role not in (UserRole.ADMIN, UserRole.STEWARD):
            raise self.refuse(who, "accounts.admin-or-steward", "only admins and stewards list accounts",
                              resource="user:all")
        with self.db.sessions() as s:
            q = select(User).order_by(User.username)
            if who.role == UserRole.STEWARD:
                q = q.where(User.hospital == who.hospital)
            return [{"username": u.username, "role": u.role, "hospital": u.hospital, "disabled": u.disabled}
                    for u in s.scalars(q)]

    # --- participants ---------------------------------------------------------------------------------------

    def register_participant(self, who: Principal, *, name: str, role: str, region: str | None = None,
                             packs: Sequence[str] = ("sensitivity",), safeguards: Sequence[str] = ()) -> None:
        """Record a hub, node or witness of the space (admin only); a node names its region and compliance packs."""
        if who.role != UserRole.ADMIN:
            raise self.refuse(who, "accounts.admin-only", "only an admin registers participants",
                              resource=f"participant:{name}")
        if role not in ("hub", "node", "witness"):
            raise BadRequest("role: one of hub, node, witness")
        if region is not None and (len(region) != 2 or not region.isalpha() or not region.isupper()):
            raise BadRequest("region: an ISO 3166-1 alpha-2 code such as CN, US or DE")
        try:
            with self.db.transaction() as s:
                s.add(Participant(name=name, role=role, region=region, packs=",".join(packs),
                                  safeguards=",".join(safeguards)))
        except IntegrityError:
            raise Conflict(f"the participant {name} is already registered") from None
        self.record(Action.PARTICIPANT_REGISTER, actor=who.name, role=Role.ADMIN, purpose=Purpose.HSYSADMIN,
                    resource=f"participant:{name}")

    def _require_hospital(self, hospital: str) -> Participant:
        with self.db.sessions() as s:
            p = s.get(Participant, hospital)
        if p is None or p.role != "node":
            raise NotFound(f"no hospital {hospital} in this space")
        return p

    def hospitals(self) -> list[dict[str, Any]]:
        """The hospitals (nodes) of the space, their region, packs and status."""
        with self.db.sessions() as s:
            return [{"name": p.name, "region": p.region, "packs": p.packs.split(","), "status": p.status,
                     "last_seen": p.last_seen.isoformat() if p.last_seen else None}
                    for p in s.scalars(select(Participant).where(Participant.role == "node")
                                       .order_by(Participant.name))]
