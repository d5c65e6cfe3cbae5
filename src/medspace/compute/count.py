"""The federated count, node side: patients of the node's de-identified view, grouped by generalised fields,
consent applied, disclosure control applied; and the hub side's combination of the nodes' protected tables.

A count query names the view (a de-identification policy's schema, ``research`` by default), the patient fields
to group by (only the view's generalised quasi-identifiers and non-identifying fields: :data:`GROUPABLE`), and
filters that a patient must meet, each on one clinical table (``condition.code`` starts with ``E11``). It counts
distinct patients. Values are bound as parameters, never spliced into SQL.

Consent is applied on the linkage pseudonym (``patient.linkage_id`` of the view): the caller passes the set of
pseudonyms that consent excludes for this purpose and these data categories; a patient without a linkage
pseudonym cannot be matched to a consent decision and is left out too.

The result leaves the node only as a :class:`medspace.privacy.disclosure.ProtectedTable` in long form: every cell
and margin, suppressed ones as null. Combining nodes adds published cells; a cell any node suppressed stays
suppressed, so each node's suppression pattern (primary and complementary cells) carries into the total and the
interval an analyst can compute for a combined suppressed cell contains the node's own protected interval.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from medspace.compute.errors import QueryError
from medspace.privacy.disclosure import DisclosureRules, protect_counts

# The patient fields a count may group by: generalised quasi-identifiers and coarse fields of the views.
GROUPABLE = ("sex", "age", "province", "area", "country", "marital_status")
# Contracts name catalogue fields; a view's derived, generalised column stands for the field it comes from (the age
# band for the birth date, the administrative area of the resident ID's first digits for the district).
SOURCE_FIELD = {"age": "patient.birth_date", "area": "patient.district"}
# The clinical fields a filter may test, per table.
FILTERABLE: Mapping[str, tuple[str, ...]] = {
    "condition": ("code", "code_system", "clinical_status"),
    "medication": ("code", "code_system", "status"),
    "observation": ("code", "code_system"),
    "procedure": ("code", "code_system"),
    "allergy": ("code", "code_system"),
}
OPS = ("eq", "prefix", "in")
_VIEW = re.compile(r"[a-z][a-z0-9-]{0,31}")
MAX_GROUPS = 4
MAX_IN = 200
BOUND_EXCLUSIONS = 256  # up to this many excluded pseudonyms are bound as a list, more are registered as a table


@dataclass(frozen=True)
class Filter:
    """Patients who have at least one row of ``table`` whose ``field`` meets ``op`` ``value``."""

    table: str
    field: str
    op: str
    value: str | tuple[str, ...]

    @property
    def ref(self) -> str:
        """``table.field``, as contracts name fields."""
        return f"{self.table}.{self.field}"


@dataclass(frozen=True)
class CountQuery:
    """A count of distinct patients by generalised fields, checked when made."""

    group_by: tuple[str, ...] = ()
    filters: tuple[Filter, ...] = ()
    view: str = "research"

    def __post_init__(self) -> None:
        if not _VIEW.fullmatch(self.view):
            raise QueryError("view: a policy name (a-z, 0-9, '-')")
        if len(self.group_by) > MAX_GROUPS or len(set(self.group_by)) != len(self.group_by):
            raise QueryError(f"group_by: at most {MAX_GROUPS} distinct fields")
        for g in self.group_by:
            if g not in GROUPABLE:
                raise QueryError(f"group_by: {g} is not a groupable field (one of {', '.join(GROUPABLE)})")
        for f in self.filters:
            if f.table not in FILTERABLE or f.field not in FILTERABLE[f.table]:
                raise QueryError(f"filter: {f.ref} cannot be filtered on")
            if f.op not in OPS:
                raise QueryError(f"filter {f.ref}: op must be one of {', '.join(OPS)}")
            values = f.value if isinstance(f.value, tuple) else (f.value,)
            if (f.op == "in") != isinstance(f.value, tuple) or not values or len(values) > MAX_IN:
                raise QueryError(f"filter {f.ref}: 'in' takes a list of 1-{MAX_IN} values, other ops one value")
            if not all(isinstance(v, str) and 0 < len(v) <= 64 for v in values):
                raise QueryError(f"filter {f.ref}: values are strings of 1-64 characters")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> CountQuery:
        """A query from a task's JSON parameters (``group_by``, ``filters``, ``view``); QueryError names the field."""
        unknown = set(params) - {"group_by", "filters", "view"}
        if unknown:
            raise QueryError(f"count: unknown parameter {sorted(unknown)[0]}")
        try:
            filters = tuple(
                Filter(str(f["table"]), str(f["field"]), str(f.get("op", "eq")),
                       tuple(f["value"]) if isinstance(f["value"], list) else f["value"])
                for f in params.get("filters", ()))
            return cls(group_by=tuple(params.get("group_by", ())), filters=filters,
                       view=str(params.get("view", "research")))
        except (KeyError, TypeError) as e:
            raise QueryError(f"count: malformed filter ({type(e).__name__}: {e})") from None

    def to_params(self) -> dict[str, Any]:
        """The JSON parameters of this query."""
        return {"view": self.view, "group_by": list(self.group_by),
                "filters": [{"table": f.table, "field": f.field, "op": f.op,
                             "value": list(f.value) if isinstance(f.value, tuple) else f.value}
                            for f in self.filters]}

    @property
    def tables(self) -> tuple[str, ...]:
        """The clinical tables the query reads besides the patient table."""
        return tuple(sorted({f.table for f in self.filters}))

    @property
    def fields(self) -> tuple[str, ...]:
        """Every ``table.field`` the query reads (what a contract must permit)."""
        grouped = {SOURCE_FIELD.get(g, f"patient.{g}") for g in self.group_by}
        return tuple(sorted(grouped | {f.ref for f in self.filters}))


