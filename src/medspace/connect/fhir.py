"""FHIR R4 connector: Bundles, single resources and bulk-export NDJSON into the clinical model.

Every input unit (a bundle entry, an NDJSON line, a lone resource) ends as rows, as a skip (a valid
resource type the model does not hold) or in quarantine with a reason. Mapping reads the JSON
directly, checking types as it goes; the pydantic R4B models are only used in strict mode, because
they cost two orders of magnitude more time per resource.

What is kept and what is quarantined (the node keeps what senders send):
- quarantined: a unit that does not parse, whose structure is wrong (an object where an array or a
  string belongs, and the like), whose resourceType is not an R4 type, that cannot be tied to a patient,
  or that lacks what the model requires (a coded concept with neither a code nor a text, a note without
  readable text, an identity), or a value longer than the string limits;
- stored with a data-quality finding: a coded concept in a local or unknown system, with a code failing
  its check, or as text only (see `pick_concept`); a malformed or impossible date or time, a malformed
  number, a gender outside the FHIR value set, an optional reference (encounter) that cannot be resolved:
  those fields are stored as null.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import gzip
import hashlib
import importlib.util
import json
import math
import os
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from datetime import date, datetime
from functools import cache, partial
from pathlib import Path
from typing import IO, Any, cast

import orjson

from medspace.connect.base import Concept, Finding, Quarantined, Sink, complete, pick_concept
from medspace.connect.errors import FindingKind, MappingError, Reason, SourceError
from medspace.model import canonical_system
from medspace.model.errors import ValueFormatError
from medspace.model.extensions import TREATMENT_RESPONSE
from medspace.model.values import parse_fhir_date, parse_fhir_datetime

__all__ = [
    "MAPPED_TYPES",
    "ingest_fhir_bundle",
    "ingest_fhir_bytes",
    "ingest_fhir_file",
    "ingest_fhir_ndjson",
    "map_resource",
]

CONNECTOR = "fhir"

Json = dict[str, Any]
Row = dict[str, Any]
Rows = list[tuple[str, Row]]
# A data-quality finding of one resource, before it is known to be stored: (table, field, kind, rows).
Flag = tuple[str, str, FindingKind, int]
# Medication resources seen so far, keyed by fullUrl and by "Medication/<id>", so that a
# medicationReference can be resolved to its code.
MedicationIndex = MutableMapping[str, Json]

# Caches of pure functions of a string, as plain dicts (a hit is one dict lookup). Each is cleared
# when it grows past _CACHE_MAX, so memory stays bounded whatever the input.
_CACHE_MAX = 65536
_SYSTEMS: dict[str | None, str | None] = {}
_DATETIMES: dict[str, datetime] = {}
_DATES: dict[str, date] = {}
_REF_IDS: dict[str, dict[str, str]] = {}


_PICKED: dict[tuple[Any, ...], Concept] = {}


def _pick(table: str, codings: list[tuple[str | None, str | None, str | None]], text: str | None) -> Concept:
    """pick_concept, remembered: it is a pure function of the table, the (system, code, display) tuples
    and the text, and the same few concepts recur across thousands of resources. Failures are not kept."""
    key = (table, text, *codings)
    hit = _PICKED.get(key)
    if hit is not None:
        return hit
    picked = pick_concept(table, codings, text)
    if len(_PICKED) >= _CACHE_MAX:
        _PICKED.clear()
    _PICKED[key] = picked
    return picked


def _system(name_or_uri: str | None) -> str | None:
    try:
        return _SYSTEMS[name_or_uri]
    except KeyError:
        pass
    system = canonical_system(name_or_uri)
    if len(_SYSTEMS) >= _CACHE_MAX:
        _SYSTEMS.clear()
    _SYSTEMS[name_or_uri] = system
    return system


_ELEMENT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")


# --- resource types ---

# R4 (4.0.1) resource types that R4B, the R4 release fhir.resources ships, replaced: still valid R4.
_R4_ONLY_TYPES = (
    "EffectEvidenceSynthesis", "MedicinalProduct", "MedicinalProductAuthorization",
    "MedicinalProductContraindication", "MedicinalProductIndication", "MedicinalProductIngredient",
    "MedicinalProductInteraction", "MedicinalProductManufactured", "MedicinalProductPackaged",
    "MedicinalProductPharmaceutical", "MedicinalProductUndesirableEffect", "RiskEvidenceSynthesis",
    "SubstanceNucleicAcid", "SubstancePolymer", "SubstanceProtein", "SubstanceReferenceInformation",
    "SubstanceSourceMaterial", "SubstanceSpecification",
)
_RESOURCE_CLASS = re.compile(rb"^class (\w+)\((?:domainresource\.DomainResource|resource\.Resource)\):", re.M)
_TYPE_NAME = re.compile(r"[A-Z][A-Za-z]{1,63}")


@cache
def r4_resource_types() -> frozenset[str] | None:
    """The names of the FHIR R4 resource types, from the R4B models fhir.resources ships: each module
    holds one model, whose class line near the top says whether it is a resource. Only those lines are
    read (about 5 ms, once); importing the models would take seconds. None if they cannot be read."""
    names = set(_R4_ONLY_TYPES)
    try:
        spec = importlib.util.find_spec("fhir.resources.R4B")
        for folder in (spec.submodule_search_locations or ()) if spec is not None else ():
            for entry in os.scandir(folder):
                if not entry.name.endswith(".py") or entry.name.startswith("_"):
                    continue
                with open(entry.path, "rb") as fh:
                    m = _RESOURCE_CLASS.search(fh.read(2048))
                if m is not None and m.group(1).decode().lower() == entry.name[:-3]:
                    names.add(m.group(1).decode())
    except (ImportError, OSError, ValueError):
        return None
    names.discard("DomainResource")  # abstract: no instance has it as its type
    # A package laid out otherwise (zipped, renamed) gives next to nothing: then no name is refused.
    return frozenset(names) if len(names) > 100 else None


def _known_type(rt: str) -> bool:
    types = r4_resource_types()
    return rt in types if types is not None else _TYPE_NAME.fullmatch(rt) is not None


def _check_type(rt: str) -> None:
    """INVALID_RESOURCE for a resourceType that is no R4 type (a typo such as "Patientt"); the name as
    sent is not echoed: in a misaligned export it can be anything."""
    if not _known_type(rt):
        raise MappingError(Reason.INVALID_RESOURCE, "resourceType is not an R4 resource type")


# --- typed access to JSON: every wrong type is a WRONG_TYPE naming the path, never the value ---


def _wrong(path: str, expected: str) -> MappingError:
    return MappingError(Reason.WRONG_TYPE, f"{path} must be {expected}")


def _obj(v: Any, path: str) -> Json | None:
    if v is None or isinstance(v, dict):
        return v
    raise _wrong(path, "an object")


def _arr(v: Any, path: str) -> list[Any]:
    if v is None:
        return []
    if isinstance(v, list):
        return v
    raise _wrong(path, "an array")


def _str(v: Any, path: str) -> str | None:
    if v is None or isinstance(v, str):
        return v
    raise _wrong(path, "a string")


# Typed values (numbers, dates, coded values of a fixed set) in optional elements: a scalar that fails
# its check (a string or boolean where a number belongs, an impossible date, a number where a date
# belongs) is stored as null and flagged; an object or array there is a wrong structure (WRONG_TYPE).


def _number(v: Any, path: str, ctx: _Context, table: str, field: str) -> float | None:
    """A FHIR decimal (a JSON number); None, flagged BAD_VALUE, for any other scalar."""
    if v is None:
        return None
    if isinstance(v, dict | list):
        raise _wrong(path, "a number")
    if isinstance(v, int | float) and not isinstance(v, bool):
        try:
            f = float(v)
        except OverflowError:  # an integer too large for a double
            f = math.inf
        if math.isfinite(f):
            return f
    ctx.flag(table, field, FindingKind.BAD_VALUE)
    return None


def _date(v: Any, path: str, ctx: _Context, table: str, field: str) -> date | None:
    """A FHIR date (or the local date of a dateTime); None, flagged BAD_DATE, if it is not one."""
    if v is None:
        return None
    if v.__class__ is str:
        hit = _DATES.get(v)
        if hit is not None:
            return hit
        d = _parse_date(v)
        if d is not None:
            if len(_DATES) >= _CACHE_MAX:
                _DATES.clear()
            _DATES[v] = d
            return d
    elif isinstance(v, dict | list):
        raise _wrong(path, "a date string")
    ctx.flag(table, field, FindingKind.BAD_DATE)
    return None


def _parse_date(v: str) -> date | None:
    try:
        if "T" in v:
            # A dateTime in a date field: check all of it, but keep the calendar date as recorded
            # locally (a birth at 01:00+08:00 is that day, not the previous day in UTC).
            parse_fhir_datetime(v)
            return parse_fhir_date(v[:10])
        return parse_fhir_date(v)
    except ValueFormatError:
        return None


def _datetime(v: Any, path: str, ctx: _Context, table: str, field: str) -> datetime | None:
    """A FHIR dateTime or instant in UTC; None, flagged BAD_DATE, if it is not one."""
    if v is None:
        return None
    if v.__class__ is str:
        hit = _DATETIMES.get(v)
        if hit is not None:
            return hit
        try:
            dt = parse_fhir_datetime(v)
        except ValueFormatError:
            ctx.flag(table, field, FindingKind.BAD_DATE)
            return None
        if len(_DATETIMES) >= _CACHE_MAX:
            _DATETIMES.clear()
        _DATETIMES[v] = dt
        return dt
    if isinstance(v, dict | list):
        raise _wrong(path, "a dateTime string")
    ctx.flag(table, field, FindingKind.BAD_DATE)
    return None


def _elem(items: list[Any], path: str) -> Json | None:
    """The first element of an array of objects (most R4 cardinality-* elements use only the first)."""
    if not items:
        return None
    return _obj(items[0], f"{path}[0]")


def _codings(cc: Any, path: str) -> list[tuple[str | None, str | None, str | None]]:
    """(system, code, display) of a CodeableConcept's codings, type-checked."""
    if cc is None:
        return []
    if not isinstance(cc, dict):
        raise _wrong(path, "a CodeableConcept object")
    coding = cc.get("coding")
    if coding is None:
        return []
    if not isinstance(coding, list):
        raise _wrong(f"{path}.coding", "an array")
    out = []
    for c in coding:
        # Fast path: exact dicts holding exact strings (what a JSON parser gives); anything else
        # takes the checked loop below, which names the offending element.
        if c.__class__ is not dict:
            return _codings_checked(coding, path)
        system, code, display = t = c.get("system"), c.get("code"), c.get("display")
        if ((system is None or system.__class__ is str) and (code is None or code.__class__ is str)
                and (display is None or display.__class__ is str)):
            out.append(t)
        else:
            return _codings_checked(coding, path)
    return out


