"""Every connector into a real store, on synthetic hospitals: complete, idempotent, all-or-nothing."""

from pathlib import Path

import pytest

from medspace.connect.sources import discover, ingest_file
from medspace.store import Store, node_stats
from medspace.synth import Manifest, generate


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    root = tmp_path_factory.mktemp("space")
    return root, generate(root, hospitals=5, patients=120, seed=5)


def _ingest(store: Store, hospital_dir: Path) -> dict:
    with store.batch(hospital_dir.name) as batch:
        for path, kind in discover([hospital_dir]):
            if kind is not None:
                ingest_file(path, kind, batch)
    return batch.report.to_dict()


def test_each_hospital_ingests_completely_and_idempotently(space: tuple[Path, Manifest], tmp_path: Path) -> None:
    root, manifest = space
    for h in manifest.hospitals:
        with Store(tmp_path / f"{h.id}.duckdb") as st:
            first = _ingest(st, root / h.dir)
            assert first["quarantined"] == {}, (h.id, h.format)
            held = {t: info["rows"] for t, info in node_stats(st)["tables"].items()}
            assert held == h.rows, (h.id, h.format)
            before = {t: st.arrow(f"SELECT * FROM {t} ORDER BY id") for t in held}
            again = _ingest(st, root / h.dir)
            assert all(c["new"] == 0 and c["updated"] == 0 for c in again["tables"].values()), h.format
            assert {t: st.arrow(f"SELECT * FROM {t} ORDER BY id") for t in held} == before


def test_a_failure_mid_ingest_leaves_the_store_as_it_was(space: tuple[Path, Manifest], tmp_path: Path) -> None:
    root, manifest = space
    h = manifest.hospitals[1]
    with Store(tmp_path / "n.duckdb") as st:
        sources = [(p, k) for p, k in discover([root / h.dir]) if k is not None]
        with pytest.raises(OSError), st.batch("interrupted") as batch:
            ingest_file(*sources[0], batch)
            raise OSError("disk went away")
        assert node_stats(st)["rows_by_level"] == {"L1": 0, "L2": 0, "L3": 0}
        assert node_stats(st)["batches"] == 0