def _sql(q: CountQuery, excluded: list[str] | None = None) -> tuple[str, list[Any]]:
    """The query and its parameters; the excluded pseudonyms are a bound list when given (else the registered
    table ``excluded_ids``)."""
    schema = "deid_" + q.view.replace("-", "_")
    params: list[Any] = []
    if excluded is None:
        where = ["p.linkage_id IS NOT NULL", "p.linkage_id NOT IN (SELECT id FROM excluded_ids)"]
    else:
        where = ["p.linkage_id IS NOT NULL", "p.linkage_id NOT IN (SELECT unnest(?::VARCHAR[]))"]
        params.append(excluded)
    for f in q.filters:
        if f.op == "eq":
            cond, vals = f"t.{f.field} = ?", [f.value]
        elif f.op == "prefix":
            cond, vals = f"starts_with(t.{f.field}, ?)", [f.value]
        else:
            assert isinstance(f.value, tuple)
            cond, vals = f"t.{f.field} IN ({', '.join('?' for _ in f.value)})", list(f.value)
        where.append(f"EXISTS (SELECT 1 FROM {schema}.{f.table} t WHERE t.patient_id = p.id AND {cond})")
        params += vals
    cols = ", ".join(f"p.{g}" for g in q.group_by)
    select = f"SELECT {cols + ', ' if cols else ''}count(*) AS n FROM {schema}.patient p WHERE {' AND '.join(where)}"
    if q.group_by:
        select += f" GROUP BY {cols}"
    return select, params


def view_tables(con: Any, view: str) -> frozenset[str]:
    """The tables of a de-identified view in a DuckDB store (empty when the store has no such view)."""
    schema = "deid_" + view.replace("-", "_")
    return frozenset(r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [schema]).fetchall())


