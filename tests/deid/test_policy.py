"""Policy files: the built-ins load, and every mistake names its line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from medspace.deid.errors import PolicyError
from medspace.deid.policy import BUILTIN, load_policy, parse_policy
from medspace.model.catalogue import PHI, TABLES, Level


@pytest.mark.parametrize("name", BUILTIN)
def test_builtins_load_and_cover_every_direct_identifier(name: str) -> None:
    p = load_policy(name)
    assert p.name == name and p.citations
    for t in TABLES.values():
        for f in t:
            rule = p.rule_for(t.name, f.name)
            if PHI.DIRECT in f.phi:
                assert rule.action in ("drop", "surrogate", "pseudonym"), (t.name, f.name, rule)
            if PHI.FREE_TEXT in f.phi:
                assert rule.action in ("drop", "scrub")
    assert not p.include_l1
    assert all(not p.admits_l1(t) for t, spec in TABLES.items() if spec.base_level == Level.L1)


def test_safe_harbor_takes_dates_to_years_and_zip_to_three_digits() -> None:
    p = load_policy("safe-harbor")
    assert p.rule_for("encounter", "start_time").action == "year"
    assert p.rule_for("patient", "postal_code").action == "zip3"
    assert p.rule_for("patient", "birth_date").options == {"top_age": 90}
    assert p.rule_for("patient", "city").action == "drop"


def test_research_asks_for_k_anonymity() -> None:
    a = load_policy("research").anonymity
    assert a is not None and a.k == 5 and 0 < a.max_suppression < 1
    assert {q.name for q in a.quasi_identifiers} >= {"age", "sex"}


GOOD = """\
[policy]
name = "mine"

[defaults]
direct_identifier = "drop"