def _codings_checked(coding: list[Any], path: str) -> list[tuple[str | None, str | None, str | None]]:
    out = []
    for i, c in enumerate(coding):
        if not isinstance(c, dict):
            raise _wrong(f"{path}.coding[{i}]", "an object")
        system, code, display = c.get("system"), c.get("code"), c.get("display")
        if not (system is None or isinstance(system, str)):
            raise _wrong(f"{path}.coding[{i}].system", "a string")
        if not (code is None or isinstance(code, str)):
            raise _wrong(f"{path}.coding[{i}].code", "a string")
        if not (display is None or isinstance(display, str)):
            raise _wrong(f"{path}.coding[{i}].display", "a string")
        out.append((system, code, display))
    return out


def _label(cc: Any, path: str) -> str | None:
    """A CodeableConcept as words: its text, else the first coding's display, else its code."""
    codings = _codings(cc, path)
    text = _str(cc.get("text"), f"{path}.text") if cc is not None else None
    if text:
        return text
    for _, _code, display in codings:
        if display:
            return display
    for _, code, _ in codings:
        if code:
            return code
    return None


def _first_code(cc: Any, path: str) -> str | None:
    """A CodeableConcept's first code (for status-like concepts), else its text."""
    codings = _codings(cc, path)
    for _, code, _ in codings:
        if code:
            return code
    return _str(cc.get("text"), f"{path}.text") if cc is not None else None


def _set_concept(row: Row, table: str, cc: Any, path: str, ctx: _Context,
                 codings: list[tuple[str | None, str | None, str | None]] | None = None) -> None:
    """Fill a coded row's code, code_system, display and code_status from a CodeableConcept (its
    codings already read, if given), flagging what was not a verified standard code."""
    if codings is None:
        codings = _codings(cc, path)
    text = cc.get("text") if cc.__class__ is dict else None
    if text is not None and text.__class__ is not str:
        raise _wrong(f"{path}.text", "a string")
    c = _pick(table, codings, text)
    if c.code is not None:
        row["code"] = c.code
    if c.system is not None:
        row["code_system"] = c.system
    if c.display:
        row["display"] = c.display
    row["code_status"] = c.status
    if c.finding is not None:
        ctx.flag(table, "code", c.finding)


def _has_loinc(codings: list[tuple[str | None, str | None, str | None]], code: str) -> bool:
    for s, c, _ in codings:  # noqa: SIM110 - a loop, not any(<generator>), on this hot path
        if c == code and _system(s) == "LOINC":
            return True
    return False


# --- references and ids ---


def _last_id(url: str) -> str:
    """The id at the end of a literal reference or fullUrl, without any /_history/<vid> suffix."""
    parts = url.rstrip("/").split("/")
    if len(parts) >= 3 and parts[-2] == "_history":
        parts = parts[:-2]
    return parts[-1]


def _reference(v: Any, path: str, target: str, refs: Mapping[str, str] | None) -> str | None:
    """The id a Reference points at (None if it has no literal reference)."""
    ref = _obj(v, path)
    if ref is None:
        return None
    r = ref.get("reference")
    if r is None:
        return None
    if not isinstance(r, str):
        raise _wrong(f"{path}.reference", "a string")
    if refs:
        hit = refs.get(r)
        if hit is not None:
            return hit
    ids = _REF_IDS.get(target)
    if ids is None:
        ids = _REF_IDS.setdefault(target, {})
    hit = ids.get(r)
    if hit is not None:
        return hit
    rid = _reference_id(r, path, target)
    if len(ids) >= _CACHE_MAX:
        ids.clear()
    ids[r] = rid
    return rid


def _reference_id(r: str, path: str, target: str) -> str:
    """The id in a literal reference that no bundle fullUrl resolved (a pure function of r, target)."""
    if r.startswith("urn:"):
        # An unresolved urn:uuid still names the resource uniquely: use the uuid itself.
        rid = r[9:] if r.startswith("urn:uuid:") else r[8:] if r.startswith("urn:oid:") else r
    elif r.startswith("#"):
        raise MappingError(Reason.BAD_REFERENCE, f"{path} points at a contained resource, not a {target}")
    else:
        parts = r.rstrip("/").split("/")
        if len(parts) >= 4 and parts[-2] == "_history":
            parts = parts[:-2]
        if len(parts) >= 2 and parts[-2] != target:
            raise MappingError(Reason.BAD_REFERENCE, f"{path} must reference a {target}")
        rid = parts[-1]
    if not rid:
        raise MappingError(Reason.BAD_REFERENCE, f"{path} has an empty reference")
    return rid


def _subject(r: Json, key: str, rt: str, refs: Mapping[str, str] | None) -> str:
    v = r.get(key)
    if v is None:
        raise MappingError(Reason.MISSING_FIELD, f"{rt}.{key} is required")
    if refs and v.__class__ is dict:
        # Fast path: a reference to a fullUrl of the same bundle.
        ref = v.get("reference")
        if ref.__class__ is str:
            hit = refs.get(ref)
            if hit is not None:
                return hit
    pid = _reference(v, f"{rt}.{key}", "Patient", refs)
    if pid is None:
        raise MappingError(Reason.BAD_REFERENCE, f"{rt}.{key} has no literal reference to a Patient")
    return pid


def _encounter(v: Any, path: str, ctx: _Context, table: str) -> str | None:
    """The id of an optional encounter reference; None, flagged BAD_REFERENCE, if one was given that
    cannot be resolved (a contained resource, another resource type, no literal reference)."""
    if v is None:
        return None
    try:
        rid = _reference(v, path, "Encounter", ctx.refs)
    except MappingError as e:
        if e.reason is not Reason.BAD_REFERENCE:
            raise
        rid = None
    if rid is None:
        ctx.flag(table, "encounter_id", FindingKind.BAD_REFERENCE)
    return rid


