"""The audit log's HTTP API (Starlette): served by `medspace ledger serve` now, mounted in the hub later.

Routes::

    GET  /checkpoint                          latest checkpoint that meets the quorum, with its cosignatures
                                              (text/plain)
    GET  /entries?start=S&end=E               entries S..E-1 as base64 (JSON; at most 1,000 per request)
    GET  /proof/inclusion?index=I&size=N      inclusion proof of entry I in the tree of size N (default: latest
                                              checkpoint's size)
    GET  /proof/consistency?first=A&second=B  consistency proof from size A to size B
    GET  /bundle/{index}                      offline proof bundle of one entry
    POST /entries                             append audit events (a JSON list, all or none); returns their indices
    POST /checkpoint                          publish a checkpoint now (signed, sent to the witnesses)

Writes belong to the owner. A server started without a write credential is read-only: both POSTs answer 403. The
credential (:class:`WriteAccess`) is a bearer token read from a file only its owner may read (``--token-file``;
`medspace ledger token FILE` writes a fresh one with mode 0600) or from ``MEDSPACE_LEDGER_TOKEN``; the server keeps
only its SHA-256 and compares digests with ``hmac.compare_digest``. A POST must then carry ``Authorization: Bearer
<token>``; a missing, malformed or wrong one is answered 401 with ``WWW-Authenticate: Bearer`` (and RFC 6750's
``error="invalid_request"`` or ``error="invalid_token"``). The credential belongs to one *writer* (a name, e.g.
``hub``), which may append events whose ``actor`` matches one of its *actor patterns* (``fnmatch`` style, whole
actor, case-sensitive; by default only the writer's own name). A hub that logs on behalf of the researchers and
the node of hospital h1 is started as ``--writer hub --actor hub --actor '*@h1' --actor 'node-h1'``; ``--actor
'*'`` lets a writer claim any actor (patients, whose actor is a subject commitment, included). A batch is all or
nothing: one event the writer may not claim refuses it with 403, naming the event's position and the writer's
patterns, never the actor. Every append is recorded with the writer's name and address
(:meth:`AuditLog.record_write`), and the access-log line (:mod:`medspace.ledger.access_log`) names the writer,
never the token. ``POST /entries`` answers ``{"indices": [...]}`` (an empty list appends nothing).

Limits: a POST body is at most ``max_body`` bytes (default 1 MiB, about 2,000 events). A declared
``Content-Length`` above it is refused 413 before anything is read; a body without one (chunked) is read as a
stream and refused 413 as soon as it passes the cap. Refusals sent before the body is read (401, 403 read-only,
413) close the connection, so the rest of the body is never read.

Nothing runs on the event loop that can wait: storage reads, event validation, appends and publications (which
call the witnesses) run in worker threads, so a witness that accepts a connection and never answers delays only
its own POST /checkpoint. Appends are serialised by one lock (one sequencer), publications by another, so appends
go on while the witnesses are asked; a second POST /checkpoint while one is running is answered 409 at once.

Errors are JSON ``{"error": "..."}``: 400 (bad request; a malformed event is named ``event N of M: field ...``,
N its position in the posted list counted from 1, as `medspace ledger append` counts), 401 (no or wrong
credential), 403 (read-only server, or an actor the writer may not claim), 404 (no such entry or checkpoint), 409
(a publication is already running), 413 (body too large), 500 (the checkpoint file does not verify), 503 (the
checkpoint did not reach the witness quorum, or the store failed). They never echo an event's values or a token. A
published checkpoint answers 200 ``{"checkpoint", "cosigned", "witness_errors"}``; one that misses the quorum
answers 503 with the same fields besides ``error``, and is not served as the latest.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import os
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from medspace.ledger.access_log import PRINCIPAL_KEY, AccessLog, log_to_stderr
from medspace.ledger.bundle import export_bundle
from medspace.ledger.entry import AuditEvent
from medspace.ledger.errors import EntryError, LedgerError, ProofError, StorageError, TamperError
from medspace.ledger.log import AuditLog
from medspace.private_files import PrivateFileError, read_private_file

MAX_RANGE = 1_000
DEFAULT_MAX_BODY = 1024 * 1024
TOKEN_ENV = "MEDSPACE_LEDGER_TOKEN"
TOKEN_PREFIX = "msl_"
MIN_TOKEN_CHARS = 32
DEFAULT_WRITER = "owner"
_REALM = 'Bearer realm="medspace-ledger"'
# RFC 6750 token68: what fits an Authorization header unquoted.
_TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}")  # the alphabet of an event's actor
_PATTERN = re.compile(r"[A-Za-z0-9._:@/+\-*?\[\]!]{1,128}")
_MAX_TOKEN_FILE = 4096


# --- the write credential -------------------------------------------------------------------------------------------


def _clean_token(raw: str, where: str) -> str:
    token = raw.strip()
    if len(token) < MIN_TOKEN_CHARS or not _TOKEN.fullmatch(token):
        raise LedgerError(f"{where} does not hold one token of at least {MIN_TOKEN_CHARS} characters "
                          "(letters, digits, -._~+/); `medspace ledger token FILE` writes one")
    return token


def new_token() -> str:
    """A fresh write token: ``msl_`` and 32 random bytes, URL-safe base64."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def write_token_file(path: Path, *, replace: bool = False) -> None:
    """Write a fresh token to ``path`` with mode 0600 (created so, never widened); an existing file is an
    error (FileExistsError) unless ``replace``, which swaps it atomically."""
    data = (new_token() + "\n").encode()
    target = path.parent / f".{path.name or 'token'}.{secrets.token_hex(4)}.tmp" if replace else path
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(target, path)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def read_token_file(path: Path) -> str:
    """The token in a file only its owner may access (one group or others can read is refused, like ssh keys)."""
    try:
        data = read_private_file(path, "the token file", _MAX_TOKEN_FILE)
    except PrivateFileError as e:
        raise LedgerError(str(e)) from None
    try:
        text = data.decode("ascii") if len(data) <= _MAX_TOKEN_FILE else ""
    except UnicodeDecodeError:
        text = ""
    return _clean_token(text, f"the token file {path}")


