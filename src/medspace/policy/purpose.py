"""Purposes of use (HL7 v3 PurposeOfUse) and data-use terms (GA4GH Data Use Ontology), and which go together.

Purposes are the HL7 v3 PurposeOfUse codes of :class:`medspace.ledger.entry.Purpose` (code system
``http://terminology.hl7.org/CodeSystem/v3-ActReason``), re-exported here so the policy layer has one import.

Data-use terms are those of the GA4GH Data Use Ontology (DUO), release 2021-02-23
(``http://purl.obolibrary.org/obo/duo/releases/2021-02-23/duo.owl``; ids, shorthands and labels checked against
EBISPOT/DUO ``duo.csv``). DUO has two kinds of term: a *data use permission* (GRU, HMB, DS, POA, NRES) says what
the data may be used for, a *data use modifier* (NCU, PUB, IRB, GS, ...) adds a condition. Clinical care use
(DUO:0000043 CC) is a modifier in DUO; medspace uses it to mark a clinical (not research) data use.

A data use (:func:`check_data_use`) is at most one permission plus modifiers, with a disease for DS. Which
purposes go with which data use (:func:`check_compatible`):

- research purposes (HRESCH, CLINTRCH) need a research permission: GRU, HMB, DS or (HRESCH only) POA, or NRES;
- public health (PUBHLTH) needs GRU, HMB, DS or NRES;
- clinical purposes (TREAT, ETREAT, BTG, CAREMGT) need CC and no research permission other than NRES;
- every other purpose has no data use in DUO and cannot be the purpose of an application or contract.

Each refusal is a :class:`ContractError` naming the rule (``duo.known``, ``duo.one-permission``, ``duo.ds-disease``,
``duo.conflict``, ``duo.purpose``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from medspace.ledger.entry import Purpose
from medspace.policy.errors import ContractError

__all__ = [
    "CLINICAL_PURPOSES",
    "DUO",
    "DUO_IRI",
    "DUO_RELEASE",
    "PUBLIC_HEALTH_PURPOSES",
    "PURPOSE_SYSTEM",
    "RESEARCH_PURPOSES",
    "DuoKind",
    "DuoTerm",
    "Purpose",
    "check_compatible",
    "check_data_use",
    "check_disease",
    "parse_purpose",
]

DUO_RELEASE = "2021-02-23"
DUO_IRI = "http://purl.obolibrary.org/obo/DUO_"  # DUO:0000042 is http://purl.obolibrary.org/obo/DUO_0000042
PURPOSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActReason"  # the code system of PurposeOfUse codes

RESEARCH_PURPOSES = frozenset({Purpose.HRESCH, Purpose.CLINTRCH})
PUBLIC_HEALTH_PURPOSES = frozenset({Purpose.PUBHLTH})
CLINICAL_PURPOSES = frozenset({Purpose.TREAT, Purpose.ETREAT, Purpose.BTG, Purpose.CAREMGT})


class DuoKind(StrEnum):
    """The two kinds of DUO term."""

    PERMISSION = "permission"  # DUO:0000001 data use permission
    MODIFIER = "modifier"  # DUO:0000017 data use modifier


@dataclass(frozen=True)
class DuoTerm:
    """One DUO term: its CURIE, shorthand, label and kind."""

    id: str
    shorthand: str
    label: str
    kind: DuoKind


_P, _M = DuoKind.PERMISSION, DuoKind.MODIFIER
DUO: dict[str, DuoTerm] = {
    t.id: t
    for t in (
        DuoTerm("DUO:0000004", "NRES", "no restriction", _P),
        DuoTerm("DUO:0000042", "GRU", "general research use", _P),
        DuoTerm("DUO:0000006", "HMB", "health or medical or biomedical research", _P),
        DuoTerm("DUO:0000007", "DS", "disease specific research", _P),
        DuoTerm("DUO:0000011", "POA", "population origins or ancestry research only", _P),
        DuoTerm("DUO:0000043", "CC", "clinical care use", _M),
        DuoTerm("DUO:0000012", "RS", "research specific restrictions", _M),
        DuoTerm("DUO:0000015", "NMDS", "no general methods research", _M),
        DuoTerm("DUO:0000016", "GSO", "genetic studies only", _M),
        DuoTerm("DUO:0000018", "NPUNCU", "not for profit, non commercial use only", _M),
        DuoTerm("DUO:0000019", "PUB", "publication required", _M),
        DuoTerm("DUO:0000020", "COL", "collaboration required", _M),
        DuoTerm("DUO:0000021", "IRB", "ethics approval required", _M),
        DuoTerm("DUO:0000022", "GS", "geographical restriction", _M),
        DuoTerm("DUO:0000024", "MOR", "publication moratorium", _M),
        DuoTerm("DUO:0000025", "TS", "time limit on use", _M),
        DuoTerm("DUO:0000026", "US", "user specific restriction", _M),
        DuoTerm("DUO:0000027", "PS", "project specific restriction", _M),
        DuoTerm("DUO:0000028", "IS", "institution specific restriction", _M),
        DuoTerm("DUO:0000029", "RTN", "return to database or resource", _M),
        DuoTerm("DUO:0000044", "NPOA", "population origins or ancestry research prohibited", _M),
        DuoTerm("DUO:0000045", "NPU", "not for profit organisation use only", _M),
        DuoTerm("DUO:0000046", "NCU", "non-commercial use only", _M),
    )
}
_BY_SHORTHAND = {t.shorthand: t.id for t in DUO.values()}
NRES, GRU, HMB, DS, POA, CC = (_BY_SHORTHAND[s] for s in ("NRES", "GRU", "HMB", "DS", "POA", "CC"))

# purpose -> the permissions it may go with (None: a clinical purpose, which needs CC instead)
_PERMISSIONS_FOR: dict[Purpose, frozenset[str] | None] = {
    Purpose.HRESCH: frozenset({GRU, HMB, DS, POA, NRES}),
    Purpose.CLINTRCH: frozenset({GRU, HMB, DS, NRES}),  # a trial is not population-origins research
    Purpose.PUBHLTH: frozenset({GRU, HMB, DS, NRES}),
    **dict.fromkeys(CLINICAL_PURPOSES, None),
}
# Pairs that contradict each other.
_CONFLICTS = (
    (POA, _BY_SHORTHAND["NPOA"]),
    (_BY_SHORTHAND["NPU"], _BY_SHORTHAND["NPUNCU"]),  # NPUNCU already implies NPU; both is a typing slip
)
# DS takes a disease: an ICD-10 category or subcategory, or a MONDO id (DUO recommends MONDO).
_DISEASE = re.compile(r"ICD-10:[A-Z]\d\d(?:\.\d{1,2})?|MONDO:\d{7}")


def parse_purpose(value: object) -> Purpose:
    """A Purpose from itself or its code, or ContractError naming the known codes."""
    if isinstance(value, Purpose):
        return value
    if isinstance(value, str) and value in Purpose._value2member_map_:
        return Purpose(value)
    raise ContractError(f"purpose {value!r} is not an HL7 PurposeOfUse code medspace knows "
                        f"({', '.join(p.value for p in Purpose)})")


def check_disease(disease: object) -> str:
    """A disease code for DUO:0000007 (``ICD-10:E11``, ``ICD-10:C50.9``, ``MONDO:0005148``), or ContractError."""
    if not isinstance(disease, str) or not _DISEASE.fullmatch(disease):
        raise ContractError("duo.ds-disease: the disease must be an ICD-10 code (ICD-10:E11) or a MONDO id "
                            "(MONDO:0005148)")
    return disease


def check_data_use(codes: Iterable[object], disease: object = None) -> tuple[str, ...]:
    """Validate a data use (at most one DUO permission plus modifiers, a disease with DS); sorted unique codes."""
    if isinstance(codes, str):
        raise ContractError("duo: give a list of DUO codes, not one string")
    out: list[str] = []
    for code in codes:
        if not isinstance(code, str) or code not in DUO:
            raise ContractError(f"duo.known: {code!r} is not a DUO term medspace knows (DUO release {DUO_RELEASE})")
        if code in out:
            raise ContractError(f"duo.known: {code} is listed twice")
        out.append(code)
    if not out:
        raise ContractError("duo.one-permission: a data use needs a DUO permission (GRU, HMB, DS, POA, NRES) or CC")
    permissions = [c for c in out if DUO[c].kind is DuoKind.PERMISSION]
    if len(permissions) > 1:
        names = ", ".join(f"{c} {DUO[c].shorthand}" for c in permissions)
        raise ContractError(f"duo.one-permission: a data use has one DUO permission, this one has {names}")
    if not permissions and CC not in out:
        raise ContractError("duo.one-permission: a data use needs a DUO permission (GRU, HMB, DS, POA, NRES) or CC")
    if DS in out:
        if disease is None:
            raise ContractError(f"duo.ds-disease: {DS} DS (disease specific research) needs a disease code")
        check_disease(disease)
    elif disease is not None:
        raise ContractError(f"duo.ds-disease: a disease is given only with {DS} DS (disease specific research)")
    for a, b in _CONFLICTS:
        if a in out and b in out:
            raise ContractError(f"duo.conflict: {a} {DUO[a].shorthand} and {b} {DUO[b].shorthand} "
                                "cannot both apply")
    return tuple(sorted(out))


def check_compatible(purpose: object, codes: Iterable[object],
                     disease: object = None) -> tuple[Purpose, tuple[str, ...]]:
    """Check that a purpose goes with a data use (module docstring); the parsed purpose and sorted codes."""
    p = parse_purpose(purpose)
    duo = check_data_use(codes, disease)
    if p not in _PERMISSIONS_FOR:
        raise ContractError(f"duo.purpose: purpose {p.value} has no data use in DUO; applications and contracts "
                            f"are for {', '.join(sorted(q.value for q in _PERMISSIONS_FOR))}")
    allowed = _PERMISSIONS_FOR[p]
    permission = next((c for c in duo if DUO[c].kind is DuoKind.PERMISSION), None)
    if allowed is None:  # clinical
        if CC not in duo:
            raise ContractError(f"duo.purpose: purpose {p.value} is clinical care and needs {CC} CC "
                                "(clinical care use)")
        if permission is not None and permission != NRES:
            raise ContractError(f"duo.purpose: purpose {p.value} is clinical care; {permission} "
                                f"{DUO[permission].shorthand} is a research permission")
        return p, duo
    if permission is None or permission not in allowed:
        have = f"{permission} {DUO[permission].shorthand}" if permission else "no DUO permission"
        want = ", ".join(f"{c} {DUO[c].shorthand}" for c in sorted(allowed))
        raise ContractError(f"duo.purpose: purpose {p.value} needs one of {want}; the data use has {have}")
    return p, duo
