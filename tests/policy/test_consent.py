"""Dynamic consent: FHIR R4 Consent resources, the registry and its replicas, defaults and decisions."""

from __future__ import annotations

import copy
import random
import threading
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fhir.resources.R4B.consent import Consent
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medspace.ledger.entry import Purpose
from medspace.policy.consent import (
    EXAMPLE_CN_DEFAULTS,
    EXAMPLE_US_DEFAULTS,
    Basis,
    ConsentRegistry,
    HospitalDefaults,
    decide_record,
)
from medspace.policy.consent_fhir import (
    CATEGORIES,
    L1_CATEGORIES,
    Actor,
    ConsentStatus,
    Period,
    Rule,
    Scope,
    build_consent,
    check_pseudonym,
    parse_consent,
    row_categories,
)
from medspace.policy.errors import ConsentError

H = "hosp-a"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
P1, P2, P3 = "0123456789abcdef" * 2, "fedcba9876543210" * 2, "00ff" * 8


def us() -> HospitalDefaults:
    return HospitalDefaults.from_dict({**EXAMPLE_US_DEFAULTS, "hospital": H})


def cn() -> HospitalDefaults:
    return HospitalDefaults.from_dict({**EXAMPLE_CN_DEFAULTS, "hospital": H})


# --- resources ---------------------------------------------------------------------------------------------------


def test_built_resources_validate_with_fhir_resources() -> None:
    rule = Rule("permit", frozenset({Purpose.HRESCH, Purpose.CLINTRCH}), frozenset({"condition", "medication"}),
                Period(date(2024, 1, 1), datetime(2030, 1, 1, tzinfo=UTC)), Period(date(2000, 1, 1), None),
                (Actor("uni-x"),),
                (Rule("deny", categories=frozenset({"psychiatric"})),
                 Rule("permit", frozenset({Purpose.HRESCH}), frozenset({"hiv"}))))
    for res in (build_consent(P1, H, rule, now=NOW),
                build_consent(P1, H, permit_purposes=["HRESCH"], deny_categories=["psychiatric"], now=NOW),
                build_consent(P2, H, deny_purposes=["HRESCH"], scope=Scope.PRIVACY, now=NOW),
                build_consent(P3, H, scope="treatment", status="inactive", version=7, now=NOW)):
        model = Consent.model_validate(res)
        assert model.scope.coding[0].system == "http://terminology.hl7.org/CodeSystem/consentscope"
        assert model.category[0].coding[0].code == "59284-0"
        assert model.policyRule is not None  # ppc-1
        assert model.patient.identifier.system == "urn:medspace:linkage" and model.patient.reference is None
    labels = {c["code"] for c in build_consent(P1, H, rule, now=NOW)["provision"]["provision"][1]["securityLabel"]}
    assert labels == {"HIV"}


def _broken(mutate: Any) -> str:
    res = build_consent(P1, H, permit_purposes=["HRESCH"], deny_categories=["psychiatric"],
                        period=Period(date(2024, 1, 1), None), now=NOW)
    mutate(res)
    with pytest.raises(ConsentError) as err:
        parse_consent(res)
    return str(err.value)


def test_hand_broken_resources_are_refused_naming_the_element() -> None:
    assert "Consent.provision.period.start" in _broken(lambda r: r["provision"]["period"].update(start="2024-13-01"))
    assert "Consent.scope" in _broken(lambda r: r.pop("scope"))
    assert "Consent.status" in _broken(lambda r: r.update(status="revoked"))
    assert "ppc-1" in _broken(lambda r: r.pop("policyRule"))
    assert "Consent.provision.provision[0].type" in _broken(lambda r: r["provision"]["provision"][0].pop("type"))
    assert "Consent.provision.purpose[0].code" in _broken(lambda r: r["provision"]["purpose"][0].update(code="HMARKT"))
    assert "Consent.provision.provision[0].class[0].system" in _broken(
        lambda r: r["provision"]["provision"][0]["class"][0].update(system="http://hl7.org/fhir/resource-types"))
    assert "Consent.provision.action" in _broken(lambda r: r["provision"].update(action=[{"text": "access"}]))
    assert "Consent.patient.reference" in _broken(lambda r: r["patient"].update(reference="Patient/123"))
    assert "Consent.patient.identifier.value" in _broken(lambda r: r["patient"]["identifier"].update(value="X1"))
    assert "Consent.bogus" in _broken(lambda r: r.update(bogus=1))
    assert "Consent.meta.versionId" in _broken(lambda r: r["meta"].update(versionId="0"))


