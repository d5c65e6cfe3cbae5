"""De-identification policies as data: TOML files a data protection officer can read and change.

A policy says, per field of the catalogue, what happens to it in the de-identified view: kept, dropped,
pseudonymised, reduced to its year, shifted, generalised or scrubbed. Where it names no rule for a field, the
field's PHI tag decides (``[defaults]``). It may add derived fields (``patient.age`` from the birth date,
``patient.area`` from a GB 11643 resident ID, ``patient.linkage_id`` from the national ID), and ask for
k-anonymity (with l-diversity or t-closeness) over the patient's quasi-identifiers. A view never holds an
L1 field or L1 row unless ``include_l1`` names its table. Mistakes are reported with file, line and field.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

from medspace.deid.errors import HierarchyError, PolicyError
from medspace.deid.hierarchy import spec_from_options
from medspace.model.catalogue import PHI, TABLES, Level

BUILTIN = ("safe-harbor", "pipl", "research")
KEYED_ACTIONS = ("pseudonym", "shift", "linkage")  # actions that need the node's keyring

# action -> options it accepts (name -> type)
ACTIONS: dict[str, dict[str, type]] = {
    "keep": {},
    "drop": {},
    "surrogate": {},  # a random code per distinct value, drawn afresh for each view (HIPAA §164.514(c))
    "pseudonym": {},  # HMAC under the node key: stable within the hospital, re-keyed by rotation
    "year": {"top_age": int},  # a date or time to its year (with top_age: null where it shows an age >= top)
    "month": {},  # a date or time to its first day of month
    "shift": {"max_days": int},  # keyed per-patient date shift
    "zip3": {},  # HIPAA ZIP rule (US postal codes); non-US codes are dropped
    "prefix": {"keep": int},  # keep the first characters of a code, e.g. a postal code
    "top_code": {"top": int},  # ages: at or above top become one "top+" group
    "scrub": {},  # free text: PHI replaced by typed placeholders
    "linkage": {},  # national ID -> space-wide linkage pseudonym (patient.linkage_id only)
}
DERIVED: dict[str, tuple[str, ...]] = {
    "patient.age": ("keep", "top_code", "drop"),
    "patient.area": ("keep", "prefix", "drop"),
    "patient.linkage_id": ("linkage", "drop"),
}
ID_FIELDS = ("id", "patient_id", "encounter_id")  # record identifiers: only drop/surrogate/pseudonym apply
DEFAULT_ACTIONS: dict[str, tuple[str, ...]] = {
    PHI.DIRECT.value: ("drop", "surrogate", "pseudonym"),
    PHI.QUASI.value: ("keep", "drop"),
    PHI.DATE.value: ("keep", "drop", "year", "month", "shift"),
    PHI.FREE_TEXT.value: ("scrub", "drop", "keep"),
}
DEFAULT_KEYS = set(DEFAULT_ACTIONS)
HIERARCHIES = ("intervals", "dates", "prefix", "icd10", "table", "suppress")
# The placeholder types of the free-text scrubber (medspace.deid.text.PHI_TYPES, not imported: loading the
# scrubber compiles its patterns) that a policy's [text] section may name.
TEXT_TYPES = ("NAME", "ID", "PHONE", "ADDRESS", "DATE", "MRN", "EMAIL", "URL", "AGE", "LOCATION", "IP")


@dataclass(frozen=True)
class Rule:
    """What happens to one field."""

    field: str  # "table.field"
    action: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    line: int | None = None  # where the policy file says so; None when a default decided


@dataclass(frozen=True)
class QuasiIdentifier:
    """A patient attribute the k-anonymity search may generalise, with its hierarchy."""

    name: str  # field of the patient view (after rules), e.g. "age", "sex", "postal_code"
    hierarchy: str
    options: dict[str, Any]
    line: int | None


@dataclass(frozen=True)
class Anonymity:
    """The privacy model the patient view must reach."""

    k: int
    max_suppression: float
    quasi_identifiers: tuple[QuasiIdentifier, ...]
    l: int | None = None  # noqa: E741 - the model's name
    t: float | None = None
    sensitive: str | None = None  # a column of the patient view (one record per patient)
    metric: str = "loss"


@dataclass(frozen=True)
class Policy:
    """A parsed, checked de-identification policy."""

    name: str
    title: str
    source: str
    citations: tuple[str, ...]
    include_l1: frozenset[str]
    as_of: date | None  # reference date for ages; None: the day the view is made
    defaults: dict[str, str]
    rules: dict[str, Rule]  # explicit rules by "table.field"
    anonymity: Anonymity | None
    text: str  # the policy file as written (its hash goes into the report)
    # [text]: PHI types the scrubber leaves in free text, and whether every capitalised word that is no known
    # English word is taken for a name (recall over readability).
    text_keep: frozenset[str] = frozenset()
    uncertain_names: bool = False

    def rule_for(self, table: str, name: str) -> Rule:
        """The rule that applies to a catalogue field: the explicit one, else the default of its PHI tag."""
        key = f"{table}.{name}"
        if key in self.rules:
            return self.rules[key]
        if f"*.{name}" in self.rules:
            return self.rules[f"*.{name}"]
        tags = TABLES[table][name].phi
        for tag in (PHI.DIRECT, PHI.FREE_TEXT, PHI.DATE, PHI.QUASI):
            if tag in tags and tag.value in self.defaults:
                return Rule(key, self.defaults[tag.value])
        return Rule(key, "keep")

    def derived(self) -> dict[str, Rule]:
        """The derived fields the policy asks for."""
        return {k: r for k, r in self.rules.items() if k in DERIVED and r.action != "drop"}

    def admits_l1(self, table: str) -> bool:
        """True if the view may hold L1 rows or fields of a table."""
        return table in self.include_l1

    @property
    def uses_keys(self) -> bool:
        """True if building the view needs the node's keyring (pseudonyms, date shifts, linkage IDs)."""
        if any(r.action in KEYED_ACTIONS for r in self.derived().values()):
            return True
        return any(self.rule_for(t.name, f.name).action in KEYED_ACTIONS for t in TABLES.values() for f in t)


