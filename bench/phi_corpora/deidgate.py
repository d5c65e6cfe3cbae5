"""deidgate 0.1.0 (MIT): its Safe Harbor seed set, ``deidgate/data/safeharbor_seed.jsonl``.

Fifteen short synthetic notes covering the 18 Safe Harbor categories plus adversarial cases (identifiers in
prose, dates in words, hyphenated names, reformatted numbers). Each record lists its PHI as values with a
category, without offsets: every occurrence of a value in the text is a gold span (longest values first, so a
value inside a longer one is not counted twice). Read from the installed package (``[bench]``/``[test]``).

Category mapping: name -> NAME; date -> DATE, except "<n>-year-old" -> AGE on the number (over 89; under 90
it would be plain text); phone, fax -> PHONE; email -> EMAIL; url -> URL; ip -> IP; ssn, mrn, account,
health_plan, license, vehicle, device, biometric, photo, other -> ID (Safe Harbor's numbers, codes and
"any other unique identifying number, characteristic, or code"); geo: a five-digit ZIP or a value starting
with a house number -> ADDRESS, any other (city, county) -> LOCATION.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from phi_corpora import Doc, GoldSpan, age_type
from phi_corpora._dist import package_dir

PROJECT, VERSION = "deidgate", "0.1.0"
LICENCE = "MIT"

MAP = {
    "name": "NAME", "date": "DATE", "phone": "PHONE", "fax": "PHONE", "email": "EMAIL", "url": "URL", "ip": "IP",
    "ssn": "ID", "mrn": "ID", "account": "ID", "health_plan": "ID", "license": "ID", "vehicle": "ID",
    "device": "ID", "biometric": "ID", "photo": "ID", "other": "ID", "geo": "LOCATION",
}
_AGE = re.compile(r"(\d+)-year-old")
_STREET_OR_ZIP = re.compile(r"\d{5}(?:-\d{4})?|\d+\s+\S.*")


def _file(download: bool) -> Path:
    return package_dir("deidgate", PROJECT, VERSION, download) / "data" / "safeharbor_seed.jsonl"


def parse(record: dict[str, object]) -> Doc:
    """One seed record as a document: each listed value found wherever it occurs in the text."""
    text = str(record["text"])
    taken = [False] * len(text)
    spans = []
    phi = record["phi"]
    assert isinstance(phi, list)
    for item in sorted(phi, key=lambda p: -len(p["value"])):
        value, cat = item["value"], item["category"]
        kind = MAP.get(cat)
        if kind is None:
            raise ValueError(f"{record['id']}: unmapped deidgate category {cat}")
        offset = 0
        if (m := _AGE.fullmatch(value)) and cat == "date":
            offset, value, kind = m.start(1), m.group(1), age_type(m.group(1))
        elif cat == "geo" and _STREET_OR_ZIP.fullmatch(value):
            kind = "ADDRESS"
        found = 0
        for m in re.finditer(re.escape(item["value"]), text):
            s = m.start() + offset
            e = s + len(value)
            found += 1
            if any(taken[s:e]):
                continue
            taken[s:e] = [True] * (e - s)
            if kind:
                spans.append(GoldSpan(s, e, kind, cat))
        if not found:
            raise ValueError(f"{record['id']}: value {item['value']!r} not in the text")
    return Doc(f"deidgate:{record['id']}", text, "en", sorted(spans))


def load(download: bool = True) -> list[Doc]:
    """All seed records."""
    lines = _file(download).read_text(encoding="utf-8").splitlines()
    return [parse(json.loads(x)) for x in lines if x.strip() and not x.startswith("//")]