# --- round trip ----------------------------------------------------------------------------------------------------

_ZONES = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))])
_MOMENT = st.one_of(
    st.dates(date(2000, 1, 1), date(2035, 12, 31)),
    st.builds(lambda d, z: d.replace(tzinfo=z), st.datetimes(datetime(2000, 1, 2), datetime(2035, 12, 30)), _ZONES))


@st.composite
def periods(draw: st.DrawFn) -> Period | None:
    a, b = draw(st.one_of(st.none(), _MOMENT)), draw(st.one_of(st.none(), _MOMENT))
    try:
        return Period(a, b)
    except ConsentError:
        return Period(b, a)


def rules(purposes: list[Purpose], categories: list[str], participants: list[str], depth: int = 3,
          max_actors: int = 2) -> Any:
    @st.composite
    def rule(draw: st.DrawFn, level: int = 0) -> Rule:
        kids = () if level >= depth - 1 else tuple(draw(st.lists(rule(level + 1), max_size=2)))
        return Rule(draw(st.sampled_from(["permit", "deny"])),
                    frozenset(draw(st.lists(st.sampled_from(purposes), max_size=2))),
                    frozenset(draw(st.lists(st.sampled_from(categories), max_size=2))),
                    draw(st.one_of(st.none(), periods())), draw(st.one_of(st.none(), periods())),
                    tuple(Actor(p, r) for p, r in draw(st.lists(st.tuples(st.sampled_from(participants),
                                                                          st.sampled_from(["IRCP", "PRCP"])),
                                                                max_size=max_actors))),
                    kids)
    return rule()


_HEX = st.text("0123456789abcdef", min_size=32, max_size=32)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pseudonym=_HEX, rule=rules(list(Purpose), list(CATEGORIES), ["uni-x", "hosp-b", "lab:7"]),
       scope=st.sampled_from(list(Scope)), status=st.sampled_from(list(ConsentStatus)),
       version=st.integers(1, 10**9))
def test_parse_of_build_round_trips(pseudonym: str, rule: Rule, scope: Scope, status: ConsentStatus,
                                    version: int) -> None:
    res = build_consent(pseudonym, H, rule, scope=scope, status=status, version=version, now=NOW)
    rec = parse_consent(res)
    assert (rec.pseudonym, rec.hospital, rec.scope, rec.status, rec.version) == (pseudonym, H, scope, status, version)
    assert rec.provision == rule
    assert rec.date_time == NOW and rec.last_updated == NOW


# --- registry --------------------------------------------------------------------------------------------------------


