"""Span-level scoring of a PHI detector against labelled text, the way a Safe Harbor reviewer counts.

``evaluate(texts, gold, predicted)`` returns an `Evaluation` (per PHI type and overall; evaluations of two
corpora add up with ``+``). All counting is over *non-space* characters, so that a detector is neither
rewarded nor punished for where a span's edges fall on white space.

* **Recall** (per gold type): a gold span counts as *removed* when at least `RECALL_COVER` (90%) of its
  non-space characters are covered by predicted spans of any type (a name removed as ``[ID]`` is still
  gone: what matters for disclosure is that the characters left the note).
* **Precision** (per predicted type and overall): a predicted span is *correct* when at least
  `PRECISION_COVER` (50%) of its non-space characters lie in gold PHI spans of any type. A prediction that
  is not correct but lies mostly (50%) in PHI or *neutral* gold spans together is left out of precision:
  neutral spans are labelled text that Safe Harbor does not require removing (hospital, organisation,
  profession, state, country, ages up to 89, years alone...), so removing them is neither a hit nor an
  error. Every other prediction is a false positive.
* **Over-scrubbing**: the share of non-space characters outside every gold span (PHI or neutral) that
  predictions cover.

A corpus that labels only some types (a newswire NER set labels persons but not dates) passes ``judged``, the
types it labels: predictions of other types still count toward recall (they do remove characters) but are
left out of precision and over-scrubbing, since the corpus cannot tell whether they are right.

Gold and predicted spans are ``(start, end, type)`` triples ([start, end) in code points, as
`medspace.deid.text.Span`); gold type `NEUTRAL` marks a neutral span. ``MRN`` predictions count as ``ID``
(the issue's table scores medical record numbers as identifiers). `misses` lists the gold spans a detector
did not remove, for error analysis.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

SCORED_TYPES: tuple[str, ...] = ("NAME", "DATE", "ID", "PHONE", "ADDRESS", "LOCATION", "EMAIL", "URL", "IP", "AGE")
NEUTRAL = "NEUTRAL"
RECALL_COVER = 0.9
PRECISION_COVER = 0.5
TYPE_ALIASES: dict[str, str] = {"MRN": "ID"}

_SPACE = re.compile(r"\s+")

SpanLike = tuple[int, int, str]


def canonical_type(phi_type: str) -> str:
    """The scored type for a detector's or a source's type name (MRN counts as ID)."""
    return TYPE_ALIASES.get(phi_type, phi_type)


@dataclass
class Counts:
    """Span counts for one PHI type."""

    gold: int = 0  # gold spans of this type
    removed: int = 0  # of which at least RECALL_COVER of the non-space characters are covered
    predicted: int = 0  # predicted spans of this type that are scored (not left out as neutral)
    correct: int = 0  # of which at least PRECISION_COVER lies in gold PHI

    @property
    def recall(self) -> float:
        """Removed gold spans over gold spans (1.0 when there are none)."""
        return self.removed / self.gold if self.gold else 1.0

    @property
    def precision(self) -> float:
        """Correct predictions over scored predictions (1.0 when there are none)."""
        return self.correct / self.predicted if self.predicted else 1.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.gold + other.gold, self.removed + other.removed, self.predicted + other.predicted,
                      self.correct + other.correct)


@dataclass
class Evaluation:
    """Per-type counts, the overall counts and the over-scrubbing tally of one or more corpora."""

    types: dict[str, Counts] = field(default_factory=dict)
    other_chars: int = 0  # non-space characters outside every gold span
    other_covered: int = 0  # of which predictions cover this many
    neutral_predictions: int = 0  # predictions left out of precision (mostly in neutral text)
    docs: int = 0

    def counts(self, phi_type: str) -> Counts:
        """The counts of one type (zeros when the type never occurred)."""
        return self.types.get(phi_type, Counts())

    @property
    def overall(self) -> Counts:
        """All types together."""
        total = Counts()
        for c in self.types.values():
            total = total + c
        return total

    @property
    def over_scrubbing(self) -> float:
        """Share of non-PHI non-space characters covered by predictions."""
        return self.other_covered / self.other_chars if self.other_chars else 0.0

    def __add__(self, other: Evaluation) -> Evaluation:
        keys = list(dict.fromkeys([*self.types, *other.types]))
        return Evaluation({k: self.counts(k) + other.counts(k) for k in keys}, self.other_chars + other.other_chars,
                          self.other_covered + other.other_covered,
                          self.neutral_predictions + other.neutral_predictions, self.docs + other.docs)


def _nonspace(text: str) -> np.ndarray:
    mask = np.ones(len(text), dtype=bool)
    for m in _SPACE.finditer(text):
        mask[m.start():m.end()] = False
    return mask


def _paint(n: int, spans: Iterable[SpanLike]) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    for s, e, _ in spans:
        mask[max(s, 0):max(min(e, n), 0)] = True
    return mask


def _share(mask: np.ndarray, nonspace: np.ndarray, s: int, e: int) -> float | None:
    """Share of the non-space characters of [s, e) set in mask; None when the span has none."""
    ns = nonspace[s:e]
    total = int(ns.sum())
    if total == 0:
        return None
    return int((mask[s:e] & ns).sum()) / total


def evaluate_one(text: str, gold: Sequence[SpanLike], predicted: Sequence[SpanLike],
                 judged: Collection[str] | None = None) -> Evaluation:
    """Score one document's predictions against its gold spans (precision only for `judged` types, if given)."""
    n = len(text)
    nonspace = _nonspace(text)
    phi = [g for g in gold if g[2] != NEUTRAL]
    pred_mask = _paint(n, predicted)
    phi_mask = _paint(n, phi)
    any_gold = phi_mask | _paint(n, (g for g in gold if g[2] == NEUTRAL))
    ev = Evaluation(docs=1)
    for s, e, t in phi:
        share = _share(pred_mask, nonspace, s, e)
        if share is None:
            continue  # a span of white space only carries nothing to remove
        c = ev.types.setdefault(canonical_type(t), Counts())
        c.gold += 1
        c.removed += share >= RECALL_COVER
    if judged is not None:
        predicted = [p for p in predicted if canonical_type(p[2]) in judged]
        pred_mask = _paint(n, predicted)
    for s, e, t in predicted:
        share = _share(phi_mask, nonspace, s, e)
        if share is None:
            continue
        c = ev.types.setdefault(canonical_type(t), Counts())
        if share >= PRECISION_COVER:
            c.predicted += 1
            c.correct += 1
        elif (_share(any_gold, nonspace, s, e) or 0.0) >= PRECISION_COVER:
            ev.neutral_predictions += 1
        else:
            c.predicted += 1
    other = nonspace & ~any_gold
    ev.other_chars = int(other.sum())
    ev.other_covered = int((other & pred_mask).sum())
    return ev


def evaluate(texts: Sequence[str], gold: Sequence[Sequence[SpanLike]], predicted: Sequence[Sequence[SpanLike]],
             judged: Collection[str] | None = None) -> Evaluation:
    """Score many documents: per-type recall and precision, overall precision and over-scrubbing."""
    total = Evaluation()
    for text, g, p in zip(texts, gold, predicted, strict=True):
        total = total + evaluate_one(text, g, p, judged)
    return total


def misses(text: str, gold: Sequence[SpanLike], predicted: Sequence[SpanLike]) -> list[SpanLike]:
    """The gold PHI spans of one document that the predictions did not remove (under RECALL_COVER)."""
    nonspace = _nonspace(text)
    pred_mask = _paint(len(text), predicted)
    out = []
    for s, e, t in gold:
        if t == NEUTRAL:
            continue
        share = _share(pred_mask, nonspace, s, e)
        if share is not None and share < RECALL_COVER:
            out.append((s, e, canonical_type(t)))
    return out
