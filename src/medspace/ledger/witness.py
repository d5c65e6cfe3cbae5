"""Witnesses for the audit log: C2SP tlog-witness (https://c2sp.org/tlog-witness) server, client and quorum check.

A witness keeps, per log origin, the last checkpoint it cosigned (size, root, and the note with the log's verified
signatures and the witness's cosignatures) in a SQLite file, and cosigns a new checkpoint only if

1. the origin is a log it knows (else 404) and the checkpoint carries a valid signature of one of that log's keys
   and no invalid one (else 403, "bad signature");
2. the request's ``old`` size is at most the checkpoint size (else 400) and equals the size it last cosigned (else
   409, the size and a newline as the body, with exactly ``Content-Type: text/x.tlog.size``: a stale client
   learns where to start, and a rollback is refused);
3. at equal sizes the roots are equal (else 422, "fork: same size, different root", as tlog-witness asks since it
   made every 409 carry a size);
4. the RFC 9162 consistency proof from its stored (size, root) to the new checkpoint verifies, a proof from size 0
   is empty and a size-0 checkpoint has the empty root (else 422).

Checking, cosigning and recording are one SQLite ``BEGIN IMMEDIATE`` transaction with a compare-and-swap
``UPDATE`` and a full fsync before any cosignature leaves the witness, so two racing requests cannot roll the state
back (the race tlog-witness §add-checkpoint describes). Requests that arrive together are checked in order within
one transaction and share its fsync (group commit), which is what lets one witness cosign thousands of checkpoints
a second. Signed checkpoints refused as a fork or with a bad proof are kept in an ``evidence`` table: they are a
log's signature on an inconsistent view.

The HTTP server is Starlette on uvicorn (the hub's stack, FastAPI, is built on the same two), with one access-log
line per request (:mod:`medspace.ledger.access_log`). Besides ``POST /add-checkpoint`` it serves the spec's
monitoring endpoint ``GET /<sha256(origin) hex>/checkpoint`` (the latest cosigned note; 404 for an unknown origin
or before the first cosignature) and ``GET /`` (its vkeys, our addition). Clients: :func:`submit` (one witness),
:func:`collect_cosignatures` (several in parallel, with the 409 retry the spec describes), :func:`fetch_checkpoint`
(what a witness holds for a log) and :func:`verify_quorum` (accept a checkpoint only with k of n valid witness
cosignatures). Client calls have short timeouts (connect 2 s, each read 5 s, 8 s per witness in all, all
adjustable), so a witness that accepts the connection and never answers costs seconds and is reported as
"no answer within N s".
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import socket
import sqlite3
import ssl
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from medspace.ledger import merkle
from medspace.ledger.checkpoint import (
    SIG_PREFIX,
    Checkpoint,
    CosignatureSigner,
    CosignatureVerifier,
    NoteSignature,
    NoteVerifier,
    append_signatures,
    b64decode_strict,
    b64encode,
    cosignature_timestamp,
    load_verifier,
    open_note,
    read_private_key,
    split_note,
    verify_signatures,
)
from medspace.ledger.errors import CheckpointError, ProofError, WitnessError

if TYPE_CHECKING:
    from starlette.applications import Starlette

MAX_PROOF_LINES = 63  # tlog-witness: a client MUST NOT send more
MAX_BODY_BYTES = 64 * 1024
MAX_RESPONSE_BYTES = 1024 * 1024  # what a client reads of a witness's answer at most
SIZE_CONTENT_TYPE = "text/x.tlog.size"
DEFAULT_PORT = 7380
CONNECT_TIMEOUT = 2.0  # seconds to open a connection to a witness
READ_TIMEOUT = 5.0  # seconds a witness may stay silent while answering
DEADLINE = 8.0  # seconds one witness may take in all, the 409 retry included
_OLD_LINE = re.compile(r"old (0|[1-9][0-9]*)")


class WitnessRefusal(WitnessError):
    """A witness refused a checkpoint: the HTTP status the protocol assigns, the reason, and on a size conflict
    the size the witness last cosigned (which a client resubmits from)."""

    def __init__(self, status: int, reason: str, latest_size: int | None = None) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.latest_size = latest_size


# --- wire format ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddCheckpointRequest:
    """The body of ``POST /add-checkpoint``: the old size, a consistency proof, and the signed checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    note: str

    def to_body(self) -> bytes:
        """The request body: ``old <n>``, one base64 hash per line, a blank line, then the note."""
        return format_add_checkpoint(self.old_size, self.proof, self.note)


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """Encode an add-checkpoint request body (tlog-witness §add-checkpoint)."""
    if old_size < 0:
        raise WitnessError("old size must be non-negative")
    if len(proof) > MAX_PROOF_LINES:
        raise WitnessError(f"a consistency proof has at most {MAX_PROOF_LINES} hashes")
    lines = [f"old {old_size}", *(b64encode(h) for h in proof), ""]
    return ("\n".join(lines) + "\n" + note).encode("utf-8")