def test_revoke_makes_a_new_inactive_version_and_decide_says_revoked() -> None:
    reg = ConsentRegistry()
    first = reg.put(build_consent(P1, H, permit_purposes=["HRESCH"], now=NOW), now=NOW)
    assert first.version == 1 and first.id is not None
    assert reg.decide(P1, H, "HRESCH", "condition", NOW, cn()).basis == Basis.EXPLICIT_PERMIT
    later = NOW + timedelta(hours=1)
    rev = reg.revoke(P1, H, later)
    assert (rev.version, rev.status, rev.id, rev.last_updated) == (2, ConsentStatus.INACTIVE, first.id, later)
    d = reg.decide(P1, H, "HRESCH", "condition", later, us())
    assert (d.permitted, d.basis, d.consent_version) == (False, Basis.REVOKED, 2)
    assert [r.version for r in reg.history(P1)] == [1, 2]
    assert reg.revoke(P1, H, later) == rev and reg.sequence == 2  # already revoked: unchanged
    assert reg.resource(P1, H, 1)["status"] == "active" and reg.resource(P1, H)["status"] == "inactive"
    # A proposed change does not replace the version in force; a version entered in error voids the consent.
    reg.put(build_consent(P1, H, permit_purposes=["TREAT"], status="proposed", version=None, now=later))
    assert reg.current(P1, H).status == ConsentStatus.PROPOSED  # type: ignore[union-attr]
    assert reg.decide(P1, H, "HRESCH", "condition", later, us()).basis == Basis.REVOKED
    void = reg.put(build_consent(P1, H, permit_purposes=["HRESCH"], status="entered-in-error", version=None, now=later))
    assert reg.in_force(P1, H) is None
    d = reg.decide(P1, H, "HRESCH", "condition", later, us())
    assert (d.basis, d.consent_version) == (Basis.DEFAULT_OPT_OUT, None)
    # A new consent after a revocation is the next version and is in force again.
    again = reg.put(build_consent(P1, H, permit_purposes=["HRESCH"], now=later, version=void.version + 1), now=later)
    assert reg.decide(P1, H, "HRESCH", "condition", later, cn()).consent_version == again.version == 5


def test_versions_strictly_increase_and_keep_their_id() -> None:
    reg = ConsentRegistry()
    rec = reg.put(build_consent(P1, H, permit_purposes=["HRESCH"], now=NOW))
    for v in (1, 0):
        with pytest.raises(ConsentError, match="versionId"):
            reg.put({**build_consent(P1, H, permit_purposes=["TREAT"], now=NOW), "meta": {"versionId": str(v or 1)}})
    unversioned = build_consent(P1, H, permit_purposes=["TREAT"], version=None, now=NOW)
    assert "versionId" not in unversioned["meta"]
    assert reg.put(unversioned).version == 2
    assert reg.put(build_consent(P1, H, permit_purposes=["TREAT"], version=10, now=NOW)).version == 10
    with pytest.raises(ConsentError, match=r"Consent\.id"):
        reg.put(build_consent(P1, H, permit_purposes=["TREAT"], version=11, now=NOW, consent_id="other-id"))
    assert reg.current(P1, H) is not None and reg.current(P1, H).id == rec.id  # type: ignore[union-attr]
    # Other hospitals are other consents.
    assert reg.put(build_consent(P1, "hosp-b", permit_purposes=["TREAT"], now=NOW)).version == 1
    assert len(reg) == 2


