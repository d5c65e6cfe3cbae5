"""Apply a de-identification policy to a node's store: one schema of de-identified tables per policy.

The view of policy ``safe-harbor`` is the schema ``deid_safe_harbor`` inside the node's DuckDB file, with
one table per model table. It is rebuilt as a whole in one transaction: readers see the old view or the new
one, never half of each. Field transforms run as DuckDB SQL over the store; only what SQL cannot do runs in
Python, vectorised or once per distinct value: keyed pseudonyms (HMAC), resident-ID parsing, free-text
scrubbing and the k-anonymity search. The report says what each rule changed, in counts, never values.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from medspace.deid import keys as K
from medspace.deid.errors import DeidError
from medspace.deid.policy import Policy, Rule
from medspace.deid.resident_id import parse as parse_resident_ids
from medspace.deid.safe_harbor import zip3_sql
from medspace.model.catalogue import TABLES, FieldType, Level, Table
from medspace.store import Store

APPLICATIONS_DDL = """
CREATE TABLE IF NOT EXISTS deid_application (
    view VARCHAR NOT NULL,          -- the schema holding the view
    policy VARCHAR NOT NULL,
    policy_sha256 VARCHAR NOT NULL,
    policy_text VARCHAR NOT NULL,   -- so that key rotation can rebuild the view exactly
    node_key_version INTEGER,
    applied_at TIMESTAMP NOT NULL,
    report VARCHAR NOT NULL         -- JSON, counts only
)"""
# A patient's own identifiers, and the PHI type each is, for record-aware scrubbing of their notes.
PATIENT_KNOWN = {"family_name": "NAME", "given_name": "NAME", "national_id": "ID", "mrn": "MRN", "phone": "PHONE",
                 "email": "EMAIL", "address_line": "ADDRESS", "insurance_id": "ID", "passport_id": "ID"}


def view_schema(policy_name: str) -> str:
    """The schema a policy's view lives in."""
    return "deid_" + policy_name.replace("-", "_")


@dataclass
class FieldChange:
    """What one rule did to one field."""

    table: str
    field: str
    action: str
    values: int  # non-null source values the rule applied to
    output: str | None  # the view's column (None when dropped)
    line: int | None  # policy line of the rule, None when a default decided


@dataclass
class DeidReport:
    """What applying a policy did, in counts."""

    policy: str
    view: str
    policy_sha256: str
    as_of: str
    rows_in: dict[str, int] = field(default_factory=dict)
    rows_out: dict[str, int] = field(default_factory=dict)
    l1_rows_excluded: dict[str, int] = field(default_factory=dict)
    tables_excluded: list[str] = field(default_factory=list)
    changes: list[FieldChange] = field(default_factory=list)
    notes: dict[str, int] = field(default_factory=dict)  # placeholders per PHI type in scrubbed text
    anonymity: dict[str, Any] | None = None
    remarks: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        d = self.__dict__.copy()
        d["changes"] = [c.__dict__ for c in self.changes]
        return d


class _Ctx:
    """What one application needs while it builds the view."""

    def __init__(self, st: Store, policy: Policy, keyring: K.Keyring | None, as_of: date) -> None:
        self.st = st
        self.con = st.con
        self.policy = policy
        self.keyring = keyring
        self.as_of = as_of
        self.registered: list[str] = []

    def key_for(self, action: str) -> bytes:
        if self.keyring is None:
            raise DeidError(f"the policy pseudonymises ({action}) but no keyring was given")
        return self.keyring.active.key

    def register(self, name: str, data: pa.Table) -> None:
        self.con.register(name, data)
        self.registered.append(name)


def _uses(policy: Policy, action: str) -> bool:
    return any(r.action == action for r in policy.rules.values()) or action in policy.defaults.values()


def _included_fields(policy: Policy, t: Table) -> list[str]:
    admitted = policy.admits_l1(t.name)
    return [f.name for f in t if admitted or f.level != Level.L1]