def parse_add_checkpoint(body: bytes) -> AddCheckpointRequest:
    """Decode an add-checkpoint request body strictly (WitnessRefusal 400 with the reason)."""
    if len(body) > MAX_BODY_BYTES:
        raise WitnessRefusal(400, "request body too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessRefusal(400, "request body is not UTF-8") from None
    first, sep, rest = text.partition("\n")
    match = _OLD_LINE.fullmatch(first)
    if not sep or match is None:
        raise WitnessRefusal(400, "first line must be 'old <size>' in decimal without leading zeros")
    proof: list[bytes] = []
    while True:
        line, sep, rest = rest.partition("\n")
        if not sep:
            raise WitnessRefusal(400, "missing blank line before the checkpoint")
        if not line:
            break
        if len(proof) == MAX_PROOF_LINES:
            raise WitnessRefusal(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
        try:
            node = b64decode_strict(line, "consistency proof line")
        except CheckpointError as exc:
            raise WitnessRefusal(400, str(exc)) from None
        if len(node) != merkle.HASH_SIZE:
            raise WitnessRefusal(400, f"consistency proof line {len(proof) + 1} is not a {merkle.HASH_SIZE}-byte hash")
        proof.append(node)
    return AddCheckpointRequest(int(match.group(1)), tuple(proof), rest)


def origin_hash(origin: str) -> str:
    """The lowercase hex SHA-256 of a log origin: its path segment on a witness's monitoring prefix."""
    return hashlib.sha256(origin.encode("utf-8")).hexdigest()


# --- state ----------------------------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS logs (
    origin TEXT PRIMARY KEY,
    size INTEGER NOT NULL DEFAULT 0,
    root BLOB,
    note TEXT,
    updated REAL
);
CREATE TABLE IF NOT EXISTS log_keys (
    origin TEXT NOT NULL REFERENCES logs(origin),
    vkey TEXT NOT NULL,
    PRIMARY KEY (origin, vkey)
);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY,
    origin TEXT NOT NULL,
    received REAL NOT NULL,
    status INTEGER NOT NULL,
    reason TEXT NOT NULL,
    old_size INTEGER NOT NULL,
    proof TEXT NOT NULL,
    note TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class LogState:
    """What a witness holds for one log: the last cosigned size and root (None before the first), and that
    checkpoint's note with the log signatures the witness verified and its own cosignatures (None before)."""

    origin: str
    size: int
    root: bytes | None
    note: str | None


@dataclass
class _Prepared:
    """A request that passed the stateless checks (syntax, known origin, log signature)."""

    request: AddCheckpointRequest
    checkpoint: Checkpoint
    text: str
    log_signatures: list[NoteSignature]  # the log's verified signatures, kept in the stored note


class Witness:
    """A witness: its cosigning key(s), the logs it follows and their last cosigned state in a SQLite file."""

    def __init__(
        self,
        state_path: str | os.PathLike[str],
        signers: Sequence[CosignatureSigner],
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not signers:
            raise WitnessError("a witness needs at least one cosigning key")
        for s in signers:
            if not isinstance(s, CosignatureSigner):
                raise WitnessError("witness keys must be cosignature/v1 signers")
        self.signers = list(signers)
        self.clock = clock
        self.path = Path(state_path)
        self._lock = threading.Lock()
        try:
            # One connection, serialised by _lock; used from the server's commit thread, hence not thread-bound.
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: the WAL is fsynced at every commit, so a cosigned state survives a power loss.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise WitnessError(f"cannot open witness state {self.path}: {exc}") from None
        self._log_keys: dict[str, list[NoteVerifier]] = {}
        for origin, vkey in self._db.execute("SELECT origin, vkey FROM log_keys ORDER BY origin, vkey"):
            self._log_keys.setdefault(origin, []).append(NoteVerifier.from_vkey(vkey))
        self._by_hash = {origin_hash(o): o for o in self._log_keys}

    @classmethod
    def open(
        cls, state_path: str | os.PathLike[str], key_path: str | os.PathLike[str], log_keys: Iterable[str] = ()
    ) -> Witness:
        """A witness from a state file, a private key file (0600) and log vkeys (strings or files) to trust."""
        signer = read_private_key(key_path, cosigner=True)
        if not isinstance(signer, CosignatureSigner):
            raise WitnessError("the witness key must be a cosignature/v1 key")
        witness = cls(state_path, [signer])
        for vkey in log_keys:
            witness.add_log(load_verifier(vkey))
        return witness

    def close(self) -> None:
        """Close the state file."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Witness:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- configuration --

    def add_log(self, verifier: NoteVerifier, origin: str | None = None) -> None:
        """Trust ``verifier`` for the log ``origin`` (by default the key's name, as tlog-checkpoint recommends)."""
        if type(verifier) is not NoteVerifier:
            raise WitnessError("a log key must be an Ed25519 note key (type 0x01)")
        origin = origin or verifier.name
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT OR IGNORE INTO logs (origin) VALUES (?)", (origin,))
                self._db.execute(
                    "INSERT OR IGNORE INTO log_keys (origin, vkey) VALUES (?, ?)", (origin, verifier.vkey())
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            keys = self._log_keys.setdefault(origin, [])
            if verifier not in keys:
                keys.append(verifier)
            self._by_hash[origin_hash(origin)] = origin

    def verifiers(self) -> list[CosignatureVerifier]:
        """The public keys of this witness's cosignatures."""
        return [v for v in (s.verifier() for s in self.signers) if isinstance(v, CosignatureVerifier)]

    def origins(self) -> list[str]:
        """The origins of the logs this witness follows."""
        return sorted(self._log_keys)

    def state(self, origin: str) -> LogState | None:
        """The last cosigned state of a log, or None if the origin is unknown."""
        with self._lock:
            row = self._db.execute("SELECT size, root, note FROM logs WHERE origin = ?", (origin,)).fetchone()
        return None if row is None else LogState(origin, int(row[0]), row[1], row[2])

    def origin_for_hash(self, hex_hash: str) -> str | None:
        """The origin of a followed log from its lowercase hex SHA-256 (the monitoring URL's path), or None."""
        return self._by_hash.get(hex_hash)

    def cosigned_note(self, origin: str) -> str | None:
        """The latest checkpoint this witness cosigned for ``origin``: the log's verified signatures and this
        witness's cosignatures, as tlog-witness's monitoring endpoint serves it; None if none yet."""
        with self._lock:
            row = self._db.execute("SELECT note, updated FROM logs WHERE origin = ?", (origin,)).fetchone()
        if row is None or row[0] is None:
            return None
        note, updated = str(row[0]), float(row[1] or 0)
        _text, valid, _invalid, _unknown = verify_signatures(note, self.verifiers())
        if len(valid) == len(self.signers):
            return note
        # A state file written before notes were stored cosigned: cosign that checkpoint as of when it was
        # recorded (Ed25519 is deterministic, so every answer is the same bytes, and the statement is as true).
        text, _ = split_note(note)
        stamp = max(1, int(updated))
        return append_signatures(note, [
            NoteSignature(s.name, s.key_id, s.sign_at(stamp, text.encode("utf-8"))).line() for s in self.signers
        ])

    def evidence(self, origin: str) -> list[tuple[int, str, AddCheckpointRequest]]:
        """Signed requests refused as a fork or with a bad proof: (status, reason, request), oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT status, reason, old_size, proof, note FROM evidence WHERE origin = ? ORDER BY id", (origin,)
            ).fetchall()
        out = []
        for status, reason, old_size, proof, note in rows:
            nodes = tuple(b64decode_strict(p, "stored proof") for p in proof.split())
            out.append((int(status), str(reason), AddCheckpointRequest(int(old_size), nodes, str(note))))
        return out

    # -- the protocol --

    def add_checkpoint(self, old_size: int, proof: Sequence[bytes], note: str) -> list[str]:
        """Check and cosign one checkpoint: the cosignature lines (no newline), or WitnessRefusal with the status."""
        result = self.add_checkpoints([AddCheckpointRequest(old_size, tuple(proof), note)])[0]
        if isinstance(result, WitnessRefusal):
            raise result
        return result

    def add_checkpoints(self, requests: Sequence[AddCheckpointRequest]) -> list[list[str] | WitnessRefusal]:
        """Check a batch in order against the state as each leaves it, in one transaction and one fsync.

        Each result is either that request's cosignature lines or its refusal; no cosignature is returned unless
        the transaction that records it (and the cosigned note) has committed.
        """
        prepared: list[_Prepared | WitnessRefusal] = [self._prepare(r) for r in requests]
        results: list[list[str] | WitnessRefusal] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                now = self.clock()
                for item in prepared:
                    results.append(item if isinstance(item, WitnessRefusal) else self._apply(item, now))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return results

    def _prepare(self, request: AddCheckpointRequest) -> _Prepared | WitnessRefusal:
        """The checks that need no state: note syntax, known origin, the log's signature, old <= size."""
        try:
            text, _sigs = split_note(request.note)
            checkpoint = Checkpoint.from_text(text)
        except CheckpointError as exc:
            return WitnessRefusal(400, f"malformed checkpoint: {exc}")
        keys = self._log_keys.get(checkpoint.origin)
        if not keys:
            return WitnessRefusal(404, "unknown log origin")
        try:
            _text, valid, invalid, _unknown = verify_signatures(request.note, keys)
        except CheckpointError as exc:
            return WitnessRefusal(403, f"bad signature: {exc}")
        if invalid:
            return WitnessRefusal(403, "bad signature: a signature of a trusted log key does not verify")
        if not valid:
            return WitnessRefusal(403, "bad signature: no signature from a trusted log key")
        if request.old_size > checkpoint.size:
            return WitnessRefusal(400, "rollback refused: old size is larger than the checkpoint size")
        return _Prepared(request, checkpoint, text, valid)

    def _apply(self, item: _Prepared, now: float) -> list[str] | WitnessRefusal:
        """The stateful rules, inside the open transaction; records the new state (compare-and-swap) if they pass."""
        cp, req = item.checkpoint, item.request
        row = self._db.execute("SELECT size, root FROM logs WHERE origin = ?", (cp.origin,)).fetchone()
        if row is None:
            return WitnessRefusal(404, "unknown log origin")
        stored_size, stored_root = int(row[0]), row[1]
        forked = stored_root is not None and cp.size == stored_size and cp.root_hash != stored_root
        if req.old_size != stored_size:
            why = (
                "rollback refused: checkpoint is smaller than the last cosigned one"
                if cp.size < stored_size
                else "old size does not match the last cosigned size"
            )
            refusal = WitnessRefusal(409, why, latest_size=stored_size)
            # Whatever old size came with it, a log-signed other root at the cosigned size proves a split view.
            return self._evidence(item, now, refusal) if forked else refusal
        if forked:
            return self._evidence(item, now, WitnessRefusal(422, "fork: same size, different root"))
        try:
            if stored_size == 0:
                # Nothing is committed before the first checkpoint, so there is nothing to prove from.
                if req.proof:
                    raise ProofError("the proof from size 0 must be empty")
                if cp.size == 0 and cp.root_hash != merkle.EMPTY_ROOT:
                    raise ProofError("an empty tree has another root")
            else:
                merkle.verify_consistency(stored_size, cp.size, stored_root, cp.root_hash, req.proof)
        except ProofError as exc:
            return self._evidence(item, now, WitnessRefusal(422, f"bad consistency proof: {exc}"))
        message = item.text.encode("utf-8")
        lines = [NoteSignature(s.name, s.key_id, s.sign(message)).line() for s in self.signers]
        # Stored as the monitoring endpoint serves it: the log's verified signatures, then the cosignatures.
        note = item.text + "\n" + "".join(line + "\n" for line in [*(s.line() for s in item.log_signatures), *lines])
        cur = self._db.execute(
            "UPDATE logs SET size = ?, root = ?, note = ?, updated = ? WHERE origin = ? AND size = ? AND root IS ?",
            (cp.size, cp.root_hash, note, now, cp.origin, stored_size, stored_root),
        )
        if cur.rowcount != 1:
            # Not reachable under BEGIN IMMEDIATE; if it were, every 409 still carries the size (tlog-witness).
            latest = self._db.execute("SELECT size FROM logs WHERE origin = ?", (cp.origin,)).fetchone()
            return WitnessRefusal(409, "the witness state changed concurrently", latest_size=int(latest[0]))
        return lines

    def _evidence(self, item: _Prepared, now: float, refusal: WitnessRefusal) -> WitnessRefusal:
        req = item.request
        self._db.execute(
            "INSERT INTO evidence (origin, received, status, reason, old_size, proof, note) VALUES (?,?,?,?,?,?,?)",
            (
                item.checkpoint.origin,
                now,
                refusal.status,
                refusal.reason,
                req.old_size,
                " ".join(b64encode(p) for p in req.proof),
                req.note,
            ),
        )
        return refusal


# --- HTTP server ----------------------------------------------------------------------------------------------------


class _GroupCommitter:
    """Queues requests from the event loop and runs them through Witness.add_checkpoints in batches, one at a
    time on one thread: whatever arrives while a batch commits forms the next batch (no timer, no added latency
    when idle)."""

    def __init__(self, witness: Witness, max_batch: int = 512) -> None:
        self.witness = witness
        self.max_batch = max_batch
        self._pending: list[tuple[AddCheckpointRequest, asyncio.Future[list[str] | WitnessRefusal]]] = []
        self._draining = False
        self._task: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="witness-commit")

    async def submit(self, request: AddCheckpointRequest) -> list[str] | WitnessRefusal:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[str] | WitnessRefusal] = loop.create_future()
        self._pending.append((request, future))
        if not self._draining:
            self._draining = True
            # Kept so the task is not garbage-collected while it runs.
            self._task = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                batch, self._pending = self._pending[: self.max_batch], self._pending[self.max_batch :]
                try:
                    results = await loop.run_in_executor(
                        self._executor, self.witness.add_checkpoints, [r for r, _ in batch]
                    )
                except Exception as exc:  # the state file failed: every request of the batch fails with it
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), result in zip(batch, results, strict=True):
                    if not fut.done():
                        fut.set_result(result)
        finally:
            self._draining = False

    def close(self) -> None:
        self._executor.shutdown(wait=True)


_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")


def create_app(witness: Witness) -> Starlette:
    """The witness's ASGI application: ``POST /add-checkpoint`` (tlog-witness), ``GET /<origin hash>/checkpoint``
    (its monitoring endpoint) and ``GET /`` (its vkeys), each request written to the access log."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from medspace.ledger.access_log import AccessLog

    committer = _GroupCommitter(witness)

    def refusal_response(refusal: WitnessRefusal) -> Response:
        if refusal.status == 409 and refusal.latest_size is not None:
            # The header given as is: Starlette's media_type would append "; charset=utf-8" to a text/* type,
            # and tlog-witness fixes the Content-Type to exactly text/x.tlog.size.
            return Response(
                f"{refusal.latest_size}\n", status_code=409, headers={"Content-Type": SIZE_CONTENT_TYPE}
            )
        return PlainTextResponse(refusal.reason + "\n", status_code=refusal.status)

    async def add_checkpoint(request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return PlainTextResponse("request body too large\n", status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return PlainTextResponse("request body too large\n", status_code=413)
        try:
            parsed = parse_add_checkpoint(bytes(body))
        except WitnessRefusal as refusal:
            return refusal_response(refusal)
        result = await committer.submit(parsed)
        if isinstance(result, WitnessRefusal):
            return refusal_response(result)
        return PlainTextResponse("".join(line + "\n" for line in result))

    def checkpoint(request: Request) -> Response:
        # A plain function: Starlette runs it on a worker thread, so a group commit holding the state's lock
        # never blocks the event loop.
        key = request.path_params["origin_hash"]
        origin = witness.origin_for_hash(key) if _HEX_SHA256.fullmatch(key) else None
        note = witness.cosigned_note(origin) if origin is not None else None
        if note is None:
            reason = "unknown log origin" if origin is None else "no checkpoint cosigned for this log yet"
            return PlainTextResponse(reason + "\n", status_code=404)
        return PlainTextResponse(note)

    async def keys(_request: Request) -> Response:
        return PlainTextResponse("".join(v.vkey() + "\n" for v in witness.verifiers()))

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            committer.close()

    return Starlette(
        routes=[
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/{origin_hash}/checkpoint", checkpoint, methods=["GET"]),
            Route("/", keys, methods=["GET"]),
        ],
        middleware=[Middleware(AccessLog)],
        lifespan=lifespan,
    )


def serve(
    state: str | os.PathLike[str],
    key: str | os.PathLike[str],
    log_keys: Sequence[str],
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    announce: Callable[[str], None] | None = None,
    access_log: bool = True,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Run a witness over HTTP, or HTTPS with ``tls`` (a server context), until interrupted (what ``medspace
    witness serve`` calls).

    ``state`` is the SQLite file (created if missing), ``key`` the witness's private key file (0600, a
    cosignature/v1 or Ed25519 skey), ``log_keys`` the vkeys (strings or files) of the logs it follows; the origin
    of each log is its key name. ``port=0`` picks a free port; ``announce`` receives the URL once listening (by
    default it is printed); ``access_log`` prints one line per request on stderr.
    """
    import uvicorn

    from medspace.ledger.access_log import log_to_stderr

    log_to_stderr(access_log)
    witness = Witness.open(state, key, log_keys)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without it every
    # response waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        witness.close()
        raise WitnessError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    bound = sock.getsockname()[1]
    scheme = "https" if tls is not None else "http"
    url = f"{scheme}://[{host}]:{bound}" if family == socket.AF_INET6 else f"{scheme}://{host}:{bound}"
    config = uvicorn.Config(create_app(witness), log_level="warning", access_log=False, lifespan="on")
    if tls is not None:
        config.load()
        config.ssl = tls  # after load(), which would otherwise build its own context from ssl_* files
    server = uvicorn.Server(config)
    (announce or (lambda u: print(f"witness listening on {u}", flush=True)))(url)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        witness.close()


# --- clients --------------------------------------------------------------------------------------------------------


def _endpoint(url: str) -> str:
    return url.rstrip("/") + "/add-checkpoint"


def _shown(url: str) -> str:
    """A witness URL for messages: without user info, so a password put in a URL is never printed."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        return "<invalid URL>"
    return str(parsed.copy_with(username=None, password=None)) if parsed.userinfo else url


def _timeouts(read: float, connect: float) -> httpx.Timeout:
    return httpx.Timeout(read, connect=min(connect, read), pool=read)


def new_client(timeout: float = READ_TIMEOUT, *, connect_timeout: float = CONNECT_TIMEOUT,
               verify: ssl.SSLContext | bool = True) -> httpx.Client:
    """An HTTP client for witnesses: keep-alive, short timeouts (seconds to connect, and that a witness may stay
    silent while answering), and TCP_NODELAY so a request is not held back by Nagle. ``verify``: how an HTTPS
    witness is authenticated (e.g. a context trusting only the space's CA)."""
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    return httpx.Client(
        timeout=_timeouts(timeout, connect_timeout),
        transport=httpx.HTTPTransport(socket_options=nodelay, verify=verify),
    )


def _exchange(
    http: httpx.Client,
    method: str,
    url: str,
    *,
    content: bytes | None,
    read: float,
    connect: float,
    deadline: float | None,
) -> tuple[int, str, bytes]:
    """One request, its answer read within ``deadline`` seconds in all: (status, Content-Type, body)."""
    limit = read if deadline is None else max(0.001, min(read, deadline))
    end = None if deadline is None else time.monotonic() + deadline
    shown = _shown(url)
    try:
        with http.stream(method, url, content=content, timeout=_timeouts(limit, connect)) as resp:
            data = bytearray()
            for chunk in resp.iter_bytes():
                data += chunk
                if len(data) > MAX_RESPONSE_BYTES:
                    raise WitnessError(f"witness at {shown} sent more than {MAX_RESPONSE_BYTES} bytes")
                if end is not None and time.monotonic() > end:
                    raise WitnessError(f"witness at {shown}: no answer within {deadline:g} s")
            return resp.status_code, resp.headers.get("content-type", ""), bytes(data)
    except httpx.ConnectTimeout:
        raise WitnessError(f"witness at {shown} unreachable: no connection within {min(connect, limit):g} s") from None
    except httpx.TimeoutException:
        raise WitnessError(f"witness at {shown}: no answer within {limit:g} s") from None
    except httpx.HTTPError as exc:
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, ssl.SSLCertVerificationError):  # say why: the fix is a CA file, not the network
            raise WitnessError(f"witness at {shown}: its TLS certificate is not trusted ({cause.verify_message}); "
                               "give the CA it chains to (ledger add-witness --ca)") from None
        raise WitnessError(f"witness at {shown} unreachable: {type(exc).__name__}") from None


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessError(f"{what} is not UTF-8") from None


def _reason(status: int, data: bytes) -> str:
    """The first line of a refusal's body (printable characters only, at most 200), or the status's phrase."""
    first = data.decode("utf-8", errors="replace").strip().split("\n", 1)[0][:200]
    first = "".join(c if c.isprintable() else "?" for c in first)
    return first or httpx.codes.get_reason_phrase(status) or f"HTTP {status}"


def _parse_cosignature_lines(body: str) -> list[str]:
    if not body.endswith("\n"):
        raise WitnessError("witness response does not end with a newline")
    lines = body[:-1].split("\n")
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise WitnessError("witness response line is not a note signature")
        try:
            NoteSignature.from_line(line)
        except CheckpointError as exc:
            raise WitnessError(f"witness response: {exc}") from None
    return lines


def _answer(status: int, content_type: str, data: bytes) -> list[str]:
    """The cosignature lines of an add-checkpoint answer, or its refusal raised."""
    if status == 200:
        return _parse_cosignature_lines(_text(data, "witness response"))
    # tlog-witness fixes the type as text/x.tlog.size; parameters (a charset some servers add) are tolerated.
    media_type = content_type.split(";", 1)[0].strip().lower()
    if status == 409 and media_type == SIZE_CONTENT_TYPE:
        match = re.fullmatch(rb"(0|[1-9][0-9]{0,18})\n", data)
        if match is None:
            raise WitnessRefusal(409, "witness sent a malformed size")
        raise WitnessRefusal(409, "old size does not match the witness", latest_size=int(match.group(1)))
    raise WitnessRefusal(status, _reason(status, data))


def submit(
    url: str,
    old_size: int,
    proof: Sequence[bytes],
    note: str,
    *,
    client: httpx.Client | None = None,
    timeout: float = READ_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
    deadline: float | None = None,
) -> list[str]:
    """POST a checkpoint to one witness (``url`` is its submission prefix): its cosignature lines, unverified.

    A refusal raises WitnessRefusal with the HTTP status and, on 409 with ``text/x.tlog.size``, the witness's
    latest cosigned size; an unreachable or silent witness raises WitnessError ("no answer within N s" after
    ``timeout`` seconds without a byte, or when the whole answer takes longer than ``deadline`` seconds).
    """
    body = format_add_checkpoint(old_size, proof, note)
    own = client is None
    http = client or new_client(timeout, connect_timeout=connect_timeout)
    try:
        status, content_type, data = _exchange(
            http, "POST", _endpoint(url), content=body, read=timeout, connect=connect_timeout, deadline=deadline
        )
    finally:
        if own:
            http.close()
    return _answer(status, content_type, data)


def fetch_checkpoint(
    url: str,
    origin: str,
    *,
    timeout: float = READ_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
    client: httpx.Client | None = None,
) -> str:
    """The latest checkpoint a witness cosigned for the log ``origin``, from its monitoring prefix ``url``
    (tlog-witness: ``GET <prefix>/<sha256(origin) hex>/checkpoint``).

    The note is checked for syntax and origin only: the caller verifies the log's signature and the witness's
    cosignature with keys it holds. A witness without a checkpoint for the log raises WitnessRefusal (404); an
    unreachable or silent one WitnessError.
    """
    own = client is None
    http = client or new_client(timeout, connect_timeout=connect_timeout)
    endpoint = f"{url.rstrip('/')}/{origin_hash(origin)}/checkpoint"
    try:
        status, _type, data = _exchange(
            http, "GET", endpoint, content=None, read=timeout, connect=connect_timeout, deadline=timeout
        )
    finally:
        if own:
            http.close()
    if status == 404:
        raise WitnessRefusal(404, f"the witness has no checkpoint for {origin}")
    if status != 200:
        raise WitnessRefusal(status, _reason(status, data))
    note = _text(data, "the witness's checkpoint")
    try:
        text, _sigs = split_note(note)
        checkpoint = Checkpoint.from_text(text)
    except CheckpointError as exc:
        raise WitnessError(f"the witness sent a malformed checkpoint: {exc}") from None
    if checkpoint.origin != origin:
        raise WitnessError("the witness sent a checkpoint of another log")
    return note


@dataclass(frozen=True)
class WitnessEndpoint:
    """A witness to ask: its submission URL prefix and its cosignature public key."""

    url: str
    verifier: NoteVerifier

    @classmethod
    def parse(cls, url: str, vkey: str) -> WitnessEndpoint:
        """From a URL and a vkey string or file."""
        return cls(url, load_verifier(vkey))


@dataclass
class CollectResult:
    """Outcome of :func:`collect_cosignatures`."""

    note: str  # the checkpoint note with every valid cosignature appended
    cosigned: list[str] = field(default_factory=list)  # names of the witnesses that cosigned
    errors: dict[str, str] = field(default_factory=dict)  # witness name -> why it did not
    sizes: dict[str, int] = field(default_factory=dict)  # witness name -> size it now holds (old size next time)


def _valid_lines(lines: Sequence[str], verifier: NoteVerifier, text: bytes) -> list[str]:
    """The lines that are a valid signature of ``verifier`` over ``text`` (others ignored, per tlog-witness)."""
    out = []
    for line in lines:
        sig = NoteSignature.from_line(line)
        if sig.name == verifier.name and sig.key_id == verifier.key_id and verifier.verify(text, sig.signature):
            out.append(sig.line())
    return out


def _close_when_done(pending: Iterable[Future[Any]], http: httpx.Client) -> None:
    wait_for(pending)
    http.close()


def collect_cosignatures(
    witnesses: Sequence[WitnessEndpoint],
    note: str,
    prove: Callable[[int], Sequence[bytes]],
    *,
    old_sizes: Mapping[str, int] | None = None,
    client: httpx.Client | None = None,
    timeout: float = READ_TIMEOUT,
    connect_timeout: float = CONNECT_TIMEOUT,
    deadline: float = DEADLINE,
) -> CollectResult:
    """Ask every witness, in parallel, to cosign a signed checkpoint note; keep the cosignatures that verify.

    ``prove(old_size)`` returns the consistency proof from ``old_size`` to the checkpoint's size (``[]`` for 0).
    Each witness is first asked from ``old_sizes[name]`` (default 0); on a 409 carrying its latest size it is asked
    once more from that size, as tlog-witness prescribes. A witness that refuses, fails, returns no valid
    cosignature or does not finish within ``deadline`` seconds (``connect_timeout`` to connect, ``timeout`` of
    silence at most) is recorded in ``errors``; it never makes the others fail, and the call returns after about
    ``deadline`` seconds at most.
    """
    text, _ = split_note(note)
    checkpoint = Checkpoint.from_text(text)
    message = text.encode("utf-8")
    sizes = dict(old_sizes or {})
    own = client is None
    http = client or new_client(timeout, connect_timeout=connect_timeout)

    def ask(w: WitnessEndpoint) -> tuple[list[str], int]:
        end = time.monotonic() + deadline
        old = sizes.get(w.verifier.name, 0)
        for attempt in range(2):
            left = end - time.monotonic()
            if left <= 0:
                raise WitnessError(f"witness at {_shown(_endpoint(w.url))}: no answer within {deadline:g} s")
            try:
                lines = submit(w.url, old, list(prove(old)) if old else [], note, client=http, timeout=timeout,
                               connect_timeout=connect_timeout, deadline=left)
            except WitnessRefusal as refusal:
                if attempt == 0 and refusal.latest_size is not None and refusal.latest_size != old:
                    if refusal.latest_size > checkpoint.size:
                        raise WitnessError("witness holds a larger tree than this checkpoint") from None
                    old = refusal.latest_size
                    continue
                raise
            valid = _valid_lines(lines, w.verifier, message)
            if not valid:
                raise WitnessError("witness returned no valid cosignature")
            return valid, checkpoint.size
        raise WitnessError("witness kept refusing the old size")

    result = CollectResult(note=note)
    lines: list[str] = []
    pending: set[Future[tuple[list[str], int]]] = set()
    # One thread per witness: every witness gets its whole deadline from the start.
    pool = ThreadPoolExecutor(max_workers=max(1, min(64, len(witnesses))), thread_name_prefix="witness-client")
    try:
        futures = [(w, pool.submit(ask, w)) for w in witnesses]
        # Each ask ends by its own deadline; this bound also covers a witness that drips its answer byte by byte.
        _done, pending = wait_for([f for _, f in futures], timeout=deadline + 0.5)
        for w, fut in futures:
            if fut in pending:
                where = _shown(_endpoint(w.url))
                result.errors[w.verifier.name] = f"witness at {where}: no answer within {deadline:g} s"
                continue
            try:
                got, size = fut.result()
            except WitnessError as exc:
                result.errors[w.verifier.name] = str(exc)
                continue
            lines.extend(got)
            result.cosigned.append(w.verifier.name)
            result.sizes[w.verifier.name] = size
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        if own:
            if pending:
                # A straggler still holds a connection: close the client once it gives up, without waiting here.
                threading.Thread(target=_close_when_done, args=(pending, http), daemon=True).start()
            else:
                http.close()
    if lines:
        result.note = append_signatures(note, lines)
    return result


def verify_quorum(
    note: str | bytes,
    log_verifier: NoteVerifier | Sequence[NoteVerifier],
    witness_verifiers: Sequence[NoteVerifier],
    k: int,
    *,
    origin: str | None = None,
    max_age: float | None = None,
    now: float | None = None,
) -> Checkpoint:
    """Accept a checkpoint only if the log signed it and at least ``k`` distinct witnesses validly cosigned it.

    The log's signature must verify (CheckpointError otherwise, as for any note); the origin must be ``origin``
    or, by default, the log key's name. Invalid cosignatures (a lying witness) and unknown ones are ignored; with
    ``max_age`` seconds, cosignatures older than that (or more than a minute in the future) do not count.
    Fewer than ``k`` raises WitnessError.
    """
    log_keys = [log_verifier] if isinstance(log_verifier, NoteVerifier) else list(log_verifier)
    if not log_keys:
        raise CheckpointError("no log key given")
    witnesses = list(dict.fromkeys(witness_verifiers))
    if not 1 <= k <= len(witnesses):
        raise ValueError(f"quorum k={k} must be between 1 and the number of witnesses ({len(witnesses)})")
    text, _ = open_note(note, log_keys)
    checkpoint = Checkpoint.from_text(text)
    expected = origin if origin is not None else log_keys[0].name
    if checkpoint.origin != expected:
        raise CheckpointError("checkpoint origin is not the expected log's")
    _text, valid, invalid, _unknown = verify_signatures(note, witnesses)
    by_id = {(w.name, w.key_id): w for w in witnesses}
    current = time.time() if now is None else now
    cosigned: set[NoteVerifier] = set()
    stale = 0
    for sig in valid:
        witness = by_id[(sig.name, sig.key_id)]
        if max_age is not None and isinstance(witness, CosignatureVerifier):
            stamp = cosignature_timestamp(sig.signature)
            if not current - max_age <= stamp <= current + 60:
                stale += 1
                continue
        cosigned.add(witness)
    if len(cosigned) < k:
        detail = f"; {len(invalid)} invalid" if invalid else ""
        detail += f"; {stale} too old" if stale else ""
        raise WitnessError(
            f"quorum not reached: {len(cosigned)} of {len(witnesses)} witnesses cosigned, {k} needed{detail}"
        )
    return checkpoint


def _main(argv: Sequence[str]) -> int:
    """``python -m medspace.ledger.witness --state FILE --key FILE --log-key VKEY [...] [--host H] [--port P]
    [--no-access-log]``."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m medspace.ledger.witness", description="Run a tlog witness.")
    parser.add_argument("--state", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--log-key", action="append", default=[], required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True,
                        help="one line per request on stderr (default: on)")
    args = parser.parse_args(argv)
    try:
        serve(args.state, args.key, args.log_key, host=args.host, port=args.port, access_log=args.access_log)
    except (WitnessError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
