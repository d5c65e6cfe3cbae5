"""A whole round in one process: the server and the clients exchange every message through its wire form, as a
relay would. For tests, benchmarks and a reading of the protocol's flow; the hub and the nodes run the same steps
over HTTPS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import partial
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
    ``drop_before_reveal`` send their input but no reveal. Errors of either side propagate. ``seconds`` has one
    entry per step, "node ..." (added up over the nodes) and "server ...", and "wire" for (de)serialising."""
    report = RoundReport(np.zeros(0), ())
    clock: dict[str, float] = {}

    def timed(label: str, step: Callable[[], _M]) -> _M:
        t0 = time.perf_counter()
        out = step()
        clock[label] = clock.get(label, 0.0) + time.perf_counter() - t0
        return out

    def wire(message: _M, up: bool, parse: Callable[[bytes], _M]) -> _M:
        return timed("wire", partial(_wire, message, report, up, parse))

    names = sorted(clients)
    for n in names:
        advert = timed("node advertise", clients[n].advertise)
        timed("server adverts", partial(server.receive_advert, wire(advert, True, KeyAdvert.from_bytes)))
    adverts = timed("server adverts", server.close_adverts)
    batches: dict[str, list[EncryptedShare]] = {}
    for n in names:
        got = [wire(a, False, KeyAdvert.from_bytes) for a in adverts]
        batches[n] = timed("node share", partial(clients[n].share, got))
    for n in names:
        batch = [wire(s, True, EncryptedShare.from_bytes) for s in batches[n]]
        timed("server shares", partial(server.receive_shares, batch))
    routed = timed("server shares", server.route_shares)
    for n in names:
        mine = [wire(s, False, EncryptedShare.from_bytes) for s in routed.get(n, [])]
        if n in drop_before_input:
            continue
        masked = timed("node mask", partial(clients[n].masked_input, inputs[n], mine))
        received = wire(masked, True, MaskedInput.from_bytes)
        timed("server sum", partial(server.receive_input, received))
    request = timed("server sum", server.unmask_request)
    for n in request.survivors:
        got_request = wire(request, False, UnmaskRequest.from_bytes)
        if n in drop_before_reveal:
            continue
        reveal = timed("node reveal", partial(clients[n].reveal, got_request))
        timed("server unmask", partial(server.receive_reveal, wire(reveal, True, Reveal.from_bytes)))
    report.total = timed("server unmask", server.finish)
    report.survivors = server.survivors
    report.seconds = clock
    return report
