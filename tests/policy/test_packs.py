"""Compliance packs: every shipped pack loads, malformed ones are refused by name, every rule decides a scenario."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from medspace.policy.contract import Application, Approval, Contract
from medspace.policy.decision import PREDICATES, Decision, Request, decide, export_tier
from medspace.policy.errors import PackError, RequestError
from medspace.policy.packs import BUILTIN_PACKS, load_pack, load_packs, parse_pack

T0 = datetime(2026, 1, 1, tzinfo=UTC)
AT = T0 + timedelta(days=30)
PACKS = load_packs()


def contract(region: str = "DE", hospital: str = "h1", purpose: str = "HRESCH") -> Contract:
    app = Application(id="a-7", applicant="dr-chen@uni", purpose=purpose, duo=["DUO:0000006"],
                      fields=["condition.code", "patient.sex", "observation.value_num"], categories=["hiv"],
                      operations=["count", "mean"], start=T0, end=T0 + timedelta(days=365), region=region,
                      hospitals=[hospital])
    ok = Approval(application="a-7", hospital=hospital, steward=f"steward@{hospital}", outcome="approve", at=T0)
    return Contract.from_application(app, ok, uid="c-12", issued=T0)


# Compliant research requests, one per jurisdiction (explicit consent, de-identified, aggregates, in the country).
BASE: dict[str, dict[str, Any]] = {
    jur: dict(actor="dr-chen@uni", role="researcher", actor_hospital=None, hospital="h1", purpose="HRESCH",
              operation="count", fields=("condition.code", "patient.sex"), categories=("hiv",),
              contract=contract(region), at=AT, consent={"hiv": "explicit", "L2": "explicit"}, node_region=region,
              destination_region=region, packs=("sensitivity", jur))
    for jur, region in (("gdpr", "DE"), ("hipaa", "US"), ("pipl", "CN"))
}
CN_TO_US = dict(contract=contract("US"), node_region="CN", destination_region="US")
DE_TO_US = dict(contract=contract("US"), destination_region="US")
LOOKUP = dict(role="clinician", actor="dr-li@h2", actor_hospital="h2", purpose="ETREAT", operation="lookup",
              aggregate_only=False, contract=None, categories=())
AUDIT = dict(operation="audit.read", fields=(), categories=(), contract=None)


def request(jur: str, **change: Any) -> Request:
    return Request(**{**BASE[jur], **change})


def test_every_builtin_pack_loads() -> None:
    assert set(PACKS) == set(BUILTIN_PACKS)
    ids = [r.id for p in PACKS.values() for r in p.rules]
    assert len(ids) == len(set(ids))
    for pack in PACKS.values():
        assert pack.sources and pack.as_of
        for rule in pack.rules:
            assert rule.check in PREDICATES and rule.citation and rule.text and rule.line
    assert PACKS["pipl"].rule("pipl.export-security-assessment").params["assessment_sensitive_from"] == 10_000
    assert PACKS["pipl"].rule("pipl.export-security-assessment").params["assessment_persons_from"] == 1_000_000
    assert PACKS["pipl"].rule("pipl.export-exempt").params["exempt_persons_below"] == 100_000


def test_compliant_requests_are_allowed_with_every_applied_rule_listed() -> None:
    for jur in BASE:
        d = decide(request(jur), PACKS)
        assert d.allowed, d.reason
        assert d.refusals == ()
        ids = {o.rule_id for o in d.outcomes}
        assert {"roles.purpose", "roles.research-contract", "roles.contract-permits",
                "sensitivity.l1-explicit-consent", "sensitivity.l1-aggregates-only", "sensitivity.l2-consent",
                "sensitivity.l2-contract", "sensitivity.de-identified", "sensitivity.no-direct-identifiers"} <= ids
        assert {r.pack for r in d.outcomes} == {"roles", "sensitivity", jur}
        for o in d.outcomes:
            assert o.citation == PACKS[o.pack].rule(o.rule_id).citation
    gdpr = {o.rule_id for o in decide(request("gdpr"), PACKS).outcomes}
    assert {"gdpr.art9-special-categories", "gdpr.art5-1b-purpose-limitation", "gdpr.art5-1c-data-minimisation",
            "gdpr.art89-safeguards"} <= gdpr
    hipaa = {o.rule_id for o in decide(request("hipaa"), PACKS).outcomes}
    assert {"hipaa.minimum-necessary", "hipaa.de-identification", "hipaa.research"} <= hipaa


def test_fully_compliant_cross_border_export_is_allowed() -> None:
    req = request("pipl", **CN_TO_US, sensitive_persons_this_year=20_000,
                  safeguards=frozenset({"pipl-security-assessment"}))
    d = decide(req, PACKS)
    assert d.allowed, d.reason
    ids = [o.rule_id for o in d.outcomes]
    assert ids == ["roles.purpose", "roles.research-contract", "roles.contract-permits",
                   "sensitivity.l1-explicit-consent", "sensitivity.l1-aggregates-only", "sensitivity.l2-consent",
                   "sensitivity.l2-contract", "sensitivity.de-identified", "sensitivity.no-direct-identifiers",
                   "pipl.art13-lawful-basis",
                   "pipl.art28-29-separate-consent", "pipl.art39-export-consent", "pipl.export-security-assessment"]
    assert "sensitive personal information of 20,000 persons since 1 January" in d.outcomes[-1].reason
    assert d.to_dict()["allowed"] is True and len(d.to_dict()["outcomes"]) == len(ids)


# rule -> (jurisdiction, change to the compliant request) that makes the rule refuse
SCENARIOS: dict[str, tuple[str, dict[str, Any]]] = {
    "roles.purpose": ("gdpr", dict(purpose="HOPERAT")),
    "roles.steward-own-hospital": ("gdpr", dict(role="steward", actor="s@h2", actor_hospital="h2",
                                                purpose="HOPERAT", **AUDIT)),
    "roles.research-contract": ("gdpr", dict(contract=None)),
    "roles.contract-permits": ("gdpr", dict(operation="histogram")),
    "roles.break-glass-reason": ("gdpr", dict(LOOKUP, purpose="BTG")),
    "roles.clinician-lookup-only": ("gdpr", dict(LOOKUP, operation="count", aggregate_only=True)),
    "roles.lookup-clinicians": ("gdpr", dict(operation="lookup", aggregate_only=False, categories=())),
    "roles.regulator-read-only": ("gdpr", dict(role="regulator", actor="dpa@de", purpose="HLEGAL", contract=None)),
    "roles.patient-own-log": ("gdpr", dict(role="patient", actor="p-1", purpose="PATRQT", **{
        **AUDIT, "operation": "audit.verify"})),
    "roles.audit-readers": ("gdpr", dict(AUDIT)),
    "sensitivity.l1-explicit-consent": ("gdpr", dict(consent={"hiv": "default", "L2": "explicit"})),
    "sensitivity.l1-aggregates-only": ("gdpr", dict(LOOKUP, categories=("hiv",))),
    "sensitivity.l2-consent": ("hipaa", dict(consent={"hiv": "explicit", "L2": "none"})),
    "sensitivity.l2-contract": ("hipaa", dict(contract=None)),
    "sensitivity.de-identified": ("hipaa", dict(de_identified=False)),
    "sensitivity.no-direct-identifiers": ("gdpr", dict(LOOKUP, fields=("patient.national_id", "condition.code"))),
    "hipaa.treatment": ("hipaa", dict(role="steward", actor="s@h1", actor_hospital="h1", purpose="TREAT",
                                      contract=None)),
    "hipaa.minimum-necessary": ("hipaa", dict(fields=("condition.code", "patient.sex", "observation.unit"))),
    "hipaa.de-identification": ("hipaa", dict(de_identified=False)),
    "hipaa.research": ("hipaa", dict(de_identified=False)),
    "gdpr.art9-special-categories": ("gdpr", dict(consent={"hiv": "explicit", "L2": "default"})),
    "gdpr.art5-1b-purpose-limitation": ("gdpr", dict(purpose="CLINTRCH")),
    "gdpr.art5-1c-data-minimisation": ("gdpr", dict(fields=("condition.code", "condition.onset_date"))),
    "gdpr.art89-safeguards": ("gdpr", dict(de_identified=False)),
    "gdpr.art15-access": ("gdpr", dict(role="patient", actor="p-1", purpose="PATRQT", **{
        **AUDIT, "operation": "audit.verify"})),
    "gdpr.art44-46-transfers": ("gdpr", dict(DE_TO_US)),
    "pipl.art13-lawful-basis": ("pipl", dict(consent={"hiv": "explicit", "L2": "none"})),
    "pipl.art28-29-separate-consent": ("pipl", dict(consent={"hiv": "explicit", "L2": "default"})),
    "pipl.art39-export-consent": ("pipl", dict(CN_TO_US, consent={"hiv": "explicit", "L2": "default"},
                                               safeguards=frozenset({"pipl-security-assessment"}))),
    "pipl.export-standard-contract": ("pipl", dict(CN_TO_US, sensitive_persons_this_year=5_000)),
    "pipl.export-security-assessment": ("pipl", dict(CN_TO_US, sensitive_persons_this_year=20_000,
                                                     safeguards=frozenset({"pipl-standard-contract"}))),
    "pipl.art40-localisation": ("pipl", dict(CN_TO_US, ciio=True)),
}
NEVER_REFUSES = {"pipl.export-exempt"}  # an exemption: it applies (and is listed) or it does not


def test_scenarios_cover_every_rule() -> None:
    assert set(SCENARIOS) | NEVER_REFUSES == {r.id for p in PACKS.values() for r in p.rules}


@pytest.mark.parametrize("rule_id", sorted(SCENARIOS))
def test_each_rule_refuses_its_scenario_citing_itself(rule_id: str) -> None:
    jur, change = SCENARIOS[rule_id]
    d = decide(request(jur, **change), PACKS)
    assert not d.allowed
    refused = {o.rule_id: o for o in d.refusals}
    assert rule_id in refused, d.reason
    citation = PACKS[rule_id.split(".")[0]].rule(rule_id).citation
    assert refused[rule_id].citation == citation
    assert f"{rule_id} [{citation}]" in d.reason


def _refusal(d: Decision, rule_id: str) -> str:
    return next(o.reason for o in d.refusals if o.rule_id == rule_id)


def test_brief_scenarios_read_well() -> None:
    d = decide(request("gdpr", consent={"hiv": "default", "L2": "explicit"}), PACKS)
    assert _refusal(d, "sensitivity.l1-explicit-consent") == "needs explicit consent for HRESCH; has hiv: default"
    d = decide(request("gdpr", **{**LOOKUP, "categories": ("hiv",)}), PACKS)
    assert _refusal(d, "sensitivity.l1-aggregates-only") == "operation lookup releases L1 data row by row"
    d = decide(request("pipl", **CN_TO_US, sensitive_persons_this_year=20_000), PACKS)
    assert [o.rule_id for o in d.refusals] == ["pipl.export-security-assessment"]
    assert d.refusals[0].citation.endswith("Provisions on Promoting and Regulating Cross-Border Data Flows (2024) "
                                           "Art. 7")
    assert "20,000 persons since 1 January (from 10,000): needs pipl-security-assessment" in d.reason
    d = decide(request("gdpr", consent={"hiv": "default", "L2": "default"}), PACKS)
    assert _refusal(d, "gdpr.art9-special-categories") == (
        "no explicit consent for hiv, L2, and no eu-research-law with pseudonymised data")
    d = decide(request("hipaa", fields=("condition.code", "patient.sex", "observation.unit")), PACKS)
    assert _refusal(d, "hipaa.minimum-necessary") == "reads observation.unit beyond contract c-12"
    assert _refusal(d, "roles.contract-permits") == "contract c-12: field observation.unit not in contract"


def test_exceptions_that_satisfy_rules() -> None:
    # GDPR Art. 9(2)(j): research law plus pseudonymised data instead of explicit consent
    req = request("gdpr", consent={"hiv": "explicit", "L2": "default"}, safeguards=frozenset({"eu-research-law"}))
    assert decide(req, PACKS).allowed
    # GDPR transfer to an adequate country, or under standard contractual clauses
    assert decide(request("gdpr", contract=contract("CH"), destination_region="CH"), PACKS).allowed
    assert decide(request("gdpr", **DE_TO_US, safeguards=frozenset({"gdpr-scc"})), PACKS).allowed
    # PIPL: small exports are exempt (listed), mid-size ones go by standard contract
    small = decide(request("pipl", **CN_TO_US, persons_this_year=50_000, consent={"L2": "explicit"},
                           categories=()), PACKS)
    assert small.allowed, small.reason
    assert "pipl.export-exempt" in {o.rule_id for o in small.outcomes}
    mid = request("pipl", **CN_TO_US, sensitive_persons_this_year=9_999,
                  safeguards=frozenset({"pipl-standard-contract"}))
    assert decide(mid, PACKS).allowed
    # HIPAA: PHI research with an IRB waiver is allowed by the research rule (de-identification still refuses)
    d = decide(request("hipaa", de_identified=False, safeguards=frozenset({"irb-waiver"})), PACKS)
    assert "hipaa.research" not in {o.rule_id for o in d.refusals}


def test_export_tier_thresholds_are_inclusive() -> None:
    params = PACKS["pipl"].rule("pipl.export-security-assessment").params

    def tier(**kw: Any) -> str:
        return export_tier(request("pipl", **CN_TO_US, **kw), params)[0]

    assert tier(sensitive_persons_this_year=10_000) == "assessment"  # 以上 includes the number
    assert tier(sensitive_persons_this_year=9_999) == "contract"
    assert tier(persons_this_year=1_000_000) == "assessment"
    assert tier(persons_this_year=999_999) == "contract"
    assert tier(persons_this_year=100_000) == "contract"
    assert tier(persons_this_year=99_999) == "exempt"
    assert tier(persons_this_year=0, ciio=True) == "assessment"
    assert tier(sensitive_persons_this_year=50_000, purpose="ETREAT") == "exempt"


def test_emergency_lookup_and_break_the_glass() -> None:
    d = decide(request("gdpr", **LOOKUP, consent={"L2": "default"}), PACKS)
    assert d.allowed, d.reason
    refused = decide(request("gdpr", **LOOKUP, consent={"L2": "none"}), PACKS)
    assert [o.rule_id for o in refused.refusals] == ["sensitivity.l2-consent"]
    btg = decide(request("gdpr", **{**LOOKUP, "purpose": "BTG"}, consent={"L2": "none"},
                         reason="unconscious patient, suspected overdose"), PACKS)
    assert btg.allowed, btg.reason


def test_audit_reading() -> None:
    assert decide(request("gdpr", role="regulator", actor="dpa@de", purpose="HLEGAL", **AUDIT), PACKS).allowed
    assert decide(request("gdpr", role="steward", actor="s@h1", actor_hospital="h1", purpose="HOPERAT", **AUDIT),
                  PACKS).allowed
    patient = decide(request("gdpr", role="patient", actor="p-1", purpose="PATRQT", **AUDIT), PACKS)
    assert patient.allowed and "gdpr.art15-access" in {o.rule_id for o in patient.outcomes}


def test_revoked_contract_refuses_through_the_engine() -> None:
    req = request("gdpr", contract=BASE["gdpr"]["contract"].revoke(T0 + timedelta(days=1), "consent withdrawn"))
    d = decide(req, PACKS)
    assert _refusal(d, "roles.contract-permits") == (
        "contract c-12: revoked at 2026-01-02T00:00:00Z; it permits nothing")


def test_packs_must_be_loaded_and_requests_valid() -> None:
    with pytest.raises(PackError, match="pack gdpr: enabled for hospital h1 but not loaded"):
        decide(request("gdpr"), {k: v for k, v in PACKS.items() if k != "gdpr"})
    for change, message in [
        (dict(consent={"cancer": "explicit"}), "consent: 'cancer' is not a consent key"),
        (dict(consent={"hiv": "yes"}), "consent.hiv: must be one of explicit, default, none"),
        (dict(role="boss"), "role: 'boss' is not one of"),
        (dict(operation="export"), "operation: 'export' is neither"),
        (dict(node_region="Germany"), "node_region: must be an ISO 3166-1"),
        (dict(persons_this_year=-1), "persons_this_year: must be a whole number"),
        (dict(at=datetime(2026, 1, 1)), "at: must be a timezone-aware datetime"),
        (dict(operation="lookup"), "aggregate_only: operation lookup releases a record"),
        (dict(AUDIT, fields=("patient.sex",)), "an audit operation reads the log"),
        (dict(safeguards=frozenset({"IRB Approval"})), "safeguards: must be a set of lower-case names"),
    ]:
        with pytest.raises(RequestError, match=message):
            request("gdpr", **change)


# --- malformed packs -----------------------------------------------------------------------------------------------

GOOD = """
[pack]
name = "local"
title = "A hospital's own rules"
jurisdiction = "DE"
as_of = "2025-06-01"
sources = ["house rules"]