def test_replica_sync_out_of_order_and_duplicated() -> None:
    hub = ConsentRegistry()
    t = NOW
    for i in range(30):
        p = [P1, P2, P3][i % 3]
        h = ["hosp-a", "hosp-b"][i % 2]
        t += timedelta(minutes=1)
        if i % 7 == 6 and hub.current(p, h) is not None:
            hub.revoke(p, h, t)
        else:
            purpose = random.Random(i).choice(["HRESCH", "TREAT"])
            hub.put(build_consent(p, h, permit_purposes=[purpose], version=None, now=t), now=t)
    replica, seen = ConsentRegistry(), 0
    rng = random.Random(5)
    while seen < hub.sequence:
        seq, batch = hub.changes_batch(seen)
        chunk = batch[: rng.randint(1, 6)]
        noisy = chunk + rng.sample(chunk, k=min(2, len(chunk)))
        rng.shuffle(noisy)
        replica.apply_changes(noisy)
        seen += len(chunk)
        assert seq == hub.sequence
    late = hub.changes_since(0)
    rng.shuffle(late)
    assert replica.apply_changes(late) == 0  # everything already held: idempotent
    for p in (P1, P2, P3):
        assert replica.history(p) == hub.history(p)
        for h in ("hosp-a", "hosp-b"):
            assert replica.current(p, h) == hub.current(p, h)
            assert replica.in_force(p, h) == hub.in_force(p, h)
    # Out of order: the newer version arrives first and stays the current one.
    v1, v2 = (build_consent(P1, "hosp-c", permit_purposes=["HRESCH"], version=v, now=NOW, consent_id="c1")
              for v in (1, 2))
    v2["status"] = "inactive"
    fresh = ConsentRegistry()
    assert fresh.apply_changes([v2]) == 1 and fresh.apply_changes([v1, v2]) == 1
    assert fresh.current(P1, "hosp-c").version == 2  # type: ignore[union-attr]
    assert fresh.decide(P1, "hosp-c", "HRESCH", "condition", NOW, HospitalDefaults("hosp-c")).basis == Basis.REVOKED
    clash = copy.deepcopy(v1)
    clash["provision"]["purpose"][0]["code"] = "TREAT"
    with pytest.raises(ConsentError, match="two different copies"):
        fresh.apply_changes([clash])
    # dump / load and JSON
    assert ConsentRegistry.load(hub.dump()).history(P2) == hub.history(P2)
    assert ConsentRegistry.loads(hub.dumps()).sequence == hub.sequence


