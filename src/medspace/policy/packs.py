"""Compliance packs as data: TOML files of rules with their citations, read and checked here.

A pack (``src/medspace/policy/packs/<name>.toml``, shipped in the wheel) is a ``[pack]`` table and a list of
``[[rule]]`` tables::

    [pack]
    name = "pipl"                     # lower-case, the file's name
    title = "..."
    jurisdiction = "CN"               # ISO 3166-1 alpha-2, "EU", or "*" for medspace's own packs
    as_of = "2025-01-01"              # the date the law was read as of
    sources = ["..."]                 # where the citations and figures come from

    [[rule]]
    id = "pipl.export-assessment"     # unique, starting with the pack's name and a dot
    citation = "PIPL Art. 38(1)(1), Art. 40; ..."
    text = "..."                      # what the rule says, in a sentence or two
    check = "export_tier"             # a predicate registered in medspace.policy.decision.PREDICATES
    effect = "require"                # require: the check must hold; deny: it must not
    purposes = ["HRESCH"]             # optional scope: the rule applies only to these purposes
    roles = ["researcher"]            # optional scope: ... and to these roles
    params = { tier = "assessment", ... }   # the predicate's parameters, checked against its registration

Built-in packs: ``roles`` and ``sensitivity`` (medspace's own rules, always applied), ``hipaa``, ``gdpr``, ``pipl``.
A malformed pack raises :class:`PackError` as ``file:line: rule <id>: <field>: <reason>``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from medspace.ledger.entry import Purpose, Role
from medspace.policy.contract import REGIONS
from medspace.policy.decision import PREDICATES, Effect, check_param
from medspace.policy.errors import PackError

BUILTIN_PACKS = ("roles", "sensitivity", "hipaa", "gdpr", "pipl")
_NAME = re.compile(r"[a-z][a-z0-9-]{0,40}")
_RULE_ID = re.compile(r"[a-z][a-z0-9-]{0,40}\.[a-z0-9][a-z0-9.-]{0,80}")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")


@dataclass(frozen=True)
class Rule:
    """One rule of a pack: what it says, where the law says it, and the predicate that checks it."""

    id: str
    pack: str
    citation: str
    text: str
    check: str
    params: Mapping[str, Any]
    effect: Effect
    purposes: frozenset[Purpose] = frozenset()
    roles: frozenset[Role] = frozenset()
    line: int | None = None


@dataclass(frozen=True)
class Pack:
    """A compliance pack: its rules, in file order."""

    name: str
    title: str
    jurisdiction: str
    as_of: str
    sources: tuple[str, ...]
    rules: tuple[Rule, ...]
    source: str

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id, or KeyError."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


def _rule_lines(text: str) -> list[int]:
    return [i + 1 for i, line in enumerate(text.splitlines()) if line.strip().startswith("[[rule]]")]


def parse_pack(text: str, source: str = "<pack>") -> Pack:
    """Parse and check a pack's TOML text; every error names the file, line, rule and field."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise PackError(f"{source}:{m.group(1) if m else '?'}: syntax: {str(e).split(' (at ')[0]}") from None

    def fail(line: int | None, rule: str | None, fld: str, msg: str) -> PackError:
        where = f"{source}:{line}" if line else source
        return PackError(f"{where}: {'rule ' + rule + ': ' if rule else ''}{fld}: {msg}")

    unknown = sorted(set(doc) - {"pack", "rule"})
    if unknown:
        raise fail(None, None, unknown[0], "unknown section; expected [pack] and [[rule]]")
    head = doc.get("pack")
    if not isinstance(head, dict):
        raise fail(1, None, "pack", "a [pack] table is required")
    for k in sorted(set(head) - {"name", "title", "jurisdiction", "as_of", "sources"}):
        raise fail(None, None, f"pack.{k}", "unknown key; expected name, title, jurisdiction, as_of, sources")
    name = head.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise fail(None, None, "pack.name", "must be a short lower-case name")
    for key in ("title", "as_of"):
        if not isinstance(head.get(key), str) or not head[key]:
            raise fail(None, None, f"pack.{key}", "is required (a string)")
    if not _DATE.fullmatch(head["as_of"]):
        raise fail(None, None, "pack.as_of", "must be a date, YYYY-MM-DD")
    jurisdiction = head.get("jurisdiction")
    if jurisdiction not in ("*", "EU") and jurisdiction not in REGIONS:
        raise fail(None, None, "pack.jurisdiction", 'must be an ISO 3166-1 alpha-2 code, "EU" or "*"')
    sources = head.get("sources", [])
    if not isinstance(sources, list) or not all(isinstance(s, str) and s for s in sources):
        raise fail(None, None, "pack.sources", "must be a list of strings")
    raw_rules = doc.get("rule", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        raise fail(None, None, "rule", "a pack needs at least one [[rule]]")
    lines = _rule_lines(text)
    rules: list[Rule] = []
    seen: set[str] = set()
    for n, raw in enumerate(raw_rules):
        line = lines[n] if n < len(lines) else None
        rules.append(_parse_rule(raw, name, line, seen, fail))
    return Pack(name=name, title=head["title"], jurisdiction=jurisdiction, as_of=head["as_of"],
                sources=tuple(sources), rules=tuple(rules), source=source)


def _parse_rule(raw: object, pack: str, line: int | None, seen: set[str], fail: Any) -> Rule:
    if not isinstance(raw, dict):
        raise fail(line, None, "rule", "must be a table")
    rid = raw.get("id")
    if not isinstance(rid, str) or not _RULE_ID.fullmatch(rid):
        raise fail(line, None, "id", "must be <pack>.<name>, lower-case")
    if not rid.startswith(pack + "."):
        raise fail(line, rid, "id", f"must start with the pack's name, {pack}.")
    if rid in seen:
        raise fail(line, rid, "id", "is used twice")
    seen.add(rid)
    known = {"id", "citation", "text", "check", "effect", "purposes", "roles", "params"}
    for k in sorted(set(raw) - known):
        raise fail(line, rid, k, f"unknown key; expected {', '.join(sorted(known))}")
    for key in ("citation", "text"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise fail(line, rid, key, "is required (a non-empty string)")
    check = raw.get("check")
    if check not in PREDICATES:
        raise fail(line, rid, "check", f"{check!r} is not a registered predicate ({', '.join(sorted(PREDICATES))})")
    try:
        effect = Effect(str(raw.get("effect")))
    except ValueError:
        raise fail(line, rid, "effect", "must be deny or require") from None
    scope: dict[str, Any] = {}
    for key, kind in (("purposes", "purposes"), ("roles", "roles")):
        if key in raw:
            try:
                scope[key] = check_param(kind, raw[key])
            except ValueError as e:
                raise fail(line, rid, key, str(e)) from None
    params_raw = raw.get("params", {})
    if not isinstance(params_raw, dict):
        raise fail(line, rid, "params", "must be a table")
    spec = PREDICATES[check].params
    for k in sorted(set(params_raw) - set(spec)):
        raise fail(line, rid, f"params.{k}", f"{check} takes no such parameter "
                                             f"({', '.join(sorted(spec)) or 'none'})")
    params: dict[str, Any] = {}
    for k, p in spec.items():
        if k not in params_raw:
            if p.default is None:
                raise fail(line, rid, f"params.{k}", f"{check} needs it ({p.kind})")
            params[k] = p.default
            continue
        try:
            params[k] = check_param(p.kind, params_raw[k])
        except ValueError as e:
            raise fail(line, rid, f"params.{k}", str(e)) from None
    return Rule(id=rid, pack=pack, citation=raw["citation"], text=raw["text"].strip(), check=check,
                params=MappingProxyType(params), effect=effect, line=line, **scope)


def resolve(pack: str | Path) -> tuple[str, str]:
    """A built-in pack name or a path to (source name, text)."""
    name = str(pack)
    if name in BUILTIN_PACKS:
        ref = resources.files("medspace.policy").joinpath("packs", f"{name}.toml")
        return f"<built-in {name}>.toml", ref.read_text("utf-8")
    p = Path(pack)
    try:
        return str(p), p.read_text("utf-8")
    except FileNotFoundError:
        raise PackError(f"{p}: pack: no such file, and not a built-in pack ({', '.join(BUILTIN_PACKS)})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PackError(f"{p}: pack: cannot be read ({type(e).__name__})") from None


def load_pack(pack: str | Path) -> Pack:
    """Load and check one pack by built-in name or path."""
    source, text = resolve(pack)
    return parse_pack(text, source)


def load_packs(packs: Iterable[str | Path] = BUILTIN_PACKS) -> dict[str, Pack]:
    """Load packs (by default every built-in one) keyed by name; a name loaded twice is refused."""
    out: dict[str, Pack] = {}
    for p in packs:
        pack = load_pack(p)
        if pack.name in out:
            raise PackError(f"{pack.source}: pack.name: {pack.name} is already loaded from {out[pack.name].source}")
        ids = {r.id for q in out.values() for r in q.rules}
        for r in pack.rules:
            if r.id in ids:
                raise PackError(f"{pack.source}:{r.line}: rule {r.id}: id: is used by another pack")
        out[pack.name] = pack
    return out
