"""CSV and Parquet sources, mapped column by column with a mapping file, vectorised with Arrow.

Rows are checked a whole block at a time (dates, numbers, enumerations, code systems, required
fields); a row that fails goes to quarantine with its original text, the others are added.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from medspace.connect.base import Quarantined, Sink
from medspace.connect.errors import MappingFileError, Reason, SourceError
from medspace.connect.mapping import ColumnRule, Mapping, TableMapping, load_mapping
from medspace.model import TABLES, FieldType, canonical_system, code_valid, normalise_code, row_level

BLOCK_BYTES = 4 << 20  # CSV read block: bounds memory whatever the file size

# Row failure reasons in the order they are reported (the first that applies wins).
_REASONS = (Reason.BAD_DATE, Reason.BAD_VALUE, Reason.MISSING_FIELD, Reason.UNKNOWN_CODE_SYSTEM,
            Reason.INVALID_CODE)
_CODE = {r: i + 1 for i, r in enumerate(_REASONS)}
_NUM_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_INT_RE = r"^\s*[-+]?\d+\s*$"


def ingest_mapping(path: str | Path, sink: Sink) -> None:
    """Ingest every file a mapping names. A bad mapping or an unreadable file raises; bad rows are
    quarantined."""
    mapping = load_mapping(path)
    for tm in mapping.tables:
        for f in tm.files:
            if mapping.format == "csv":
                batches = _csv_batches(mapping, tm, f, sink)
            else:
                batches = _parquet_batches(mapping, tm, f)
            first = 1
            for batch in batches:
                _map_batch(mapping, tm, f, batch, first, sink)
                first += batch.num_rows
            sink.end_source()


@dataclass
class _Failures:
    """Per row: the first reason it failed for and the field that failed."""

    reason: np.ndarray  # int8, 0 = ok
    field: np.ndarray  # int16 index into the table's rules

    def mark(self, mask: pa.Array | np.ndarray, reason: Reason, field_idx: int) -> None:
        m = mask if isinstance(mask, np.ndarray) else np.asarray(mask.fill_null(False).to_numpy(zero_copy_only=False))
        hit = m & (self.reason == 0)
        self.reason[hit] = _CODE[reason]
        self.field[hit] = field_idx


def _header(path: Path, mapping: Mapping) -> list[str]:
    try:
        with path.open(encoding=mapping.encoding, newline="") as fh:
            return next(csv.reader(fh, delimiter=mapping.delimiter), [])
    except (OSError, UnicodeDecodeError, LookupError) as e:
        raise SourceError(f"{path}: cannot read: {e}") from None


def _check_columns(tm: TableMapping, path: Path, names: list[str], mapping: Mapping) -> None:
    have = set(names)
    for rule in tm.rules:
        if rule.column is not None and rule.column not in have:
            raise MappingFileError(
                f"{mapping.path}:{tm.line}: {tm.table}.{rule.field}: column {rule.column!r} "
                f"is not in {path.name}"
            )


def _csv_batches(mapping: Mapping, tm: TableMapping, path: Path, sink: Sink) -> Iterator[pa.RecordBatch]:
    names = _header(path, mapping)
    _check_columns(tm, path, names, mapping)

    def bad_row(row: Any) -> str:
        where = f"line {row.number}" if row.number is not None and row.number >= 0 else "malformed row"
        sink.quarantine(Quarantined("csv", str(path), where, Reason.PARSE_ERROR,
                                    f"expected {row.expected_columns} columns, found {row.actual_columns}",
                                    (row.text or "").encode("utf-8", "replace")))
        return "skip"

    try:
        reader = pacsv.open_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES, encoding=mapping.encoding),
            parse_options=pacsv.ParseOptions(delimiter=mapping.delimiter, invalid_row_handler=bad_row,
                                             newlines_in_values=True),  # notes span lines
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        yield from reader
    except (OSError, pa.ArrowInvalid) as e:
        raise SourceError(f"{path}: cannot read as CSV: {e}") from None


def _parquet_batches(mapping: Mapping, tm: TableMapping, path: Path) -> Iterator[pa.RecordBatch]:
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise SourceError(f"{path}: cannot read as Parquet: {e}") from None
    _check_columns(tm, path, pf.schema_arrow.names, mapping)
    yield from pf.iter_batches(batch_size=65_536)


def _blank_to_null(col: pa.Array) -> pa.Array:
    trimmed = pc.utf8_trim_whitespace(col)
    if trimmed.offset != 0 or not pa.types.is_string(trimmed.type):
        return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
    # Empty strings become nulls by their offsets alone: a new validity bitmap over the same buffers
    # (no copy of the strings, unlike a comparison and a select).
    offsets = np.frombuffer(trimmed.buffers()[1], np.int32, len(trimmed) + 1)
    keep = np.diff(offsets) > 0
    if keep.all():
        return trimmed
    if trimmed.null_count:
        keep &= trimmed.is_valid().to_numpy(zero_copy_only=False)
    validity = pa.array(keep, pa.bool_()).buffers()[1]
    return pa.StringArray.from_buffers(len(trimmed), trimmed.buffers()[1], trimmed.buffers()[2], validity)


def _as_string(col: pa.Array) -> pa.Array:
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return _blank_to_null(col.cast(pa.string()))
    if pa.types.is_dictionary(col.type):
        return _as_string(col.dictionary_decode())
    return col.cast(pa.string())


def _source_column(rule: ColumnRule, batch: pa.RecordBatch, n: int) -> pa.Array:
    if rule.value is not None:
        return pa.repeat(pa.scalar(rule.value, pa.string()), n)
    assert rule.column is not None
    return batch.column(rule.column)


def _recode(col: pa.Array, rule: ColumnRule, fails: _Failures, idx: int) -> pa.Array:
    """Apply a rule's `values` map (and `default`) to a string column."""
    assert rule.values is not None
    keys = pa.array(list(rule.values), pa.string())
    vals = pa.array(list(rule.values.values()), pa.string())
    pos = pc.index_in(col, value_set=keys)
    out = pc.take(vals, pos)
    unmatched = pc.and_(pc.is_valid(col), pc.is_null(pos))
    if rule.default is not None:
        return pc.if_else(unmatched, pa.scalar(rule.default, pa.string()), out)
    fails.mark(unmatched, Reason.BAD_VALUE, idx)
    return out


