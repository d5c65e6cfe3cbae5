"""Keys, pseudonyms, linkage IDs and date shifts."""

from __future__ import annotations

import json
import os
import shutil
import stat
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medspace.deid import keys as K
from medspace.deid.apply import apply_policy
from medspace.deid.errors import DeidKeyError
from medspace.deid.policy import load_policy
from medspace.store import Store


def test_pseudonyms_are_stable_keyed_and_domain_separated() -> None:
    k1, k2 = K.new_key(), K.new_key()
    ids = ["p1", "p2", None, "p1"]
    a = K.pseudonymise(k1, "patient", ids).to_pylist()
    assert a[0] == a[3] and a[0] != a[1] and a[2] is None
    assert len(a[0]) == 32 and all(c in "0123456789abcdef" for c in a[0])
    assert K.pseudonymise(k1, "patient", ids).to_pylist() == a
    assert K.pseudonymise(k2, "patient", ids).to_pylist()[0] != a[0]
    assert K.pseudonymise(k1, "encounter", ids).to_pylist()[0] != a[0]


def test_linkage_ids_agree_across_hospitals_and_formats() -> None:
    link = K.new_key()
    a = K.linkage_ids(link, ["11010519491231002X"]).to_pylist()[0]
    b = K.linkage_ids(link, ["110105 19491231 002x"]).to_pylist()[0]
    c = K.linkage_ids(link, ["110105-19491231-002X"]).to_pylist()[0]
    assert a == b == c
    # a node's own key gives another value: the linkage space is separate from the node's
    assert K.pseudonymise(link, "patient", ["11010519491231002X"]).to_pylist()[0] != a


@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=50), st.integers(1, 400))
def test_date_shifts_are_per_patient_bounded_and_never_zero(pids: list[str], max_days: int) -> None:
    key = b"k" * 32
    s = K.date_shifts(key, pids, max_days)
    assert all(1 <= abs(int(d)) <= max_days for d in s)
    by_pid: dict[str, int] = {}
    for p, d in zip(pids, s.tolist(), strict=True):
        assert by_pid.setdefault(p, d) == d


def test_date_shifts_spread_over_the_range() -> None:
    s = K.date_shifts(K.new_key(), [f"p{i}" for i in range(20_000)], 30)
    assert s.min() == -30 and s.max() == 30 and 0 not in set(s.tolist())
    assert abs(float(s.mean())) < 1.0


