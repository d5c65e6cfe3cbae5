"""Free-text scrubber speed, step by step, and a span dump to prove that a speed change changes no span.

    .venv/bin/python bench/deid_text_profile.py [--corpus presidio,synth] [--runs 5]
    .venv/bin/python bench/deid_text_profile.py --dump spans.txt [--part all]      # before a change
    .venv/bin/python bench/deid_text_profile.py --dump spans2.txt [--part all]     # after it; then cmp the files

Steps (dev part, per corpus and language; CPU milliseconds of one core, best of ``--runs``): the steps of
`medspace.deid.text._detect_many` one by one over all the notes (the main pattern, lower-case cues,
`text_en.scan` and its `_names` part, the Chinese pass, e-mails and URLs, merging), then what `scrub_batch`
adds (placeholders, the Arrow array), and the whole `scrub_batch`. The total is what bench/deid_text.py
reports as throughput.

``--dump`` writes the spans of `detect_batch` for every document of the chosen corpora and parts, plain, with
``uncertain_names`` and (synth) record-aware, one line per document with no text, and prints a SHA-256 per
corpus and part. Comparing dumps of the held-out part is allowed (nobody reads the text). The English name
pass visits a note's capitalised words in set order, and which word of a run is visited first can decide the
run (a word inside a hyphenated one); set order follows Python's string hashes, so the dump runs with a fixed
PYTHONHASHSEED (the script restarts itself with 0 when it is not set).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence

import pyarrow as pa

from medspace.deid import text as T
from medspace.deid import text_en, text_zh
from phi_corpora import PARTS, SOURCES, load

DEFAULT = "i2b2,deidgate,presidio,msra,pd98,synth"


def _best(f: Callable[[], object], runs: int) -> float:
    """CPU milliseconds of f, best of runs."""
    best = float("inf")
    for _ in range(runs):
        t0 = time.process_time()
        f()
        best = min(best, time.process_time() - t0)
    return best * 1000


def steps(texts: list[str], lang: str, runs: int) -> list[tuple[str, float]]:
    """CPU milliseconds of each step of scrub_batch over texts (all in one language)."""
    ft = [text_zh.fold_width(t) for t in texts]
    raws: list[list[tuple[int, int, int, str]]] = [[] for _ in ft]
    rx, table = (T._EN_RX, T._EN_TABLE) if lang == "en" else (T._ZH_RX, T._ZH_TABLE)
    for t, r in zip(ft, raws, strict=True):
        T._scan(rx, table, t, r)
        if lang == "en":
            T._scan_lower(t, r)
    out: list[tuple[str, float]] = [
        ("fold width", _best(lambda: [text_zh.fold_width(t) for t in texts], runs)),
        ("main pattern", _best(lambda: [T._scan(rx, table, t, []) for t in ft], runs)),
    ]
    if lang == "en":
        out += [("lower-case cues", _best(lambda: [T._scan_lower(t, []) for t in ft], runs)),
                ("text_en.scan", _best(lambda: [text_en.scan(t, list(r)) for t, r in zip(ft, raws, strict=True)],
                                       runs)),
                ("  of which _names", _best(lambda: [text_en._names(t, list(r), False)
                                                     for t, r in zip(ft, raws, strict=True)], runs))]
    else:
        out.append(("text_zh.detect_zh", _best(lambda: [text_zh.detect_zh(t, list(r), False)
                                                         for t, r in zip(ft, raws, strict=True)], runs)))
    full = T._detect_many(texts, [lang] * len(texts), [None] * len(texts))
    out += [("e-mails, URLs", _best(lambda: [T._scan_web(t, []) for t in ft], runs)),
            ("merge", _best(lambda: [T._resolve(list(r), t) for t, r in zip(ft, raws, strict=True)], runs)),
            ("placeholders", _best(lambda: [T.replace_spans(t, s) for t, s in zip(texts, full, strict=True)], runs))]
    scrubbed = [T.replace_spans(t, s) for t, s in zip(texts, full, strict=True)]
    out += [("arrow array", _best(lambda: pa.array(scrubbed, pa.string()), runs)),
            ("scrub_batch (all)", _best(lambda: T.scrub_batch(texts, lang), runs))]
    return out


def dump(path: str, names: Sequence[str], parts: Sequence[str]) -> None:
    """Write the spans of every document (plain, uncertain_names, record-aware) and print a hash per corpus."""
    with open(path, "w", encoding="utf-8") as f:
        for name in names:
            for part in parts:
                docs = load(name, part)
                texts = [d.text for d in docs]
                langs = [d.lang for d in docs]
                h = hashlib.sha256()
                for uncertain in (False, True):
                    for known in (False, True) if any(d.known for d in docs) else (False,):
                        kn = [d.known for d in docs] if known else None
                        found = T.detect_batch(texts, langs, kn, uncertain_names=uncertain)
                        for d, spans in zip(docs, found, strict=True):
                            line = f"{name} {part} u{int(uncertain)} k{int(known)} {d.id} " + " ".join(
                                f"{s}-{e}:{t}" for s, e, t in spans) + "\n"
                            f.write(line)
                            h.update(line.encode())
                print(f"{name:9s} {part:8s} {len(docs):6d} docs  sha256 {h.hexdigest()[:16]}", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the steps' times, or write a span dump."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=DEFAULT, help=f"comma-separated, of: {', '.join(SOURCES)}")
    ap.add_argument("--runs", type=int, default=5, help="best of (steps)")
    ap.add_argument("--dump", metavar="FILE", help="write the spans of every document instead of timing")
    ap.add_argument("--part", default="dev", choices=PARTS, help="parts to dump (timing uses dev only)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.corpus.split(",") if n.strip()]
    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        sys.exit(f"unknown corpus {', '.join(unknown)}; known: {', '.join(SOURCES)}")
    if args.dump:
        if os.environ.get("PYTHONHASHSEED") is None:
            os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
        parts = ["dev", "heldout"] if args.part == "all" else [args.part]
        dump(args.dump, names, parts)
        return
    T.scrub_batch(["Dr. Warm Up, 2020-01-01", "患者张三，2020年1月1日"], ["en", "zh"])  # compile the patterns first
    for name in names:
        docs = load(name, "dev")
        for lang in sorted({d.lang for d in docs}):
            texts = [d.text for d in docs if d.lang == lang]
            size = sum(len(t.encode()) for t in texts)
            print(f"\n{name} [{lang}] dev: {len(texts)} docs, {size / 1e6:.3f} MB, "
                  f"{size / max(1, len(texts)):.0f} bytes a note; CPU ms, best of {args.runs}")
            for step, ms in steps(texts, lang, args.runs):
                rate = f"{size / ms / 1e3:7.2f} MB/s" if ms > 0 else ""
                print(f"  {step:22s} {ms:8.2f}  {rate}")


if __name__ == "__main__":
    main()