def _ids(ctx: _Ctx, domain: str, sql: str, action: str) -> None:
    """Register a map `_map_<domain>(src, dst)` from source identifiers to surrogates or pseudonyms."""
    src = ctx.con.sql(sql).to_arrow_table().column(0).combine_chunks()
    if action == "surrogate":
        dst = pa.array(K.surrogates(len(src)), pa.string())
    else:
        dst = K.pseudonymise(ctx.key_for(action), domain, src) if len(src) else pa.array([], pa.string())
    ctx.register(f"_map_{domain}", pa.table({"src": src, "dst": dst}))


def _id_sources(column: str, tables: list[str], own: str | None) -> str:
    parts = [f"SELECT {column} AS v FROM main.{t}" for t in tables if column in TABLES[t]]
    if own:
        parts.append(f"SELECT id AS v FROM main.{own}")
    return "SELECT DISTINCT v FROM (" + " UNION ALL ".join(parts) + ") WHERE v IS NOT NULL"


def _patient_extras(ctx: _Ctx) -> None:
    """`_patient_x(id, rid_area, rid_birth, rid_sex, linkage_id, shift)`: what Python adds per patient."""
    pts = ctx.con.sql("SELECT id, national_id FROM main.patient").to_arrow_table()
    rid = parse_resident_ids(pts.column("national_id"))
    cols: dict[str, Any] = {"id": pts.column("id"), "rid_area": rid.area, "rid_birth": rid.birth_date,
                            "rid_sex": rid.sex}
    link = ctx.policy.rules.get("patient.linkage_id")
    if link is not None and link.action == "linkage" and ctx.keyring is not None and ctx.keyring.linkage:
        cols["linkage_id"] = K.linkage_ids(ctx.keyring.linkage, pts.column("national_id"))
    else:
        cols["linkage_id"] = pa.nulls(len(pts), pa.string())
    ctx.register("_patient_x", pa.table(cols))


def _shift_map(ctx: _Ctx, tables: list[str]) -> None:
    sql = _id_sources("patient_id", tables, "patient")
    pids = ctx.con.sql(sql).to_arrow_table().column(0).combine_chunks()
    max_days = max([int(r.options.get("max_days", 365)) for r in ctx.policy.rules.values() if r.action == "shift"]
                   or [365])
    shifts = K.date_shifts(ctx.key_for("pseudonym"), pids, max_days)
    ctx.register("_shift", pa.table({"pid": pids, "days": pa.array(shifts, pa.int32())}))


def _age_sql(birth: str, death: str, as_of: date) -> str:
    # Full years lived: at death if the patient died, else on the reference date.
    end = f"least(coalesce({death}, DATE '{as_of.isoformat()}'), DATE '{as_of.isoformat()}')"
    return f"date_sub('year', {birth}, {end})"


def _year_name(name: str) -> str:
    for suffix in ("_date", "_time"):
        if name.endswith(suffix):
            return name[: -len(suffix)] + "_year"
    return name + "_year"


def _column(ctx: _Ctx, t: Table, name: str, rule: Rule) -> tuple[str | None, str | None]:
    """The SQL expression and output name for one field under its rule (None: dropped)."""
    f = t[name]
    col = f"s.{name}"
    a = rule.action
    if t.name == "patient" and name == "birth_date":
        col = "coalesce(s.birth_date, x.rid_birth)"
    if t.name == "patient" and name == "sex":
        col = "coalesce(s.sex, x.rid_sex)"
    if a == "drop":
        return None, None
    if name in ("id", "patient_id", "encounter_id"):
        if a in ("surrogate", "pseudonym"):
            return f"m_{name}.dst", name
        return col, name
    if a == "keep":
        return col, name
    if a in ("surrogate", "pseudonym"):
        return f"m_{name}.dst", name
    if a == "year":
        top = rule.options.get("top_age")
        expr = f"CAST(year({col}) AS INTEGER)"
        if top is not None and t.name == "patient":
            expr = f"CASE WHEN {_age_sql(col, 's.deceased_date', ctx.as_of)} >= {int(top)} THEN NULL ELSE {expr} END"
        return expr, _year_name(name)
    if a == "month":
        return f"CAST(date_trunc('month', {col}) AS DATE)", name
    if a == "shift":
        cast = "DATE" if f.type == FieldType.DATE else "TIMESTAMP"
        return f"CAST({col} + to_days(coalesce(sh.days, 0)) AS {cast})", name
    if a == "zip3":
        return f"CASE WHEN coalesce(s.country, 'US') IN ('US', 'USA') THEN {zip3_sql(col)} END", name
    if a == "prefix":
        return f"left({col}, {int(rule.options['keep'])})", name
    if a == "scrub":
        return "nt.text", name
    raise DeidError(f"action {a} cannot apply to {t.name}.{name}")  # the policy check prevents this


