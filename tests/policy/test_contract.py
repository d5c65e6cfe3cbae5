"""Applications, approvals and contracts: refused when invalid, ODRL 2.2 shape and round trip, permits()."""

import copy
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.model.catalogue import PHI, TABLES
from medspace.policy.contract import (
    DEFAULT_MIN_CELL_SIZE,
    ID_FIELDS,
    L1_CATEGORIES,
    OPERATIONS,
    REGIONS,
    Application,
    Approval,
    Contract,
    ContractStatus,
    OperationKind,
    Outcome,
    Restrictions,
    TaskRequest,
)
from medspace.policy.errors import ContractError
from medspace.policy.purpose import Purpose

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DATA = Path(__file__).parent / "data"


def application(**kw: Any) -> Application:
    base: dict[str, Any] = dict(
        id="a-7", applicant="dr-chen@uni", purpose="HRESCH", duo=["DUO:0000006", "DUO:0000046"],
        fields=["condition.code", "patient.sex", "observation.value_num"], operations=["count", "mean", "glm"],
        start=T0, end=T0 + timedelta(days=365), region="DE", hospitals=["h1", "h2"], categories=["hiv"],
        recipients=["stats@uni"],
    )
    base.update(kw)
    return Application(**base)


def contract(**kw: Any) -> Contract:
    app = application()
    ok = Approval(application="a-7", hospital="h1", steward="steward@h1", outcome="approve", at=T0)
    return replace(Contract.from_application(app, ok, uid="c-12", issued=T0), **kw)


def task(**kw: Any) -> TaskRequest:
    base: dict[str, Any] = dict(contract="c-12", requester="dr-chen@uni", purpose="HRESCH", operation="count",
                                fields=["condition.code", "patient.sex"], hospital="h1", destination="DE",
                                categories=["hiv"])
    base.update(kw)
    return TaskRequest(**base)


# --- construction -------------------------------------------------------------------------------------------------


def test_application_normalises_and_round_trips() -> None:
    app = application(fields=["patient.sex", "condition.code"], start=datetime(2026, 1, 1, 8, tzinfo=timezone(
        timedelta(hours=8))))
    assert app.fields == ("condition.code", "patient.sex")
    assert app.start == T0 and app.start.tzinfo is UTC
    assert app.purpose is Purpose.HRESCH
    data = json.loads(json.dumps(app.to_dict()))
    assert Application.from_dict(data) == app
    with pytest.raises(ContractError, match="unknown key 'title'"):
        Application.from_dict({**data, "title": "x"})
    del data["region"]
    with pytest.raises(ContractError, match="missing key 'region'"):
        Application.from_dict(data)


@pytest.mark.parametrize(("change", "message"), [
    (dict(fields=["condition.nonexistent"]), "fields: 'condition.nonexistent' is not a field of the catalogue"),
    (dict(fields=["patient.family_name"]), "fields: patient.family_name is a direct identifier"),
    (dict(fields=[]), "fields: at least one field"),
    (dict(fields=["condition.code", "condition.code"]), "fields: lists an item twice"),
    (dict(fields=["genetic_variant.gene"]), "categories: fields of genetic_variant are L1 genetics"),
    (dict(categories=["cancer"]), "categories: 'cancer' is not an L1 category"),
    (dict(operations=["export"]), "operations: 'export' is not a registered operation"),
    (dict(operations=["lookup"]), "operations: lookup releases a per-patient record"),
    (dict(end=T0), "end: must be after start"),
    (dict(end=T0 + timedelta(days=5 * 366)), "end: the period may last at most five years"),
    (dict(start=datetime(2026, 1, 1)), "start: must be a timezone-aware datetime"),
    (dict(region="XX"), "region: must be an ISO 3166-1 alpha-2"),
    (dict(region="de"), "region: must be an ISO 3166-1 alpha-2"),
    (dict(recipients=["dr-chen@uni"]), "recipients: the applicant receives results anyway"),
    (dict(hospitals=[]), "hospitals: at least one hospital"),
    (dict(id="a 7"), "id: must be"),
    (dict(purpose="TREAT"), "duo.purpose: purpose TREAT is clinical care"),
    (dict(duo=["DUO:0000007"]), "duo.ds-disease"),
    (dict(retention_days=0), "retention_days: must be a whole number"),
])
def test_application_refused_when_invalid(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ContractError, match=message.replace("(", r"\(")):
        application(**change)


