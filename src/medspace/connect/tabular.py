"""CSV and Parquet sources, mapped column by column with a mapping file, vectorised with Arrow.

Rows are checked a whole block at a time. What can be kept is kept and flagged as a data-quality
finding (one `Sink.finding` call per table, field and kind per block): a date or number that does not
read, or a value outside a `values` map, is stored as null (`bad_date`, `bad_value`); a code in a system
the table does not accept, or failing its check, is stored as sent (`local_code`, `invalid_code`); a
concept without a code keeps its text (`text_only`). A row goes to quarantine, with its original text,
only when it cannot be parsed, lacks its id, its patient or another field the model requires (or a
coded row has neither code nor text), or holds a string longer than the node's limits.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from medspace.connect.base import Finding, Quarantined, Sink, limits, pick_concept
from medspace.connect.errors import FindingKind, MappingFileError, Reason, SourceError
from medspace.connect.mapping import ColumnRule, Mapping, TableMapping, load_mapping
from medspace.model import PHI, TABLES, FieldType, Level, row_level

BLOCK_BYTES = 4 << 20  # CSV read block: bounds memory whatever the file size

_NUM_RE = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"
_INT_RE = r"^\s*[-+]?\d+\s*$"
_YEAR_1 = pa.scalar(datetime(1, 1, 1), pa.timestamp("us"))
_STATUS_FINDING = {"local": FindingKind.LOCAL_CODE, "invalid": FindingKind.INVALID_CODE}


def ingest_mapping(path: str | Path, sink: Sink) -> None:
    """Ingest every file a mapping names. A bad mapping or an unreadable file raises; bad rows are
    quarantined, and values kept but not as the model has them are counted as findings."""
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
            sink.end_source(str(f))


# --- reading ---------------------------------------------------------------------------------------


def _python_codec(mapping: Mapping) -> str:
    # Excel's "CSV UTF-8" starts with a byte-order mark: not part of the first column's name.
    return "utf-8-sig" if mapping.encoding == "utf-8" else mapping.encoding


def _encoding_error(path: Path, mapping: Mapping) -> SourceError:
    """One line naming the first line of `path` that does not decode, and the setting to change."""
    decoder = codecs.getincrementaldecoder(_python_codec(mapping))()
    line: int | None = None
    sample = bytearray()  # the first 16 MiB, to guess the encoding from
    try:
        with path.open("rb") as fh:
            for i, raw in enumerate(fh, 1):
                if len(sample) < 16 << 20:
                    sample += raw
                try:
                    decoder.decode(raw)
                except UnicodeDecodeError:
                    line = i
                    break
            sample += fh.read(max(0, (16 << 20) - len(sample)))
    except OSError as e:
        return SourceError(f"{path}: cannot read: {e.strerror or e}")
    guess = _guess_encoding(bytes(sample), mapping.encoding)
    where = f"line {line}" if line is not None else "a line"
    return SourceError(
        f"{path}: {where} is not valid {mapping.encoding} text; set encoding = \"{guess}\" (or the encoding the "
        f"file was written in) in [source] of {mapping.path.name}"
    )


def _guess_encoding(sample: bytes, declared: str) -> str:
    """The likelier encoding of a sample that `declared` does not decode, for the error's suggestion."""
    if declared != "utf-8" and _decodes(sample, "utf-8"):
        return "utf-8"
    # Chinese text in GB 18030 is runs of non-ASCII byte pairs; Western European text in a one-byte
    # encoding is mostly single accented letters between ASCII ones (both decode as GB 18030).
    runs = [len(r) for r in re.findall(rb"[\x80-\xff]+", sample)]
    if declared != "gb18030" and runs and sum(r % 2 == 0 for r in runs) > len(runs) / 2 and _decodes(sample, "gb18030"):
        return "gb18030"
    if re.search(rb"[\x80-\x9f]", sample) and _decodes(sample, "cp1252"):
        return "cp1252"  # Windows' quotes, dashes and euro sign
    return "latin-1"