def _unverified_displays(ctx: _Ctx, tables: list[str], report: DeidReport) -> bool:
    """Scrub the distinct texts of the concepts whose code is not a verified standard one (they repeat: a
    local lab code's name is the same on every result) and register them as `_displays(src, text)`."""
    coded = [t for t in tables if "code_status" in TABLES[t]]
    if not coded:
        return False
    union = " UNION ".join(f"SELECT display FROM main.{t} WHERE code_status <> 'standard' AND display IS NOT NULL"
                           for t in coded)
    from medspace.deid import text as T

    texts = [r[0] for r in ctx.con.execute(union).fetchall()]
    scrubbed, counts = T.scrub_texts(texts, uncertain_names=ctx.policy.uncertain_names, keep=ctx.policy.text_keep) \
        if texts else ([], {})
    for k, n in counts.items():
        report.notes[k] = report.notes.get(k, 0) + n
    ctx.register("_displays", pa.table({"src": pa.array(texts, pa.string()), "text": pa.array(scrubbed, pa.string())}))
    return True


def _domain(table: str, name: str) -> str:
    """Which identifier space a record identifier belongs to: patients, encounters or the table's own rows."""
    if name == "patient_id" or (table == "patient" and name == "id"):
        return "patient"
    if name == "encounter_id" or (table == "encounter" and name == "id"):
        return "encounter"
    return table


