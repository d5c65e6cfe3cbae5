"""ODRL 2.2 profile of a contract: write and read.

The contract profile (``urn:medspace:odrl:v1``) uses the W3C ODRL 2.2 Information Model and Vocabulary
(Recommendation, 15 February 2018) in its JSON-LD serialisation. A contract is one ``Agreement`` in the compact
form the Dataspace Protocol 2025-1 asks of agreements (``target``, ``assigner`` and ``assignee`` on the policy, none
on its rules)::

    {"@context": ["http://www.w3.org/ns/odrl.jsonld", {"medspace": "urn:medspace:odrl:", "obo": ..., ...}],
     "@type": "Agreement", "uid": "urn:medspace:contract:<uid>", "profile": "urn:medspace:odrl:v1",
     "dct:issued": {"@value": <xsd:dateTime>, "@type": "xsd:dateTime"},
     "medspace:application": <application id>, "medspace:status": "active" | "revoked" | "terminated",
     ["medspace:statusTime": ..., "medspace:statusReason": ...]
     "target": {"@type": "AssetCollection", "source": "urn:medspace:dataset:<hospital>",
                "refinement": [{"leftOperand": "medspace:field", "operator": "isAnyOf", "rightOperand": [..]},
                               {"leftOperand": "medspace:category", "operator": "isAnyOf", "rightOperand": [..]}]},
     "assigner": "urn:medspace:party:<hospital>", "assignee": "urn:medspace:party:<applicant>",
     "permission": [{"action": "medspace:<operation>",            one permission per operation, alike otherwise
                     "constraint": [purpose eq hl7pou:<PurposeOfUse>, purpose isAllOf [obo:DUO_...],
                                    (medspace:disease eq <ICD-10:.. | MONDO:..>,)
                                    recipient isAnyOf [<assignee and recipients>],
                                    dateTime gteq <start>, dateTime lt <end>, spatial eq iso3166:<region>,
                                    medspace:cellSize gteq <minimum cell size>],
                     "duty": [{"action": "medspace:log"},
                              {"action": "delete", "constraint": [elapsedTime lteq P<n>D]}]}],
     "prohibition": [{"action": "distribute"}]}

Profile terms: actions ``medspace:<operation>`` (one per registered operation, each included in ``odrl:use``) and
``medspace:log`` (record every exercise of the permission in the audit log); left operands ``medspace:field``
(a catalogue field, ``table.field``), ``medspace:category`` (an L1 category), ``medspace:disease`` (the DS disease)
and ``medspace:cellSize`` (the smallest count a released cell may have). The ``delete`` duty applies to the results
of the permitted actions: they are deleted at most ``n`` days after release. ``spatial`` is where results go.
:func:`from_odrl` (and so :meth:`Contract.from_odrl`) reads any order of permissions, constraints and list items, and
refuses anything outside the profile, naming the JSON path. Two spellings differ from the DSP 2025-1 JSON schema for
agreements: the policy id is ODRL's ``uid`` (the ODRL context makes it an alias of ``@id``, which the DSP schema
spells out), and ``target`` is an ODRL AssetCollection with a refinement (the DSP schema has a plain dataset IRI,
which is its ``source`` here); a DSP wire binding maps these two.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from medspace.policy.contract import DATASET_IRI, OPERATIONS, Contract, format_time, parse_time
from medspace.policy.errors import ContractError

ODRL_CONTEXT = "http://www.w3.org/ns/odrl.jsonld"
PROFILE = "urn:medspace:odrl:v1"
NS = "urn:medspace:odrl:"
CONTEXT: list[Any] = [
    ODRL_CONTEXT,
    {
        "medspace": NS,
        "obo": "http://purl.obolibrary.org/obo/",
        "hl7pou": "http://terminology.hl7.org/CodeSystem/v3-ActReason#",
        "iso3166": "https://www.iso.org/obp/ui/#iso:code:3166:",
    },
]
CONTRACT_IRI = "urn:medspace:contract:"
PARTY_IRI = "urn:medspace:party:"

_DURATION = re.compile(r"P([1-9]\d{0,3})D")


def to_odrl(contract: Contract) -> dict[str, Any]:
    """The contract as an ODRL 2.2 Agreement in JSON-LD (the profile of the module docstring)."""
    constraints: list[dict[str, Any]] = [
        _c("purpose", "eq", {"@id": f"hl7pou:{contract.purpose.value}"}),
        _c("purpose", "isAllOf", [{"@id": "obo:" + d.replace(":", "_")} for d in contract.duo]),
    ]
    if contract.disease is not None:
        constraints.append(_c("medspace:disease", "eq", contract.disease))
    constraints += [
        _c("recipient", "isAnyOf", [{"@id": PARTY_IRI + p} for p in contract.parties]),
        _c("dateTime", "gteq", {"@value": format_time(contract.start), "@type": "xsd:dateTime"}),
        _c("dateTime", "lt", {"@value": format_time(contract.end), "@type": "xsd:dateTime"}),
        _c("spatial", "eq", {"@id": f"iso3166:{contract.region}"}),
        _c("medspace:cellSize", "gteq", contract.min_cell_size),
    ]
    duties = [
        {"action": "medspace:log"},
        {"action": "delete", "constraint": [
            _c("elapsedTime", "lteq", {"@value": f"P{contract.delete_after_days}D", "@type": "xsd:duration"})]},
    ]
    refinement = [_c("medspace:field", "isAnyOf", list(contract.fields))]
    if contract.categories:
        refinement.append(_c("medspace:category", "isAnyOf", list(contract.categories)))
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "Agreement",
        "uid": CONTRACT_IRI + contract.uid,
        "profile": PROFILE,
        "dct:issued": {"@value": format_time(contract.issued), "@type": "xsd:dateTime"},
        "medspace:application": contract.application,
        "medspace:status": contract.status.value,
    }
    if contract.status_time is not None:
        doc["medspace:statusTime"] = {"@value": format_time(contract.status_time), "@type": "xsd:dateTime"}
        doc["medspace:statusReason"] = contract.status_reason
    doc.update({
        "target": {"@type": "AssetCollection", "source": contract.target, "refinement": refinement},
        "assigner": PARTY_IRI + contract.assigner,
        "assignee": PARTY_IRI + contract.assignee,
        # fresh copies per permission: a caller editing one must not edit them all
        "permission": [{"action": f"medspace:{op}", "constraint": copy.deepcopy(constraints),
                        "duty": copy.deepcopy(duties)} for op in contract.operations],
        "prohibition": [{"action": "distribute"}],
    })
    return doc


def from_odrl(doc: object) -> Contract:
    """A contract from an ODRL Agreement of the profile; anything outside it is refused, naming the JSON path."""
    return _OdrlReader().read(doc)


def _c(left: str, op: str, right: object) -> dict[str, Any]:
    return {"leftOperand": left, "operator": op, "rightOperand": right}


class _OdrlReader:
    """Reads one Agreement of the profile; order-insensitive, otherwise strict."""

    def fail(self, path: str, msg: str) -> ContractError:
        """An error naming the JSON path."""
        return ContractError(f"odrl {path}: {msg}")

    def obj(self, path: str, value: object, required: set[str], optional: frozenset[str] = frozenset()
            ) -> dict[str, Any]:
        """A JSON object with the `required` keys and no keys outside `optional`."""
        if not isinstance(value, dict):
            raise self.fail(path, "must be a JSON object")
        missing = sorted(required - set(value))
        if missing:
            raise self.fail(path, f"missing {missing[0]!r}")
        unknown = sorted(set(value) - required - optional)
        if unknown:
            raise self.fail(path, f"{unknown[0]!r} is not part of the medspace profile")
        return value

    def lst(self, path: str, value: object) -> list[Any]:
        """A non-empty JSON list."""
        if not isinstance(value, list) or not value:
            raise self.fail(path, "must be a non-empty list")
        return value

    def iri(self, path: str, value: object, prefix: str) -> str:
        """The local part of an IRI (bare or as {"@id": ...}) under `prefix`."""
        if isinstance(value, dict):
            value = self.obj(path, value, {"@id"})["@id"]
        if not isinstance(value, str) or not value.startswith(prefix) or len(value) == len(prefix):
            raise self.fail(path, f"must be an IRI starting {prefix}")
        return value[len(prefix):]

    def typed(self, path: str, value: object, datatype: str) -> str:
        """The lexical form of a {"@value", "@type"} literal of `datatype`."""
        v = self.obj(path, value, {"@value", "@type"})
        if v["@type"] != datatype or not isinstance(v["@value"], str):
            raise self.fail(path, f"must be an {datatype} value")
        return v["@value"]

    def constraints(self, path: str, value: object) -> dict[tuple[str, str], tuple[str, Any]]:
        """Atomic constraints keyed by (leftOperand, operator), each with its path and rightOperand."""
        out: dict[tuple[str, str], tuple[str, Any]] = {}
        for i, c in enumerate(self.lst(path, value)):
            p = f"{path}[{i}]"
            c = self.obj(p, c, {"leftOperand", "operator", "rightOperand"})
            key = (c["leftOperand"], c["operator"])
            if not all(isinstance(k, str) for k in key):
                raise self.fail(p, "leftOperand and operator must be strings")
            if key in out:
                raise self.fail(p, f"{key[0]} {key[1]} appears twice")
            out[key] = (p, c["rightOperand"])
        return out

    def read(self, doc: object) -> Contract:
        """The contract of an Agreement document."""
        top = self.obj("$", doc, {"@context", "@type", "uid", "profile", "dct:issued", "medspace:application",
                                  "medspace:status", "target", "assigner", "assignee", "permission", "prohibition"},
                       frozenset({"medspace:statusTime", "medspace:statusReason"}))
        if top["@context"] != CONTEXT:
            raise self.fail("$.@context", f"must be the ODRL context {ODRL_CONTEXT} with the medspace prefixes")
        if top["@type"] != "Agreement":
            raise self.fail("$.@type", "must be Agreement")
        if top["profile"] != PROFILE:
            raise self.fail("$.profile", f"must be {PROFILE}")
        args: dict[str, Any] = {
            "uid": self.iri("$.uid", top["uid"], CONTRACT_IRI),
            "issued": parse_time("$.dct:issued", self.typed("$.dct:issued", top["dct:issued"], "xsd:dateTime")),
            "application": top["medspace:application"],
            "status": top["medspace:status"],
            "assigner": self.iri("$.assigner", top["assigner"], PARTY_IRI),
            "assignee": self.iri("$.assignee", top["assignee"], PARTY_IRI),
        }
        if "medspace:statusTime" in top:
            args["status_time"] = parse_time("$.medspace:statusTime", self.typed(
                "$.medspace:statusTime", top["medspace:statusTime"], "xsd:dateTime"))
        if "medspace:statusReason" in top:
            args["status_reason"] = top["medspace:statusReason"]
        target = self.obj("$.target", top["target"], {"@type", "source", "refinement"})
        if target["@type"] != "AssetCollection":
            raise self.fail("$.target.@type", "must be AssetCollection")
        if target["source"] != DATASET_IRI + args["assigner"]:
            raise self.fail("$.target.source", "must be the assigner's dataset, "
                                               f"{DATASET_IRI}{args['assigner']}")
        ref = self.constraints("$.target.refinement", target["refinement"])
        extra = sorted(set(ref) - {("medspace:field", "isAnyOf"), ("medspace:category", "isAnyOf")})
        if extra:
            raise self.fail(ref[extra[0]][0], f"{extra[0][0]} {extra[0][1]} is not a refinement of the profile")
        if ("medspace:field", "isAnyOf") not in ref:
            raise self.fail("$.target.refinement", "needs medspace:field isAnyOf")
        args["fields"] = self.strings(*ref[("medspace:field", "isAnyOf")])
        if ("medspace:category", "isAnyOf") in ref:
            args["categories"] = self.strings(*ref[("medspace:category", "isAnyOf")])
        prohibitions = self.lst("$.prohibition", top["prohibition"])
        if prohibitions != [{"action": "distribute"}]:
            raise self.fail("$.prohibition", 'must be [{"action": "distribute"}]')
        ops: list[str] = []
        common: tuple[dict[str, Any], Any] | None = None
        for i, perm in enumerate(self.lst("$.permission", top["permission"])):
            p = f"$.permission[{i}]"
            perm = self.obj(p, perm, {"action", "constraint", "duty"})
            action = perm["action"]
            if not isinstance(action, str) or not action.startswith("medspace:") or action[9:] not in OPERATIONS:
                raise self.fail(f"{p}.action", "must be medspace:<registered operation>")
            ops.append(action[9:])
            terms = self.terms(p, perm["constraint"]), self.duties(p, perm["duty"])
            if common is None:
                common = terms
            elif terms != common:
                raise self.fail(p, "constraints and duties differ from permission[0]; the profile puts the same "
                                   "ones on every operation")
        assert common is not None  # lst() refuses an empty list
        args.update(common[0])
        _split_parties(args)
        args["delete_after_days"] = common[1]
        args["operations"] = ops
        return Contract(**args)

    def strings(self, path: str, value: object) -> list[str]:
        """A non-empty list of strings."""
        items = self.lst(path, value)
        if not all(isinstance(x, str) for x in items):
            raise self.fail(path, "must be a list of strings")
        return items

    def terms(self, p: str, value: object) -> dict[str, Any]:
        """The contract terms of one permission's constraints."""
        cs = self.constraints(f"{p}.constraint", value)
        known = {("purpose", "eq"), ("purpose", "isAllOf"), ("medspace:disease", "eq"), ("recipient", "isAnyOf"),
                 ("dateTime", "gteq"), ("dateTime", "lt"), ("spatial", "eq"), ("medspace:cellSize", "gteq")}
        for key, (path, _) in cs.items():
            if key not in known:
                raise self.fail(path, f"{key[0]} {key[1]} is not a constraint of the profile")
        for key in known - {("medspace:disease", "eq")}:
            if key not in cs:
                raise self.fail(f"{p}.constraint", f"needs {key[0]} {key[1]}")
        out: dict[str, Any] = {}
        path, v = cs[("purpose", "eq")]
        out["purpose"] = self.iri(path, v, "hl7pou:")
        path, v = cs[("purpose", "isAllOf")]
        duo = [self.iri(f"{path}[{i}]", d, "obo:DUO_") for i, d in enumerate(self.lst(path, v))]
        out["duo"] = [f"DUO:{d}" for d in duo]
        if ("medspace:disease", "eq") in cs:
            out["disease"] = cs[("medspace:disease", "eq")][1]
        path, v = cs[("recipient", "isAnyOf")]
        parties = [self.iri(f"{path}[{i}]", x, PARTY_IRI) for i, x in enumerate(self.lst(path, v))]
        out["parties"] = sorted(parties)
        path, v = cs[("dateTime", "gteq")]
        out["start"] = parse_time(path, self.typed(path, v, "xsd:dateTime"))
        path, v = cs[("dateTime", "lt")]
        out["end"] = parse_time(path, self.typed(path, v, "xsd:dateTime"))
        path, v = cs[("spatial", "eq")]
        out["region"] = self.iri(path, v, "iso3166:")
        path, v = cs[("medspace:cellSize", "gteq")]
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(path, "must be a whole number")
        out["min_cell_size"] = v
        return out

    def duties(self, p: str, value: object) -> int:
        """The retention in days of one permission's duties (log and delete)."""
        duties = self.lst(f"{p}.duty", value)
        days: int | None = None
        logged = False
        for i, d in enumerate(duties):
            path = f"{p}.duty[{i}]"
            if d == {"action": "medspace:log"} and not logged:
                logged = True
                continue
            d = self.obj(path, d, {"action", "constraint"})
            cs = self.constraints(f"{path}.constraint", d["constraint"])
            if d["action"] != "delete" or days is not None or set(cs) != {("elapsedTime", "lteq")}:
                raise self.fail(path, "the profile's duties are medspace:log and delete with elapsedTime lteq")
            cpath, v = cs[("elapsedTime", "lteq")]
            m = _DURATION.fullmatch(self.typed(cpath, v, "xsd:duration"))
            if not m:
                raise self.fail(cpath, "must be a duration in days, P<n>D")
            days = int(m.group(1))
        if not logged or days is None:
            raise self.fail(f"{p}.duty", "needs both duties: medspace:log and delete")
        return days


def _split_parties(args: dict[str, Any]) -> None:
    parties = args.pop("parties")
    if args["assignee"] not in parties:
        raise ContractError("odrl recipient: the assignee must be among the recipients of results")
    args["recipients"] = [p for p in parties if p != args["assignee"]]
