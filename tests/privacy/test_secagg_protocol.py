"""Secure aggregation end to end, with real keys from a data space: the hub gets the sum and only the sum."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from secagg_space import NODES, Spaces, exchange_keys

from medspace.privacy.errors import ConfigError, DropoutError, MessageError, PhaseError, SecAggError
from medspace.privacy.secagg import (
    Encoding,
    EncryptedShare,
    KeyAdvert,
    MaskedInput,
    NodeKey,
    Reveal,
    RoundConfig,
    UnmaskRequest,
    default_threshold,
    new_round_id,
)
from medspace.privacy.secagg.local import run_round
from medspace.privacy.secagg.prg import PAIRWISE, add_pairwise_masks, agree, expand, new_x25519
from medspace.privacy.secagg.ring import ring_sum

LENGTH = 257


def _floats(seed: int, names: tuple[str, ...] = NODES) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)  # test data only; masks and keys never come from numpy
    return {n: rng.uniform(-100, 100, LENGTH) for n in names}


def test_integer_sum_is_exact(spaces: Spaces) -> None:
    config = RoundConfig("counts-1", NODES, LENGTH, encoding=Encoding.integers(bound=10**9))
    rng = np.random.default_rng(7)
    counts = {n: rng.integers(-(10**9), 10**9, LENGTH) for n in NODES}
    server, clients = spaces.round(config)
    report = run_round(server, clients, counts)
    assert report.total.dtype == np.int64
    assert np.array_equal(report.total, np.sum(list(counts.values()), axis=0))
    assert report.survivors == NODES


def test_float_sum_equals_plain_sum_to_the_fixed_point_precision(spaces: Spaces) -> None:
    enc = Encoding.floats(frac_bits=30, bound=100.0)
    config = RoundConfig("floats-1", NODES, LENGTH, encoding=enc)
    xs = _floats(1)
    report = run_round(*spaces.round(config), xs)
    plain = np.sum(list(xs.values()), axis=0)
    assert report.total.dtype == np.float64
    assert np.max(np.abs(report.total - plain)) <= len(NODES) * enc.precision / 2


def test_pairwise_masks_cancel() -> None:
    names = ("a", "b", "c", "d")
    private = {n: new_x25519() for n in names}
    public = {n: private[n].public_key().public_bytes_raw() for n in names}
    total = np.zeros(1000, dtype=np.uint64)
    for me in names:
        keys = {p: agree(private[me], public[p], PAIRWISE, "r", me, p) for p in names if p != me}
        y = np.zeros(1000, dtype=np.uint64)
        add_pairwise_masks(y, me, keys)
        assert np.count_nonzero(y) > 990  # each node's own masks are not zero
        total += y
    assert not total.any()


def test_masked_inputs_add_up_to_the_sum_once_the_self_masks_are_off(spaces: Spaces) -> None:
    enc = Encoding.integers(bound=1000)
    config = RoundConfig("cancel-1", NODES, LENGTH, encoding=enc)
    server, clients = spaces.round(config)
    rng = np.random.default_rng(3)
    xs = {n: rng.integers(-1000, 1000, LENGTH) for n in NODES}
    routed = exchange_keys(server, clients)
    masked = [clients[n].masked_input(xs[n], routed[n]) for n in NODES]
    # white-box: the self masks come from each client's seed; pairwise masks must cancel in the sum
    self_masks = ring_sum([expand(clients[n]._seed, LENGTH) for n in NODES])
    total = ring_sum([m.vector for m in masked]) - self_masks
    assert np.array_equal(enc.decode(total), np.sum(list(xs.values()), axis=0))


def test_one_masked_contribution_looks_uniform_on_the_ring(spaces: Spaces) -> None:
    length = 1 << 16
    config = RoundConfig("uniform-1", NODES, length, encoding=Encoding.floats(frac_bits=16, bound=10.0))
    server, clients = spaces.round(config)
    routed = exchange_keys(server, clients)
    inputs = {"h1": np.zeros(length), "h2": np.full(length, 7.5)}  # a constant: the worst case for a weak mask
    plain_codes = config.encoding.encode(inputs["h2"])
    for n, x in inputs.items():
        y = clients[n].masked_input(x, routed[n]).vector
        assert _looks_uniform(y)
    assert not _looks_uniform(plain_codes)  # the test has power: the unmasked codes fail it


def _looks_uniform(y: np.ndarray) -> bool:
    """Top byte chi-square (p > 1e-6) and each of the 64 bits set about half the time (within 6 sigma)."""
    top = (y >> np.uint64(56)).astype(np.int64)
    counts = np.bincount(top, minlength=256)
    if stats.chisquare(counts).pvalue < 1e-6:
        return False
    n = y.shape[0]
    ones = [int(np.count_nonzero((y >> np.uint64(b)) & np.uint64(1))) for b in range(64)]
    return all(abs(k - n / 2) < 6 * np.sqrt(n / 4) for k in ones)


@pytest.mark.parametrize("dropped", [(), ("h3",), ("h2", "h6")])
def test_dropouts_after_masking_still_give_the_survivors_sum(spaces: Spaces, dropped: tuple[str, ...]) -> None:
    config = RoundConfig(f"drop-{len(dropped)}", NODES, LENGTH, encoding=Encoding.integers(bound=10**6))
    assert config.threshold == 5 == default_threshold(7)
    rng = np.random.default_rng(11)
    xs = {n: rng.integers(-(10**6), 10**6, LENGTH) for n in NODES}
    report = run_round(*spaces.round(config), xs, drop_before_input=dropped)
    assert report.survivors == tuple(n for n in NODES if n not in dropped)
    assert np.array_equal(report.total, np.sum([xs[n] for n in report.survivors], axis=0))


def test_nodes_that_mask_but_do_not_reveal_are_still_counted(spaces: Spaces) -> None:
    config = RoundConfig("late-drop", NODES, LENGTH, encoding=Encoding.integers(bound=10**6))
    rng = np.random.default_rng(12)
    xs = {n: rng.integers(-(10**6), 10**6, LENGTH) for n in NODES}
    report = run_round(*spaces.round(config), xs, drop_before_input=("h1",), drop_before_reveal=("h7",))
    assert report.survivors == ("h2", "h3", "h4", "h5", "h6", "h7")
    assert np.array_equal(report.total, np.sum([xs[n] for n in report.survivors], axis=0))


def test_more_dropouts_than_a_third_fail_honestly(spaces: Spaces) -> None:
    config = RoundConfig("drop-3", NODES, LENGTH, encoding=Encoding.integers(bound=10**6))
    xs = {n: np.ones(LENGTH, dtype=np.int64) for n in NODES}
    with pytest.raises(DropoutError, match="masked inputs: 4 of 7 contributions arrived, 5 needed") as e:
        run_round(*spaces.round(config), xs, drop_before_input=("h1", "h4", "h5"))
    assert (e.value.arrived, e.value.total, e.value.needed) == (4, 7, 5)
    config = RoundConfig("drop-late", NODES, LENGTH, encoding=Encoding.integers(bound=10**6))
    with pytest.raises(DropoutError, match="reveals: 4 of 5 contributions arrived, 5 needed"):
        run_round(*spaces.round(config), xs, drop_before_input=("h1", "h4"), drop_before_reveal=("h7",))


def test_too_few_adverts_fail_honestly(spaces: Spaces) -> None:
    config = RoundConfig("few-adverts", NODES, LENGTH)
    server, clients = spaces.round(config)
    for n in NODES[:4]:
        server.receive_advert(clients[n].advertise())
    with pytest.raises(DropoutError, match="key adverts: 4 of 7 contributions arrived, 5 needed"):
        server.close_adverts()


def test_a_configurable_threshold_tolerates_more_dropouts(spaces: Spaces) -> None:
    config = RoundConfig("t4", NODES, LENGTH, threshold=4, encoding=Encoding.integers(bound=10))
    xs = {n: np.full(LENGTH, i, dtype=np.int64) for i, n in enumerate(NODES)}
    report = run_round(*spaces.round(config), xs, drop_before_input=("h1", "h2", "h3"))
    assert report.total.tolist() == [3 + 4 + 5 + 6] * LENGTH
    with pytest.raises(ConfigError, match=r"threshold must be in 4\.\.7"):
        RoundConfig("t3", NODES, LENGTH, threshold=3)


def test_every_message_survives_its_wire_form(spaces: Spaces) -> None:
    config = RoundConfig("wire-1", NODES[:3], 5, encoding=Encoding.integers(bound=10))
    _, clients = spaces.round(config)
    adverts = [clients[n].advertise() for n in config.participants]
    assert [KeyAdvert.from_bytes(a.to_bytes()) for a in adverts] == adverts
    shares = clients["h1"].share(adverts)
    assert [EncryptedShare.from_bytes(s.to_bytes()) for s in shares] == shares
    request = UnmaskRequest("wire-1", ("h1", "h2"), ("h3",))
    assert UnmaskRequest.from_bytes(request.to_bytes()) == request
    reveal = Reveal("wire-1", "h1", {"h1": b"a" * 32, "h2": b"b" * 32}, {"h3": b"c" * 32}, b"sig")
    assert Reveal.from_bytes(reveal.to_bytes()) == reveal
    masked = MaskedInput("wire-1", "h1", np.arange(5, dtype=np.uint64), b"sig")
    back = MaskedInput.from_bytes(masked.to_bytes())
    assert np.array_equal(back.vector, masked.vector) and back.signature == b"sig"
    # the wire form of a masked input is the vector plus a few dozen bytes
    assert len(masked.to_bytes()) - 8 * 5 < 64


def test_steps_run_once_and_in_order(spaces: Spaces) -> None:
    config = RoundConfig("order-1", NODES, LENGTH)
    server, clients = spaces.round(config)
    with pytest.raises(PhaseError, match="advertise, share, masked_input, reveal"):
        clients["h1"].share([])
    clients["h1"].advertise()
    with pytest.raises(PhaseError):
        clients["h1"].advertise()
    with pytest.raises(PhaseError, match="during the key adverts phase"):
        server.route_shares()


def test_malformed_wire_forms_are_refused(spaces: Spaces) -> None:
    config = RoundConfig("wire-2", NODES[:3], 5)
    _, clients = spaces.round(config)
    data = clients["h1"].advertise().to_bytes()
    with pytest.raises(MessageError, match="truncated"):
        KeyAdvert.from_bytes(data[:-3])
    with pytest.raises(MessageError, match="bad magic or kind"):
        MaskedInput.from_bytes(data)
    with pytest.raises(MessageError, match="bad magic or kind"):
        KeyAdvert.from_bytes(b"XXXX" + data[4:])
    odd = MaskedInput("wire-2", "h1", np.arange(2, dtype=np.uint64), b"s").to_bytes()
    with pytest.raises(MessageError):
        MaskedInput.from_bytes(odd[:-1])
    with pytest.raises(MessageError, match="a mask key must be 32 bytes"):
        KeyAdvert.from_bytes(KeyAdvert("wire-2", "h1", b"k", b"k" * 32, b"c" * 32, b"", b"").to_bytes())


def test_a_node_key_readable_by_others_is_refused(spaces: Spaces, tmp_path: Path) -> None:
    participant = spaces.space.participant("h1")
    loose = tmp_path / "key.pem"
    loose.write_bytes(participant.key.read_bytes())
    loose.chmod(0o644)
    with pytest.raises(SecAggError):
        NodeKey.load(loose, participant.cert)
    assert "PRIVATE" not in repr(NodeKey.load(participant.key, participant.cert))


def test_round_ids_are_fresh() -> None:
    ids = {new_round_id() for _ in range(100)}
    assert len(ids) == 100
    assert RoundConfig(ids.pop(), NODES, 3).threshold == 5