def _convert(col: pa.Array, ftype: FieldType, rule: ColumnRule, mapping: Mapping,
             fails: _Failures, idx: int) -> pa.Array:
    """Turn a source column into the field's type, marking rows whose value does not convert."""
    if ftype is FieldType.STR:
        return col
    if ftype in (FieldType.DATE, FieldType.TIMESTAMP):
        if pa.types.is_temporal(col.type):
            out = col.cast(pa.date32() if ftype is FieldType.DATE else pa.timestamp("us"))
            return out
        fmt = rule.format or (mapping.date_format if ftype is FieldType.DATE else mapping.timestamp_format)
        ts = _strict_strptime(col, fmt)
        failed = pc.and_(pc.is_valid(col), pc.is_null(ts))
        if ftype is FieldType.TIMESTAMP and rule.format is None and pc.any(failed).as_py():
            # A timestamp column holding bare dates is common in exports: accept the date format too,
            # for the values the timestamp format did not read.
            retry = pc.if_else(failed, col, pa.scalar(None, pa.string()))
            ts = pc.coalesce(ts, _strict_strptime(retry, mapping.date_format))
        fails.mark(pc.and_(pc.is_valid(col), pc.is_null(ts)), Reason.BAD_DATE, idx)
        return ts.cast(pa.date32()) if ftype is FieldType.DATE else ts
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return col.cast(pa.float64() if ftype is FieldType.FLOAT else pa.int64())
    pattern = _NUM_RE if ftype is FieldType.FLOAT else _INT_RE
    ok = pc.match_substring_regex(col, pattern)
    fails.mark(pc.and_(pc.is_valid(col), pc.invert(ok)), Reason.BAD_VALUE, idx)
    clean = pc.if_else(ok, pc.utf8_trim_whitespace(col), pa.scalar(None, pa.string()))
    return clean.cast(pa.float64() if ftype is FieldType.FLOAT else pa.int64())