def token_from_env(environ: dict[str, str] | None = None) -> str | None:
    """The token in MEDSPACE_LEDGER_TOKEN, or None when it is unset or empty."""
    raw = (os.environ if environ is None else environ).get(TOKEN_ENV, "")
    return _clean_token(raw, TOKEN_ENV) if raw.strip() else None


@dataclass(frozen=True)
class WriteAccess:
    """Who may write: one writer, known by the SHA-256 of its bearer token, and the actors it may claim."""

    writer: str
    digest: bytes = field(repr=False)
    actors: tuple[str, ...]
    _claims: re.Pattern[str] = field(repr=False, compare=False)

    @classmethod
    def from_token(cls, token: str, writer: str = DEFAULT_WRITER, actors: Sequence[str] = ()) -> WriteAccess:
        """The access of ``writer`` holding ``token``; ``actors`` are fnmatch patterns (default: its own name)."""
        if not _NAME.fullmatch(writer):
            raise LedgerError("the writer's name must be 1-128 characters of letters, digits and ._:@/+- "
                              "(the alphabet of an actor)")
        patterns = tuple(actors) or (writer,)
        for p in patterns:
            if not _PATTERN.fullmatch(p):
                raise LedgerError(f"actor pattern {p!r} has characters an actor cannot have")
        token = _clean_token(token, "the write token")
        claims = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))
        return cls(writer, hashlib.sha256(token.encode()).digest(), patterns, claims)

    def authenticate(self, authorization: str | None) -> str | None:
        """None if the Authorization header carries this writer's token, else why not: "missing",
        "invalid_request" (not ``Bearer <token>``) or "invalid_token"."""
        if authorization is None:
            return "missing"
        scheme, _, presented = authorization.strip().partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not _TOKEN.fullmatch(presented):
            return "invalid_request"
        # Digests of equal length, compared in constant time: the comparison reveals nothing of the token.
        ok = hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self.digest)
        return None if ok else "invalid_token"

    def may_claim(self, actor: str) -> bool:
        """Whether an event naming ``actor`` may be appended by this writer."""
        return self._claims.match(actor) is not None

    def describe(self) -> str:
        """The writer and its patterns, for messages (no secret in it)."""
        return f"writer {self.writer!r} may claim: {', '.join(self.actors)}"


# --- the app --------------------------------------------------------------------------------------------------------


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _int(req: Request, name: str, default: int | None = None) -> int:
    raw = req.query_params.get(name)
    if raw is None:
        if default is None:
            raise ProofError(f"query parameter {name!r} is required")
        return default
    if not raw.isdigit():
        raise ProofError(f"query parameter {name!r} must be a non-negative integer")
    return int(raw)


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(obj), status_code=status, media_type="application/json", headers=headers)


def _err(status: int, message: str, headers: dict[str, str] | None = None, extra: dict[str, Any] | None = None
         ) -> Response:
    return _json({"error": message, **(extra or {})}, status, headers)


# Sent with refusals before the body is read: the server closes the connection instead of reading the rest.
_CLOSE = {"Connection": "close"}


