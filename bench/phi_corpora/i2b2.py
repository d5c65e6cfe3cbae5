"""The i2b2-format gold notes that ship with Philter (UCSF, BSD-3-Clause): philter-lite 0.6.0 (also in philter-ucsf).

Five synthetic-surrogate discharge/clinic notes (i2b2 2014 de-identification format: the note text in
``<TEXT>``, PHI tags with character offsets in ``<TAGS>``). Read from the installed ``philter_lite`` package
(the ``[bench]`` and ``[test]`` extras install it; it is never imported), else from its wheel in the cache.

Label mapping (i2b2 TYPE attribute -> scored type): PATIENT, DOCTOR, USERNAME -> NAME; DATE -> DATE, except a
year alone (Safe Harbor keeps years) -> neutral; PHONE, FAX -> PHONE; EMAIL, URL -> EMAIL, URL; IPADDR -> IP;
MEDICALRECORD, IDNUM, SSN, HEALTHPLAN, ACCOUNT, LICENSE, VEHICLE, DEVICE, BIOID -> ID; STREET, ZIP -> ADDRESS;
CITY, LOCATION-OTHER -> LOCATION; AGE -> AGE when over 89, else plain text (ages up to 89 are not PHI and
removing them costs readability); HOSPITAL, ORGANIZATION, DEPARTMENT, ROOM, STATE, COUNTRY, PROFESSION ->
neutral (Safe Harbor does not list them; removing them is neither a hit nor an error).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from phi_corpora import Doc, GoldSpan, age_type
from phi_corpora._dist import package_dir

PROJECT, VERSION = "philter-lite", "0.6.0"
LICENCE = "BSD-3-Clause"

MAP = {
    "PATIENT": "NAME", "DOCTOR": "NAME", "USERNAME": "NAME",
    "DATE": "DATE",
    "PHONE": "PHONE", "FAX": "PHONE", "EMAIL": "EMAIL", "URL": "URL", "IPADDR": "IP",
    "MEDICALRECORD": "ID", "IDNUM": "ID", "SSN": "ID", "HEALTHPLAN": "ID", "ACCOUNT": "ID", "LICENSE": "ID",
    "VEHICLE": "ID", "DEVICE": "ID", "BIOID": "ID",
    "STREET": "ADDRESS", "ZIP": "ADDRESS",
    "CITY": "LOCATION", "LOCATION-OTHER": "LOCATION",
    "HOSPITAL": "NEUTRAL", "ORGANIZATION": "NEUTRAL", "DEPARTMENT": "NEUTRAL", "ROOM": "NEUTRAL",
    "STATE": "NEUTRAL", "COUNTRY": "NEUTRAL", "PROFESSION": "NEUTRAL",
}
_YEAR = re.compile(r"'?\d{2}|\d{4}")


def _folder(download: bool) -> Path:
    return package_dir("philter_lite", PROJECT, VERSION, download) / "data" / "i2b2_xml"


def parse(xml: str, doc_id: str) -> Doc:
    """One i2b2 XML note as a document with scored spans; offsets are checked against the tag text."""
    root = ET.fromstring(xml)
    text = root.findtext("TEXT") or ""
    spans = []
    for tag in root.find("TAGS") or []:
        s, e, label = int(tag.get("start", "0")), int(tag.get("end", "0")), tag.get("TYPE", "")
        value = tag.get("text", "")
        if text[s:e] != value:
            raise ValueError(f"{doc_id}: tag {label} {value!r} does not match the text at {s}:{e}")
        kind = MAP.get(label)
        if kind is None:
            raise ValueError(f"{doc_id}: unmapped i2b2 label {label}")
        if kind == "DATE" and _YEAR.fullmatch(value.strip()):
            kind = "NEUTRAL"
        if label == "AGE":
            kind = age_type(value)
        if kind:
            spans.append(GoldSpan(s, e, kind, label))
    return Doc(f"i2b2:{doc_id}", text, "en", spans)


def load(download: bool = True) -> list[Doc]:
    """All five notes."""
    folder = _folder(download)
    return [parse(p.read_text(encoding="utf-8"), p.stem) for p in sorted(folder.glob("*.xml"))]