def test_keyring_file_is_private_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "node.keys.json"
    ring = K.load_keyring(path, create=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    first = ring.active
    again = K.load_keyring(path)
    assert again.active.key == first.key and again.active.version == 1
    new = again.rotate()
    again.save()
    third = K.load_keyring(path)
    assert third.active.version == 2 and third.active.key == new.key
    assert third.node_key(1).retired is not None
    assert third.destroy_retired() == 1
    with pytest.raises(DeidKeyError):
        third.node_key(1)
    assert "key=" not in repr(third.active) or first.key.hex() not in repr(third)


def test_linkage_key_file(tmp_path: Path) -> None:
    path = tmp_path / "space.linkage.json"
    fp = K.write_linkage_key(path)
    key = K.read_linkage_key(path)
    assert K.fingerprint(key) == fp
    with pytest.raises(DeidKeyError, match="refusing"):
        K.write_linkage_key(path)
    ring = K.load_keyring(tmp_path / "r.json", create=True)
    with pytest.raises(DeidKeyError, match="import-linkage"):
        ring.require_linkage()


def test_bad_keyring_files_give_clear_errors_without_key_material(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('{"format": "medspace-keyring/1", "node_keys": [{"version": 1, "key": "c2VjcmV0", "created": "x"}]}')
    p.chmod(0o600)
    with pytest.raises(DeidKeyError, match="node key 0 must be 32 bytes") as e:
        K.load_keyring(p)
    assert "c2VjcmV0" not in str(e.value)
    p.write_text("not json")
    with pytest.raises(DeidKeyError, match="JSON"):
        K.load_keyring(p)
    with pytest.raises(DeidKeyError, match="no keyring"):
        K.load_keyring(tmp_path / "missing.json")


# --- keyrings bound to their store -------------------------------------------------------------------------------


def _store(path: Path) -> Store:
    return Store(path, create=True)


def _keyed_view(st: Store, ring: K.Keyring | None) -> None:
    """Build the pipl view (pseudonyms under the node key) of a store, as `deid apply` would."""
    apply_policy(st, load_policy("pipl"), ring, as_of=date(2026, 1, 1), workers=1)


def test_a_new_keyring_is_bound_to_its_store_and_recorded_there(tmp_path: Path) -> None:
    with _store(tmp_path / "a.duckdb") as st:
        path = K.keyring_path(st.path)
        notes: list[str] = []
        ring = K.node_keyring(st, path, create=True, say=notes.append)
        assert ring.store_id == st.store_id and notes == [f"created keyring {path} for this store"]
        rec = K.store_record(st)
        assert rec.fingerprint == ring.fingerprint and rec.version == 1 and rec.path == str(path.resolve())
        meta = " ".join(v for (v,) in st.con.execute("SELECT value FROM _medspace_meta").fetchall())
        assert ring.active.key.hex() not in meta and K.fingerprint(ring.active.key) not in meta
        again = K.node_keyring(st, path)
        assert again.active.key == ring.active.key
    doc = json.loads(path.read_text())
    assert doc["store_id"] == ring.store_id and doc["keyring_id"] == ring.keyring_id


def test_a_keyring_is_refused_for_another_store_until_bound_on_purpose(tmp_path: Path) -> None:
    with _store(tmp_path / "a.duckdb") as a:
        ring = K.node_keyring(a, K.keyring_path(a.path), create=True)
        _keyed_view(a, ring)
        before = a.con.sql("SELECT id FROM deid_pipl.patient").fetchall()
    moved = tmp_path / "b.duckdb.keys.json"
    shutil.copy2(K.keyring_path(tmp_path / "a.duckdb"), moved)
    with _store(tmp_path / "b.duckdb") as b:
        with pytest.raises(DeidKeyError) as e:
            K.node_keyring(b, moved, create=True)
        msg = str(e.value)
        assert "belongs to another store" in msg and "\n" not in msg
        assert f"medspace deid keys bind --store {b.path}" in msg
        bound = K.bind_keyring(b, moved)
        assert bound.store_id == b.store_id and bound.active.key == ring.active.key
        assert K.node_keyring(b, moved).fingerprint == ring.fingerprint
        _keyed_view(b, bound)
        assert b.con.sql("SELECT id FROM deid_pipl.patient").fetchall() == before


def test_an_old_keyring_is_bound_on_first_use_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "a.duckdb.keys.json"
    legacy = K.load_keyring(path, create=True)
    doc = json.loads(path.read_text())
    del doc["keyring_id"], doc["store_id"]  # a keyring written before keyrings were bound
    path.write_text(json.dumps(doc))
    with _store(tmp_path / "a.duckdb") as st:
        notes: list[str] = []
        ring = K.node_keyring(st, path, say=notes.append)
        assert ring.active.key == legacy.active.key and ring.store_id == st.store_id
        assert len(notes) == 1 and "had no store identity: bound it to this store" in notes[0]
        assert K.store_record(st).fingerprint == ring.fingerprint
        K.node_keyring(st, path, say=notes.append)
        assert len(notes) == 1  # bound once
    assert json.loads(path.read_text())["store_id"] == ring.store_id


def test_an_old_keyring_is_refused_where_the_store_used_another(tmp_path: Path) -> None:
    with _store(tmp_path / "a.duckdb") as st:
        K.node_keyring(st, K.keyring_path(st.path), create=True)
        other = tmp_path / "old.keys.json"
        K.load_keyring(other, create=True)
        doc = json.loads(other.read_text())
        del doc["keyring_id"], doc["store_id"]
        other.write_text(json.dumps(doc))
        with pytest.raises(DeidKeyError, match="no store identity and this store was last used with another"):
            K.node_keyring(st, other)
        assert json.loads(other.read_text()).get("store_id") is None  # not bound by a refused use


def test_a_store_copied_without_its_keyring_gets_no_new_key(tmp_path: Path) -> None:
    with _store(tmp_path / "a.duckdb") as st:
        _keyed_view(st, K.node_keyring(st, K.keyring_path(st.path), create=True))
    copy = tmp_path / "moved" / "a.duckdb"
    copy.parent.mkdir()
    shutil.copy2(tmp_path / "a.duckdb", copy)
    with Store(copy) as st:
        for create in (True, False):
            with pytest.raises(DeidKeyError) as e:
                K.node_keyring(st, K.keyring_path(copy), create=create)
            msg = str(e.value)
            assert msg.startswith(f"keyring missing at {K.keyring_path(copy)}")
            assert f"(last used: {K.keyring_path(tmp_path / 'a.duckdb').resolve()})" in msg
            assert f"medspace deid keys init --store {copy} --force" in msg
        assert not K.keyring_path(copy).exists()
        with pytest.raises(DeidKeyError, match="--force"):
            K.init_keyring(st, K.keyring_path(copy))
        ring, kept = K.init_keyring(st, K.keyring_path(copy), force=True)  # new pseudonyms, on purpose
        assert kept is None and K.store_record(st).fingerprint == ring.fingerprint
        assert K.node_keyring(st, K.keyring_path(copy)).active.key == ring.active.key


def test_views_without_a_record_count_as_keyed_but_keyless_views_do_not(tmp_path: Path) -> None:
    with _store(tmp_path / "old.duckdb") as st:
        st.con.execute("CREATE SCHEMA deid_research")  # a view from before stores recorded their keyring
        assert K.store_record(st).used
        with pytest.raises(DeidKeyError, match="keyring missing"):
            K.node_keyring(st, tmp_path / "k.json", create=True)
    with _store(tmp_path / "sh.duckdb") as st:
        apply_policy(st, load_policy("safe-harbor"), None, as_of=date(2026, 1, 1), workers=1)
        assert not K.store_record(st).used  # random surrogates and years: no key was involved
        assert K.node_keyring(st, tmp_path / "sh.keys.json", create=True).store_id == st.store_id


def test_another_keyring_of_the_same_store_or_an_older_copy_is_refused(tmp_path: Path) -> None:
    with _store(tmp_path / "a.duckdb") as st:
        path = K.keyring_path(st.path)
        ring = K.node_keyring(st, path, create=True)
        old_copy = tmp_path / "backup.keys.json"
        shutil.copy2(path, old_copy)
        ring.rotate()
        ring.save()
        K.record_keyring(st, ring)
        with pytest.raises(DeidKeyError, match="version 1 but this store was last used with version 2"):
            K.node_keyring(st, old_copy)
        ring.linkage = K.new_key()
        ring.save()
        new, kept = K.init_keyring(st, path, force=True)
        assert kept is not None and kept.name.startswith(path.name + ".replaced-")
        assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600
        assert new.linkage == ring.linkage and new.active.key != ring.active.key  # the space's key is kept
        with pytest.raises(DeidKeyError, match="not the one this store was last used with"):
            K.node_keyring(st, kept)
        assert K.node_keyring(st, path).active.version == 1  # versions start again with the new keyring


def test_keys_init_refuses_an_existing_keyring_without_force(tmp_path: Path) -> None:
    with _store(tmp_path / "a.duckdb") as st:
        path = K.keyring_path(st.path)
        ring, _ = K.init_keyring(st, path)
        with pytest.raises(DeidKeyError, match=r"a keyring exists at .*--force"):
            K.init_keyring(st, path)
        assert K.load_keyring(path).active.key == ring.active.key


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o601])
def test_keyrings_readable_by_group_or_others_are_refused(tmp_path: Path, mode: int) -> None:
    with _store(tmp_path / "a.duckdb") as st:
        path = K.keyring_path(st.path)
        K.node_keyring(st, path, create=True)
        os.chmod(path, mode)
        with pytest.raises(DeidKeyError) as e:
            K.node_keyring(st, path)
        assert str(e.value) == f"keyring {path} is accessible by group or others; run `chmod 600 {path}`"
        os.chmod(path, 0o600)
        K.node_keyring(st, path)