class _Refused(Exception):
    """A write refused with an HTTP status (raised inside the worker thread, answered by the endpoint)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def create_app(log: AuditLog, *, access: WriteAccess | None = None, max_body: int = DEFAULT_MAX_BODY,
               access_log: bool = True) -> Starlette:
    """The ASGI app over one log: read-only unless ``access`` is given; ``access_log`` adds the
    :class:`AccessLog` middleware (a host that logs requests itself passes False)."""
    append_lock = threading.Lock()
    publishing = threading.Lock()

    # GET endpoints are plain functions: Starlette runs them in its worker threads, off the event loop.
    def checkpoint(_req: Request) -> Response:
        note = log.latest()
        if note is None:
            return _err(404, "no checkpoint published yet")
        return PlainTextResponse(note)

    def entries(req: Request) -> Response:
        start = _int(req, "start")
        end = min(_int(req, "end", start + MAX_RANGE), start + MAX_RANGE, log.store.size)
        if start > end:
            return _err(404, f"the log has {log.store.size} entries")
        return _json({"start": start, "entries": [_b64(e) for e in log.store.entries(start, end)]})

    def inclusion(req: Request) -> Response:
        index = _int(req, "index")
        size = _int(req, "size", log.latest_size())
        if not index < size <= log.store.size:
            return _err(404, f"no tree of size {size} holds entry {index}")
        proof = log.store.inclusion_proof(index, size)
        return _json({"index": index, "size": size, "leaf_hash": _b64(log.store.leaf_hash(index)),
                      "proof": [_b64(h) for h in proof]})

    def consistency(req: Request) -> Response:
        first, second = _int(req, "first"), _int(req, "second", log.latest_size())
        if not 0 < first <= second <= log.store.size:
            return _err(404, f"no consistency proof from {first} to {second} (log size {log.store.size})")
        return _json({"first": first, "second": second,
                      "proof": [_b64(h) for h in log.store.consistency_proof(first, second)]})

    def bundle(req: Request) -> Response:
        return _json(export_bundle(log, int(req.path_params["index"])))

    def authorise(req: Request) -> Response | None:
        """None if the request may write, else the refusal (403 read-only, 401 with WWW-Authenticate)."""
        if access is None:
            return _err(403, "this log server is read-only: start `medspace ledger serve` with --token-file "
                             f"(or {TOKEN_ENV}) to accept writes", _CLOSE)
        why = access.authenticate(req.headers.get("authorization"))
        if why is None:
            setattr(req.state, PRINCIPAL_KEY, access.writer)
            return None
        if why == "missing":
            return _err(401, "a write needs `Authorization: Bearer <token>`", {"WWW-Authenticate": _REALM, **_CLOSE})
        message = ("the Authorization header is not `Bearer <token>`" if why == "invalid_request"
                   else "the bearer token is not this server's write token")
        return _err(401, message, {"WWW-Authenticate": f'{_REALM}, error="{why}"', **_CLOSE})

    async def read_body(req: Request) -> bytes | Response:
        """The body, read as a stream and refused (413) as soon as it passes ``max_body``."""
        declared = req.headers.get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                return _err(400, "Content-Length is not a number", _CLOSE)
            if int(declared) > max_body:
                return _err(413, f"the body is larger than {max_body} bytes ({declared} declared)", _CLOSE)
        body = bytearray()
        async for chunk in req.stream():
            body += chunk
            if len(body) > max_body:
                return _err(413, f"the body is larger than {max_body} bytes", _CLOSE)
        return bytes(body)

    def append_batch(body: bytes, writer: WriteAccess, remote: str) -> list[int]:
        """Parse, validate and claim-check every event, then append them all (worker thread)."""
        try:
            items = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise _Refused(400, "the body is not JSON") from None
        if not isinstance(items, list):
            raise _Refused(400, "the body must be a JSON list of audit events")
        events: list[AuditEvent] = []
        may_claim = writer.may_claim
        total = len(items)
        for n, obj in enumerate(items, 1):  # counted from 1, as `medspace ledger append` counts
            if not isinstance(obj, dict):
                raise _Refused(400, f"event {n} of {total}: not a JSON object")
            try:
                event = event_from_json(obj)
            except EntryError as e:
                raise _Refused(400, f"event {n} of {total}: {e}") from None
            if not may_claim(event.actor):
                raise _Refused(403, f"event {n} of {total}: actor is not one this writer may claim "
                                    f"({writer.describe()})")
            events.append(event)
        if not events:
            return []
        with append_lock:
            indices = log.append(events)
            log.record_write(indices[0], len(indices), writer.writer, remote)
        return indices

    async def append(req: Request) -> Response:
        refused = authorise(req)
        if refused is not None:
            return refused
        assert access is not None
        body = await read_body(req)
        if isinstance(body, Response):
            return body
        remote = req.client.host if req.client else "-"
        try:
            indices = await run_in_threadpool(append_batch, body, access, remote)
        except _Refused as r:
            return _err(r.status, str(r))
        return _json({"indices": indices})

    def publish_now(started: list[bool]) -> Response:
        started.append(True)
        try:
            pub = log.publish()
        finally:
            publishing.release()
        answer = {"checkpoint": pub.note, "cosigned": pub.cosigned, "witness_errors": pub.errors}
        if pub.witnessed:
            return _json(answer)
        return _err(503, f"the checkpoint at size {pub.size} has {len(pub.cosigned)} witness cosignature(s); "
                         f"the quorum is {pub.quorum}: not published", extra=answer)

    async def publish(req: Request) -> Response:
        refused = authorise(req)
        if refused is not None:
            return refused
        # Checked on the event loop without waiting, so that clients retrying against a stalled witness cannot
        # fill the worker threads that the reads need.
        if not publishing.acquire(blocking=False):
            return _err(409, "a checkpoint is already being published; try again when it is done")
        started: list[bool] = []
        try:
            return await run_in_threadpool(publish_now, started)
        finally:
            if not started:  # the worker never ran: the lock is still ours to release
                publishing.release()

    async def on_error(_req: Request, exc: Exception) -> Response:
        if isinstance(exc, ProofError | EntryError):
            status = 400
        elif isinstance(exc, StorageError):
            status = 503
        elif isinstance(exc, TamperError):
            status = 500
        else:
            status = 404
        return _err(status, str(exc))

    routes = [
        Route("/checkpoint", checkpoint, methods=["GET"]),
        Route("/checkpoint", publish, methods=["POST"]),
        Route("/entries", entries, methods=["GET"]),
        Route("/entries", append, methods=["POST"]),
        Route("/proof/inclusion", inclusion, methods=["GET"]),
        Route("/proof/consistency", consistency, methods=["GET"]),
        Route("/bundle/{index:int}", bundle, methods=["GET"]),
    ]
    middleware = [Middleware(AccessLog)] if access_log else []
    return Starlette(routes=routes, middleware=middleware, exception_handlers={LedgerError: on_error})


_KNOWN = frozenset({"actor", "role", "action", "purpose", "resource", "time", "contract_id", "input_hashes",
                    "output_hashes", "subject_commitment", "v"})
_REQUIRED = ("actor", "role", "action", "purpose", "resource", "time")
_REQUIRED_SET = frozenset(_REQUIRED)


def event_from_json(obj: dict[str, Any]) -> AuditEvent:
    """An audit event from its JSON form (as `AuditEvent.to_dict` writes it; `v` optional, and 1 if given)."""
    if not _KNOWN.issuperset(obj):
        raise EntryError(f"unknown event field(s): {', '.join(sorted(set(obj) - _KNOWN))}")
    if not obj.keys() >= _REQUIRED_SET:
        missing = next(name for name in _REQUIRED if name not in obj)
        raise EntryError(f"missing event field {missing!r}")
    if obj.get("v", 1) != 1:
        raise EntryError("field 'v' must be 1 (the event format's version)")
    when = obj["time"]
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            raise EntryError("field 'time' is not an RFC 3339 date and time") from None
    return AuditEvent(
        actor=obj["actor"],
        role=obj["role"],
        action=obj["action"],
        purpose=obj["purpose"],
        resource=obj["resource"],
        time=when,
        contract_id=obj.get("contract_id"),
        input_hashes=obj.get("input_hashes") or (),
        output_hashes=obj.get("output_hashes") or (),
        subject_commitment=obj.get("subject_commitment"),
    )


def serve(
    log: AuditLog,
    host: str = "127.0.0.1",
    port: int = 7390,
    announce: Callable[[str], None] | None = None,
    *,
    access: WriteAccess | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    access_log: bool = True,
) -> None:
    """Run the API until interrupted; ``port=0`` picks a free port, announced (printed) once listening, followed
    by a line saying who may write. Access-log lines go to stderr unless ``access_log`` is False."""
    import socket

    import uvicorn

    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP (see witness.serve).
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LedgerError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    bound = sock.getsockname()[1]
    url = f"http://[{host}]:{bound}" if family == socket.AF_INET6 else f"http://{host}:{bound}"
    log_to_stderr(access_log)
    app = create_app(log, access=access, max_body=max_body)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    (announce or (lambda u: print(f"ledger listening on {u}", flush=True)))(url)
    if announce is None:
        mode = (f"writes accepted with the write token: {access.describe()}" if access is not None
                else f"read-only (start with --token-file or {TOKEN_ENV} to accept writes)")
        print(mode, flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