# ISO formats Arrow's cast parses (much faster than strptime): width of a value and the cast's type.
_ISO = {"%Y-%m-%d": (10, pa.date32()), "%Y-%m-%d %H:%M:%S": (19, pa.timestamp("s"))}


def _iso_cast(col: pa.Array, fmt: str) -> pa.Array | None:
    """The column parsed by Arrow's cast where that reads exactly what `fmt` does, else None.

    The cast is strict (zero-padded fields, real calendar days) but also takes forms the format does
    not ('T' between date and time, a time without seconds): every value must have the format's
    width and no 'T', or the caller falls back to strptime; so does a column with any bad value.
    """
    width, typ = _ISO[fmt]
    bounds = pc.min_max(pc.binary_length(col))
    if bounds["min"].as_py() not in (None, width) or bounds["max"].as_py() not in (None, width):
        return None
    if width > 10 and pc.any(pc.match_substring(col, "T")).as_py():
        return None
    try:
        return col.cast(typ).cast(pa.timestamp("us"))
    except pa.ArrowException:
        return None


def _strict_strptime(col: pa.Array, fmt: str) -> pa.Array:
    """Arrow's strptime, but impossible dates (31/02) are rejected instead of rolled over."""
    if fmt in _ISO and (fast := _iso_cast(col, fmt)) is not None:
        return fast
    return _strptime_checked(col, fmt)


def _strptime_checked(col: pa.Array, fmt: str) -> pa.Array:
    """`_strict_strptime` for any format, by strptime and a check of the values it may have rolled over."""
    # Seconds resolution: at "us", strftime's %S prints a fraction and no value would print back the same.
    ts = pc.strptime(col, format=fmt, unit="s", error_is_null=True)
    # Arrow rolls an impossible day over into the next month's first days (31/02 -> 02/03, 31/04 ->
    # 01/05), so only values landing on days 1-3 can be such; those must print back the same, and
    # the few that do not (unpadded or impossible) are re-checked with Python's strict strptime.
    suspect = np.flatnonzero(pc.fill_null(pc.less_equal(pc.day(ts), 3), False).to_numpy(zero_copy_only=False))
    if len(suspect):
        idx = pa.array(suspect)
        texts = pc.take(col, idx)
        differs = pc.fill_null(pc.not_equal(pc.strftime(pc.take(ts, idx), format=fmt), texts), False)
        bad = suspect[differs.to_numpy(zero_copy_only=False)]
        if len(bad):
            fixed: list[datetime | None] = []
            for text in pc.take(col, pa.array(bad)).to_pylist():
                try:
                    fixed.append(datetime.strptime(text, fmt))
                except ValueError:
                    fixed.append(None)
            mask = np.zeros(len(col), np.bool_)
            mask[bad] = True
            # Only the re-checked values go through Python: the others may be outside its datetime's
            # range (year 0), which Arrow holds and Python cannot.
            repl = pa.array(fixed, pa.timestamp("us"))
            return pc.replace_with_mask(ts.cast(pa.timestamp("us")), pa.array(mask), repl)
    return ts.cast(pa.timestamp("us"))


def _lookup(keys: pa.Array, fn: Any, out_type: pa.DataType) -> pa.Array:
    """Apply a Python function once per distinct value of a column (codes repeat a lot)."""
    uniq = pc.unique(keys)
    mapped = pa.array([None if k is None else fn(k) for k in uniq.to_pylist()], out_type)
    return pc.take(mapped, pc.index_in(keys, value_set=uniq))


