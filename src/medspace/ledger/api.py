"""The audit log's HTTP API (Starlette): served by `medspace ledger serve` now, mounted in the hub later.

    GET  /checkpoint                          latest checkpoint note with its cosignatures (text/plain)
    GET  /entries?start=S&end=E               entries S..E-1 as base64 (JSON; at most 1,000 per request)
    GET  /proof/inclusion?index=I&size=N      inclusion proof of entry I in the tree of size N (default: latest
                                              checkpoint's size)
    GET  /proof/consistency?first=A&second=B  consistency proof from size A to size B
    GET  /bundle/{index}                      offline proof bundle of one entry
    POST /entries                             append audit events (JSON list); returns their indices
    POST /checkpoint                          publish a checkpoint now (signed, sent to the witnesses)

Errors are JSON ``{"error": "..."}`` with 400 (bad request), 404 (no such entry or checkpoint) or 409; they
never echo an entry.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from medspace.ledger.bundle import export_bundle
from medspace.ledger.entry import AuditEvent
from medspace.ledger.errors import EntryError, LedgerError, ProofError
from medspace.ledger.log import AuditLog

MAX_RANGE = 1_000


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


def _err(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(log: AuditLog) -> Starlette:
    """The ASGI app over one log; appends and publications are serialised by a lock (one sequencer)."""
    lock = threading.Lock()

    def latest_size() -> int:
        sizes = log.checkpoints()
        return sizes[-1][0] if sizes else 0

    async def checkpoint(_req: Request) -> Response:
        note = log.latest()
        if note is None:
            return _err(404, "no checkpoint published yet")
        return PlainTextResponse(note)

    async def entries(req: Request) -> Response:
        start = _int(req, "start")
        end = min(_int(req, "end", start + MAX_RANGE), start + MAX_RANGE, log.store.size)
        if start > end:
            return _err(404, f"the log has {log.store.size} entries")
        return JSONResponse({"start": start, "entries": [_b64(e) for e in log.store.entries(start, end)]})

    async def inclusion(req: Request) -> Response:
        index = _int(req, "index")
        size = _int(req, "size", latest_size())
        if not index < size <= log.store.size:
            return _err(404, f"no tree of size {size} holds entry {index}")
        proof = log.store.inclusion_proof(index, size)
        return JSONResponse(
            {
                "index": index,
                "size": size,
                "leaf_hash": _b64(log.store.leaf_hash(index)),
                "proof": [_b64(h) for h in proof],
            }
        )

    async def consistency(req: Request) -> Response:
        first, second = _int(req, "first"), _int(req, "second", latest_size())
        if not 0 < first <= second <= log.store.size:
            return _err(404, f"no consistency proof from {first} to {second} (log size {log.store.size})")
        return JSONResponse(
            {"first": first, "second": second, "proof": [_b64(h) for h in log.store.consistency_proof(first, second)]}
        )

    async def bundle(req: Request) -> Response:
        return JSONResponse(export_bundle(log, int(req.path_params["index"])))

    async def append(req: Request) -> Response:
        try:
            body = await req.json()
        except ValueError:
            return _err(400, "the body is not JSON")
        if not isinstance(body, list) or not all(isinstance(x, dict) for x in body):
            return _err(400, "the body must be a JSON list of audit events")
        events = [event_from_json(x) for x in body]
        with lock:
            indices = log.append(events)
        return JSONResponse({"indices": indices})

    async def publish(_req: Request) -> Response:
        with lock:
            note, errors = log.publish()
        return JSONResponse({"checkpoint": note, "witness_errors": errors})

    async def on_error(_req: Request, exc: Exception) -> Response:
        status = 400 if isinstance(exc, ProofError | EntryError) else 404 if isinstance(exc, LedgerError) else 500
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
    return Starlette(routes=routes, exception_handlers={LedgerError: on_error})


def event_from_json(obj: dict[str, Any]) -> AuditEvent:
    """An audit event from its JSON form (as `AuditEvent.to_dict` writes it; `v` optional)."""
    known = {
        "actor",
        "role",
        "action",
        "purpose",
        "resource",
        "time",
        "contract_id",
        "input_hashes",
        "output_hashes",
        "subject_commitment",
        "v",
    }
    extra = set(obj) - known
    if extra:
        raise EntryError(f"unknown event field(s): {', '.join(sorted(extra))}")
    try:
        when = obj["time"]
        t = datetime.fromisoformat(when.replace("Z", "+00:00")) if isinstance(when, str) else when
        return AuditEvent(
            actor=obj["actor"],
            role=obj["role"],
            action=obj["action"],
            purpose=obj["purpose"],
            resource=obj["resource"],
            time=t,
            contract_id=obj.get("contract_id"),
            input_hashes=tuple(obj.get("input_hashes") or ()),
            output_hashes=tuple(obj.get("output_hashes") or ()),
            subject_commitment=obj.get("subject_commitment"),
        )
    except KeyError as e:
        raise EntryError(f"missing event field {e.args[0]!r}") from None
    except (TypeError, ValueError):
        raise EntryError("an event field has the wrong type or format") from None


def serve(
    log: AuditLog, host: str = "127.0.0.1", port: int = 7390, announce: Callable[[str], None] | None = None
) -> None:
    """Run the API until interrupted; ``port=0`` picks a free port, announced (printed) once listening."""
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LedgerError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    url = f"http://{host}:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(log), log_level="warning", access_log=False))
    (announce or (lambda u: print(f"ledger listening on {u}", flush=True)))(url)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
