"""Runs the aics-witness log-side client and the aics-tlog checkpoint verifier for tests/ledger/test_c2sp_interop.py.

    PYTHONPATH=aics_witness-0.1.0-py3-none-any.whl:aics_tlog-0.2.1-py3-none-any.whl python aics_client.py <req.json

Requests (JSON on stdin), answers (JSON on stdout):

- ``{"command": "submit", "url", "witness_vkey", "leaves": [base64 entry data], "notes": [signed checkpoints],
  "state": path}``: one ``WitnessClient`` (state kept in ``state``) submits each note in turn, with consistency
  proofs from aics-tlog's own Merkle tree over ``leaves``; per note ``{"ok": true, "lines", "note"}`` (the
  cosignature lines and the note with them merged) or ``{"ok": false, "error": exception class, "message"}``.
- ``{"command": "verify", "note", "log_vkey", "witness_vkey"}``: aics-tlog's ``verify_checkpoint`` with a quorum
  of 1 and a 10-minute freshness bound; ``{"ok", "error", "witnesses"}``.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from aics_tlog import MerkleTree, parse_note, parse_vkey, verify_checkpoint
from aics_witness.feeder import FeederError, WitnessClient, merge_cosignatures


def submit(req: dict[str, Any]) -> list[dict[str, Any]]:
    """Submit each note with one client, as a log would."""
    tree = MerkleTree(base64.b64decode(x) for x in req["leaves"])
    out: list[dict[str, Any]] = []
    # One attempt: a test wants the first answer, not retries with backoff.
    with WitnessClient(req["url"], req["witness_vkey"], state_path=req["state"], max_attempts=1,
                       timeout=10.0) as client:
        for note in req["notes"]:
            try:
                lines = client.submit(note, tree.consistency_proof)
            except FeederError as exc:
                out.append({"ok": False, "error": type(exc).__name__, "message": str(exc)})
            else:
                out.append({"ok": True, "lines": lines, "note": merge_cosignatures(note, lines).decode("utf-8")})
    return out


def verify(req: dict[str, Any]) -> dict[str, Any]:
    """Verify a cosigned checkpoint: the log's signature and one fresh witness cosignature."""
    result = verify_checkpoint(parse_note(req["note"].encode("utf-8")), parse_vkey(req["log_vkey"]),
                               [parse_vkey(req["witness_vkey"])], 1, max_age_seconds=600)
    return {"ok": result.ok, "error": result.error, "witnesses": result.witnesses}


def main() -> None:
    """Read one request, print its answer."""
    req = json.load(sys.stdin)
    answer = submit(req) if req["command"] == "submit" else verify(req)
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