[[rule]]
id = "local.first"
citation = "House rule 1"
text = "Research runs de-identified."
check = "de_identified"
effect = "require"
purposes = ["HRESCH"]

[[rule]]
id = "local.second"
citation = "House rule 2"
text = "Transfers leave Germany under clauses."
check = "transfer"
effect = "require"
params = { home = ["DE"], any = ["gdpr-scc"] }
"""


def test_a_custom_pack_loads_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "local.toml"
    path.write_text(GOOD, encoding="utf-8")
    pack = load_pack(path)
    assert [r.id for r in pack.rules] == ["local.first", "local.second"]
    assert pack.rules[1].line == 17 and pack.rules[1].params["adequate"] == frozenset()
    assert {**PACKS, "local": pack}["local"] is pack
    d = decide(replace(request("gdpr", **DE_TO_US), packs=("local",)), {**PACKS, "local": pack})
    assert "local.second" in {o.rule_id for o in d.refusals}


@pytest.mark.parametrize(("old", "new", "message"), [
    ('check = "transfer"', 'check = "teleport"', r"<t>:17: rule local.second: check: 'teleport' is not a registered"),
    ('effect = "require"\npurposes', 'effect = "allow"\npurposes', "<t>:9: rule local.first: effect: must be deny"),
    ('any = ["gdpr-scc"]', 'any = "gdpr-scc"', "<t>:17: rule local.second: params.any: must be a list"),
    ('home = ["DE"], ', "", "<t>:17: rule local.second: params.home: transfer needs it"),
    ('any = ["gdpr-scc"]', 'any = ["gdpr-scc"], colour = "red"', "rule local.second: params.colour: transfer takes no"),
    ('home = ["DE"]', 'home = ["Deutschland"]', "params.home: 'Deutschland' is not an ISO 3166-1"),
    ('purposes = ["HRESCH"]', 'purposes = ["RESEARCH"]', "rule local.first: purposes: 'RESEARCH' is not one of"),
    ('id = "local.second"', 'id = "other.second"', "rule other.second: id: must start with the pack's name"),
    ('id = "local.second"', 'id = "local.first"', "<t>:17: rule local.first: id: is used twice"),
    ('citation = "House rule 2"', 'citation = ""', "rule local.second: citation: is required"),
    ('text = "Research runs de-identified."', 'text = "x"\nwhen = "always"', "rule local.first: when: unknown key"),
    ('as_of = "2025-06-01"', 'as_of = "June"', "<t>: pack.as_of: must be a date"),
    ('name = "local"', 'name = "Local Rules"', "<t>: pack.name: must be a short lower-case name"),
    ('jurisdiction = "DE"', 'jurisdiction = "Germany"', "pack.jurisdiction: must be an ISO 3166-1"),
    ('[pack]', '[pak]', "<t>: pak: unknown section"),
    ('effect = "require"\nparams', 'effect = "require"\nparams = [', "<t>:23: syntax"),
])
def test_malformed_pack_names_file_rule_and_field(old: str, new: str, message: str) -> None:
    assert old in GOOD
    with pytest.raises(PackError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_pack(GOOD.replace(old, new, 1), "<t>")


def test_pack_loading_refusals(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="no such file, and not a built-in pack"):
        load_pack(tmp_path / "missing.toml")
    copy = tmp_path / "gdpr.toml"
    copy.write_text((Path(__file__).parents[2] / "src/medspace/policy/packs/gdpr.toml").read_text("utf-8"),
                    encoding="utf-8")
    with pytest.raises(PackError, match=r"pack\.name: gdpr is already loaded"):
        load_packs([*BUILTIN_PACKS, copy])
