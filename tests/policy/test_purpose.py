"""Purposes and DUO data uses: the term table against EBISPOT's duo.csv, and which purposes go with which use."""

import csv
from pathlib import Path

import pytest

from medspace.ledger.entry import Purpose as LedgerPurpose
from medspace.policy.errors import ContractError
from medspace.policy.purpose import (
    DUO,
    DuoKind,
    Purpose,
    check_compatible,
    check_data_use,
    check_disease,
    parse_purpose,
)

DATA = Path(__file__).parent / "data"


def test_purpose_is_the_ledger_purpose() -> None:
    assert Purpose is LedgerPurpose
    assert parse_purpose("HRESCH") is Purpose.HRESCH
    with pytest.raises(ContractError, match="not an HL7 PurposeOfUse code"):
        parse_purpose("RESEARCH")


def test_duo_terms_match_ebispot_duo_csv() -> None:
    with (DATA / "duo.csv").open(encoding="utf-8") as f:
        upstream = {row["id"]: row for row in csv.DictReader(f)}
    for term in DUO.values():
        row = upstream[term.id]
        assert (row["shorthand"], row["label"]) == (term.shorthand, term.label), term.id
        kind = "permission" if "data use permission" in row["description"] else "modifier"
        assert term.kind is DuoKind(kind), term.id
    for needed in ("DUO:0000042", "DUO:0000006", "DUO:0000007", "DUO:0000011", "DUO:0000043", "DUO:0000046",
                   "DUO:0000018", "DUO:0000045", "DUO:0000019", "DUO:0000024", "DUO:0000022", "DUO:0000021"):
        assert needed in DUO


@pytest.mark.parametrize(("purpose", "codes"), [
    ("HRESCH", ["DUO:0000042"]),
    ("HRESCH", ["DUO:0000006", "DUO:0000046", "DUO:0000019", "DUO:0000021"]),
    ("HRESCH", ["DUO:0000011"]),
    ("CLINTRCH", ["DUO:0000006", "DUO:0000022"]),
    ("PUBHLTH", ["DUO:0000042"]),
    ("TREAT", ["DUO:0000043"]),
    ("ETREAT", ["DUO:0000043", "DUO:0000004"]),
])
def test_compatible(purpose: str, codes: list[str]) -> None:
    p, duo = check_compatible(purpose, codes)
    assert p is Purpose(purpose)
    assert duo == tuple(sorted(codes))


def test_disease_specific_research_needs_a_disease() -> None:
    assert check_compatible("HRESCH", ["DUO:0000007"], "MONDO:0005148")[1] == ("DUO:0000007",)
    assert check_compatible("HRESCH", ["DUO:0000007"], "ICD-10:E11.9")[1] == ("DUO:0000007",)
    with pytest.raises(ContractError, match=r"duo\.ds-disease"):
        check_compatible("HRESCH", ["DUO:0000007"])
    with pytest.raises(ContractError, match=r"duo\.ds-disease"):
        check_compatible("HRESCH", ["DUO:0000006"], "MONDO:0005148")
    with pytest.raises(ContractError, match=r"duo\.ds-disease"):
        check_disease("diabetes")


@pytest.mark.parametrize(("purpose", "codes", "rule"), [
    ("TREAT", ["DUO:0000042"], "duo.purpose: purpose TREAT is clinical care and needs DUO:0000043"),
    ("ETREAT", ["DUO:0000043", "DUO:0000006"], "duo.purpose: purpose ETREAT is clinical care; DUO:0000006 HMB"),
    ("HRESCH", ["DUO:0000043"], "duo.purpose: purpose HRESCH needs one of"),
    ("CLINTRCH", ["DUO:0000011"], "duo.purpose: purpose CLINTRCH needs one of"),
    ("HPAYMT", ["DUO:0000042"], "duo.purpose: purpose HPAYMT has no data use in DUO"),
    ("HRESCH", ["DUO:0000042", "DUO:0000006"], "duo.one-permission"),
    ("HRESCH", ["DUO:0000046"], "duo.one-permission"),
    ("HRESCH", [], "duo.one-permission"),
    ("HRESCH", ["DUO:9999999"], "duo.known"),
    ("HRESCH", ["DUO:0000042", "DUO:0000042"], "duo.known"),
    ("HRESCH", ["DUO:0000011", "DUO:0000044"], "duo.conflict"),
])
def test_incompatible_names_the_rule(purpose: str, codes: list[str], rule: str) -> None:
    with pytest.raises(ContractError, match=rule.replace("(", r"\(")):
        check_compatible(purpose, codes)


def test_data_use_must_be_a_list() -> None:
    with pytest.raises(ContractError, match="a list of DUO codes"):
        check_data_use("DUO:0000042")