def _schema_key(name: str) -> str:
    """What a policy name becomes as a view schema, case-folded (names equal here share one view)."""
    return re.sub(r"[^a-z0-9]", "_", name.strip().lower())


RESERVED = {_schema_key(n): n for n in BUILTIN}


class _Lines:
    """Finds the line of a key in a TOML text (tomllib keeps no positions)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def of(self, section: str | None, key: str | None = None) -> int | None:
        start = 0
        if section is not None:
            head = re.compile(r"^\s*\[{1,2}\s*" + re.escape(section) + r"\s*\]{1,2}\s*(#.*)?$")
            for i, ln in enumerate(self.lines):
                if head.match(ln):
                    start = i
                    break
            else:
                return None
            if key is None:
                return start + 1
        if key is None:
            return None
        pat = re.compile(r"^\s*(\"" + re.escape(key) + r"\"|'" + re.escape(key) + r"'|" + re.escape(key) + r")\s*=")
        for i in range(start, len(self.lines)):
            if i > start and section is not None and self.lines[i].lstrip().startswith("["):
                break
            if pat.match(self.lines[i]):
                return i + 1
        return start + 1 if section is not None else None


def resolve(policy: str | Path) -> tuple[str, str]:
    """A policy name or path to (source name, text): built-in names first, then files."""
    name = str(policy)
    if name in BUILTIN:
        text = resources.files("medspace.deid.policies").joinpath(f"{name}.toml").read_text("utf-8")
        return f"<built-in {name}>", text
    p = Path(policy)
    try:
        return str(p), p.read_text("utf-8")
    except FileNotFoundError:
        raise PolicyError(str(p), None, "policy", f"no such file, and not a built-in policy ({', '.join(BUILTIN)})")\
            from None
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(str(p), None, "policy", f"cannot be read ({type(e).__name__})") from None


def load_policy(policy: str | Path) -> Policy:
    """Load and check a policy by built-in name or path (a file may not take a built-in policy's name)."""
    source, text = resolve(policy)
    return parse_policy(text, source, custom=str(policy) not in BUILTIN)


def parse_policy(text: str, source: str = "<policy>", *, custom: bool = False) -> Policy:
    """Parse and check a policy's TOML text; every error names the line and the field.

    `custom`: the text is not one of the built-in policies, so it may not take a built-in policy's name
    (its view would replace the built-in's). Texts stored with a view are re-parsed without it.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        line = int(m.group(1)) if m else (len(text.splitlines()) or 1) if "end of document" in str(e) else None
        raise PolicyError(source, line, "syntax", str(e).split(" (at ")[0]) from None
    lines = _Lines(text)

    def fail(section: str | None, key: str | None, fld: str, msg: str) -> PolicyError:
        return PolicyError(source, lines.of(section, key), fld, msg)

    known = {"policy", "defaults", "rules", "anonymity", "text"}
    for sec in doc:
        if sec not in known:
            raise fail(sec, None, sec, f"unknown section; expected one of {', '.join(sorted(known))}")
    head = doc.get("policy")
    if not isinstance(head, dict):
        raise fail(None, None, "policy", "a [policy] section with a name is required")
    name = head.get("name")
    if custom and isinstance(name, str) and _schema_key(name) in RESERVED:
        raise fail("policy", "name", "policy.name", f"{name!r} is the name of the built-in policy "
                   f"{RESERVED[_schema_key(name)]} (reserved: {', '.join(BUILTIN)}); choose another name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9-]{0,40}", name):
        raise fail("policy", "name", "policy.name", "must be a short lower-case name (letters, digits, '-')")
    for k in head:
        if k not in {"name", "title", "cites", "include_l1", "as_of"}:
            raise fail("policy", k, f"policy.{k}", "unknown key; expected name, title, cites, include_l1, as_of")
    include = head.get("include_l1", [])
    if not isinstance(include, list) or any(t not in TABLES for t in include):
        raise fail("policy", "include_l1", "policy.include_l1", f"must list tables of the model ({', '.join(TABLES)})")
    as_of: date | None = None
    raw_as_of = head.get("as_of", "today")
    if isinstance(raw_as_of, date):
        as_of = raw_as_of
    elif raw_as_of != "today":
        raise fail("policy", "as_of", "policy.as_of", "must be a date (2026-01-31) or \"today\"")
    cites = head.get("cites", [])
    if not isinstance(cites, list) or not all(isinstance(c, str) for c in cites):
        raise fail("policy", "cites", "policy.cites", "must be a list of strings")

    defaults_raw = doc.get("defaults", {})
    defaults: dict[str, str] = {}
    for k, v in defaults_raw.items():
        if k not in DEFAULT_KEYS:
            raise fail("defaults", k, f"defaults.{k}", f"unknown PHI tag; expected {', '.join(sorted(DEFAULT_KEYS))}")
        if v not in DEFAULT_ACTIONS[k]:
            raise fail("defaults", k, f"defaults.{k}", f"action {v!r} does not suit {k}; "
                       f"expected one of {', '.join(DEFAULT_ACTIONS[k])}")
        defaults[k] = v

    rules: dict[str, Rule] = {}
    for key, spec in doc.get("rules", {}).items():
        line = lines.of("rules", key)
        rules[key] = _rule(key, spec, line, source)

    anonymity = _anonymity(doc.get("anonymity"), lines, source, rules) if "anonymity" in doc else None
    text_keep, uncertain = _text_options(doc.get("text", {}), lines, source)
    return Policy(name=name, title=str(head.get("title", name)), source=source, citations=tuple(cites),
                  include_l1=frozenset(include), as_of=as_of, defaults=defaults, rules=rules, anonymity=anonymity,
                  text=text, text_keep=text_keep, uncertain_names=uncertain)


def _text_options(spec: Any, lines: _Lines, source: str) -> tuple[frozenset[str], bool]:
    """The [text] section: keep = [PHI types left in free text], uncertain_names = "keep" | "remove"."""
    if not isinstance(spec, dict):
        raise PolicyError(source, lines.of("text"), "text", "must be a table")
    for key in spec:
        if key not in ("keep", "uncertain_names"):
            raise PolicyError(source, lines.of("text", key), f"text.{key}",
                              "unknown key; expected keep, uncertain_names")
    keep = spec.get("keep", [])
    if not isinstance(keep, list) or any(t not in TEXT_TYPES for t in keep):
        raise PolicyError(source, lines.of("text", "keep"), "text.keep",
                          f"must list placeholder types ({', '.join(TEXT_TYPES)})")
    uncertain = spec.get("uncertain_names", "keep")
    if uncertain not in ("keep", "remove"):
        raise PolicyError(source, lines.of("text", "uncertain_names"), "text.uncertain_names",
                          "must be \"keep\" (only words the lists or the context make a name) or \"remove\" "
                          "(every capitalised word that is no known English word becomes [NAME])")
    return frozenset(keep), uncertain == "remove"


def _rule(key: str, spec: Any, line: int | None, source: str) -> Rule:
    fld = f"rules.{key}"
    if isinstance(spec, str):
        action, options = spec, {}
    elif isinstance(spec, dict) and isinstance(spec.get("action"), str):
        action, options = spec["action"], {k: v for k, v in spec.items() if k != "action"}
    else:
        raise PolicyError(source, line, fld, "a rule is an action name or an inline table with an action")
    if "." not in key:
        raise PolicyError(source, line, fld, "a rule names a field as table.field")
    table, name = key.split(".", 1)
    if action not in ACTIONS:
        raise PolicyError(source, line, fld, f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    if key in DERIVED:
        if action not in DERIVED[key]:
            raise PolicyError(source, line, fld, f"{key} (derived) takes {', '.join(DERIVED[key])}")
    else:
        if table != "*" and table not in TABLES:
            raise PolicyError(source, line, fld, f"unknown table {table!r}; known: {', '.join(TABLES)} (or *)")
        having = [t for t in TABLES.values() if name in t and table in ("*", t.name)]
        if not having:
            raise PolicyError(source, line, fld, f"no table has a field {name!r}" if table == "*"
                              else f"the table {table} has no field {name!r}")
        f = having[0][name]
        if name in ID_FIELDS and action not in ("drop", "surrogate", "pseudonym"):
            raise PolicyError(source, line, fld, "a record identifier can only be dropped, surrogate or pseudonym")
        if name not in ID_FIELDS and action in ("surrogate", "pseudonym") and f.type.value != "str":
            raise PolicyError(source, line, fld, f"{action} applies to text fields")
        if action in ("year", "month", "shift") and f.type.value not in ("date", "timestamp"):
            raise PolicyError(source, line, fld, f"{action} applies to dates and times, not {f.type.value}")
        if action == "scrub" and PHI.FREE_TEXT not in f.phi:
            raise PolicyError(source, line, fld, "scrub applies to free-text fields")
        if action in ("zip3", "prefix") and f.type.value != "str":
            raise PolicyError(source, line, fld, f"{action} applies to text codes")
        if action in ("top_code", "linkage"):
            raise PolicyError(source, line, fld, f"{action} applies only to derived fields")
        if f.required and action == "drop" and name in ("code", "code_system", "gene"):
            raise PolicyError(source, line, fld, "a view cannot drop the field that gives a row its meaning")
    allowed = ACTIONS[action]
    for k, v in options.items():
        if k not in allowed:
            raise PolicyError(source, line, f"{fld}.{k}", f"{action} takes no option {k!r}"
                              + (f"; it takes {', '.join(allowed)}" if allowed else ""))
        if not isinstance(v, allowed[k]) or isinstance(v, bool) or (isinstance(v, int) and v < 1):
            raise PolicyError(source, line, f"{fld}.{k}", f"must be a positive {allowed[k].__name__}")
    if action == "prefix" and "keep" not in options:
        raise PolicyError(source, line, fld, "prefix needs keep = <number of characters>")
    return Rule(key, action, options, line)


def _anonymity(spec: Any, lines: _Lines, source: str, rules: dict[str, Rule]) -> Anonymity:
    if not isinstance(spec, dict):
        raise PolicyError(source, lines.of("anonymity"), "anonymity", "must be a table")
    allowed = {"k", "max_suppression", "l", "t", "sensitive", "metric", "quasi_identifiers"}
    for key in spec:
        if key not in allowed and not key.startswith("quasi_identifiers"):
            raise PolicyError(source, lines.of("anonymity", key), f"anonymity.{key}",
                              f"unknown key; expected {', '.join(sorted(allowed))}")
    k = spec.get("k")
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        raise PolicyError(source, lines.of("anonymity", "k"), "anonymity.k", "must be an integer of at least 2")
    sup = spec.get("max_suppression", 0.05)
    if not isinstance(sup, int | float) or isinstance(sup, bool) or not 0 <= sup < 1:
        raise PolicyError(source, lines.of("anonymity", "max_suppression"), "anonymity.max_suppression",
                          "must be a share between 0 and 1 (e.g. 0.05)")
    ell = spec.get("l")
    if ell is not None and (not isinstance(ell, int) or isinstance(ell, bool) or ell < 2):
        raise PolicyError(source, lines.of("anonymity", "l"), "anonymity.l", "must be an integer of at least 2")
    t = spec.get("t")
    if t is not None and (not isinstance(t, int | float) or isinstance(t, bool) or not 0 < t <= 1):
        raise PolicyError(source, lines.of("anonymity", "t"), "anonymity.t", "must be a number in (0, 1]")
    sensitive = spec.get("sensitive")
    if (ell is not None or t is not None) and not isinstance(sensitive, str):
        raise PolicyError(source, lines.of("anonymity", "sensitive"), "anonymity.sensitive",
                          "l-diversity and t-closeness need a sensitive attribute, e.g. \"marital_status\"")
    if sensitive is not None:
        # One record per patient: the sensitive attribute is a column of the patient view.
        patient = TABLES["patient"]
        if not isinstance(sensitive, str) or (sensitive not in patient and f"patient.{sensitive}" not in DERIVED):
            raise PolicyError(source, lines.of("anonymity", "sensitive"), "anonymity.sensitive",
                              "must name a column of the patient view, e.g. \"marital_status\"")
        if sensitive in patient and patient[sensitive].level == Level.L1:
            raise PolicyError(source, lines.of("anonymity", "sensitive"), "anonymity.sensitive",
                              "an L1 field cannot be the sensitive attribute of a research view")
    metric = spec.get("metric", "loss")
    if metric not in ("loss", "discernibility"):
        raise PolicyError(source, lines.of("anonymity", "metric"), "anonymity.metric",
                          "must be \"loss\" or \"discernibility\"")
    qis_raw = spec.get("quasi_identifiers")
    if not isinstance(qis_raw, dict) or not qis_raw:
        raise PolicyError(source, lines.of("anonymity.quasi_identifiers") or lines.of("anonymity"),
                          "anonymity.quasi_identifiers", "must map each patient field to its hierarchy")
    qis = []
    patient = TABLES["patient"]
    for name, q in qis_raw.items():
        line = lines.of("anonymity.quasi_identifiers", name)
        fld = f"anonymity.quasi_identifiers.{name}"
        if name not in patient and f"patient.{name}" not in DERIVED:
            raise PolicyError(source, line, fld, "must be a field of the patient view (or age / area)")
        r = rules.get(f"patient.{name}")
        if f"patient.{name}" in DERIVED and (r is None or r.action == "drop"):
            raise PolicyError(source, line, fld, f"patient.{name} is derived: add a rule that keeps it")
        if r is not None and r.action == "drop":
            raise PolicyError(source, line, fld, f"patient.{name} is dropped by a rule")
        if name in patient and PHI.QUASI not in patient[name].phi:
            raise PolicyError(source, line, fld, "is not tagged as a quasi-identifier in the catalogue")
        if not isinstance(q, dict) or q.get("hierarchy") not in HIERARCHIES:
            raise PolicyError(source, line, fld, f"needs hierarchy = one of {', '.join(HIERARCHIES)}")
        options = {a: b for a, b in q.items() if a != "hierarchy"}
        try:
            spec_from_options(q["hierarchy"], options)
        except HierarchyError as e:
            raise PolicyError(source, line, fld, str(e)) from None
        if name == sensitive:
            raise PolicyError(source, line, fld, "cannot be both a quasi-identifier and the sensitive attribute")
        qis.append(QuasiIdentifier(name, q["hierarchy"], options, line))
    return Anonymity(k=k, max_suppression=float(sup), quasi_identifiers=tuple(qis), l=ell,
                     t=float(t) if t is not None else None, sensitive=sensitive, metric=metric)
