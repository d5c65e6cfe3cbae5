"""Secure-aggregation test helpers: a data space with seven nodes (and one outside every round), another space whose
CA is a stranger's, and the nodes' certificate keys (the fixture is in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medspace.policy.pki import Space, init_space
from medspace.privacy.secagg import EncryptedShare, NodeKey, RoundConfig, SecAggClient, SecAggServer

NODES = tuple(f"h{i}" for i in range(1, 8))


@dataclass
class Spaces:
    """The space of the rounds, its nodes' keys, and a foreign space with nodes of the same names."""

    space: Space
    keys: dict[str, NodeKey]
    foreign: Space
    foreign_keys: dict[str, NodeKey]

    def round(self, config: RoundConfig) -> tuple[SecAggServer, dict[str, SecAggClient]]:
        """A server and a client per participant for ``config``."""
        clients = {n: SecAggClient(config, n, self.keys[n], self.space) for n in config.participants}
        return SecAggServer(config, self.space), clients


def exchange_keys(server: SecAggServer, clients: dict[str, SecAggClient]) -> dict[str, list[EncryptedShare]]:
    """The round's first two steps for every client: adverts in, shares out; each client's routed shares."""
    for c in clients.values():
        server.receive_advert(c.advertise())
    adverts = server.close_adverts()
    for c in clients.values():
        server.receive_shares(c.share(adverts))
    return server.route_shares()


def _keys(space: Space, names: tuple[str, ...]) -> dict[str, NodeKey]:
    return {n: NodeKey.load(space.participant(n).key, space.participant(n).cert) for n in names}


def make_spaces(base: Path) -> Spaces:
    """The spaces under ``base`` (issuing certificates is the slow part: make them once per session)."""
    space = init_space(base / "space", "demo", nodes=[*NODES, "h9"])
    foreign = init_space(base / "foreign", "demo", nodes=list(NODES))
    return Spaces(space, _keys(space, (*NODES, "h9")), foreign, _keys(foreign, NODES))
