"""Code systems: canonical short names, the URIs and OIDs that name them, and format checks.

A full terminology server is out of scope for a node; what a connector can check offline is that a
code has the shape its system defines (and the check digit, where the system has one: LOINC's
mod-10, SNOMED CT's Verhoeff).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

# Short name -> URIs, OIDs and HL7 v2 coding-system names (table 0396) that mean it.
SYSTEMS: dict[str, tuple[str, ...]] = {
    "ICD-10": ("http://hl7.org/fhir/sid/icd-10", "urn:oid:2.16.840.1.113883.6.3", "I10", "ICD10",
               "ICD-10", "ICD10CN", "http://hl7.org/fhir/sid/icd-10-cn"),
    "ICD-10-CM": ("http://hl7.org/fhir/sid/icd-10-cm", "urn:oid:2.16.840.1.113883.6.90", "I10C",
                  "ICD10CM", "ICD-10-CM"),
    "ICD-10-PCS": ("http://www.cms.gov/Medicare/Coding/ICD10", "urn:oid:2.16.840.1.113883.6.4", "I10P",
                   "ICD-10-PCS"),
    "ICD-9-CM": ("http://hl7.org/fhir/sid/icd-9-cm", "urn:oid:2.16.840.1.113883.6.103", "I9C", "I9CP", "I9",
                 "ICD9", "ICD-9", "ICD9CM", "http://hl7.org/fhir/sid/icd-9", "urn:oid:2.16.840.1.113883.6.2"),
    "SNOMED": ("http://snomed.info/sct", "urn:oid:2.16.840.1.113883.6.96", "SCT", "SNM", "SNOMED",
               "SNOMEDCT", "SNOMED-CT"),
    "LOINC": ("http://loinc.org", "urn:oid:2.16.840.1.113883.6.1", "LN", "LOINC"),
    "ATC": ("http://www.whocc.no/atc", "urn:oid:2.16.840.1.113883.6.73", "WHOATC", "ATC"),
    "RxNorm": ("http://www.nlm.nih.gov/research/umls/rxnorm", "urn:oid:2.16.840.1.113883.6.88", "RXNORM",
               "RxNorm"),
    "CPT": ("http://www.ama-assn.org/go/cpt", "urn:oid:2.16.840.1.113883.6.12", "C4", "CPT"),
    "UNII": ("http://fdasis.nlm.nih.gov", "urn:oid:2.16.840.1.113883.4.9", "UNII"),
}

_LOOKUP: dict[str, str] = {}
for _name, _aliases in SYSTEMS.items():
    for _alias in (_name, *_aliases):
        _LOOKUP[_alias.lower()] = _name


def canonical_system(name_or_uri: str | None) -> str | None:
    """The short name of a code system given any of its URIs, OIDs or names; None if unknown."""
    if not name_or_uri:
        return None
    return _LOOKUP.get(name_or_uri.strip().rstrip("/").lower())


def system_uri(name: str) -> str:
    """The canonical FHIR URI of a code system's short name."""
    return SYSTEMS[name][0]


_ICD10 = re.compile(r"^[A-Z][0-9][0-9A-Z](\.?[0-9A-Z]{1,4})?$")
_ICD10PCS = re.compile(r"^[0-9A-HJ-NP-Z]{7}$")
_ICD9 = re.compile(r"^([0-9]{3}|V[0-9]{2}|E[0-9]{3})(\.[0-9]{1,2})?$|^[0-9]{2}(\.[0-9]{1,2})?$")
_ATC = re.compile(r"^[A-HJ-NP-SV][0-9]{2}([A-Z]([A-Z]([0-9]{2})?)?)?$")
_RXNORM = re.compile(r"^[0-9]{1,9}$")
_CPT = re.compile(r"^[0-9]{4}[0-9A-Z]$")
_UNII = re.compile(r"^[0-9A-Z]{10}$")
_LOINC = re.compile(r"^([0-9]{1,7})-([0-9])$")
_SNOMED = re.compile(r"^[1-9][0-9]{5,17}$")

# Verhoeff tables (SNOMED CT identifiers end in a Verhoeff check digit).
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5), (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7), (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3), (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4), (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7), (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def verhoeff_valid(digits: str) -> bool:
    """True if a digit string ends in a correct Verhoeff check digit."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _D[c][_P[i % 8][int(ch)]]
    return c == 0


def loinc_valid(code: str) -> bool:
    """True if a LOINC code has the NNNNN-C form and a correct mod-10 check digit."""
    m = _LOINC.match(code)
    if not m:
        return False
    body, check = m.group(1), int(m.group(2))
    # LOINC's check digit is the Luhn-style mod 10 over the body (LOINC Users' Guide, appendix).
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            d = d - 9 if d > 9 else d
        total += d
    return (10 - total % 10) % 10 == check


def _snomed_valid(code: str) -> bool:
    return bool(_SNOMED.match(code)) and verhoeff_valid(code)


_VALIDATORS: dict[str, Callable[[str], bool]] = {
    "ICD-10": lambda c: bool(_ICD10.match(c)),
    "ICD-10-CM": lambda c: bool(_ICD10.match(c)),
    "ICD-10-PCS": lambda c: bool(_ICD10PCS.match(c)),
    "ICD-9-CM": lambda c: bool(_ICD9.match(c)),
    "SNOMED": _snomed_valid,
    "LOINC": loinc_valid,
    "ATC": lambda c: bool(_ATC.match(c)),
    "RxNorm": lambda c: bool(_RXNORM.match(c)),
    "CPT": lambda c: bool(_CPT.match(c)),
    "UNII": lambda c: bool(_UNII.match(c)),
}


@lru_cache(maxsize=65536)
def code_valid(system: str, code: str) -> bool:
    """True if `code` has the form (and check digit) that code system `system` defines."""
    check = _VALIDATORS.get(system)
    return check is not None and check(code.strip())


def normalise_code(system: str, code: str) -> str:
    """The code as stored: trimmed, ICD codes upper-case with the dot after the category."""
    code = code.strip()
    if system in ("ICD-10", "ICD-10-CM"):
        code = code.upper().replace(".", "")
        return code if len(code) <= 3 else f"{code[:3]}.{code[3:]}"
    if system in ("ATC", "ICD-10-PCS", "CPT", "UNII"):
        return code.upper()
    return code
