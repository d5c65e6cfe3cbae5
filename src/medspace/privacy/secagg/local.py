"""A whole round in one process: the server and the clients exchange every message through its wire form, as a
relay would. For tests, benchmarks and a reading of the protocol's flow; the hub and the nodes run the same steps
over HTTPS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from medspace.privacy.secagg.client import SecAggClient
from medspace.privacy.secagg.messages import EncryptedShare, KeyAdvert, MaskedInput, Reveal, UnmaskRequest
from medspace.privacy.secagg.server import SecAggServer

_M = TypeVar("_M")


@dataclass
class RoundReport:
    """What a local round produced: the sum, the survivors, bytes sent each way, and seconds spent per phase
    (node-side and server-side times added up over all nodes)."""

    total: npt.NDArray[np.float64] | npt.NDArray[np.int64]
    survivors: tuple[str, ...]
    bytes_up: int = 0
    bytes_down: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def bytes_total(self) -> int:
        """Bytes on the wire, both ways."""
        return self.bytes_up + self.bytes_down


def _wire(message: _M, report: RoundReport, up: bool, parse: Callable[[bytes], _M]) -> _M:
    data = message.to_bytes()  # type: ignore[attr-defined]
    if up:
        report.bytes_up += len(data)
    else:
        report.bytes_down += len(data)
    return parse(data)


def run_round(server: SecAggServer, clients: Mapping[str, SecAggClient], inputs: Mapping[str, npt.ArrayLike], *,
              drop_before_input: Collection[str] = (), drop_before_reveal: Collection[str] = ()) -> RoundReport:
    """Run one round: every client advertises and shares; those in ``drop_before_input`` then vanish, those in
    ``drop_before_reveal`` send their input but no reveal. Errors of either side propagate."""
    report = RoundReport(np.zeros(0), ())
    clock: dict[str, float] = {}

    def timed(phase: str, start: float) -> None:
        clock[phase] = clock.get(phase, 0.0) + time.perf_counter() - start

    names = sorted(clients)
    for n in names:
        t0 = time.perf_counter()
        advert = clients[n].advertise()
        timed("advertise", t0)
        server.receive_advert(_wire(advert, report, True, KeyAdvert.from_bytes))
    adverts = server.close_adverts()
    batches: dict[str, list[EncryptedShare]] = {}
    for n in names:
        got = [_wire(a, report, False, KeyAdvert.from_bytes) for a in adverts]
        t0 = time.perf_counter()
        batches[n] = clients[n].share(got)
        timed("share", t0)
    for n in names:
        server.receive_shares([_wire(s, report, True, EncryptedShare.from_bytes) for s in batches[n]])
    routed = server.route_shares()
    for n in names:
        mine = [_wire(s, report, False, EncryptedShare.from_bytes) for s in routed.get(n, [])]
        if n in drop_before_input:
            continue
        t0 = time.perf_counter()
        masked = clients[n].masked_input(inputs[n], mine)
        timed("mask (nodes)", t0)
        received = _wire(masked, report, True, MaskedInput.from_bytes)
        t0 = time.perf_counter()
        server.receive_input(received)
        timed("sum (server)", t0)
    request = server.unmask_request()
    for n in request.survivors:
        got_request = _wire(request, report, False, UnmaskRequest.from_bytes)
        if n in drop_before_reveal:
            continue
        t0 = time.perf_counter()
        reveal = clients[n].reveal(got_request)
        timed("reveal", t0)
        server.receive_reveal(_wire(reveal, report, True, Reveal.from_bytes))
    t0 = time.perf_counter()
    report.total = server.finish()
    timed("unmask (server)", t0)
    report.survivors = server.survivors
    report.seconds = clock
    return report