def test_record_identifiers_are_releasable_and_clinical_lookup_allowed() -> None:
    app = application(fields=["patient.id", "condition.patient_id"])
    assert app.fields == ("condition.patient_id", "patient.id")
    clinical = application(purpose="ETREAT", duo=["DUO:0000043"], operations=["lookup"], categories=[])
    assert clinical.operations == ("lookup",)
    directs = [f"{t.name}.{f.name}" for t in TABLES.values() for f in t if PHI.DIRECT in f.phi
               and f.name not in ID_FIELDS]
    assert "patient.national_id" in directs


def test_approval_outcomes_are_consistent() -> None:
    with pytest.raises(ContractError, match="must restrict something"):
        Approval(application="a-7", hospital="h1", steward="s@h1", outcome="restrict", at=T0)
    with pytest.raises(ContractError, match="carries no restrictions; use restrict"):
        Approval(application="a-7", hospital="h1", steward="s@h1", outcome="approve", at=T0,
                 restrictions=Restrictions(min_cell_size=10))
    with pytest.raises(ContractError, match="reason: a reason is required"):
        Approval(application="a-7", hospital="h1", steward="s@h1", outcome="refuse", at=T0)
    with pytest.raises(ContractError, match="outcome: must be approve, restrict or refuse"):
        Approval(application="a-7", hospital="h1", steward="s@h1", outcome="maybe", at=T0)
    with pytest.raises(ContractError, match=r"restrictions\.min_cell_size"):
        Restrictions(min_cell_size=DEFAULT_MIN_CELL_SIZE - 1)
    a = Approval(application="a-7", hospital="h1", steward="s@h1", outcome="restrict", at=T0,
                 restrictions=Restrictions(fields_removed=["patient.sex"], end=T0 + timedelta(days=30)))
    assert a.outcome is Outcome.RESTRICT
    assert Approval.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_contract_from_application_applies_restrictions() -> None:
    app = application()
    r = Restrictions(fields_removed=["patient.sex"], operations_removed=["glm"], recipients_removed=["stats@uni"],
                     end=T0 + timedelta(days=90), min_cell_size=11, delete_after_days=30)
    ap = Approval(application="a-7", hospital="h2", steward="s@h2", outcome="restrict", at=T0, restrictions=r)
    c = Contract.from_application(app, ap, uid="c-13", issued=T0)
    assert (c.assigner, c.assignee, c.application) == ("h2", "dr-chen@uni", "a-7")
    assert c.fields == ("condition.code", "observation.value_num")
    assert c.operations == ("count", "mean")
    assert c.recipients == ()
    assert (c.end, c.min_cell_size, c.delete_after_days) == (T0 + timedelta(days=90), 11, 30)
    assert c.target == "urn:medspace:dataset:h2"


@pytest.mark.parametrize(("approval", "restrictions", "message"), [
    (dict(outcome="refuse", reason="no capacity"), None, "hospital h1 refused application a-7"),
    (dict(hospital="h9"), None, "hospital h9 is not one of the application's hospitals"),
    (dict(application="a-8"), None, "answers application a-8, not a-7"),
    (dict(outcome="restrict"), Restrictions(fields_removed=["patient.birth_date"]),
     "restrictions.fields_removed: patient.birth_date is not in the application"),
    (dict(outcome="restrict"), Restrictions(end=T0 + timedelta(days=400)), "restrictions.end: may only end"),
    (dict(outcome="restrict"), Restrictions(delete_after_days=365), "restrictions.delete_after_days"),
    (dict(outcome="restrict"), Restrictions(operations_removed=["count", "mean", "glm"]),
     "operations: at least one operation"),
])
def test_contract_from_application_refusals(approval: dict[str, Any], restrictions: Restrictions | None,
                                            message: str) -> None:
    base: dict[str, Any] = dict(application="a-7", hospital="h1", steward="s@h1", outcome="approve", at=T0)
    base.update(approval)
    if restrictions is not None:
        base["restrictions"] = restrictions
    with pytest.raises(ContractError, match=message):
        Contract.from_application(application(), Approval(**base), uid="c-12", issued=T0)


