"""Choosing how a coded concept is stored: keep what senders send, flag what is not standard."""

import pytest

from medspace.connect import FindingKind, MappingError, local_system, pick_concept


def test_local_code_named_after_sender() -> None:
    c = pick_concept("observation", [("L", "001347", "Iron Bind.Cap.(TIBC)")], sender="LAB")
    assert (c.system, c.code, c.display, c.status, c.finding) == (
        "local:LAB", "001347", "Iron Bind.Cap.(TIBC)", "local", FindingKind.LOCAL_CODE)
    assert local_system("99ZZZ", "LIS") == "local:LIS"
    assert local_system("http://acme.example/codes", "LIS") == "local:http://acme.example/codes"


def test_standard_code_preferred_over_local() -> None:
    c = pick_concept("observation", [("Local", "wbc", "Wbc"), ("LN", "6690-2", "Wbc")], sender="LAB")
    assert (c.system, c.code, c.status, c.finding) == ("LOINC", "6690-2", "standard", None)


def test_icd9_is_accepted_for_conditions() -> None:
    c = pick_concept("condition", [("I9", "440.21", "ATHEROSCLEROSIS W/INT CLAUDCTN")])
    assert (c.system, c.code, c.status) == ("ICD-9-CM", "440.21", "standard")


def test_text_only() -> None:
    c = pick_concept("allergy", [], "PENICILLIN")
    assert (c.system, c.code, c.display, c.status, c.finding) == (None, None, "PENICILLIN", "text",
                                                                  FindingKind.TEXT_ONLY)


def test_invalid_code_kept_as_sent_or_skipped_for_a_valid_one() -> None:
    c = pick_concept("condition", [("http://snomed.info/sct", "80146003", "x")])
    assert (c.system, c.code, c.status, c.finding) == ("SNOMED", "80146003", "invalid", FindingKind.INVALID_CODE)
    c = pick_concept("procedure", [("http://www.ama-assn.org/go/cpt", "99-x", None),
                                   ("http://snomed.info/sct", "80146002", "Appendectomy")], "appendectomy")
    assert (c.system, c.code, c.status, c.finding) == ("SNOMED", "80146002", "standard",
                                                       FindingKind.INVALID_CODE_SKIPPED)


def test_nothing_at_all_is_missing() -> None:
    with pytest.raises(MappingError, match="neither a code nor a text"):
        pick_concept("condition", [(None, None, None)])


def test_oversized_values_are_refused_and_limits_configurable() -> None:
    from medspace.connect import Limits, complete, set_limits

    row = {"id": "p1", "family_name": "x" * 5 * 2**20}
    with pytest.raises(MappingError, match=r"patient.family_name is longer than 65,536"):
        complete("patient", dict(row), "fhir")
    old = set_limits(Limits(value_chars=10, text_chars=100))
    try:
        with pytest.raises(MappingError, match="longer than 10"):
            complete("patient", {"id": "p1", "family_name": "x" * 11}, "fhir")
        note = {"id": "n1", "patient_id": "p1", "text": "y" * 50}
        assert complete("note", note, "fhir")["text"] == "y" * 50  # free text has the larger limit
        with pytest.raises(MappingError, match=r"note\.text is longer than 100"):
            complete("note", {"id": "n1", "patient_id": "p1", "text": "y" * 101}, "fhir")
    finally:
        set_limits(old)
