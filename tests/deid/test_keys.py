"""Keys, pseudonyms, linkage IDs and date shifts."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medspace.deid import keys as K
from medspace.deid.errors import DeidKeyError


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
    with pytest.raises(DeidKeyError) as e:
        K.load_keyring(p)
    assert "c2VjcmV0" not in str(e.value)
    p.write_text("not json")
    with pytest.raises(DeidKeyError, match="JSON"):
        K.load_keyring(p)
    with pytest.raises(DeidKeyError, match="no keyring"):
        K.load_keyring(tmp_path / "missing.json")