[rules]
"patient.postal_code" = "zip3"
"""


@pytest.mark.parametrize(("text", "line", "field", "words"), [
    (GOOD.replace('"zip3"', '"zip9"'), 8, "rules.patient.postal_code", "unknown action"),
    (GOOD.replace("patient.postal_code", "patient.postcode"), 8, "rules.patient.postcode", "no field"),
    (GOOD.replace("patient.postal_code", "patients.postal_code"), 8, "rules.patients.postal_code", "unknown table"),
    (GOOD.replace('"drop"', '"year"'), 5, "defaults.direct_identifier", "action"),
    (GOOD.replace('direct_identifier', 'direct'), 5, "defaults.direct", "unknown PHI tag"),
    (GOOD.replace('name = "mine"', 'name = "Mine Policy"'), 2, "policy.name", "lower-case"),
    (GOOD + '"encounter.start_time" = "zip3"\n', 9, "rules.encounter.start_time", "text codes"),
    (GOOD + '"patient.sex" = "year"\n', 9, "rules.patient.sex", "dates"),
    (GOOD + '"patient.id" = "year"\n', 9, "rules.patient.id", "record identifier"),
    (GOOD + '"patient.postal_code2" = { action = "prefix" }\n', 9, "rules.patient.postal_code2", "no field"),
    (GOOD + '"patient.area" = { action = "prefix" }\n', 9, "rules.patient.area", "keep"),
    (GOOD + '"patient.area" = { action = "prefix", keep = "4" }\n', 9, "rules.patient.area.keep", "positive int"),
    (GOOD + '"patient.age" = { action = "top_code", cap = 90 }\n', 9, "rules.patient.age.cap", "no option"),
    (GOOD + "[anonymity]\nk = 1\n", 10, "anonymity.k", "at least 2"),
    (GOOD + "[anonymity]\nk = 5\n[anonymity.quasi_identifiers]\nphone = { hierarchy = \"suppress\" }\n", 12,
     "anonymity.quasi_identifiers.phone", "quasi-identifier"),
    (GOOD + "[anonymity]\nk = 5\nl = 2\n[anonymity.quasi_identifiers]\nsex = { hierarchy = \"suppress\" }\n", 9,
     "anonymity.sensitive", "sensitive attribute"),
    (GOOD + "[anonymity]\nk = 5\n[anonymity.quasi_identifiers]\nsex = { hierarchy = \"magic\" }\n", 12,
     "anonymity.quasi_identifiers.sex", "hierarchy"),
    (GOOD + "[extra]\n", 9, "extra", "unknown section"),
    (GOOD + "x = [\n", 9, "syntax", ""),
])
def test_mistakes_name_line_and_field(text: str, line: int, field: str, words: str) -> None:
    with pytest.raises(PolicyError) as e:
        parse_policy(text, "mine.toml")
    assert e.value.line == line, str(e.value)
    assert e.value.field == field, str(e.value)
    assert words in e.value.message
    assert str(e.value).startswith(f"mine.toml:{line}: {field}: ")


def test_missing_file_names_the_builtins(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="safe-harbor"):
        load_policy(tmp_path / "nope.toml")


def test_wildcards_and_explicit_rules() -> None:
    p = parse_policy(GOOD + '"*.patient_id" = "pseudonym"\n"note.patient_id" = "surrogate"\n')
    assert p.rule_for("observation", "patient_id").action == "pseudonym"
    assert p.rule_for("note", "patient_id").action == "surrogate"
    assert p.rule_for("patient", "phone").action == "drop"
    assert p.rule_for("patient", "sex").action == "keep"


def test_the_readme_example_policy_is_valid() -> None:
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", readme, re.S)
    example = next(b for b in blocks if "[anonymity]" in b)
    p = parse_policy(example, "README.md")
    assert p.name == "mine" and p.anonymity is not None and p.anonymity.k == 5


@pytest.mark.parametrize(("name", "builtin"), [
    ("safe-harbor", "safe-harbor"), ("pipl", "pipl"), ("research", "research"), ("Safe-Harbor", "safe-harbor"),
    ("safe_harbor", "safe-harbor"), ("SAFE HARBOR", "safe-harbor"), ("PIPL", "pipl"), (" Research", "research"),
])
def test_a_policy_file_cannot_take_a_built_in_name(tmp_path: Path, name: str, builtin: str) -> None:
    # Its view would be the built-in's schema (deid_safe_harbor) and replace it, with other rules.
    text = load_policy(builtin).text
    head = next(ln for ln in text.splitlines() if ln.startswith("name = "))
    line = text.splitlines().index(head) + 1
    path = tmp_path / "mine.toml"
    path.write_text(text.replace(head, f'name = "{name}"'))
    with pytest.raises(PolicyError) as e:
        load_policy(path)
    assert str(e.value).startswith(f"{path}:{line}: policy.name: {name!r} is the name of the built-in policy "
                                   f"{builtin} (reserved: safe-harbor, pipl, research)")
    with pytest.raises(PolicyError, match="reserved"):
        parse_policy(path.read_text(), str(path), custom=True)


def test_built_in_texts_keep_their_names() -> None:
    for name in BUILTIN:
        assert load_policy(name).name == name
        # the text stored with a view is re-parsed when the node key is rotated
        assert parse_policy(load_policy(name).text, f"<stored {name}>").name == name
    assert load_policy(Path("research")).name == "research"


def test_a_name_unlike_the_built_ins_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(GOOD.replace('name = "mine"', 'name = "safe-harbor-2"'))
    assert load_policy(path).name == "safe-harbor-2"


def test_which_policies_need_the_node_keys() -> None:
    assert not load_policy("safe-harbor").uses_keys  # random surrogates and years
    assert load_policy("pipl").uses_keys and load_policy("research").uses_keys
    assert not parse_policy(GOOD).uses_keys
    assert parse_policy(GOOD + '"*.patient_id" = "pseudonym"\n').uses_keys
    assert parse_policy(GOOD.replace("[rules]", '[rules]\n"patient.linkage_id" = "linkage"')).uses_keys
    assert parse_policy(GOOD.replace('[defaults]', '[defaults]\ndate = "shift"')).uses_keys