def _map_batch(mapping: Mapping, tm: TableMapping, path: Path, batch: pa.RecordBatch, first_row: int,
               sink: Sink) -> None:
    spec = TABLES[tm.table]
    n = batch.num_rows
    if n == 0:
        return
    fails = _Failures(np.zeros(n, np.int8), np.full(n, -1, np.int16))
    cols: dict[str, pa.Array] = {}
    for i, rule in enumerate(tm.rules):
        ftype = spec[rule.field].type
        col = _source_column(rule, batch, n)
        if rule.values is not None or ftype is FieldType.STR or pa.types.is_string(col.type):
            col = _as_string(col)
        if rule.values is not None:
            col = _recode(col, rule, fails, i)
        cols[rule.field] = _convert(col, ftype, rule, mapping, fails, i)
    rule_idx = {r.field: i for i, r in enumerate(tm.rules)}
    if "code" in spec:
        _check_codes(tm.table, cols, fails, rule_idx)
        cols["code_status"] = pa.repeat(pa.scalar("standard"), n)
        sensitivity = _lookup(
            pc.binary_join_element_wise(pc.fill_null(cols["code_system"], ""), pc.fill_null(cols["code"], ""),
                                        "|"),
            lambda k: row_level(tm.table, *(k.split("|", 1))).value, pa.string(),
        )
    else:
        sensitivity = pa.repeat(pa.scalar(row_level(tm.table).value), n)
    for name in spec.required:
        if name in rule_idx:
            fails.mark(pc.is_null(cols[name]), Reason.MISSING_FIELD, rule_idx[name])
    cols["sensitivity"] = sensitivity
    cols["source"] = pa.repeat(pa.scalar("csv" if mapping.format == "csv" else "parquet"), n)
    arrays = [cols[f.name] if f.name in cols else pa.nulls(n, f.arrow_type) for f in spec.fields]
    ok = fails.reason == 0
    table = pa.Table.from_arrays([a.cast(f.arrow_type) for a, f in zip(arrays, spec.fields, strict=True)],
                                 schema=spec.arrow_schema.with_metadata(None))
    if ok.all():
        sink.add_arrow(tm.table, table)
        return
    if ok.any():
        sink.add_arrow(tm.table, table.filter(pa.array(ok)))
    _quarantine_rows(mapping, tm, path, batch, first_row, fails, sink)


def _check_codes(table: str, cols: dict[str, pa.Array], fails: _Failures, rule_idx: dict[str, int]) -> None:
    accepted = TABLES[table].code_systems
    systems = cols["code_system"]
    canon = _lookup(systems, lambda s: (lambda c: c if c in accepted else None)(canonical_system(s)),
                    pa.string())
    fails.mark(pc.and_(pc.is_valid(systems), pc.is_null(canon)), Reason.UNKNOWN_CODE_SYSTEM,
               rule_idx["code_system"])
    keys = pc.binary_join_element_wise(canon, cols["code"], "|")  # null where either is null
    normal = _lookup(
        keys,
        _valid_normalised,
        pa.string(),
    )
    fails.mark(pc.and_(pc.is_valid(keys), pc.is_null(normal)), Reason.INVALID_CODE, rule_idx["code"])
    cols["code_system"] = canon
    cols["code"] = pc.coalesce(normal, cols["code"])


def _valid_normalised(key: str) -> str | None:
    system, code = key.split("|", 1)
    code = normalise_code(system, code)
    return code if code_valid(system, code) else None


def _quarantine_rows(mapping: Mapping, tm: TableMapping, path: Path, batch: pa.RecordBatch, first_row: int,
                     fails: _Failures, sink: Sink) -> None:
    bad = np.nonzero(fails.reason)[0]
    rows = batch.take(pa.array(bad)).to_pylist()
    for i, row in zip(bad.tolist(), rows, strict=True):
        reason = _REASONS[fails.reason[i] - 1]
        rule = tm.rules[fails.field[i]]
        where = f"column {rule.column!r}" if rule.column else "constant"
        detail = f"{tm.table}.{rule.field} ({where}): {_EXPLAIN[reason]}"
        if mapping.format == "csv":
            buf = io.StringIO()
            csv.writer(buf, delimiter=mapping.delimiter, lineterminator="").writerow(row.values())
            raw = buf.getvalue().encode("utf-8")
        else:
            raw = orjson.dumps(row, default=str)
        sink.quarantine(Quarantined(mapping.format, str(path), f"row {first_row + i}", reason, detail, raw))


_EXPLAIN = {
    Reason.BAD_DATE: "not a date in the mapped format",
    Reason.BAD_VALUE: "value not allowed by the mapping or not a number",
    Reason.MISSING_FIELD: "required but empty",
    Reason.UNKNOWN_CODE_SYSTEM: "code system not accepted for this table",
    Reason.INVALID_CODE: "code fails its system's format or check digit",
}