def test_linkage_key_files_readable_by_others_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "space.linkage.json"
    K.write_linkage_key(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    os.chmod(path, 0o644)
    with pytest.raises(DeidKeyError, match=f"linkage key file {path} is accessible by group or others"):
        K.read_linkage_key(path)


def test_saving_over_a_stale_loose_temporary_file_stays_private(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    stale = tmp_path / "k.json.tmp"
    stale.write_text("left over")
    os.chmod(stale, 0o644)
    K.load_keyring(path, create=True)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_keyring_that_cannot_be_written_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(DeidKeyError, match=r"^cannot write .*file/k\.json: "):
        K.load_keyring(tmp_path / "file" / "k.json", create=True)


def test_forced_inits_keep_every_replaced_keyring_and_name_an_explicit_keys_file(tmp_path: Path) -> None:
    with _store(tmp_path / "a.duckdb") as st:
        path = tmp_path / "elsewhere" / "my keys.json"
        first, _ = K.init_keyring(st, path)
        second, kept1 = K.init_keyring(st, path, force=True)
        third, kept2 = K.init_keyring(st, path, force=True)
        assert K.load_keyring(path).active.key == third.active.key
        assert kept1 is not None and kept2 is not None and kept1 != kept2
        assert K.load_keyring(kept1).active.key == first.active.key
        assert K.load_keyring(kept2).active.key == second.active.key
        path.unlink()
        with pytest.raises(DeidKeyError) as e:
            K.node_keyring(st, path, create=True)
        assert f"medspace deid keys init --store {st.path} --keys '{path}' --force" in str(e.value)
