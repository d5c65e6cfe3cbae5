"""Free-text scrubber benchmark: per-type precision/recall on the synthetic labelled notes, and throughput.

    .venv/bin/python bench/deid_text.py [--patients 5000] [--hospitals 2] [--seed 7] [--runs 3]

Hospitals 1 and 2 of `medspace.synth` are one Chinese (zh notes) and one US (en notes) hospital. The notes,
their labelled PHI spans and each note's known identifiers (the patient's own fields and the note's author,
as the policy engine passes them) are built in memory with the generator's own functions, so nothing is
written to disk. Scores: "overlap" counts a gold span as found when a prediction of the same type overlaps
it; "exact" needs the same start, end and type; "removed" counts a gold span touched by any placeholder.
Throughput is UTF-8 megabytes of note text through `scrub_batch` on one core, per second of CPU time (the
process's own, so other load on the machine counts less) and of wall clock, best of runs; "patterns + known"
passes each note's identifiers as (value, PHI type) pairs, the way the policy engine does (`apply._scrub_notes`);
"+ known, bare" passes the same values as bare strings, whose types are guessed from their shape.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from medspace.deid import text as T
from medspace.deid.apply import PATIENT_KNOWN
from medspace.synth.clinical import simulate
from medspace.synth.generate import patient_frame, population
from medspace.synth.notes import doctor_names, write_notes
from medspace.synth.profiles import profile

KNOWN_FIELDS = ("family_name", "given_name", "national_id", "mrn", "phone", "email", "address_line", "insurance_id",
                "passport_id")


@dataclass
class Corpus:
    """Labelled notes with each note's known identifiers."""

    texts: list[str]
    langs: list[str]
    gold: list[list[T.Span]]
    known: list[list[tuple[str, str]]]


def hospital_notes(index: int, hospitals: int, patients: int, seed: int) -> Corpus:
    """The notes of synthetic hospital `index` exactly as `generate_hospital` writes them, in memory."""
    prof = profile(index)
    rng = np.random.default_rng([seed, index])
    people = population(rng, prof, hospitals, patients, seed)
    clinical = simulate(rng, prof, people)
    frames: dict[str, Any] = dict(clinical.frames)
    pat = patient_frame(rng, prof, people, clinical.deceased)
    doctors = doctor_names(rng, prof.flavour)
    notes = write_notes(rng, prof.flavour, prof.id, pat, frames["encounter"], frames["condition"],
                        frames["medication"], doctors, single_line=prof.slot.fmt == "csv")
    cols = {f: pat[f].tolist() for f in KNOWN_FIELDS}
    known = []
    for p, author in zip(notes["_p"].tolist(), notes["author"].tolist(), strict=True):
        items = [(cols[f][p], f) for f in KNOWN_FIELDS if cols[f][p]]
        items.append((author, "author"))
        known.append(items)
    gold = [[T.Span(s, e, k) for s, e, k in spans] for spans in notes["_spans"].tolist()]
    return Corpus(notes["text"].tolist(), notes["language"].tolist(), gold, known)


def corpus(hospitals: int, patients: int, seed: int) -> Corpus:
    """All hospitals' notes in one corpus."""
    parts = [hospital_notes(i, hospitals, patients, seed) for i in range(1, hospitals + 1)]
    return Corpus([t for c in parts for t in c.texts], [x for c in parts for x in c.langs],
                  [g for c in parts for g in c.gold], [k for c in parts for k in c.known])


def engine_known(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A note's known identifiers as the policy engine passes them: (value, PHI type)."""
    return [(v, "NAME" if f == "author" else PATIENT_KNOWN[f]) for v, f in items]


def throughput(c: Corpus, known: str | None, runs: int, lang: str | None = None) -> tuple[float, float]:
    """MB/s of UTF-8 note text through scrub_batch, per CPU second and per wall-clock second (best of runs);
    known: None, "typed" ((value, type) pairs, as the policy engine passes them) or "bare" (values only)."""
    idx = [i for i, x in enumerate(c.langs) if lang is None or x == lang]
    texts = [c.texts[i] for i in idx]
    langs = [c.langs[i] for i in idx]
    kn: list[Any] | None = None
    if known == "typed":
        kn = [engine_known(c.known[i]) for i in idx]
    elif known == "bare":
        kn = [[v for v, _ in c.known[i]] for i in idx]
    size = sum(len(t.encode()) for t in texts)
    cpu = wall = float("inf")
    for _ in range(runs):
        t0, w0 = time.process_time(), time.perf_counter()
        T.scrub_batch(texts, langs, kn)
        cpu, wall = min(cpu, time.process_time() - t0), min(wall, time.perf_counter() - w0)
    return size / cpu / 1e6, size / wall / 1e6


def table(c: Corpus, known: bool, title: str) -> dict[str, T.TypeScore]:
    """Print the per-type table for one configuration and return the scores."""
    pred = T.detect_batch(c.texts, c.langs, [engine_known(k) for k in c.known] if known else None)
    rows = []
    for lang in ("zh", "en", None):
        idx = [i for i, x in enumerate(c.langs) if lang is None or x == lang]
        rows.append((lang or "all", T.score([c.gold[i] for i in idx], [pred[i] for i in idx])))
    print(f"\n{title}")
    print(f"{'type':8s} {'lang':4s} {'gold':>6s} {'pred':>6s} {'P':>6s} {'R':>6s} {'P_ex':>6s} {'R_ex':>6s} "
          f"{'removed':>7s}")
    for t in T.PHI_TYPES:
        for lang, sc in rows:
            s = sc[t]
            if s.gold == 0 and s.predicted == 0:
                continue
            print(f"{t:8s} {lang:4s} {s.gold:6d} {s.predicted:6d} {s.precision:6.3f} {s.recall:6.3f} "
                  f"{s.precision_exact:6.3f} {s.recall_exact:6.3f} {s.removal:7.3f}")
    return rows[-1][1]


def main() -> None:
    """Generate the corpus, print the tables."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=5000)
    ap.add_argument("--hospitals", type=int, default=2)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    t0 = time.perf_counter()
    c = corpus(args.hospitals, args.patients, args.seed)
    size = sum(len(t.encode()) for t in c.texts)
    print(f"corpus: {len(c.texts)} notes ({sum(x == 'zh' for x in c.langs)} zh, {sum(x == 'en' for x in c.langs)} en),"
          f" {size / 1e6:.2f} MB UTF-8, {sum(len(g) for g in c.gold)} labelled spans, built in "
          f"{time.perf_counter() - t0:.1f} s")
    without = table(c, False, "patterns and lexicons only")
    with_known = table(c, True, "patterns and lexicons + record-aware (known identifiers)")
    print("\ndirect identifiers, recall (overlap): "
          + ", ".join(f"{t} {without[t].recall:.3f}/{with_known[t].recall:.3f}" for t in T.DIRECT_TYPES
                      if without[t].gold) + "  (patterns / + known)")
    print("\nthroughput of scrub_batch, MB/s of UTF-8 note text on one core: CPU time (wall clock), best of runs")
    print(f"{'':18s} {'all':>15s} {'zh':>15s} {'en':>15s}")
    for known, label in ((None, "patterns only"), ("typed", "patterns + known"), ("bare", "+ known, bare")):
        cells = [throughput(c, known, args.runs, lang) for lang in (None, "zh", "en")]
        print(f"{label:18s} " + " ".join(f"{cpu:6.2f} ({wall:5.2f})" for cpu, wall in cells))

if __name__ == "__main__":
    main()