def run_count(con: Any, q: CountQuery, excluded: Iterable[str], *, rules: DisclosureRules | None = None,
              tables: frozenset[str] | None = None) -> dict[str, Any]:
    """Run a count on a DuckDB connection to the node's store and protect it; the releasable result (JSON-able).
    ``tables``: the view's tables (:func:`view_tables`) when the caller knows them already (read per call if not)."""
    rules = rules or DisclosureRules(nk=None)
    have = tables if tables is not None else view_tables(con, q.view)
    missing = [t for t in ("patient", *q.tables) if t not in have]
    if missing:
        raise QueryError(f"the node has no de-identified view {q.view} with table {missing[0]}; "
                        f"its steward builds it with `medspace deid apply -p {q.view}`")
    out = sorted(set(excluded))
    if len(out) <= BOUND_EXCLUSIONS:
        # a short list binds as a parameter, for a fraction of the CPU of registering a table for one query
        sql, params = _sql(q, out)
        rows = con.execute(sql, params).fetchall()
        table = pa.table({**{g: [r[i] for r in rows] for i, g in enumerate(q.group_by)},
                          "n": pa.array([r[-1] for r in rows], type=pa.int64())})
    else:
        sql, params = _sql(q)
        cur = con.cursor()
        try:
            cur.register("excluded_ids", pa.table({"id": pa.array(out, type=pa.string())}))
            table = cur.sql(sql, params=params).to_arrow_table()
        finally:
            cur.close()
    return protect(table, q.group_by, rules)


def protect(table: pa.Table, group_by: Sequence[str], rules: DisclosureRules) -> dict[str, Any]:
    """Disclosure control of a grouped count (columns ``group_by`` and ``n``) into the releasable long form."""
    if not group_by:
        total = int(table.column("n")[0].as_py() or 0) if table.num_rows else 0
        ok = total == 0 or total >= rules.min_cell
        return {"group_by": [], "rows": [[total if ok else None, 0]], "min_cell": rules.min_cell}
    by = list(group_by)
    # nulls (suppressed by the view's generalisation, or missing) are a category of their own: '*'
    table = pa.table({**{g: pa.compute.fill_null(table.column(g).cast(pa.string()), "*") for g in by},
                      "n": table.column("n")})
    pt = protect_counts(table, by=by, count="n", rules=rules)
    out = pt.to_arrow(["count"]).to_pylist()
    rows = [[r[g] for g in by] + [r["count"], r["grouping"]] for r in out]
    return {"group_by": by, "rows": rows, "min_cell": rules.min_cell}


def combine(parts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The hub's total of the nodes' protected counts: published cells added, a cell suppressed anywhere stays
    suppressed; a cell a node does not list is a zero of that node (a GROUP BY leaves empty groups out)."""
    if not parts:
        raise QueryError("no node answered")
    groups = {tuple(p["group_by"]) for p in parts.values()}
    if len(groups) != 1:
        raise QueryError("the nodes answered different queries")
    by = list(next(iter(groups)))
    cells: dict[tuple[Any, ...], int | None] = {}
    for p in parts.values():
        for row in p["rows"]:
            key = (*row[: len(by)], row[len(by) + 1])
            value = row[len(by)]
            if key in cells:
                prev = cells[key]
                cells[key] = None if prev is None or value is None else prev + int(value)
            else:
                cells[key] = None if value is None else int(value)
    rows = [[*k[: len(by)], v, k[len(by)]] for k, v in sorted(cells.items(), key=lambda kv: _order(kv[0]))]
    return {"group_by": by, "rows": rows, "hospitals": sorted(parts),
            "min_cell": max(int(p.get("min_cell", 0)) for p in parts.values())}


def _order(key: tuple[Any, ...]) -> tuple[Any, ...]:
    # margins after cells; None (a margin's label) after every label
    return (key[-1], *(("~", "") if k is None else ("", str(k)) for k in key[:-1]))


def total(result: Mapping[str, Any]) -> int | None:
    """The grand total of a count result (None when suppressed)."""
    by = result["group_by"]
    full = (1 << len(by)) - 1
    for row in result["rows"]:
        if row[len(by) + 1] == full:
            v = row[len(by)]
            return None if v is None else int(v)
    return None