def _row_id(r: Json, rt: str, full_url: str | None) -> str:
    rid = r.get("id")
    if rid is not None:
        if not isinstance(rid, str):
            raise _wrong(f"{rt}.id", "a string")
        if rid:
            return rid
    if full_url:
        fid = full_url[9:] if full_url.startswith("urn:uuid:") else _last_id(full_url)
        if fid:
            return fid
    # No identity at all: a content hash keeps re-ingesting the same resource idempotent.
    try:
        canonical = orjson.dumps(r, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        raise MappingError(Reason.WRONG_TYPE, f"{rt} is not serialisable JSON") from None
    return hashlib.sha256(canonical).hexdigest()


def _put(row: Row, key: str, value: Any) -> None:
    if value is not None and value != "":
        row[key] = value


# --- Patient ---

_ID_TYPE_FIELD = {
    "NI": "national_id", "SS": "national_id", "NNCHN": "national_id", "CZ": "national_id",
    "MR": "mrn", "PPN": "passport_id", "MB": "insurance_id", "SN": "insurance_id",
}
_NATIONAL_SYSTEMS = ("http://hl7.org/fhir/sid/us-ssn", "urn:oid:2.16.840.1.113883.4.1",
                     "urn:oid:1.2.156.112604.1.2")
_GENDERS = frozenset({"male", "female", "other", "unknown"})
_MARITAL = {
    "A": "annulled", "D": "divorced", "I": "interlocutory", "L": "legally separated", "M": "married",
    "C": "common law", "P": "polygamous", "T": "domestic partner", "U": "unmarried",
    "S": "never married", "W": "widowed", "UNK": "unknown",
}
_RACE_URLS = ("http://hl7.org/fhir/us/core/StructureDefinition/us-core-race",
              "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity")


def _identifier_field(ident: Json, path: str) -> str | None:
    """Which patient field an Identifier fills, from its type code first, then its system."""
    for _, code, _ in _codings(ident.get("type"), f"{path}.type"):
        if code:
            field = _ID_TYPE_FIELD.get(code)
            if field:
                return field
            # v2 table 0203 national-number types are NN + ISO 3166 alpha-3 (NNCHN, NNGBR, ...).
            if len(code) == 5 and code.startswith("NN"):
                return "national_id"
    system = _str(ident.get("system"), f"{path}.system")
    if not system:
        return None
    s = system.lower()
    if s.startswith(_NATIONAL_SYSTEMS):
        return "national_id"
    if "mrn" in s:
        return "mrn"
    if "insur" in s:
        return "insurance_id"
    if "ssn" in s or "resident" in s or "citizen" in s or "china" in s:
        return "national_id"
    return None


def _ethnicity(r: Json) -> str | None:
    parts = []
    for i, ext in enumerate(_arr(r.get("extension"), "Patient.extension")):
        path = f"Patient.extension[{i}]"
        e = _obj(ext, path)
        if e is None:
            continue
        url = _str(e.get("url"), f"{path}.url") or ""
        if url in _RACE_URLS:
            # US Core: the "text" sub-extension is the required human-readable summary.
            for j, sub in enumerate(_arr(e.get("extension"), f"{path}.extension")):
                se = _obj(sub, f"{path}.extension[{j}]")
                if se is not None and se.get("url") == "text":
                    text = _str(se.get("valueString"), f"{path}.extension[{j}].valueString")
                    if text:
                        parts.append(text)
        elif "ethnic" in url.lower():
            # Other national profiles (e.g. China's ethnic group) carry a coded or string value.
            value = e.get("valueCodeableConcept")
            text = (_label(value, f"{path}.valueCodeableConcept") if value is not None
                    else _str(e.get("valueString"), f"{path}.valueString"))
            if text is None and e.get("valueCoding") is not None:
                text = _label({"coding": [e["valueCoding"]]}, f"{path}.valueCoding")
            if text:
                parts.append(text)
    return "; ".join(parts) if parts else None


def _map_patient(r: Json, rid: str, ctx: _Context) -> Rows:
    row: Row = {"id": rid}
    for i, ident in enumerate(_arr(r.get("identifier"), "Patient.identifier")):
        path = f"Patient.identifier[{i}]"
        idn = _obj(ident, path)
        if idn is None:
            continue
        value = _str(idn.get("value"), f"{path}.value")
        if not value:
            continue
        field = _identifier_field(idn, path)
        if field is not None and field not in row:
            row[field] = value

    names = _arr(r.get("name"), "Patient.name")
    chosen: Json | None = None
    for i, n in enumerate(names):
        name = _obj(n, f"Patient.name[{i}]")
        if name is None:
            continue
        use = name.get("use")
        if use == "official":
            chosen = name
            break
        if chosen is None and use != "old":
            chosen = name
    if chosen is not None:
        _put(row, "family_name", _str(chosen.get("family"), "Patient.name.family"))
        given = _arr(chosen.get("given"), "Patient.name.given")
        for j, g in enumerate(given):
            if not isinstance(g, str):
                raise _wrong(f"Patient.name.given[{j}]", "a string")
        _put(row, "given_name", " ".join(given))

    for i, t in enumerate(_arr(r.get("telecom"), "Patient.telecom")):
        cp = _obj(t, f"Patient.telecom[{i}]")
        if cp is None:
            continue
        system = _str(cp.get("system"), f"Patient.telecom[{i}].system")
        key = "phone" if system == "phone" else "email" if system == "email" else None
        if key is not None and key not in row:
            _put(row, key, _str(cp.get("value"), f"Patient.telecom[{i}].value"))

    addr = _elem(_arr(r.get("address"), "Patient.address"), "Patient.address")
    if addr is not None:
        lines = _arr(addr.get("line"), "Patient.address[0].line")
        for j, ln in enumerate(lines):
            if not isinstance(ln, str):
                raise _wrong(f"Patient.address[0].line[{j}]", "a string")
        _put(row, "address_line", ", ".join(lines))
        _put(row, "district", _str(addr.get("district"), "Patient.address[0].district"))
        _put(row, "city", _str(addr.get("city"), "Patient.address[0].city"))
        _put(row, "province", _str(addr.get("state"), "Patient.address[0].state"))
        _put(row, "postal_code", _str(addr.get("postalCode"), "Patient.address[0].postalCode"))
        _put(row, "country", _str(addr.get("country"), "Patient.address[0].country"))

    gender = r.get("gender")
    if gender is not None:
        if isinstance(gender, dict | list):
            raise _wrong("Patient.gender", "a string")
        if gender in _GENDERS:
            row["sex"] = gender
        else:
            # "M", "F", "Male": outside the value set; mapping them would be a guess.
            ctx.flag("patient", "sex", FindingKind.BAD_VALUE)
    _put(row, "birth_date", _date(r.get("birthDate"), "Patient.birthDate", ctx, "patient", "birth_date"))
    _put(row, "deceased_date",
         _date(r.get("deceasedDateTime"), "Patient.deceasedDateTime", ctx, "patient", "deceased_date"))

    marital = r.get("maritalStatus")
    if marital is not None:
        codings = _codings(marital, "Patient.maritalStatus")
        words = next((_MARITAL[c] for _, c, _ in codings if c in _MARITAL), None)
        _put(row, "marital_status", words or _label(marital, "Patient.maritalStatus"))
    if "extension" in r:
        _put(row, "ethnicity", _ethnicity(r))
    return [("patient", row)]


# --- Encounter ---

_ENCOUNTER_CLASS = {
    "AMB": "ambulatory", "IMP": "inpatient", "ACUTE": "inpatient", "NONAC": "inpatient",
    "EMER": "emergency", "VR": "virtual",
    "ambulatory": "ambulatory", "outpatient": "ambulatory", "inpatient": "inpatient",
    "emergency": "emergency", "virtual": "virtual",
}


def _map_encounter(r: Json, rid: str, ctx: _Context) -> Rows:
    row: Row = {"id": rid, "patient_id": _subject(r, "subject", "Encounter", ctx.refs)}
    cls = _obj(r.get("class"), "Encounter.class")
    if cls is not None:
        code = _str(cls.get("code"), "Encounter.class.code")
        if code:
            row["encounter_class"] = _ENCOUNTER_CLASS.get(code, "other")
    period = _obj(r.get("period"), "Encounter.period")
    if period is not None:
        _put(row, "start_time", _datetime(period.get("start"), "Encounter.period.start", ctx, "encounter",
                                          "start_time"))
        _put(row, "end_time", _datetime(period.get("end"), "Encounter.period.end", ctx, "encounter", "end_time"))
    dept = None
    if r.get("serviceType") is not None:
        dept = _label(r["serviceType"], "Encounter.serviceType")
    if dept is None:
        for i, t in enumerate(_arr(r.get("type"), "Encounter.type")):
            dept = _label(t, f"Encounter.type[{i}]")
            if dept:
                break
    _put(row, "department", dept)
    reasons = []
    for i, rc in enumerate(_arr(r.get("reasonCode"), "Encounter.reasonCode")):
        text = _label(rc, f"Encounter.reasonCode[{i}]")
        if text:
            reasons.append(text)
    _put(row, "reason", "; ".join(reasons))
    hosp = _obj(r.get("hospitalization"), "Encounter.hospitalization")
    if hosp is not None and hosp.get("dischargeDisposition") is not None:
        _put(row, "discharge_disposition",
             _label(hosp["dischargeDisposition"], "Encounter.hospitalization.dischargeDisposition"))
    return [("encounter", row)]


# --- Condition, Procedure, AllergyIntolerance ---


def _coded_event(r: Json, rid: str, ctx: _Context, rt: str, table: str) -> Row:
    """The fields Condition and Procedure share: ids, subject, encounter and the coded concept."""
    row: Row = {"id": rid, "patient_id": _subject(r, "subject", rt, ctx.refs)}
    _put(row, "encounter_id", _encounter(r.get("encounter"), f"{rt}.encounter", ctx, table))
    _set_concept(row, table, r.get("code"), f"{rt}.code", ctx)
    return row


def _when(r: Json, rt: str, element: str, parse: Callable[[Any, str, _Context, str, str], Any], ctx: _Context,
          table: str, field: str) -> Any:
    """`<element>DateTime`, else the start of `<element>Period`."""
    value = parse(r.get(f"{element}DateTime"), f"{rt}.{element}DateTime", ctx, table, field)
    if value is None and r.get(f"{element}Period") is not None:
        period = _obj(r[f"{element}Period"], f"{rt}.{element}Period")
        value = parse(period.get("start") if period else None, f"{rt}.{element}Period.start", ctx, table, field)
    return value


def _map_condition(r: Json, rid: str, ctx: _Context) -> Rows:
    row = _coded_event(r, rid, ctx, "Condition", "condition")
    if r.get("clinicalStatus") is not None:
        _put(row, "clinical_status", _first_code(r["clinicalStatus"], "Condition.clinicalStatus"))
    _put(row, "onset_date", _when(r, "Condition", "onset", _date, ctx, "condition", "onset_date"))
    _put(row, "recorded_date",
         _date(r.get("recordedDate"), "Condition.recordedDate", ctx, "condition", "recorded_date"))
    return [("condition", row)]


def _map_procedure(r: Json, rid: str, ctx: _Context) -> Rows:
    row = _coded_event(r, rid, ctx, "Procedure", "procedure")
    _put(row, "status", _str(r.get("status"), "Procedure.status"))
    _put(row, "performed_time", _when(r, "Procedure", "performed", _datetime, ctx, "procedure", "performed_time"))
    return [("procedure", row)]


def _map_allergy(r: Json, rid: str, ctx: _Context) -> Rows:
    row: Row = {"id": rid, "patient_id": _subject(r, "patient", "AllergyIntolerance", ctx.refs)}
    _set_concept(row, "allergy", r.get("code"), "AllergyIntolerance.code", ctx)
    categories = _arr(r.get("category"), "AllergyIntolerance.category")
    for i, c in enumerate(categories):
        if not isinstance(c, str):
            raise _wrong(f"AllergyIntolerance.category[{i}]", "a string")
    _put(row, "category", ",".join(categories))
    _put(row, "criticality", _str(r.get("criticality"), "AllergyIntolerance.criticality"))
    reaction = _elem(_arr(r.get("reaction"), "AllergyIntolerance.reaction"), "AllergyIntolerance.reaction")
    if reaction is not None:
        manifestations = _arr(reaction.get("manifestation"), "AllergyIntolerance.reaction[0].manifestation")
        words = [_label(m, f"AllergyIntolerance.reaction[0].manifestation[{i}]")
                 for i, m in enumerate(manifestations)]
        _put(row, "reaction", "; ".join(w for w in words if w))
    _put(row, "recorded_date",
         _date(r.get("recordedDate"), "AllergyIntolerance.recordedDate", ctx, "allergy", "recorded_date"))
    return [("allergy", row)]


# --- MedicationRequest / MedicationStatement / MedicationAdministration ---


def _medication_concept(r: Json, rt: str, ctx: _Context) -> tuple[Any, str]:
    """The CodeableConcept that says which medication it is, and its path: medicationCodeableConcept, or
    the code of the Medication that medicationReference points at (else the reference's display)."""
    cc = r.get("medicationCodeableConcept")
    if cc is not None:
        return cc, f"{rt}.medicationCodeableConcept"
    mref = _obj(r.get("medicationReference"), f"{rt}.medicationReference")
    if mref is None:
        raise MappingError(Reason.MISSING_FIELD, f"{rt}.medication[x] is required")
    ref = _str(mref.get("reference"), f"{rt}.medicationReference.reference")
    display = _str(mref.get("display"), f"{rt}.medicationReference.display")
    med: Json | None = None
    if not ref:
        if display:
            return {"text": display}, f"{rt}.medicationReference"
        raise MappingError(Reason.BAD_REFERENCE, f"{rt}.medicationReference has no literal reference")
    if ref.startswith("#"):
        for i, c in enumerate(_arr(r.get("contained"), f"{rt}.contained")):
            res = _obj(c, f"{rt}.contained[{i}]")
            if res is not None and res.get("resourceType") == "Medication" and res.get("id") == ref[1:]:
                med = res
                break
    else:
        for index in (ctx.medications, _BATCH_MEDICATIONS):
            if index:
                med = index.get(ref)
                if med is None and not ref.startswith("urn:"):
                    med = index.get(f"Medication/{_last_id(ref)}")
                if med is not None:
                    break
    if med is None or med.get("code") is None:
        # The reference's display still names the drug: keep it as text rather than lose the order.
        if display:
            return {"text": display}, f"{rt}.medicationReference"
        if med is None:
            raise MappingError(Reason.BAD_REFERENCE, f"{rt}.medicationReference cannot be resolved")
        # A compounded Medication has no code of its own: its first coded ingredient names it.
        for i, ing in enumerate(_arr(med.get("ingredient"), "Medication.ingredient")):
            item = _obj(ing, f"Medication.ingredient[{i}]")
            if item is not None and item.get("itemCodeableConcept") is not None:
                return item["itemCodeableConcept"], f"{rt}.medicationReference.ingredient"
    return med.get("code"), f"{rt}.medicationReference.code"


def _frequency(timing: Json | None, path: str, ctx: _Context) -> str | None:
    if timing is None:
        return None
    if timing.get("code") is not None:
        text = _label(timing["code"], f"{path}.code")
        if text:
            return text
    repeat = _obj(timing.get("repeat"), f"{path}.repeat")
    if repeat is None:
        return None
    freq = repeat.get("frequency")
    period = _number(repeat.get("period"), f"{path}.repeat.period", ctx, "medication", "frequency")
    unit = _str(repeat.get("periodUnit"), f"{path}.repeat.periodUnit")
    if freq is None or period is None or not unit:
        return None
    if isinstance(freq, dict | list):
        raise _wrong(f"{path}.repeat.frequency", "an integer")
    if isinstance(freq, bool) or not isinstance(freq, int):
        ctx.flag("medication", "frequency", FindingKind.BAD_VALUE)
        return None
    return f"{freq} per {period:g} {unit}"


def _map_medication(r: Json, rid: str, ctx: _Context) -> Rows:
    rt: str = r["resourceType"]
    if rt != "MedicationRequest":
        # Statements and administrations share the table with orders: keep their ids apart.
        rid = f"{rt}/{rid}"
    row: Row = {"id": rid, "patient_id": _subject(r, "subject", rt, ctx.refs)}
    enc_key = "encounter" if rt == "MedicationRequest" else "context"
    _put(row, "encounter_id", _encounter(r.get(enc_key), f"{rt}.{enc_key}", ctx, "medication"))
    concept, cpath = _medication_concept(r, rt, ctx)
    _set_concept(row, "medication", concept, cpath, ctx)
    _put(row, "status", _str(r.get("status"), f"{rt}.status"))
    for i, ext in enumerate(_arr(r.get("extension"), f"{rt}.extension")):
        e = _obj(ext, f"{rt}.extension[{i}]")
        if e is not None and e.get("url") == TREATMENT_RESPONSE:
            _put(row, "response", _str(e.get("valueString", e.get("valueCode")), f"{rt}.extension[{i}].value[x]"))

    start: date | None = None
    end: date | None = None
    if rt == "MedicationRequest":
        start = _date(r.get("authoredOn"), "MedicationRequest.authoredOn", ctx, "medication", "start_date")
    else:
        start = _date(r.get("effectiveDateTime"), f"{rt}.effectiveDateTime", ctx, "medication", "start_date")
        period = _obj(r.get("effectivePeriod"), f"{rt}.effectivePeriod")
        if period is not None:
            start = start or _date(period.get("start"), f"{rt}.effectivePeriod.start", ctx, "medication",
                                   "start_date")
            end = _date(period.get("end"), f"{rt}.effectivePeriod.end", ctx, "medication", "end_date")

    dose: Json | None = None
    route: Any = None
    timing: Json | None = None
    if rt == "MedicationAdministration":
        dosage = _obj(r.get("dosage"), f"{rt}.dosage")
        if dosage is not None:
            dose = _obj(dosage.get("dose"), f"{rt}.dosage.dose")
            route = dosage.get("route")
        dpath = f"{rt}.dosage"
    else:
        dkey = "dosageInstruction" if rt == "MedicationRequest" else "dosage"
        dpath = f"{rt}.{dkey}[0]"
        dosage = _elem(_arr(r.get(dkey), f"{rt}.{dkey}"), f"{rt}.{dkey}")
        if dosage is not None:
            dr = _elem(_arr(dosage.get("doseAndRate"), f"{dpath}.doseAndRate"), f"{dpath}.doseAndRate")
            if dr is not None:
                dose = _obj(dr.get("doseQuantity"), f"{dpath}.doseAndRate[0].doseQuantity")
            route = dosage.get("route")
            timing = _obj(dosage.get("timing"), f"{dpath}.timing")
    if dose is not None:
        _put(row, "dose_value", _number(dose.get("value"), f"{dpath}.dose.value", ctx, "medication", "dose_value"))
        _put(row, "dose_unit", _str(dose.get("unit"), f"{dpath}.dose.unit")
             or _str(dose.get("code"), f"{dpath}.dose.code"))
    if route is not None:
        _put(row, "route", _label(route, f"{dpath}.route"))
    if timing is not None:
        _put(row, "frequency", _frequency(timing, f"{dpath}.timing", ctx))
        repeat = timing.get("repeat")
        if isinstance(repeat, dict) and repeat.get("boundsPeriod") is not None:
            bounds = _obj(repeat["boundsPeriod"], f"{dpath}.timing.repeat.boundsPeriod")
            if bounds is not None:
                bpath = f"{dpath}.timing.repeat.boundsPeriod"
                start = start or _date(bounds.get("start"), f"{bpath}.start", ctx, "medication", "start_date")
                end = end or _date(bounds.get("end"), f"{bpath}.end", ctx, "medication", "end_date")
    _put(row, "start_date", start)
    _put(row, "end_date", end)
    return [("medication", row)]


# --- Observation (and genomics) ---

_GENE, _DNA_CHANGE, _AA_CHANGE, _VARIANT_ID = "48018-6", "48004-6", "48005-3", "81252-9"
_ZYGOSITY, _SIGNIFICANCE, _VARIANT_ASSESSMENT = "53034-5", "53037-8", "69548-6"
_GENOMIC_PARTS = frozenset({_GENE, _DNA_CHANGE, _AA_CHANGE, _VARIANT_ID, _ZYGOSITY, _SIGNIFICANCE})
# LOINC answer lists LL381-5 (zygosity) and LL4034-6 (clinical significance).
_ANSWERS = {
    "LA6705-3": "homozygous", "LA6706-1": "heterozygous", "LA6707-9": "hemizygous",
    "LA6668-3": "pathogenic", "LA26332-9": "likely pathogenic", "LA26333-7": "uncertain significance",
    "LA26334-5": "likely benign", "LA6675-8": "benign",
}


def _quantity_value(qty: Any, path: str, row: Row, ctx: _Context) -> None:
    """A valueQuantity (not None) of the element at `path`; paths are only built for errors."""
    if not isinstance(qty, dict):
        raise _wrong(f"{path}.valueQuantity", "an object")
    value = qty.get("value")
    if value is not None:
        if type(value) is not float:
            value = _number(value, f"{path}.valueQuantity.value", ctx, "observation", "value_num")
        if value is not None:
            row["value_num"] = value
    unit = qty.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise _wrong(f"{path}.valueQuantity.unit", "a string")
    if not unit:
        unit = qty.get("code")
        if unit is not None and not isinstance(unit, str):
            raise _wrong(f"{path}.valueQuantity.code", "a string")
    if unit:
        row["unit"] = unit
    comparator = qty.get("comparator")
    if comparator is not None:
        if not isinstance(comparator, str):
            raise _wrong(f"{path}.valueQuantity.comparator", "a string")
        if comparator and value is not None:
            # "<0.1" is a censored result, not 0.1: keep the comparator visible next to the number.
            row["value_text"] = f"{comparator}{value:g}"
        elif comparator and qty.get("value") is not None:
            row["value_text"] = comparator  # the number failed its check: the comparator alone is what is known


def _observed(src: Json, path: str, row: Row, ctx: _Context) -> None:
    """value[x], referenceRange and interpretation of an Observation or one of its components."""
    vq = src.get("valueQuantity")
    if vq is not None:
        _quantity_value(vq, path, row, ctx)
    elif src.get("valueCodeableConcept") is not None:
        _put(row, "value_text", _label(src["valueCodeableConcept"], f"{path}.valueCodeableConcept"))
    elif src.get("valueString") is not None:
        _put(row, "value_text", _str(src["valueString"], f"{path}.valueString"))
    elif src.get("valueBoolean") is not None:
        v = src["valueBoolean"]
        if isinstance(v, dict | list):
            raise _wrong(f"{path}.valueBoolean", "a boolean")
        if isinstance(v, bool):
            row["value_text"] = "true" if v else "false"
        else:
            ctx.flag("observation", "value_text", FindingKind.BAD_VALUE)
    elif src.get("valueInteger") is not None:
        v = src["valueInteger"]
        if isinstance(v, dict | list):
            raise _wrong(f"{path}.valueInteger", "an integer")
        if isinstance(v, int) and not isinstance(v, bool) and -(2**53) <= v <= 2**53:
            row["value_num"] = float(v)
        else:
            ctx.flag("observation", "value_num", FindingKind.BAD_VALUE)
    rr = src.get("referenceRange")
    if rr is not None:
        # The checks of _arr/_elem/_obj/_num, inline so that paths are only built for errors.
        if not isinstance(rr, list):
            raise _wrong(f"{path}.referenceRange", "an array")
        rng = rr[0] if rr else None
        if rng is not None:
            if not isinstance(rng, dict):
                raise _wrong(f"{path}.referenceRange[0]", "an object")
            low, high = rng.get("low"), rng.get("high")
            if not (low is None or isinstance(low, dict)):
                raise _wrong(f"{path}.referenceRange[0].low", "an object")
            if not (high is None or isinstance(high, dict)):
                raise _wrong(f"{path}.referenceRange[0].high", "an object")
            if low is not None:
                v = low.get("value")
                if v is not None and type(v) is not float:
                    v = _number(v, f"{path}.referenceRange[0].low.value", ctx, "observation", "ref_low")
                if v is not None:
                    row["ref_low"] = v
            if high is not None:
                v = high.get("value")
                if v is not None and type(v) is not float:
                    v = _number(v, f"{path}.referenceRange[0].high.value", ctx, "observation", "ref_high")
                if v is not None:
                    row["ref_high"] = v
    interp = src.get("interpretation")
    if interp is not None:
        first = _arr(interp, f"{path}.interpretation")
        if first:
            _put(row, "interpretation", _first_code(first[0], f"{path}.interpretation[0]"))


def _has_value(src: Json) -> bool:
    for k in src:  # noqa: SIM110 - a loop, not any(<generator>), on this hot path
        if k.startswith("value"):
            return True
    return False


def _part(comp: Json, path: str, prefer_code: bool) -> str | None:
    """The answer of a genomics component as text: a code (HGVS, ClinVar id) or a label (gene symbol)."""
    cc = comp.get("valueCodeableConcept")
    if cc is None:
        return _str(comp.get("valueString"), f"{path}.valueString")
    codings = _codings(cc, f"{path}.valueCodeableConcept")
    for _, code, display in codings:
        if code in _ANSWERS:
            return _ANSWERS[code]
        if prefer_code and code:
            return code
        if display:
            return display
        if code:
            return code
    return _str(cc.get("text"), f"{path}.valueCodeableConcept.text")


def _map_variant(r: Json, rid: str, patient: str, components: list[Json],
                 comp_codings: list[list[tuple[str | None, str | None, str | None]]], ctx: _Context) -> Rows:
    parts: dict[str, tuple[Json, str]] = {}
    for i, (comp, codings) in enumerate(zip(components, comp_codings, strict=True)):
        for system, code, _ in codings:
            if code in _GENOMIC_PARTS and _system(system) == "LOINC":
                parts.setdefault(code, (comp, f"Observation.component[{i}]"))
                break

    def answer(code: str, prefer_code: bool) -> str | None:
        found = parts.get(code)
        return _part(found[0], found[1], prefer_code) if found else None

    row: Row = {"id": rid, "patient_id": patient}
    _put(row, "gene", answer(_GENE, False))
    _put(row, "hgvs", answer(_DNA_CHANGE, True) or answer(_AA_CHANGE, True))
    _put(row, "variant_id", answer(_VARIANT_ID, True))
    zyg = answer(_ZYGOSITY, False)
    _put(row, "zygosity", zyg.lower() if zyg else None)
    sig = answer(_SIGNIFICANCE, False)
    _put(row, "significance", sig.lower() if sig else None)
    recorded = _date(r.get("effectiveDateTime"), "Observation.effectiveDateTime", ctx, "genetic_variant",
                     "recorded_date")
    _put(row, "recorded_date",
         recorded or _date(r.get("issued"), "Observation.issued", ctx, "genetic_variant", "recorded_date"))
    return [("genetic_variant", row)]


_COMPONENT_PATHS = tuple(f"Observation.component[{i}]" for i in range(16))
_COMPONENT_CODE_PATHS = tuple(f"{p}.code" for p in _COMPONENT_PATHS)


def _map_observation(r: Json, rid: str, ctx: _Context) -> Rows:
    patient = _subject(r, "subject", "Observation", ctx.refs)
    codings = _codings(r.get("code"), "Observation.code")
    components = _arr(r.get("component"), "Observation.component")
    comp_codings = []
    genomic = _has_loinc(codings, _VARIANT_ASSESSMENT)
    for i, comp in enumerate(components):
        if not isinstance(comp, dict):
            raise _wrong(f"Observation.component[{i}]", "an object")
        cc = comp.get("code")
        cod = _codings(cc, f"Observation.component[{i}].code") if cc is not None else []
        comp_codings.append(cod)
        if not genomic and _has_loinc(cod, _GENE):
            genomic = True
    if genomic:
        return _map_variant(r, rid, patient, components, comp_codings, ctx)

    findings = ctx.findings
    mark = len(findings)
    base: Row = {"patient_id": patient}
    _put(base, "encounter_id", _encounter(r.get("encounter"), "Observation.encounter", ctx, "observation"))
    _put(base, "status", _str(r.get("status"), "Observation.status"))
    category = _arr(r.get("category"), "Observation.category")
    if category:
        _put(base, "category", _first_code(category[0], "Observation.category[0]"))
    effective = _datetime(r.get("effectiveDateTime"), "Observation.effectiveDateTime", ctx, "observation",
                          "effective_time")
    if effective is None and r.get("effectivePeriod") is not None:
        period = _obj(r["effectivePeriod"], "Observation.effectivePeriod")
        effective = _datetime(period.get("start") if period else None, "Observation.effectivePeriod.start", ctx,
                              "observation", "effective_time")
    if effective is None:
        effective = _datetime(r.get("effectiveInstant"), "Observation.effectiveInstant", ctx, "observation",
                              "effective_time")
    _put(base, "effective_time", effective)
    shared = len(findings) - mark  # flags of fields that every row of this resource shares

    rows: Rows = []
    # A panel (blood pressure 85354-9) carries its results in components; the panel code itself
    # holds no value, so it only becomes a row if it has a value of its own.
    if not components or _has_value(r):
        row = {"id": rid, **base}
        _set_concept(row, "observation", r.get("code"), "Observation.code", ctx, codings)
        _observed(r, "Observation", row, ctx)
        rows.append(("observation", row))
    for i, comp in enumerate(components):
        row = {"id": f"{rid}.{i}", **base}
        if i < 16:
            path, code_path = _COMPONENT_PATHS[i], _COMPONENT_CODE_PATHS[i]
        else:
            path = f"Observation.component[{i}]"
            code_path = f"{path}.code"
        _set_concept(row, "observation", comp.get("code"), code_path, ctx, comp_codings[i])
        _observed(comp, path, row, ctx)
        rows.append(("observation", row))
    if shared and len(rows) > 1:
        n = len(rows)
        findings[mark:mark + shared] = [(t, f, k, n) for t, f, k, _ in findings[mark:mark + shared]]
    return rows


# --- DocumentReference ---

_TEXTUAL = ("text/", "application/xhtml", "application/xml", "application/json", "application/fhir")


class _BinaryAttachment(Exception):
    """An attachment whose content type is not text (a PDF, an image): no note text in it."""


def _attachment_text(att: Json, path: str) -> str | None:
    ctype = _str(att.get("contentType"), f"{path}.contentType") or ""
    data = _str(att.get("data"), f"{path}.data")
    if not data:
        # Not an R4 element, but some exporters put plain text in the attachment.
        return _str(att.get("text"), f"{path}.text")
    mime, _, params = ctype.partition(";")
    if mime and not mime.strip().lower().startswith(_TEXTUAL):
        raise _BinaryAttachment
    charset = "utf-8-sig"
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip():
            charset = val.strip().strip('"')
    try:
        raw = base64.b64decode("".join(data.split()).encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise MappingError(Reason.BAD_VALUE, f"{path}.data is not valid base64") from None
    try:
        codecs.lookup(charset)
        return raw.decode(charset)
    except LookupError:
        raise MappingError(Reason.BAD_VALUE, f"{path}.contentType names an unknown charset") from None
    except UnicodeDecodeError:
        raise MappingError(Reason.BAD_VALUE, f"{path}.data is not text in its charset") from None


def _map_note(r: Json, rid: str, ctx: _Context) -> Rows:
    row: Row = {"id": rid, "patient_id": _subject(r, "subject", "DocumentReference", ctx.refs)}
    context = _obj(r.get("context"), "DocumentReference.context")
    if context is not None:
        enc = _elem(_arr(context.get("encounter"), "DocumentReference.context.encounter"),
                    "DocumentReference.context.encounter")
        _put(row, "encounter_id", _encounter(enc, "DocumentReference.context.encounter[0]", ctx, "note"))
    if r.get("type") is not None:
        _put(row, "note_type", _label(r["type"], "DocumentReference.type"))
    language = _str(r.get("language"), "DocumentReference.language")
    binary_only = False
    unreadable: MappingError | None = None
    # The first readable textual rendering is the note; a PDF or image next to it is not an error, and
    # an unreadable one (bad base64, unknown charset) is passed over for the next.
    for i, c in enumerate(_arr(r.get("content"), "DocumentReference.content")):
        path = f"DocumentReference.content[{i}]"
        content = _obj(c, path)
        att = _obj(content.get("attachment"), f"{path}.attachment") if content is not None else None
        if att is None:
            continue
        try:
            text = _attachment_text(att, f"{path}.attachment")
        except _BinaryAttachment:
            binary_only = True
            continue
        except MappingError as e:
            if e.reason is not Reason.BAD_VALUE:
                raise
            unreadable = unreadable or e
            continue
        if text:
            row["text"] = text
            language = _str(att.get("language"), f"{path}.attachment.language") or language
            break
    if "text" not in row:
        # note.text is required: without a readable text there is no note to keep.
        if unreadable is not None:
            raise unreadable
        if binary_only:
            raise MappingError(Reason.BAD_VALUE, "DocumentReference.content has no text attachment, only binary ones")
    elif unreadable is not None:
        ctx.flag("note", "text", FindingKind.BAD_VALUE)
    _put(row, "language", language)
    _put(row, "authored_time", _datetime(r.get("date"), "DocumentReference.date", ctx, "note", "authored_time"))
    author = _elem(_arr(r.get("author"), "DocumentReference.author"), "DocumentReference.author")
    if author is not None:
        who = _str(author.get("display"), "DocumentReference.author[0].display")
        if not who:
            ref = _str(author.get("reference"), "DocumentReference.author[0].reference")
            who = ref[9:] if ref and ref.startswith("urn:uuid:") else ref
        _put(row, "author", who)
    return [("note", row)]


# --- dispatch ---


class _Context:
    """What a mapper may consult beyond the resource (the bundle's reference map and medications), and
    where it notes the data-quality findings of the resource being mapped."""

    __slots__ = ("findings", "medications", "refs")

    def __init__(self, refs: Mapping[str, str] | None, medications: Mapping[str, Json] | None) -> None:
        self.refs = refs
        self.medications = medications
        self.findings: list[Flag] = []

    def flag(self, table: str, field: str, kind: FindingKind) -> None:
        """Note a finding about one row of the resource being mapped (recorded only if it is stored)."""
        self.findings.append((table, field, kind, 1))


_MAPPERS: dict[str, Callable[[Json, str, _Context], Rows]] = {
    "Patient": _map_patient,
    "Encounter": _map_encounter,
    "Condition": _map_condition,
    "MedicationRequest": _map_medication,
    "MedicationStatement": _map_medication,
    "MedicationAdministration": _map_medication,
    "Observation": _map_observation,
    "Procedure": _map_procedure,
    "AllergyIntolerance": _map_allergy,
    "DocumentReference": _map_note,
}
MAPPED_TYPES: frozenset[str] = frozenset(_MAPPERS)


def map_resource(
    resource: dict[str, Any],
    source: str,
    refs: dict[str, str] | None = None,
    *,
    full_url: str | None = None,
    medications: Mapping[str, dict[str, Any]] | None = None,
    findings: list[tuple[str, str, FindingKind, int]] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Map one FHIR R4 resource to (table, row) pairs; [] for R4 types the model does not hold.
    The data-quality findings of the rows, (table, field, kind, rows), are appended to `findings`."""
    # `source` names where the resource came from for the caller's records; rows carry the
    # connector name instead, as the catalogue's `source` field asks.
    if not isinstance(resource, dict):
        raise MappingError(Reason.WRONG_TYPE, "a FHIR resource must be a JSON object")
    rt = resource.get("resourceType")
    if rt is None:
        raise MappingError(Reason.PARSE_ERROR, "not a FHIR resource: no resourceType")
    if not isinstance(rt, str):
        raise _wrong("resourceType", "a string")
    mapper = _MAPPERS.get(rt)
    if mapper is None:
        _check_type(rt)
        return []
    ctx = _Context(refs, medications)
    rows = _map(resource, rt, mapper, full_url, ctx)
    if findings is not None:
        findings.extend(ctx.findings)
    return rows


def _map(resource: Json, rt: str, mapper: Callable[[Json, str, _Context], Rows], full_url: Any,
         ctx: _Context) -> Rows:
    """map_resource once the resource is known to be an object with a mapped resourceType; the
    resource's findings are left in ctx.findings (cleared first)."""
    if ctx.findings:
        ctx.findings.clear()
    try:
        if full_url is not None and not isinstance(full_url, str):
            raise _wrong("Bundle.entry.fullUrl", "a string")
        rid = _row_id(resource, rt, full_url)
        rows = mapper(resource, rid, ctx)
        for table, row in rows:
            complete(table, row, CONNECTOR)
        return rows
    except MappingError:
        raise
    except ValueFormatError:
        raise MappingError(Reason.BAD_DATE, f"{rt} has a malformed date or number") from None
    except Exception as e:
        # Any JSON can arrive here; a shape no check above anticipated must still end in quarantine.
        raise MappingError(Reason.WRONG_TYPE, f"{rt} has an unexpected structure ({type(e).__name__})") from None


# --- strict mode: the R4B resource models ---

_MODELS: dict[str, Any] = {}


def _loc(rt: str, loc: Iterable[Any]) -> str:
    out = rt
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and _ELEMENT_NAME.match(part):
            out += f".{part}"
        else:
            out += ".<element>"
    return out


def _validate_strict(resource: Json) -> None:
    """Validate a whole resource against its fhir.resources R4B model; INVALID_RESOURCE if it fails."""
    from pydantic import ValidationError  # only strict mode pays for pydantic

    rt: str = resource["resourceType"]
    model = _MODELS.get(rt)
    if model is None:
        from fhir.resources.R4B import get_fhir_model_class

        try:
            model = get_fhir_model_class(rt)
        except (ValueError, KeyError, AttributeError, ImportError):
            raise MappingError(Reason.INVALID_RESOURCE, "resourceType is not an R4B resource type") from None
        _MODELS[rt] = model
    try:
        model.model_validate(resource)
    except ValidationError as e:
        errors = e.errors(include_url=False, include_context=False, include_input=False)
        shown = "; ".join(f"{_loc(rt, err['loc'])}: {err['type']}" for err in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        raise MappingError(Reason.INVALID_RESOURCE, f"fails the R4B {rt} model: {shown}{more}") from None
    except Exception as e:
        raise MappingError(Reason.INVALID_RESOURCE, f"fails the R4B {rt} model ({type(e).__name__})") from None


# --- ingest ---


def _dumps(v: Any) -> bytes:
    try:
        return orjson.dumps(v, option=orjson.OPT_NON_STR_KEYS)
    except (TypeError, orjson.JSONEncodeError):
        return repr(v).encode("utf-8", "backslashreplace")


# The Medications of a whole batch's bulk-export files. A bulk export (FHIR Bulk Data) writes one NDJSON file per
# resource type, so an order's medicationReference points into another file, Medication.ndjson: the batch's
# ingest loads those files first (before its workers fork, which then share this index) and the mapping
# falls back on it when a file's own index has no such Medication.
_BATCH_MEDICATIONS: dict[str, Json] = {}
_MEDICATION_LINE = re.compile(rb'"resourceType"\s*:\s*"Medication"')


def preload_medications(paths: Iterable[Path]) -> int:
    """Index the Medication resources of those NDJSON files whose first resource is a Medication (the file of a
    bulk export that holds them), for the medicationReferences of every file of the batch; how many were
    indexed. A line that does not parse is left to the ingest itself, which quarantines it."""
    _BATCH_MEDICATIONS.clear()
    for path in paths:
        if not path.name.lower().endswith(_NDJSON_SUFFIXES):
            continue
        with _open_stream(path) as stream:
            try:
                lines = iter(stream)
                first = next((ln for ln, _ in zip(lines, range(200), strict=False) if ln.strip()), b"")
                if not _MEDICATION_LINE.search(first):
                    continue
                for line in (first, *lines):
                    if not _MEDICATION_LINE.search(line):
                        continue
                    try:
                        res = orjson.loads(line)
                    except orjson.JSONDecodeError:
                        continue
                    if isinstance(res, dict) and res.get("resourceType") == "Medication":
                        _index_medication(res, None, _BATCH_MEDICATIONS)
            except (OSError, EOFError, zlib.error) as e:
                raise SourceError(f"cannot read {path}: {type(e).__name__}") from None
    return len(_BATCH_MEDICATIONS)


def forget_medications() -> None:
    """Drop the batch's Medication index (the batch is done)."""
    _BATCH_MEDICATIONS.clear()


def _index_medication(res: Json, full_url: Any, medications: MedicationIndex) -> None:
    if isinstance(full_url, str) and full_url:
        medications[full_url] = res
    rid = res.get("id")
    if isinstance(rid, str) and rid:
        medications[f"Medication/{rid}"] = res


def _emit(sink: Sink, findings: list[Flag], source: str, position: str) -> None:
    """Record the findings of a unit whose rows were just added (and forget them)."""
    for table, field, kind, n in findings:
        sink.finding(Finding(CONNECTOR, source, position, table, field, kind), n)
    findings.clear()


def _ingest_resource(
    res: Any,
    source: str,
    sink: Sink,
    position: str,
    raw: Callable[[], bytes],
    strict: bool,
    refs: dict[str, str] | None = None,
    medications: MedicationIndex | None = None,
    full_url: str | None = None,
) -> None:
    """One input unit: rows (and their findings), a skip or a quarantine record, never an exception."""
    findings: list[Flag] = []
    try:
        rt = res.get("resourceType") if isinstance(res, dict) else None
        if isinstance(rt, str) and rt not in _MAPPERS:
            _check_type(rt)
            if rt == "Medication" and medications is not None:
                _index_medication(res, full_url, medications)
            sink.skip(rt)
            return
        rows = map_resource(res, source, refs, full_url=full_url, medications=medications, findings=findings)
        if strict:
            _validate_strict(res)
    except MappingError as e:
        sink.quarantine(Quarantined(CONNECTOR, source, position, e.reason, e.detail, raw()))
        return
    for table, row in rows:
        sink.add(table, row)
    if findings:
        _emit(sink, findings, source, position)


def _ingest_bundle(
    bundle: Json,
    source: str,
    sink: Sink,
    strict: bool,
    prefix: str,
    raw: Callable[[], bytes],
    medications: MedicationIndex,
) -> None:
    entries = bundle.get("entry")
    if entries is None or entries == []:
        # An empty bundle (a search with no hits) is valid; count it so every document is accounted.
        sink.skip("Bundle")
        return
    if not isinstance(entries, list):
        sink.quarantine(Quarantined(CONNECTOR, source, prefix.rstrip() or "document", Reason.WRONG_TYPE,
                                    "Bundle.entry must be an array", raw()))
        return
    # References may point forward, so the fullUrl -> id map is complete before any entry maps.
    refs: dict[str, str] = {}
    for e in entries:
        if not isinstance(e, dict):
            continue
        full_url, res = e.get("fullUrl"), e.get("resource")
        if not isinstance(res, dict):
            continue
        if res.get("resourceType") == "Medication":
            _index_medication(res, full_url, medications)
        if not isinstance(full_url, str) or not full_url:
            continue
        rid = res.get("id")
        if isinstance(rid, str) and rid:
            refs[full_url] = rid
        else:
            fid = full_url[9:] if full_url.startswith("urn:uuid:") else _last_id(full_url)
            if fid:
                refs[full_url] = fid
    ctx = _Context(refs, medications)
    mappers = _MAPPERS
    add = sink.add
    for n, e in enumerate(entries, 1):
        if not isinstance(e, dict):
            sink.quarantine(Quarantined(CONNECTOR, source, f"{prefix}entry {n}", Reason.WRONG_TYPE,
                                        "Bundle.entry must be an object", _dumps(e)))
            continue
        res = e.get("resource")
        if res is None:
            # A transaction DELETE or a history tombstone: valid, but nothing to hold.
            sink.skip("Bundle.entry without resource")
            continue
        full_url = e.get("fullUrl")
        if full_url is not None and not isinstance(full_url, str):
            sink.quarantine(Quarantined(CONNECTOR, source, f"{prefix}entry {n}", Reason.WRONG_TYPE,
                                        "Bundle.entry.fullUrl must be a string", _dumps(res)))
            continue
        rt = res.get("resourceType") if isinstance(res, dict) else None
        mapper = mappers.get(rt) if isinstance(rt, str) else None
        if mapper is None or strict:
            # Skips, malformed resources and strict mode: the general path.
            _ingest_resource(res, source, sink, f"{prefix}entry {n}", partial(_dumps, res), strict,
                             refs, medications, full_url)
            continue
        try:
            rows = _map(res, cast(str, rt), mapper, full_url, ctx)
        except MappingError as err:
            sink.quarantine(Quarantined(CONNECTOR, source, f"{prefix}entry {n}", err.reason, err.detail,
                                        _dumps(res)))
            continue
        for table, row in rows:
            add(table, row)
        if ctx.findings:
            _emit(sink, ctx.findings, source, f"{prefix}entry {n}")


def ingest_fhir_bundle(
    bundle: dict[str, Any],
    source: str,
    sink: Sink,
    *,
    strict: bool = False,
    medications: MedicationIndex | None = None,
) -> None:
    """Map every entry of a parsed Bundle; failing entries are quarantined alone ("entry N", from 1)."""
    meds: MedicationIndex = medications if medications is not None else {}
    _ingest_bundle(bundle, source, sink, strict, "", lambda: _dumps(bundle), meds)


def _parse_error(e: orjson.JSONDecodeError) -> str:
    return f"not well-formed JSON (line {e.lineno}, column {e.colno})"


_BOM = b"\xef\xbb\xbf"


def _finite_or_text(text: str) -> float | str:
    f = float(text)
    return f if math.isfinite(f) else text  # kept as its text, which the mapping flags as a bad number


def _no_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _loads(data: bytes | memoryview) -> Any:
    """orjson.loads; a document that orjson refuses only for a number beyond a double's range (1e400) is
    read by the standard library instead, that number kept as text (and later flagged), so that one
    malformed value does not cost the whole document."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        return _loads_again(data, e)


def _loads_again(data: bytes | memoryview, first: orjson.JSONDecodeError) -> Any:
    """_loads once orjson has refused the data: the standard library's reading, or `first` again."""
    if "infinity" not in str(first):
        raise first
    try:
        doc = json.loads(bytes(data), parse_float=_finite_or_text, parse_constant=_no_constant)
        orjson.dumps(doc)  # what orjson would have refused further on (a lone surrogate) is refused still
        return doc
    except (ValueError, TypeError, RecursionError, orjson.JSONEncodeError):
        raise first from None


def ingest_fhir_bytes(data: bytes, source: str, sink: Sink, *, strict: bool = False) -> None:
    """Ingest one JSON document: a Bundle of any type or a single resource (a UTF-8 BOM is allowed)."""
    try:
        # A Windows export may start with a byte-order mark, which JSON parsers refuse; no copy is made.
        doc = _loads(memoryview(data)[3:] if data[:3] == _BOM else data)
    except orjson.JSONDecodeError as e:
        sink.quarantine(Quarantined(CONNECTOR, source, "document", Reason.PARSE_ERROR, _parse_error(e),
                                    bytes(data)))
        return
    if isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        _ingest_bundle(doc, source, sink, strict, "", lambda: bytes(data), {})
    else:
        _ingest_resource(doc, source, sink, "document", lambda: bytes(data), strict)


def _open_stream(path: Path) -> IO[bytes]:
    try:
        if path.name.lower().endswith(".gz"):
            return cast(IO[bytes], gzip.open(path, "rb"))
        return path.open("rb")
    except OSError as e:
        raise SourceError(f"cannot open {path}: {e.strerror or type(e).__name__}") from None


def _ingest_lines(lines: Iterable[bytes | str], source: str, sink: Sink, strict: bool,
                  medications: MedicationIndex, first_line: int = 1) -> None:
    # `first_line`: the number of the first line given (a parallel ingest maps a file's later byte ranges).
    it = iter(lines)
    n = first_line - 1
    ctx = _Context(None, medications)
    mappers = _MAPPERS
    add = sink.add
    loads = orjson.loads
    while True:
        try:
            line = next(it)
        except StopIteration:
            break
        except (OSError, EOFError, zlib.error) as e:
            # Truncated gzip or a failing disk: what was read so far is ingested, the rest is not.
            raise SourceError(f"{source}: cannot read past line {n} ({type(e).__name__})") from None
        n += 1
        # bytes are immutable: an exact bytes line is used as it is, anything else is copied.
        raw = (line if type(line) is bytes
               else line.encode("utf-8", "surrogatepass") if isinstance(line, str) else bytes(line))
        raw = raw.rstrip(b"\r\n")
        if n == 1 and raw[:3] == _BOM:
            raw = raw[3:]
        if not raw or raw.isspace():
            continue
        try:
            try:
                res = loads(raw)
            except orjson.JSONDecodeError as first:
                res = _loads_again(raw, first)
        except orjson.JSONDecodeError as e:
            sink.quarantine(Quarantined(CONNECTOR, source, f"line {n}", Reason.PARSE_ERROR,
                                        _parse_error(e), raw))
            continue
        rt = res.get("resourceType") if type(res) is dict else None
        mapper = mappers.get(rt) if type(rt) is str else None
        if mapper is not None and not strict:
            try:
                rows = _map(res, cast(str, rt), mapper, None, ctx)
            except MappingError as err:
                sink.quarantine(Quarantined(CONNECTOR, source, f"line {n}", err.reason, err.detail, raw))
                continue
            for table, row in rows:
                add(table, row)
            if ctx.findings:
                _emit(sink, ctx.findings, source, f"line {n}")
        elif isinstance(res, dict) and res.get("resourceType") == "Bundle":
            _ingest_bundle(res, source, sink, strict, f"line {n} ", partial(bytes, raw), medications)
        else:
            _ingest_resource(res, source, sink, f"line {n}", partial(bytes, raw), strict, None, medications)


def ingest_fhir_ndjson(
    path_or_stream: str | Path | IO[bytes] | Iterable[bytes | str],
    source: str,
    sink: Sink,
    *,
    strict: bool = False,
    medications: MedicationIndex | None = None,
) -> None:
    """Stream bulk-export NDJSON (plain or .gz) line by line; a bad line is quarantined as "line N"."""
    # Passing one `medications` dict across the files of one export resolves medicationReferences
    # whose Medication came in an earlier file.
    meds: MedicationIndex = medications if medications is not None else {}
    if isinstance(path_or_stream, str | Path):
        with _open_stream(Path(path_or_stream)) as stream:
            _ingest_lines(stream, source, sink, strict, meds)
    else:
        _ingest_lines(path_or_stream, source, sink, strict, meds)


_NDJSON_SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")
_JSON_SUFFIXES = (".json", ".json.gz")


def ingest_fhir_file(path: Path, sink: Sink, *, strict: bool = False) -> None:
    """Ingest a .json (Bundle or resource) or .ndjson/.ndjson.gz/.jsonl (bulk export) file."""
    path = Path(path)
    name = path.name.lower()
    source = str(path)
    if name.endswith(_NDJSON_SUFFIXES):
        ingest_fhir_ndjson(path, source, sink, strict=strict)
        return
    if not name.endswith(_JSON_SUFFIXES):
        raise SourceError(f"{path}: unsupported file type (expected .json, .ndjson, .ndjson.gz or .jsonl)")
    try:
        with _open_stream(path) as stream:
            data = stream.read()
    except (OSError, EOFError, zlib.error) as e:
        raise SourceError(f"cannot read {path}: {type(e).__name__}") from None
    ingest_fhir_bytes(data, source, sink, strict=strict)
