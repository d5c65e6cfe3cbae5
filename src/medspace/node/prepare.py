"""Preparing a node's store for the space: sources ingested, a keyring with the space's linkage key, the
de-identified view that tasks run on. What a hospital's IT does once with `medspace ingest` and `medspace deid`
(the demo and the tests do it in one call)."""

from __future__ import annotations

from pathlib import Path

from medspace.connect.sources import SourceKind, detect, discover, ingest_file
from medspace.deid.apply import apply_policy
from medspace.deid.keys import keyring_path, node_keyring
from medspace.deid.policy import load_policy
from medspace.store import Store


def prepare_node(store: Path, sources: list[Path], linkage_key: bytes, *, policy: str = "research") -> int:
    """Ingest ``sources`` into a new store, install the linkage key and build the ``policy`` view; patients held."""
    with Store(store) as st:
        with st.batch(f"prepare {store.stem}") as batch:
            for path, kind in discover(sources):
                found = kind or detect(path)
                if found is not None:
                    ingest_file(path, SourceKind(found), batch)
        ring = node_keyring(st, keyring_path(store), create=True)
        ring.linkage = linkage_key
        ring.save()
        apply_policy(st, load_policy(policy), ring)
        row = st.con.execute("SELECT count(*) FROM main.patient").fetchone()
        return int(row[0]) if row else 0