def _decodes(data: bytes, codec: str) -> bool:
    try:
        codecs.getincrementaldecoder(codec)().decode(data)  # not final: the sample may end mid-character
    except UnicodeDecodeError:
        return False
    return True


def _header(path: Path, mapping: Mapping) -> list[str]:
    try:
        with path.open(encoding=_python_codec(mapping), newline="") as fh:
            return next(csv.reader(fh, delimiter=mapping.delimiter), [])
    except UnicodeDecodeError:
        raise _encoding_error(path, mapping) from None
    except (OSError, LookupError, csv.Error) as e:
        raise SourceError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None


def _check_columns(tm: TableMapping, path: Path, names: list[str], mapping: Mapping) -> None:
    if not names:
        raise SourceError(f"{path}: empty file, not even a header row")
    have = set(names)
    for rule in tm.rules:
        if rule.column is not None and rule.column not in have:
            close = difflib.get_close_matches(rule.column, names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            if len(names) == 1 and mapping.format == "csv":
                hint += f" (the header has one column: is delimiter = {mapping.delimiter!r} right?)"
            raise MappingFileError(
                f"{mapping.path}:{rule.line or tm.line}: {tm.table}.{rule.field}: column {rule.column!r} "
                f"is not in {path.name}{hint}"
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
            read_options=pacsv.ReadOptions(block_size=BLOCK_BYTES,
                                           encoding="utf8" if mapping.encoding == "utf-8" else mapping.encoding),
            parse_options=pacsv.ParseOptions(delimiter=mapping.delimiter, invalid_row_handler=bad_row,
                                             newlines_in_values=True),  # notes span lines
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.string() for n in names}, strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        yield from reader
    except UnicodeDecodeError:  # a declared encoding other than UTF-8, transcoded by Python's codec
        raise _encoding_error(path, mapping) from None
    except (OSError, pa.ArrowInvalid) as e:
        if "invalid UTF8" in str(e):
            raise _encoding_error(path, mapping) from None
        # Arrow's parse errors may quote the row: keep only what comes before it.
        raise SourceError(f"{path}: cannot read as CSV: {str(e).splitlines()[0].split(': ')[0]}") from None


def _parquet_batches(mapping: Mapping, tm: TableMapping, path: Path) -> Iterator[pa.RecordBatch]:
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise SourceError(f"{path}: cannot read as Parquet: {e}") from None
    _check_columns(tm, path, pf.schema_arrow.names, mapping)
    try:
        yield from pf.iter_batches(batch_size=65_536)
    except (OSError, pa.ArrowInvalid) as e:
        raise SourceError(f"{path}: cannot read as Parquet: {e}") from None


# --- per-row outcome -------------------------------------------------------------------------------


@dataclass
class _Outcome:
    """Per (exploded) row: the first reason it is quarantined for, and what was flagged in rows kept."""

    reason: np.ndarray  # int8 index into _REASONS + 1, 0 = ok
    why: np.ndarray  # int16 index into `whys`: the quarantine detail, naming the table and field
    whys: list[str] = field(default_factory=list)
    findings: list[tuple[str, FindingKind, np.ndarray]] = field(default_factory=list)

    @classmethod
    def of(cls, n: int) -> _Outcome:
        return cls(np.zeros(n, np.int8), np.zeros(n, np.int16))

    def fail(self, mask: pa.Array | np.ndarray, reason: Reason, why: str) -> None:
        """Quarantine the rows of `mask` (those not already failing) for `reason`; `why` is the detail."""
        m = _np(mask)
        hit = m & (self.reason == 0)
        if not hit.any():
            return
        if why not in self.whys:
            self.whys.append(why)
        self.reason[hit] = _REASONS.index(reason) + 1
        self.why[hit] = self.whys.index(why)

    def flag(self, mask: pa.Array | np.ndarray, name: str, kind: FindingKind) -> None:
        """A finding about the rows of `mask`, counted for those that are stored."""
        m = _np(mask)
        if m.any():
            self.findings.append((name, kind, m))


_REASONS = (Reason.BAD_DATE, Reason.BAD_VALUE, Reason.MISSING_FIELD)


def _np(mask: pa.Array | np.ndarray) -> np.ndarray:
    if isinstance(mask, np.ndarray):
        return mask
    return np.asarray(mask.fill_null(False).to_numpy(zero_copy_only=False), np.bool_)


# --- columns ---------------------------------------------------------------------------------------


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


def _is_datetime(t: pa.DataType) -> bool:
    return pa.types.is_date(t) or pa.types.is_timestamp(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def _text(col: pa.Array, rule: ColumnRule, tm: TableMapping, mapping: Mapping) -> pa.Array:
    try:
        return _as_string(col)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise MappingFileError(
            f"{mapping.path}:{rule.line or tm.line}: {tm.table}.{rule.field}: column {rule.column!r} holds "
            f"{col.type} values, which cannot be read as text"
        ) from None


def _explode(col: pa.Array, sep: str) -> tuple[pa.Array, np.ndarray, np.ndarray] | None:
    """A multi-valued column as (values, source row of each, its 1-based number in its cell); a cell
    without a value is one row with a null. None when no cell holds more than one value."""
    if _is_list(col.type):
        lists = col
    else:
        if not pc.any(pc.match_substring(col, sep)).as_py():
            return None
        lists = pc.split_pattern(col, pattern=sep)
    parents = np.asarray(pc.list_parent_indices(lists).to_numpy(zero_copy_only=False), np.int64)
    flat = _as_string(lists.flatten())
    keep = np.asarray(flat.is_valid().to_numpy(zero_copy_only=False), np.bool_)
    if not keep.all():
        parents, flat = parents[keep], flat.filter(pa.array(keep))
    empty = np.flatnonzero(np.bincount(parents, minlength=len(col)) == 0)
    if len(empty):
        rows = np.concatenate([parents, empty])
        order = np.argsort(rows, kind="stable")
        rows = rows[order]
        flat = pc.take(pa.concat_arrays([flat, pa.nulls(len(empty), pa.string())]), pa.array(order))
    else:
        rows = parents
    piece = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left") + 1
    return flat, rows, piece


def _recode(col: pa.Array, rule: ColumnRule) -> tuple[pa.Array, pa.Array | None]:
    """A rule's `values` map (and `default`) applied to a string column; and the values it did not map."""
    assert rule.values is not None
    keys = pa.array(list(rule.values), pa.string())
    vals = pa.array(list(rule.values.values()), pa.string())
    pos = pc.index_in(col, value_set=keys)
    out = pc.take(vals, pos)
    unmatched = pc.and_(pc.is_valid(col), pc.is_null(pos))
    if rule.default is not None:
        return pc.if_else(unmatched, pa.scalar(rule.default, pa.string()), out), None
    return out, unmatched


def _convert(col: pa.Array, ftype: FieldType, formats: tuple[str, ...]) -> tuple[pa.Array, pa.Array | None]:
    """A source column in the field's type, and the rows whose value does not convert (they are null)."""
    if ftype is FieldType.STR:
        return col, None
    if ftype in (FieldType.DATE, FieldType.TIMESTAMP):
        ts = col.cast(pa.timestamp("us")) if _is_datetime(col.type) else _parse_dates(col, formats)
        if pc.less(pc.min(ts), _YEAR_1).as_py():  # null (False-y) for a column of nulls
            # Year 0 and before: Arrow holds them, Python's datetime (and every reader of the store) cannot.
            ts = pc.if_else(pc.less(ts, _YEAR_1), pa.scalar(None, ts.type), ts)
        failed = pc.and_(pc.is_valid(col), pc.is_null(ts))
        return (ts.cast(pa.date32()) if ftype is FieldType.DATE else ts), failed
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        return col.cast(pa.float64() if ftype is FieldType.FLOAT else pa.int64()), None
    pattern = _NUM_RE if ftype is FieldType.FLOAT else _INT_RE
    ok = pc.match_substring_regex(col, pattern)
    clean = pc.if_else(ok, pc.utf8_trim_whitespace(col), pa.scalar(None, pa.string()))
    return clean.cast(pa.float64() if ftype is FieldType.FLOAT else pa.int64()), pc.and_(pc.is_valid(col),
                                                                                         pc.invert(ok))


def _parse_dates(col: pa.Array, formats: tuple[str, ...]) -> pa.Array:
    """Each value read by the first of `formats` that reads it: a later format only sees the values the
    earlier ones left (so for 05/06/2023 under ["%d/%m/%Y", "%m/%d/%Y"], the first wins)."""
    ts = _strict_strptime(col, formats[0])
    for fmt in formats[1:]:
        left = np.flatnonzero(_np(pc.and_(pc.is_valid(col), pc.is_null(ts))))
        if not len(left):
            break
        idx = pa.array(left)
        got = _strict_strptime(pc.take(col, idx), fmt)
        if got.null_count == len(got):
            continue
        mask = np.zeros(len(col), np.bool_)
        mask[left] = True
        ts = pc.replace_with_mask(ts, pa.array(mask), got)
    return ts


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


def _lookup(keys: pa.Array, fn: Callable[[Any], Any], out_type: pa.DataType) -> pa.Array:
    """Apply a Python function once per distinct value of a column (codes repeat a lot)."""
    return _lookup_many(keys, lambda k: (fn(k),), (out_type,))[0]


def _lookup_many(keys: pa.Array, fn: Callable[[Any], tuple[Any, ...]],
                 out_types: tuple[pa.DataType, ...]) -> list[pa.Array]:
    """Like `_lookup` for a function giving several values: one column per value (null for a null key)."""
    uniq = pc.unique(keys)
    results = [None if k is None else fn(k) for k in uniq.to_pylist()]
    pos = pc.index_in(keys, value_set=uniq)
    return [
        pc.take(pa.array([None if r is None else r[i] for r in results], t), pos)
        for i, t in enumerate(out_types)
    ]


# --- a block of rows -------------------------------------------------------------------------------


def _map_batch(mapping: Mapping, tm: TableMapping, path: Path, batch: pa.RecordBatch, first_row: int,
               sink: Sink) -> None:
    spec = TABLES[tm.table]
    n = batch.num_rows
    if n == 0:
        return
    connector = mapping.format
    raw = [_source_column(rule, batch, n, tm, mapping) for rule in tm.rules]
    # A split column becomes one row per value; the other columns follow it.
    src: np.ndarray | None = None  # exploded row -> source row, when a cell held several values
    piece: np.ndarray | None = None
    split = next((i for i, r in enumerate(tm.rules) if r.split is not None), None)
    if split is not None:
        exploded = _explode(raw[split], tm.rules[split].split or "")
        if exploded is not None:
            values, src, piece = exploded
            take = pa.array(src)
            raw = [values if i == split else pc.take(c, take) for i, c in enumerate(raw)]
            n = len(src)
    out = _Outcome.of(n)
    cols: dict[str, pa.Array] = {}
    for rule, col in zip(tm.rules, raw, strict=True):
        ftype = spec[rule.field].type
        about = f"{tm.table}.{rule.field} ({_where(rule)})"
        required = spec[rule.field].required
        if rule.values is not None:
            col, unmatched = _recode(col, rule)
            if unmatched is not None:
                _bad(out, unmatched, rule.field, required, Reason.BAD_VALUE, FindingKind.BAD_VALUE,
                     f"{about}: value not in the mapping's `values`")
        formats = rule.format or (mapping.date_format if ftype is FieldType.DATE else
                                  tuple(dict.fromkeys(mapping.timestamp_format + mapping.date_format)))
        col, failed = _convert(col, ftype, formats)
        if failed is not None:
            if ftype in (FieldType.DATE, FieldType.TIMESTAMP):
                _bad(out, failed, rule.field, required, Reason.BAD_DATE, FindingKind.BAD_DATE,
                     f"{about}: not a date in the mapped format(s)")
            else:
                _bad(out, failed, rule.field, required, Reason.BAD_VALUE, FindingKind.BAD_VALUE,
                     f"{about}: not a number")
        if required:
            out.fail(pc.is_null(col), Reason.MISSING_FIELD, f"{about}: required but empty")
        cols[rule.field] = col
    if "code" in spec:
        sensitivity = _concepts(tm.table, cols, out, n, mapping.sender)
    else:
        sensitivity = pa.repeat(pa.scalar(row_level(tm.table).value), n)
    _check_sizes(tm.table, cols, out)
    if piece is not None:
        # Values after the first of a cell get `<id>#<n>`: the first keeps the row's id, so a single-valued
        # cell's row is the row it always was, and a re-ingest gives every value the same id again.
        numbered = pc.binary_join_element_wise(cols["id"], pa.array(piece).cast(pa.string()), "#")
        cols["id"] = pc.if_else(pa.array(piece >= 2), numbered, cols["id"])
    cols["sensitivity"] = sensitivity
    cols["source"] = pa.repeat(pa.scalar(connector), n)
    arrays = [cols[f.name] if f.name in cols else pa.nulls(n, f.arrow_type) for f in spec.fields]
    ok = out.reason == 0
    table = pa.Table.from_arrays([a.cast(f.arrow_type) for a, f in zip(arrays, spec.fields, strict=True)],
                                 schema=spec.arrow_schema.with_metadata(None))
    if ok.all():
        sink.add_arrow(tm.table, table)
    elif ok.any():
        sink.add_arrow(tm.table, table.filter(pa.array(ok)))
    # Findings only about rows stored, after they are: one call per field and kind, the first as example.
    for name, kind, mask in out.findings:
        hit = mask & ok
        count = int(hit.sum())
        if count:
            at = int(np.argmax(hit))
            row = first_row + (int(src[at]) if src is not None else at)
            sink.finding(Finding(connector, str(path), f"row {row}", tm.table, name, kind), count)
    if not ok.all():
        _quarantine_rows(mapping, path, batch, first_row, out, src, sink)


def _where(rule: ColumnRule) -> str:
    return f"column {rule.column!r}" if rule.column is not None else "constant"


def _source_column(rule: ColumnRule, batch: pa.RecordBatch, n: int, tm: TableMapping, mapping: Mapping) -> pa.Array:
    """A rule's column as read: text where the field needs parsing from text, else as typed (Parquet)."""
    if rule.value is not None:
        return pa.repeat(pa.scalar(rule.value, pa.string()), n)
    assert rule.column is not None
    col = batch.column(rule.column)
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    ftype = TABLES[tm.table][rule.field].type
    typed = (
        (ftype in (FieldType.DATE, FieldType.TIMESTAMP) and _is_datetime(col.type))
        or (ftype in (FieldType.FLOAT, FieldType.INT)
            and (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)))
        or (rule.split is not None and _is_list(col.type))  # a Parquet list: the values are already apart
    )
    return col if typed and rule.values is None else _text(col, rule, tm, mapping)


def _bad(out: _Outcome, mask: pa.Array, name: str, required: bool, reason: Reason, kind: FindingKind,
         why: str) -> None:
    """A value that failed its conversion is null: a required field's row is quarantined, an optional
    field's is kept and flagged."""
    if required:
        out.fail(mask, reason, why)
    else:
        out.flag(mask, name, kind)


def _concepts(table: str, cols: dict[str, pa.Array], out: _Outcome, n: int, sender: str | None) -> pa.Array:
    """The coded concept of every row, chosen as `pick_concept` chooses it (once per distinct system and
    code), with its status and findings; returns the rows' sensitivity."""
    code = cols.get("code", pa.nulls(n, pa.string()))
    system = cols.get("code_system", pa.nulls(n, pa.string()))
    display = cols.get("display", pa.nulls(n, pa.string()))
    # Key on the system's position among the distinct systems: the code may hold any character.
    enc = pc.dictionary_encode(system)
    systems = enc.dictionary.to_pylist()
    keys = pc.binary_join_element_wise(pc.fill_null(enc.indices, -1).cast(pa.string()), code, "|")

    def choose(key: str) -> tuple[str | None, str | None, str, str]:
        i, raw_code = key.split("|", 1)
        c = pick_concept(table, [(systems[int(i)] if i != "-1" else None, raw_code, None)], sender=sender)
        return c.system, c.code, c.status, row_level(table, c.system, c.code, standard=c.status == "standard").value

    c_system, c_code, status, level = _lookup_many(keys, choose, (pa.string(),) * 4)
    text_only = pc.and_(pc.is_null(keys), pc.is_valid(display))
    status = pc.if_else(text_only, pa.scalar("text"), status)
    level = pc.fill_null(level, row_level(table).value)
    out.fail(pc.is_null(status), Reason.MISSING_FIELD, f"{table}.code: neither a code nor a text")
    for value, kind in _STATUS_FINDING.items():
        out.flag(_np(pc.equal(status, value)), "code", kind)
    out.flag(_np(text_only), "code", FindingKind.TEXT_ONLY)
    # A row whose code the node cannot read is also judged by its text (as `complete` does).
    unread = np.flatnonzero(_np(pc.and_(pc.not_equal(status, "standard"), pc.is_valid(display))))
    if len(unread):
        by_text = _lookup(pc.take(display, pa.array(unread)),
                          lambda d: row_level(table, text=d, standard=False).value, pa.string())
        l1 = np.zeros(n, np.bool_)
        l1[unread] = _np(pc.equal(by_text, Level.L1.value))
        if l1.any():
            level = pc.if_else(pa.array(l1), pa.scalar(Level.L1.value), level)
    cols["code_system"] = c_system
    cols["code"] = c_code
    cols["code_status"] = status
    return level


def _check_sizes(table: str, cols: dict[str, pa.Array], out: _Outcome) -> None:
    """Quarantine rows holding a string longer than the node's limits (the field is named)."""
    lim = limits()
    spec = TABLES[table]
    for name, col in cols.items():
        if spec[name].type is not FieldType.STR or not pa.types.is_string(col.type) or not len(col):
            continue
        big = lim.text_chars if PHI.FREE_TEXT in spec[name].phi else lim.value_chars
        # Characters never outnumber bytes: only a column with a value of more bytes needs counting.
        if col.offset == 0:
            offsets = np.frombuffer(col.buffers()[1], np.int32, len(col) + 1)
            if int(np.diff(offsets).max()) <= big:
                continue
        long = pc.greater(pc.utf8_length(col), big)
        out.fail(long, Reason.BAD_VALUE, f"{table}.{name}: longer than {big:,} characters "
                                         "(the limit; see --max-value-chars / --max-text-chars)")


def _quarantine_rows(mapping: Mapping, path: Path, batch: pa.RecordBatch, first_row: int, out: _Outcome,
                     src: np.ndarray | None, sink: Sink) -> None:
    bad = np.flatnonzero(out.reason)
    # The values of one split cell that fail alike are one failure of one source row.
    failures: dict[tuple[int, int, int], None] = {}
    for i in bad.tolist():
        failures[(int(src[i]) if src is not None else i, int(out.reason[i]), int(out.why[i]))] = None
    rows_idx = sorted({row for row, _, _ in failures})
    rows = dict(zip(rows_idx, batch.take(pa.array(rows_idx, pa.int64())).to_pylist(), strict=True))
    for row, reason, why in failures:
        values = rows[row]
        if mapping.format == "csv":
            buf = io.StringIO()
            csv.writer(buf, delimiter=mapping.delimiter, lineterminator="").writerow(values.values())
            raw = buf.getvalue().encode("utf-8")
        else:
            raw = orjson.dumps(values, default=str)
        sink.quarantine(Quarantined(mapping.format, str(path), f"row {first_row + row}", _REASONS[reason - 1],
                                    out.whys[why], raw))
