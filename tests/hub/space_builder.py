"""A small data space for end-to-end tests: a space CA, synthetic hospitals prepared as nodes, a hub directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from medspace.deid.keys import new_key
from medspace.hub.service import init_hub
from medspace.node.prepare import prepare_node
from medspace.policy.pki import init_space
from medspace.synth.generate import generate_hospital

ADMIN_PW = "admin-password-for-tests"


@dataclass
class SpaceFiles:
    """Paths and names of a prepared space."""

    root: Path
    space: Path
    hub_dir: Path
    hospitals: list[str]
    stores: dict[str, Path] = field(default_factory=dict)
    linkage: dict[str, list[str]] = field(default_factory=dict)  # hospital -> linkage ids in its research view


def build_space(root: Path, hospitals: int = 3, patients: int = 300, *, database: str | None = None) -> SpaceFiles:
    """Generate ``hospitals`` synthetic hospitals, prepare each as a node, create the space and the hub."""
    src = root / "sources"
    key = new_key()
    names: list[str] = []
    stores: dict[str, Path] = {}
    linkage: dict[str, list[str]] = {}
    for i in range(1, hospitals + 1):
        result = generate_hospital(src, i, hospitals, patients, seed=11)
        hid = f"h{i}"
        names.append(hid)
        store = root / "nodes" / f"{hid}.duckdb"
        store.parent.mkdir(parents=True, exist_ok=True)
        prepare_node(store, [src / result.hospital.dir], key)
        stores[hid] = store
        with duckdb.connect(str(store), read_only=True) as con:
            linkage[hid] = [r[0] for r in con.execute(
                "SELECT linkage_id FROM deid_research.patient WHERE linkage_id IS NOT NULL ORDER BY 1").fetchall()]
    space = root / "space"
    init_space(space, "test-space", nodes=names, witnesses=["w1", "w2"])
    hub_dir = root / "hub"
    init_hub(hub_dir, origin="medspace.test/hub", admin="root", password=ADMIN_PW, space=space, database=database)
    return SpaceFiles(root, space, hub_dir, names, stores, linkage)