def test_concurrent_puts_are_all_kept() -> None:
    reg = ConsentRegistry()
    pseudonyms = [f"{i:032x}" for i in range(40)]

    def work(part: list[str]) -> None:
        for p in part:
            reg.put(build_consent(p, H, permit_purposes=["HRESCH"], now=NOW))
            reg.revoke(p, H, NOW)

    threads = [threading.Thread(target=work, args=(pseudonyms[i::4],)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert reg.sequence == 80 and len(reg.changes_since(0)) == 80
    assert all(reg.current(p, H).version == 2 for p in pseudonyms)  # type: ignore[union-attr]


# --- decisions -----------------------------------------------------------------------------------------------------


def test_nested_deny_for_psychiatric_under_a_research_permit() -> None:
    reg = ConsentRegistry()
    reg.put(build_consent(P1, H, permit_purposes=["HRESCH"], deny_categories=["psychiatric"], now=NOW))
    d = reg.decide(P1, H, "HRESCH", "condition", NOW, cn())
    assert (d.permitted, d.basis, d.consent_version) == (True, Basis.EXPLICIT_PERMIT, 1)
    assert reg.decide(P1, H, "HRESCH", "psychiatric", NOW, cn()).basis == Basis.EXPLICIT_DENY
    # the deny exception holds on its own: psychiatric data for treatment is refused too
    assert reg.decide(P1, H, "TREAT", "psychiatric", NOW, us()).basis == Basis.EXPLICIT_DENY
    # the permit does not reach beyond its purpose: treatment follows the default
    assert reg.decide(P1, H, "TREAT", "condition", NOW, us()).basis == Basis.DEFAULT_OPT_OUT
    assert reg.decide(P1, H, "TREAT", "condition", NOW, cn()).basis == Basis.DEFAULT_OPT_IN
    # a deeper permit naming psychiatric data for research wins over the shallower deny
    deeper = Rule("permit", frozenset({Purpose.HRESCH}), exceptions=(
        Rule("deny", categories=frozenset({"psychiatric"}), exceptions=(
            Rule("permit", frozenset({Purpose.HRESCH}), frozenset({"psychiatric"})),)),))
    reg.put(build_consent(P1, H, deeper, version=2, now=NOW))
    assert reg.decide(P1, H, "HRESCH", "psychiatric", NOW, cn()).basis == Basis.EXPLICIT_PERMIT
    assert reg.decide(P1, H, "CLINTRCH", "psychiatric", NOW, cn()).basis == Basis.EXPLICIT_DENY


def test_l1_is_never_permitted_by_default() -> None:
    everything_out = HospitalDefaults(H, (("*", "*", "opt-out"),), "opt-out")
    for defaults in (us(), cn(), everything_out):
        for purpose in Purpose:
            for cat in L1_CATEGORIES:
                d = decide_record(None, purpose, cat, NOW, defaults)
                assert (d.permitted, d.basis, d.consent_version) == (False, Basis.DEFAULT_OPT_IN, None)
            assert decide_record(None, purpose, "condition", NOW, everything_out).permitted
    for bad in ((("HRESCH", "hiv", "opt-out"),), (("*", "L1", "opt-out"),)):
        with pytest.raises(ConsentError, match="L1"):
            HospitalDefaults(H, bad)  # type: ignore[arg-type]
    reg = ConsentRegistry()
    # a broad permit (every purpose and category) is not an explicit consent to L1 data
    reg.put(build_consent(P1, H, Rule("permit"), now=NOW))
    assert reg.decide(P1, H, "HRESCH", "condition", NOW, cn()).permitted
    assert reg.decide(P1, H, "HRESCH", "hiv", NOW, everything_out).basis == Basis.DEFAULT_OPT_IN
    # naming the category without the purpose is not enough either; naming both is
    reg.put(build_consent(P2, H, Rule("permit", categories=frozenset({"hiv"})), now=NOW))
    assert not reg.decide(P2, H, "HRESCH", "hiv", NOW, everything_out).permitted
    reg.put(build_consent(P3, H, permit_purposes=["HRESCH"], categories=["hiv", "condition"], now=NOW))
    assert reg.decide(P3, H, "HRESCH", "hiv", NOW, cn()).basis == Basis.EXPLICIT_PERMIT
    assert not reg.decide(P3, H, "HRESCH", "genetics", NOW, cn()).permitted
    assert row_categories("condition", "hiv") == ("condition", "hiv")
    assert row_categories("genetic_variant", "genetics") == ("genetics",)


def test_opt_out_default_permits_until_the_patient_denies() -> None:
    reg, defaults = ConsentRegistry(), us()
    assert defaults.mode("condition", "HRESCH") == "opt-out" and defaults.mode("hiv", "HRESCH") == "opt-in"
    assert reg.decide(P1, H, "HRESCH", "condition", NOW, defaults).basis == Basis.DEFAULT_OPT_OUT
    assert reg.excluded([P1, P2], H, "HRESCH", ["condition"], NOW, defaults) == set()
    reg.put(build_consent(P1, H, deny_purposes=["HRESCH"], now=NOW))
    d = reg.decide(P1, H, "HRESCH", "condition", NOW, defaults)
    assert (d.permitted, d.basis) == (False, Basis.EXPLICIT_DENY)
    assert reg.excluded([P1, P2], H, "HRESCH", ["condition"], NOW, defaults) == {P1}
    assert reg.decide(P1, H, "TREAT", "condition", NOW, defaults).basis == Basis.DEFAULT_OPT_OUT
    # the CN defaults are opt-in for research: excluded until a permit
    assert reg.excluded([P1, P2], H, "HRESCH", ["condition"], NOW, cn()) == {P1, P2}


def test_defaults_as_data_and_toml() -> None:
    text = 'hospital = "hosp-a"\nfallback = "opt-in"\n[modes.HRESCH]\nL2 = "opt-out"\nnote = "opt-in"\n' \
           '[modes."*"]\nmedication = "opt-out"\n'
    d = HospitalDefaults.from_toml(text)
    assert d.mode("condition", "HRESCH") == "opt-out" and d.mode("note", "HRESCH") == "opt-in"
    assert d.mode("medication", "TREAT") == "opt-out" and d.mode("condition", "TREAT") == "opt-in"
    assert HospitalDefaults.from_dict(d.to_dict()) == d and hash(d) == hash(HospitalDefaults.from_dict(d.to_dict()))
    with pytest.raises(ConsentError, match="hospital hosp-b"):
        ConsentRegistry().decide(P1, "hosp-b", "HRESCH", "condition", NOW, d)
    with pytest.raises(ConsentError, match="TOML"):
        HospitalDefaults.from_toml("hospital = ")


def test_period_and_data_period() -> None:
    reg = ConsentRegistry()
    rule = Rule("permit", frozenset({Purpose.HRESCH}), period=Period(date(2025, 1, 1), date(2025, 12, 31)),
                data_period=Period(date(2010, 1, 1), date(2019, 12, 31)),
                exceptions=(Rule("deny", categories=frozenset({"medication"}),
                                 data_period=Period(date(2015, 1, 1), date(2015, 12, 31))),
                            Rule("deny", frozenset({Purpose.HRESCH}), frozenset({"observation"}),
                                 period=Period(datetime(2025, 6, 1, tzinfo=UTC), None))))
    reg.put(build_consent(P1, H, rule, now=NOW))
    before, after = datetime(2024, 12, 31, 23, 59, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    for at in (before, after):
        d = reg.decide(P1, H, "HRESCH", "condition", at, cn())
        assert (d.permitted, d.basis, d.consent_version) == (False, Basis.OUTSIDE_PERIOD, 1)
    last_moment = datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)  # a date end covers its whole day
    assert reg.decide(P1, H, "HRESCH", "condition", last_moment, cn()).permitted
    d = reg.decide(P1, H, "HRESCH", "condition", NOW, cn())
    assert d.permitted and d.restricts_records and d.excluded_data_periods == ()
    assert d.allows_record(date(2012, 5, 1)) and not d.allows_record(date(2021, 1, 1))
    m = reg.decide(P1, H, "HRESCH", "medication", NOW, cn())
    assert m.permitted and m.allows_record(date(2014, 12, 31)) and not m.allows_record(date(2015, 7, 1))
    # the observation deny starts on 1 June 2025
    assert reg.decide(P1, H, "HRESCH", "observation", NOW - timedelta(days=1), cn()).permitted
    assert reg.decide(P1, H, "HRESCH", "observation", NOW, cn()).basis == Basis.EXPLICIT_DENY
    flt = reg.consent_filter(H, "HRESCH", ["condition", "medication"], NOW, cn())
    assert flt.excluded([P1, P2]) == {P2}
    assert flt.allows_record(P1, "medication", date(2016, 1, 1))
    assert not flt.allows_record(P1, "medication", date(2015, 1, 1))
    assert not flt.allows_record(P1, "observation", date(2016, 1, 1))  # not a category of this computation
    # row by row, vectorised: P1's medication rows inside 2010-2019 but outside 2015; P2 is not in; nulls are out
    who = pa.array([P1, P1, P1, P1, P1, P2, None], pa.string())
    days = [date(2009, 12, 31), date(2014, 6, 1), date(2015, 6, 1), date(2019, 12, 31), None, date(2016, 1, 1),
            date(2016, 1, 1)]
    expected = [False, True, False, True, False, False, False]
    assert list(flt.row_mask(who, pa.array(days, pa.date32()), "medication")) == expected
    stamps = pa.array([None if d is None else datetime(d.year, d.month, d.day, 23, tzinfo=timezone(timedelta(hours=8)))
                       for d in days], pa.timestamp("us", "Asia/Shanghai"))
    assert list(flt.row_mask(who, stamps, "medication")) == expected  # 23:00 +08:00 is 15:00 UTC the same day
    as_numpy = np.array([np.datetime64("NaT") if d is None else np.datetime64(d, "us") for d in days])
    assert list(flt.row_mask(np.array([P1] * 5 + [P2, P2]), as_numpy, "medication"))[:6] == expected[:6]
    assert list(flt.row_mask(who, pa.array(days, pa.date32()), "condition")) == [False, True, True, True, False,
                                                                                  False, False]
    with pytest.raises(ConsentError, match="one date per row"):
        flt.row_mask(who, pa.array(days[:2], pa.date32()), "medication")
    # the cached filter follows time across a period boundary and the registry across a change
    assert reg.excluded([P1], H, "HRESCH", ["observation"], NOW - timedelta(days=1), cn()) == set()
    assert reg.excluded([P1], H, "HRESCH", ["observation"], NOW, cn()) == {P1}
    assert reg.excluded([P1], H, "HRESCH", ["condition"], NOW, cn()) == set()
    reg.revoke(P1, H, NOW)
    assert reg.excluded([P1], H, "HRESCH", ["condition"], NOW, cn()) == {P1}


def test_actors_limit_who_a_provision_covers() -> None:
    reg = ConsentRegistry()
    rule = Rule("permit", frozenset({Purpose.HRESCH}), actors=(Actor("uni-x"),),
                exceptions=(Rule("deny", actors=(Actor("pharma-y"),)),))
    reg.put(build_consent(P1, H, rule, now=NOW))
    assert reg.decide(P1, H, "HRESCH", "condition", NOW, cn(), recipient="uni-x").basis == Basis.EXPLICIT_PERMIT
    assert reg.decide(P1, H, "HRESCH", "condition", NOW, cn(), recipient="uni-z").basis == Basis.DEFAULT_OPT_IN
    assert reg.decide(P1, H, "HRESCH", "condition", NOW, us(), recipient="uni-z").basis == Basis.DEFAULT_OPT_OUT
    # an unknown recipient is outside the permit and inside the deny
    assert reg.decide(P1, H, "HRESCH", "condition", NOW, us()).basis == Basis.EXPLICIT_DENY
    assert reg.decide(P1, H, "TREAT", "condition", NOW, us(), recipient="pharma-y").basis == Basis.EXPLICIT_DENY


# --- excluded() against decide() -----------------------------------------------------------------------------------

_POOL = [f"{i:032x}" for i in range(12)]
_PURPOSES = [Purpose.HRESCH, Purpose.TREAT, Purpose.PUBHLTH]
_CATS = ["condition", "medication", "psychiatric", "hiv"]
_DEFAULTS = [us(), cn(), HospitalDefaults(H, (("*", "*", "opt-out"),)), HospitalDefaults(H)]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_excluded_agrees_with_decide(data: st.DataObject) -> None:
    reg = ConsentRegistry()
    for p in data.draw(st.lists(st.sampled_from(_POOL), unique=True, min_size=3, max_size=10)):
        rule = data.draw(rules(_PURPOSES, _CATS, ["uni-x", "uni-y"], depth=3, max_actors=1))
        reg.put(build_consent(p, H, rule, now=NOW))
        if data.draw(st.booleans()) and data.draw(st.booleans()):
            reg.revoke(p, H, NOW)
    purpose = data.draw(st.sampled_from(_PURPOSES))
    cats = data.draw(st.lists(st.sampled_from(_CATS), min_size=1, max_size=3, unique=True))
    defaults = data.draw(st.sampled_from(_DEFAULTS))
    recipient = data.draw(st.sampled_from([None, "uni-x", "uni-y"]))
    # instants on and around the period boundaries, where decisions (and the filter cache) change
    edges = sorted({t for p in _POOL for r in reg.history(p) for rule in r.provision.walk() if rule.period
                    for b in (rule.period.lo, rule.period.hi) if b is not None
                    for t in (b - timedelta(microseconds=1), b, b + timedelta(microseconds=1))})
    random_at = st.builds(lambda d: d.replace(tzinfo=UTC), st.datetimes(datetime(1999, 1, 1), datetime(2036, 1, 1)))
    for at in data.draw(st.lists(st.one_of(random_at, st.sampled_from(edges)) if edges else random_at,
                                 min_size=1, max_size=4)):
        expected = {p for p in _POOL if any(not reg.decide(p, H, purpose, c, at, defaults, recipient=recipient)
                                            .permitted for c in cats)}
        flt = reg.consent_filter(H, purpose, cats, at, defaults, recipient=recipient)
        assert flt.excluded(_POOL) == expected
        assert reg.excluded(iter(_POOL), H, purpose, cats, at, defaults, recipient=recipient) == expected
        assert flt.excluded(np.array(_POOL)) == expected
        assert flt.excluded(pa.chunked_array([_POOL[:5], _POOL[5:]])) == expected
        assert [p for p, m in zip(_POOL, flt.mask(pa.array(_POOL)), strict=True) if m] == \
               [p for p in _POOL if p in expected]
        assert all(flt.is_excluded(p) == (p in expected) for p in _POOL)
        # rows: their patient is in, and their date is inside what that patient's consent lets through
        rows = [(p, d) for p in _POOL for d in (date(2005, 3, 1), date(2015, 7, 1), date(2024, 12, 31), None)]
        who = pa.array([p for p, _ in rows], pa.string())
        when = pa.array([d for _, d in rows], pa.date32())
        for c in cats:
            want = []
            for p, d in rows:
                decision = reg.decide(p, H, purpose, c, at, defaults, recipient=recipient)
                want.append(p not in expected and (decision.allows_record(d) if d is not None
                                                   else not decision.restricts_records))
            assert list(flt.row_mask(who, when, c)) == want
            assert [flt.allows_record(p, c, d) for p, d in rows] == want
    assert bool(reg.consent_filter(H, purpose, cats, NOW, defaults).mask(pa.array([None], pa.string()))[0])


# --- privacy of messages -------------------------------------------------------------------------------------------


def test_no_pseudonym_appears_in_any_exception_message() -> None:
    reg = ConsentRegistry()
    reg.put(build_consent(P1, H, permit_purposes=["HRESCH"], now=NOW))
    national_id = "11010519491231002X"
    broken = build_consent(P2, H, permit_purposes=["HRESCH"], now=NOW)
    broken["provision"]["purpose"][0]["code"] = P2  # the pseudonym where a code belongs
    too_long = build_consent(P2, H, permit_purposes=["HRESCH"], now=NOW)
    too_long["patient"]["identifier"]["value"] = P2 + "ab"
    model_fail = build_consent(P2, H, permit_purposes=["HRESCH"], now=NOW)
    model_fail["patient"]["identifier"]["value"] = 12345678
    model_fail["provision"]["type"] = {"value": P2}
    clash = reg.resource(P1, H)
    clash["provision"]["purpose"][0]["code"] = "TREAT"
    attempts = [
        lambda: check_pseudonym(national_id),
        lambda: check_pseudonym(P1.upper()),
        lambda: reg.put(build_consent(P1, H, permit_purposes=["TREAT"], now=NOW)),
        lambda: reg.revoke(P2, H, NOW),
        lambda: reg.resource(P1, H, 9),
        lambda: reg.resource(P2, H),
        lambda: reg.apply_changes([clash]),
        lambda: parse_consent(broken),
        lambda: parse_consent(too_long),
        lambda: parse_consent(model_fail),
        lambda: reg.put(model_fail),
        lambda: build_consent(national_id, H, permit_purposes=["HRESCH"]),
        lambda: build_consent(P1, H, permit_purposes=["HRESCH"], categories=[P1]),
        lambda: reg.decide(P1, H, P1, "condition", NOW, cn()),
        lambda: reg.decide(P1, H, "HRESCH", "condition", NOW.replace(tzinfo=None), cn()),
        lambda: reg.put(build_consent(P2, H, permit_purposes=["HRESCH"], now=NOW, consent_id=reg.current(P1, H).id)),  # type: ignore[union-attr]
    ]
    for attempt in attempts:
        with pytest.raises(ConsentError) as err:
            attempt()
        text = str(err.value) + repr(err.value.args)
        for secret in (P1, P2, P1.upper(), national_id):
            assert secret not in text, text