def _derived(ctx: _Ctx, rules: dict[str, Rule]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    birth = "coalesce(s.birth_date, x.rid_birth)"
    for key, rule in rules.items():
        name = key.split(".", 1)[1]
        if name == "age":
            age = _age_sql(birth, "s.deceased_date", ctx.as_of)
            if rule.action == "top_code":
                top = int(rule.options.get("top", 90))
                out.append((f"CASE WHEN {age} >= {top} THEN '{top}+' ELSE CAST({age} AS VARCHAR) END", "age"))
            else:
                out.append((f"CAST({age} AS INTEGER)", "age"))
        elif name == "area":
            if rule.action == "prefix":
                keep = int(rule.options["keep"])
                out.append((f"rpad(left(x.rid_area, {keep}), 6, '0')", "area"))
            else:
                out.append(("x.rid_area", "area"))
        elif name == "linkage_id" and ctx.keyring is not None and ctx.keyring.linkage:
            out.append(("x.linkage_id", "linkage_id"))
    return out


PARALLEL_NOTES = 4_000  # below this many notes, one process is quicker than starting workers


def _scrub_chunk(args: tuple[list[str | None], list[str | None], list[list[tuple[str, str]]], bool, frozenset[str]]
                 ) -> tuple[list[str | None], dict[str, int]]:
    from medspace.deid import text as T

    texts, langs, known, uncertain, keep = args
    return T.scrub_texts(texts, langs, known, uncertain_names=uncertain, keep=keep)


def _warm() -> None:
    """Nothing: a first task that makes a worker start (and import the scrubber) before the notes are ready."""


class _NoteScrub:
    """Every note's text scrubbed, knowing each patient's own identifiers, by several processes on a large store.

    The workers start first, so that their start-up (and the compilation of the patterns) overlaps the
    identifier maps; the notes are handed over next, and the other tables of the view are written while the
    workers scrub (regex matching holds the GIL, DuckDB does not). Notes are ordered by patient so that a
    chunk sees a patient's notes together.
    """

    def __init__(self, ctx: _Ctx, workers: int) -> None:
        self.ctx = ctx
        n = int(ctx.con.sql("SELECT count(*) FROM main.note").fetchall()[0][0])
        self.workers = max(1, min(workers, n // (PARALLEL_NOTES // 2) or 1))
        self.pool: ProcessPoolExecutor | None = None
        self.futures: list[Future[tuple[list[str | None], dict[str, int]]]] = []
        self.ids: pa.ChunkedArray | None = None
        self._starting: threading.Thread | None = None
        if self.workers > 1 and n >= PARALLEL_NOTES:
            # forkserver: the workers do not inherit the parent's DuckDB threads; the preload compiles the
            # patterns once, in the server. Starting a worker waits for that, so it happens on a thread.
            mpctx = multiprocessing.get_context("forkserver")
            mpctx.set_forkserver_preload(["medspace.deid.text"])
            self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mpctx)
            self._starting = threading.Thread(target=self._start_workers, name="medspace-deid-notes", daemon=True)
            self._starting.start()

    def _start_workers(self) -> None:
        assert self.pool is not None
        for _ in range(self.workers):
            self.pool.submit(_warm)

    def start(self) -> None:
        """Read the notes and what is known of their patients, and hand them to the workers."""
        known_cols = ", ".join(f"p.{c}" for c in PATIENT_KNOWN)
        notes = self.ctx.con.sql(
            f"SELECT n.id, n.language, n.text, n.author, {known_cols} FROM main.note n "
            "LEFT JOIN main.patient p ON p.id = n.patient_id ORDER BY n.patient_id").to_arrow_table()
        n = len(notes)
        known: list[list[tuple[str, str]]] = [[] for _ in range(n)]
        for c, phi in (("author", "NAME"), *PATIENT_KNOWN.items()):
            for i, v in enumerate(notes.column(c).to_pylist()):
                if v:
                    known[i].append((v, phi))
        texts = notes.column("text").to_pylist()
        langs = notes.column("language").to_pylist()
        self.ids = notes.column("id")
        opts = (self.ctx.policy.uncertain_names, self.ctx.policy.text_keep)
        if self._starting is not None:
            self._starting.join()
        if self.pool is None:
            self.futures = [_done(_scrub_chunk((texts, langs, known, *opts)))]
            return
        step = -(-n // (self.workers * 4))
        self.futures = [self.pool.submit(_scrub_chunk, (texts[i: i + step], langs[i: i + step], known[i: i + step],
                                                        *opts))
                        for i in range(0, n, step)]

    def finish(self, report: DeidReport) -> None:
        """Wait for the scrubbed notes and register them as `_notes(id, text)`."""
        scrubbed: list[str | None] = []
        total = Counter[str]()
        for fut in self.futures:
            part, part_counts = fut.result()
            scrubbed.extend(part)
            total.update(part_counts)
        self.close()
        report.notes = dict(total)
        self.ctx.register("_notes", pa.table({"id": self.ids, "text": pa.array(scrubbed, pa.string())}))

    def close(self) -> None:
        """Stop the workers (at once if the view failed)."""
        if self._starting is not None:
            self._starting.join()
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _done(value: Any) -> Future[Any]:
    fut: Future[Any] = Future()
    fut.set_result(value)
    return fut


def apply_policy(st: Store, policy: Policy, keyring: K.Keyring | None = None, *, as_of: date | None = None,
                 progress: Callable[[str], None] | None = None, workers: int | None = None) -> DeidReport:
    """Build (or rebuild) the policy's de-identified view inside the store, in one transaction.

    `workers` processes scrub the notes (default: the machine's cores, at most 4).
    """
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    started = datetime.now(UTC)
    ref = as_of or policy.as_of or date.today()
    ctx = _Ctx(st, policy, keyring, ref)
    schema = view_schema(policy.name)
    sha = hashlib.sha256(policy.text.encode()).hexdigest()
    report = DeidReport(policy.name, schema, sha, ref.isoformat())
    say = progress or (lambda _m: None)
    tables = [t for t in TABLES if policy.admits_l1(t) or TABLES[t].base_level != Level.L1]
    report.tables_excluded = [t for t in TABLES if t not in tables]
    notes = _NoteScrub(ctx, workers) if "note" in tables and policy.rule_for("note", "text").action == "scrub" \
        else None
    try:
        return _build(ctx, report, tables, started, say, notes)
    finally:
        if notes is not None:
            notes.close()


def _build(ctx: _Ctx, report: DeidReport, tables: list[str], started: datetime, say: Callable[[str], None],
           notes: _NoteScrub | None) -> DeidReport:
    """The body of `apply_policy`."""
    policy, keyring, schema = ctx.policy, ctx.keyring, report.view
    say("identifiers")
    pid_action = policy.rule_for("patient", "id").action
    if pid_action in ("surrogate", "pseudonym"):
        _ids(ctx, "patient", _id_sources("patient_id", tables, "patient"), pid_action)
    enc_action = policy.rule_for("encounter", "id").action
    if enc_action in ("surrogate", "pseudonym"):
        _ids(ctx, "encounter", _id_sources("encounter_id", tables, "encounter"), enc_action)
    _patient_extras(ctx)
    if _uses(policy, "shift"):
        _shift_map(ctx, tables)
    if notes is not None:
        say("notes")
        notes.start()

    scrub_displays = policy.defaults.get("free_text") == "scrub" and _unverified_displays(ctx, tables, report)

    statements: list[tuple[str, str]] = []
    for tname in tables:
        t = TABLES[tname]
        fields = _included_fields(policy, t)
        select: list[str] = []
        joins: list[str] = []
        counted: list[tuple[str, str, Rule, str | None]] = []
        for name in fields:
            rule = policy.rule_for(tname, name)
            expr, out = _column(ctx, t, name, rule)
            if expr is not None and expr.startswith("m_"):
                domain = _domain(tname, name) if name in ("id", "patient_id", "encounter_id") else f"{tname}_{name}"
                if name == "id" and domain not in ("patient", "encounter") and rule.action == "surrogate":
                    # Rows nothing refers to: their storage position is a code not derived from the record.
                    expr = "CAST(s.rowid + 1 AS VARCHAR)"
                else:
                    if domain not in ("patient", "encounter"):
                        _ids(ctx, domain, f"SELECT DISTINCT {name} FROM main.{tname} WHERE {name} IS NOT NULL",
                             rule.action)
                    joins.append(f"LEFT JOIN _map_{domain} m_{name} ON m_{name}.src = s.{name}")
            if name == "display" and scrub_displays and rule.action == "keep" and rule.line is None:
                # A concept the node could not verify (local code, text only) is text as the sender wrote it:
                # scrubbed like free text; a standard code's display is the code system's.
                expr = "CASE WHEN s.code_status = 'standard' THEN s.display ELSE dsp.text END"
                joins.append("LEFT JOIN _displays dsp ON dsp.src = s.display")
            if expr is not None:
                select.append(f"{expr} AS {out}")
            counted.append((name, rule.action, rule, out))
        if any(policy.rule_for(tname, n).action == "shift" for n in fields):
            pid = "s.id" if tname == "patient" else "s.patient_id"
            joins.append(f"LEFT JOIN _shift sh ON sh.pid = {pid}")
        if tname == "patient":
            joins.append("LEFT JOIN _patient_x x ON x.id = s.id")
            for expr, out in _derived(ctx, policy.derived()):
                select.append(f"{expr} AS {out}")
        if tname == "note" and policy.rule_for("note", "text").action == "scrub":
            joins.append("LEFT JOIN _notes nt ON nt.id = s.id")
        where = "" if policy.admits_l1(tname) else f" WHERE s.sensitivity <> '{Level.L1.value}'"
        statements.append((tname, f"CREATE TABLE {schema}.{tname} AS SELECT {', '.join(select)} "
                                  f"FROM main.{tname} s {' '.join(joins)}{where}"))
        # Counts of what each rule touched: one aggregate per table.
        aggs = ", ".join([f"count(s.{n})" for n, *_ in counted] + ["count(*)",
                         f"count(*) FILTER (WHERE s.sensitivity = '{Level.L1.value}')"])
        row = ctx.con.sql(f"SELECT {aggs} FROM main.{tname} s").fetchall()[0]
        report.rows_in[tname] = int(row[-2])
        if not policy.admits_l1(tname):
            report.l1_rows_excluded[tname] = int(row[-1])
        for (name, action, rule, out), n in zip(counted, row[:-2], strict=True):
            if action != "keep" or rule.line is not None:
                report.changes.append(FieldChange(tname, name, action, int(n), out, rule.line))
        for key, rule in policy.derived().items():
            if key.startswith(f"{tname}."):
                report.changes.append(FieldChange(tname, key.split(".", 1)[1], f"derive+{rule.action}", 0,
                                                  key.split(".", 1)[1], rule.line))
    link = policy.rules.get("patient.linkage_id")
    if link is not None and link.action == "linkage" and (keyring is None or keyring.linkage is None):
        report.remarks.append("no linkage key installed: the view has no linkage_id column")

    say("writing view")
    con = ctx.con
    con.execute("BEGIN")
    try:
        con.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        con.execute(f"CREATE SCHEMA {schema}")
        # The notes last: the workers scrub them while the other tables are written.
        for tname, sql in sorted(statements, key=lambda x: x[0] == "note"):
            if tname == "note" and notes is not None:
                notes.finish(report)
            con.execute(sql)
        if policy.anonymity is not None:
            say("k-anonymity")
            from medspace.deid.enforce import enforce_patient_view

            report.anonymity = enforce_patient_view(ctx.con, schema, policy)
        for tname in tables:
            report.rows_out[tname] = int(con.sql(f"SELECT count(*) FROM {schema}.{tname}").fetchall()[0][0])
        report.seconds = (datetime.now(UTC) - started).total_seconds()
        con.execute(APPLICATIONS_DDL)
        con.execute("DELETE FROM deid_application WHERE view = ?", [schema])
        nkv = keyring.active.version if keyring is not None and keyring.node_keys else None
        con.execute("INSERT INTO deid_application VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [schema, policy.name, report.policy_sha256, policy.text, nkv, started.replace(tzinfo=None),
                     json.dumps(report.to_dict())])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    finally:
        for name in ctx.registered:
            con.unregister(name)
    return report


def applied_views(st: Store) -> list[tuple[str, str, str, int | None]]:
    """Views built in this store: (schema, policy name, policy text, node key version)."""
    exists = st.con.sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'deid_application'"
                        ).fetchall()[0][0]
    if not exists:
        return []
    return [(r[0], r[1], r[2], r[3]) for r in
            st.con.sql("SELECT view, policy, policy_text, node_key_version FROM deid_application ORDER BY view")
            .fetchall()]


def rotate_node_key(st: Store, keyring: K.Keyring, *, as_of: date | None = None) -> list[DeidReport]:
    """Rotate the node key and rebuild every view from the store (no re-ingest); returns their reports."""
    from medspace.deid.policy import parse_policy

    keyring.rotate()
    reports = []
    for _schema, _name, text, _v in applied_views(st):
        policy = parse_policy(text, f"<stored {_name}>")
        reports.append(apply_policy(st, policy, keyring, as_of=as_of))
    keyring.save()
    return reports