def test_contract_status_rules() -> None:
    c = contract()
    with pytest.raises(ContractError, match="status_time: a revoked contract says when"):
        replace(c, status=ContractStatus.REVOKED)
    with pytest.raises(ContractError, match="an active contract has no status time"):
        replace(c, status_time=T0)
    revoked = c.revoke(T0 + timedelta(days=1), "ethics approval withdrawn")
    assert revoked.status is ContractStatus.REVOKED
    with pytest.raises(ContractError, match="already revoked"):
        revoked.terminate(T0 + timedelta(days=2), "again")
    with pytest.raises(ContractError, match="status_reason: a reason is required"):
        c.terminate(T0 + timedelta(days=1), "")
    with pytest.raises(ContractError, match="cannot end before it was issued"):
        c.revoke(T0 - timedelta(days=1), "early")


# --- ODRL ----------------------------------------------------------------------------------------------------------


def _keys_and_terms(node: Any, out: set[str]) -> None:
    """ODRL vocabulary keys and vocab-typed values of a document (profile and metadata terms left out)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "@context":
                continue
            if not k.startswith(("@", "medspace:", "dct:")):
                out.add(k)
            if k in ("leftOperand", "operator", "action", "@type") and isinstance(v, str) and ":" not in v:
                out.add(v)
            _keys_and_terms(v, out)
    elif isinstance(node, list):
        for v in node:
            _keys_and_terms(v, out)


def test_odrl_shape_uses_only_odrl22_terms() -> None:
    doc = contract().to_odrl()
    assert doc["@context"][0] == "http://www.w3.org/ns/odrl.jsonld"
    assert doc["@type"] == "Agreement"
    assert doc["uid"] == "urn:medspace:contract:c-12"
    assert doc["assigner"] == "urn:medspace:party:h1"
    assert doc["assignee"] == "urn:medspace:party:dr-chen@uni"
    assert doc["target"]["source"] == "urn:medspace:dataset:h1"
    assert [p["action"] for p in doc["permission"]] == ["medspace:count", "medspace:glm", "medspace:mean"]
    constraints = {(c["leftOperand"], c["operator"]): c["rightOperand"] for c in doc["permission"][0]["constraint"]}
    assert constraints[("purpose", "eq")] == {"@id": "hl7pou:HRESCH"}
    assert constraints[("purpose", "isAllOf")] == [{"@id": "obo:DUO_0000006"}, {"@id": "obo:DUO_0000046"}]
    assert constraints[("dateTime", "gteq")] == {"@value": "2026-01-01T00:00:00Z", "@type": "xsd:dateTime"}
    assert constraints[("dateTime", "lt")]["@value"] == "2027-01-01T00:00:00Z"
    assert constraints[("spatial", "eq")] == {"@id": "iso3166:DE"}
    assert constraints[("recipient", "isAnyOf")] == [{"@id": "urn:medspace:party:dr-chen@uni"},
                                                      {"@id": "urn:medspace:party:stats@uni"}]
    assert [d["action"] for d in doc["permission"][0]["duty"]] == ["medspace:log", "delete"]
    assert doc["prohibition"] == [{"action": "distribute"}]
    # every ODRL key and term we write is defined by the ODRL 2.2 JSON-LD context (W3C's own file)
    odrl = json.loads((DATA / "ODRL22.jsonld").read_text(encoding="utf-8"))["@context"]
    used: set[str] = set()
    _keys_and_terms(doc, used)
    assert used - set(odrl) == set()
    assert {"purpose", "dateTime", "spatial", "recipient", "elapsedTime", "isAllOf", "isAnyOf", "gteq", "lt",
            "lteq", "delete", "distribute", "refinement", "source", "AssetCollection"} <= used
    for prefix in doc["@context"][1]:  # our prefixes do not shadow ODRL terms
        assert prefix not in odrl


def test_odrl_reader_ignores_order() -> None:
    c = contract(disease=None)
    doc = c.to_odrl()
    shuffled = copy.deepcopy(doc)
    shuffled["permission"].reverse()
    for p in shuffled["permission"]:
        p["constraint"].reverse()
        p["duty"].reverse()
    shuffled["target"]["refinement"].reverse()
    assert Contract.from_odrl(shuffled) == c
    assert Contract.from_odrl(json.loads(json.dumps(doc))) == c


def _mutate(doc: dict[str, Any], how: str) -> None:
    perm = doc["permission"]
    if how == "type":
        doc["@type"] = "Offer"
    elif how == "extra":
        doc["medspace:note"] = "x"
    elif how == "differ":
        perm[1]["constraint"] = [*perm[1]["constraint"][:-1],
                                 {"leftOperand": "medspace:cellSize", "operator": "gteq", "rightOperand": 99}]
    elif how == "missing":
        for p in perm:
            p["constraint"] = [c for c in p["constraint"] if c["leftOperand"] != "spatial"]
    elif how == "action":
        perm[0]["action"] = "use"
    elif how == "duty":
        for p in perm:
            p["duty"] = [{"action": "medspace:log"}]
    elif how == "prohibition":
        doc["prohibition"] = []
    elif how == "source":
        doc["target"]["source"] = "urn:medspace:dataset:h2"
    elif how == "unknown-constraint":
        for p in perm:
            p["constraint"].append({"leftOperand": "count", "operator": "lteq", "rightOperand": 5})
    elif how == "time":
        for p in perm:
            for c in p["constraint"]:
                if c["leftOperand"] == "dateTime":
                    c["rightOperand"]["@value"] = "2026-01-01T00:00:00"
    elif how == "assignee-not-recipient":
        for p in perm:
            for c in p["constraint"]:
                if c["leftOperand"] == "recipient":
                    c["rightOperand"] = [{"@id": "urn:medspace:party:stats@uni"}]


@pytest.mark.parametrize(("how", "message"), [
    ("type", r"odrl \$.@type: must be Agreement"),
    ("extra", r"odrl \$: 'medspace:note' is not part of the medspace profile"),
    ("differ", r"odrl \$.permission\[1\]: constraints and duties differ from permission\[0\]"),
    ("missing", r"needs spatial eq"),
    ("action", r"odrl \$.permission\[0\].action: must be medspace:<registered operation>"),
    ("duty", r"needs both duties"),
    ("prohibition", r"odrl \$.prohibition"),
    ("source", r"odrl \$.target.source: must be the assigner's dataset"),
    ("unknown-constraint", r"count lteq is not a constraint of the profile"),
    ("time", r"must be an xsd:dateTime with a timezone"),
    ("assignee-not-recipient", r"the assignee must be among the recipients"),
])
def test_odrl_reader_refuses_outside_the_profile(how: str, message: str) -> None:
    doc = contract().to_odrl()
    _mutate(doc, how)
    with pytest.raises(ContractError, match=message):
        Contract.from_odrl(doc)


def test_odrl_reader_rechecks_the_terms() -> None:
    doc = contract().to_odrl()
    doc["target"]["refinement"][0]["rightOperand"].append("patient.family_name")
    with pytest.raises(ContractError, match=r"patient\.family_name is a direct identifier"):
        Contract.from_odrl(doc)


_FIELDS = sorted(f"{t.name}.{f.name}" for t in TABLES.values() for f in t
                 if (PHI.DIRECT not in f.phi or f.name in ID_FIELDS) and t.name != "genetic_variant")
_AGG_OPS = sorted(o for o, op in OPERATIONS.items() if op.kind is not OperationKind.RECORD)
_PARTIES = st.from_regex(r"[a-z][a-z0-9.-]{0,8}(@h[0-9])?", fullmatch=True)
_TIMES = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))


@st.composite
def contracts(draw: st.DrawFn) -> Contract:
    """Any valid contract of the profile."""
    start = draw(_TIMES)
    end = start + draw(st.timedeltas(min_value=timedelta(microseconds=1), max_value=timedelta(days=5 * 365)))
    purpose, duo, disease = draw(st.sampled_from([
        ("HRESCH", ["DUO:0000042"], None),
        ("HRESCH", ["DUO:0000007", "DUO:0000046"], "MONDO:0005148"),
        ("CLINTRCH", ["DUO:0000006", "DUO:0000019", "DUO:0000021"], None),
        ("PUBHLTH", ["DUO:0000007"], "ICD-10:E11.9"),
    ]))
    assignee = draw(_PARTIES)
    recipients = draw(st.lists(_PARTIES.filter(lambda p: p != assignee), unique=True, max_size=3))
    issued = draw(_TIMES)
    c = Contract(
        uid=draw(st.from_regex(r"c-[0-9]{1,6}", fullmatch=True)), application="a-1",
        assigner=draw(st.sampled_from(["h1", "hospital-b", "ZJU.1"])), assignee=assignee, recipients=recipients,
        purpose=purpose, duo=duo, disease=disease,
        fields=draw(st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=6, unique=True)),
        categories=draw(st.lists(st.sampled_from([c for c in L1_CATEGORIES if c != "genetics"]), unique=True)),
        operations=draw(st.lists(st.sampled_from(_AGG_OPS), min_size=1, max_size=4, unique=True)),
        start=start, end=end, region=draw(st.sampled_from(sorted(REGIONS))), issued=issued,
        min_cell_size=draw(st.integers(1, 50)), delete_after_days=draw(st.integers(1, 3650)),
    )
    if draw(st.booleans()):
        c = c.revoke(issued + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=900))),
                     "consent withdrawn at the site")
    return c


@settings(max_examples=150, deadline=None)
@given(contracts())
def test_odrl_round_trip(c: Contract) -> None:
    doc = c.to_odrl()
    assert Contract.from_odrl(json.loads(json.dumps(doc))) == c
    assert Contract.from_odrl(doc).to_odrl() == doc


# --- permits -------------------------------------------------------------------------------------------------------


def test_permits_a_task_within_the_contract() -> None:
    d = contract().permits(task(), T0 + timedelta(days=10))
    assert d.allowed, d.reason
    assert {o.rule_id for o in d.outcomes} == {
        "contract.status", "contract.uid", "contract.assigner", "contract.recipient", "contract.purpose",
        "contract.action", "contract.field", "contract.category", "contract.dateTime", "contract.spatial"}
    assert contract().permits(task(requester="stats@uni"), T0).allowed  # a recipient may run it, from the start


@pytest.mark.parametrize(("change", "at_days", "rule", "reason"), [
    (dict(purpose="TREAT"), 10, "contract.purpose", "contract c-12: purpose HRESCH required, request has TREAT"),
    (dict(fields=["condition.code", "condition.onset_date"]), 10, "contract.field",
     "contract c-12: field condition.onset_date not in contract"),
    ({}, 365, "contract.dateTime", "contract c-12: expired at 2027-01-01T00:00:00Z"),
    ({}, -1, "contract.dateTime", "contract c-12: not in force until 2026-01-01T00:00:00Z"),
    (dict(operation="histogram"), 10, "contract.action", "contract c-12: operation histogram not permitted"),
    (dict(destination="US"), 10, "contract.spatial",
     "contract c-12: results may go to DE only, the task sends them to US"),
    (dict(requester="someone@else"), 10, "contract.recipient",
     "contract c-12: someone@else is neither the assignee nor a recipient"),
    (dict(hospital="h2"), 10, "contract.assigner", "contract c-12: assigned by h1, the task is for h2"),
    (dict(categories=["psychiatric"]), 10, "contract.category",
     "contract c-12: L1 category psychiatric not in contract"),
    (dict(contract="c-99"), 10, "contract.uid", "contract c-12: the task names contract c-99"),
])
def test_permits_refusal_names_the_constraint(change: dict[str, Any], at_days: int, rule: str, reason: str) -> None:
    d = contract().permits(task(**change), T0 + timedelta(days=at_days))
    assert not d.allowed
    assert [(o.rule_id, o.reason) for o in d.refusals] == [(rule, reason)]
    assert reason in d.reason


def test_revoked_or_terminated_contract_permits_nothing() -> None:
    at = T0 + timedelta(days=10)
    for ended in (contract().revoke(at, "ethics approval withdrawn"),
                  contract().terminate(at, "study finished early")):
        d = ended.permits(task(), at - timedelta(days=5))  # even a time before it ended
        assert not d.allowed
        assert [o.rule_id for o in d.refusals] == ["contract.status"]
        assert f"{ended.status.value} at 2026-01-11T00:00:00Z; it permits nothing" in d.reason


def test_task_request_refused_when_invalid() -> None:
    with pytest.raises(ContractError, match="operation: 'export'"):
        task(operation="export")
    with pytest.raises(ContractError, match="destination: must be an ISO 3166-1"):
        task(destination="Germany")
    with pytest.raises(ContractError, match="not a field of the catalogue"):
        task(fields=["condition.nope"])
    with pytest.raises(ContractError, match="not an HL7 PurposeOfUse code"):
        task(purpose="STUDY")
