"""The declarative mapping file for CSV and Parquet sources: which column feeds which model field.

```toml
[source]
format = "csv"                  # csv or parquet
delimiter = ","
encoding = "utf-8"              # e.g. gb18030, latin-1, cp1252; a UTF-8 byte-order mark is accepted
date_format = ["%Y-%m-%d", "%d/%m/%Y"]   # one format or a list, tried in order
timestamp_format = "%Y-%m-%d %H:%M:%S"
sender = "LAB"                  # optional: codes without a system are stored as system local:LAB

[[table]]
file = "patients.csv"           # relative to the mapping file; a glob is allowed
table = "patient"
[table.columns]
id = "patient_no"                                   # a source column
birth_date = { column = "dob", format = ["%d/%m/%Y", "%Y-%m-%d"] }
sex = { column = "gender", values = { M = "male", F = "female" } }
country = { value = "CN" }                          # a constant
# in a coded table: code = { column = "dx", split = ";" } makes one row per code of a cell
```

Every key is checked: a key the mapping does not know (`date_fromat`, `filter`) is refused with the
file, its line and the closest known key, like a mistake in a policy file.
"""

from __future__ import annotations

import codecs
import difflib
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medspace.connect.errors import MappingFileError
from medspace.model import TABLES, FieldType

COMPUTED = frozenset({"sensitivity", "source", "code_status"})  # the connector fills these; a mapping may not

TOP_KEYS = ("source", "table")
SOURCE_KEYS = ("format", "delimiter", "encoding", "date_format", "timestamp_format", "sender")
TABLE_KEYS = ("file", "table", "columns")
RULE_KEYS = ("column", "value", "format", "values", "default", "split")

DEFAULT_DATE_FORMAT = ("%Y-%m-%d",)
DEFAULT_TIMESTAMP_FORMAT = ("%Y-%m-%d %H:%M:%S",)


@dataclass(frozen=True)
class ColumnRule:
    """How one model field is filled: from a column (optionally re-formatted, re-coded or split) or a constant."""

    field: str
    column: str | None = None
    value: str | None = None
    format: tuple[str, ...] | None = None  # date/timestamp formats, tried in order
    values: dict[str, str] | None = None
    default: str | None = None
    split: str | None = None  # separator of a multi-valued cell: one row per value
    line: int = 0  # line of the field in the mapping file, for error messages


@dataclass(frozen=True)
class TableMapping:
    """One `[[table]]` block: source files into one model table."""

    table: str
    files: tuple[Path, ...]
    rules: tuple[ColumnRule, ...]
    line: int  # line of the block's `[[table]]` header, for error messages


@dataclass(frozen=True)
class Mapping:
    """A whole mapping file."""

    path: Path
    format: str
    delimiter: str
    encoding: str  # a Python codec name, normalised ("utf-8", "gb18030", "iso8859-1", ...)
    date_format: tuple[str, ...]
    timestamp_format: tuple[str, ...]
    tables: tuple[TableMapping, ...] = field(default_factory=tuple)
    sender: str | None = None


# --- where keys are ------------------------------------------------------------------------------

_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_PATH = rf"{_PART}(?:\s*\.\s*{_PART})*"
_KEY_LINE = re.compile(rf"^\s*({_PATH})\s*=")
_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_PATH})\s*\]\]?\s*(?:#.*)?$")
_PARTS = re.compile(_PART)


def _parts(path: str) -> tuple[str, ...]:
    out = []
    for m in _PARTS.finditer(path):
        p = m.group(0)
        out.append(p[1:-1] if p[:1] in "\"'" else p)
    return tuple(out)


class _Positions:
    """The lines of a TOML text's headers and keys (tomllib keeps no positions), by key path: ("source",
    "encoding"), ("table", 2, "columns", "dob"), ...; keys inside an inline table are found in the lines of
    the key that holds it. Multi-line strings are skipped; anything not found falls back to the line of
    the closest enclosing key or header that was."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.at: dict[tuple[Any, ...], int] = {}  # path -> 1-based line
        self.starts: list[int] = []  # 1-based lines where a key or header starts, in order
        arrays: dict[str, int] = {}
        prefix: tuple[Any, ...] = ()
        in_string: str | None = None
        for i, ln in enumerate(self.lines, 1):
            if in_string is not None:
                if ln.count(in_string) % 2:
                    in_string = None
                continue
            head = _HEADER.match(ln)
            if head:
                parts = _parts(head.group(2))
                if head.group(1) == "[[":
                    arrays[parts[0]] = arrays.get(parts[0], -1) + 1
                    prefix = (parts[0], arrays[parts[0]], *parts[1:])
                elif parts[0] in arrays:  # [table.columns] belongs to the last [[table]]
                    prefix = (parts[0], arrays[parts[0]], *parts[1:])
                else:
                    prefix = parts
                self._record(prefix, i)
                continue
            key = _KEY_LINE.match(ln)
            if key:
                self._record((*prefix, *_parts(key.group(1))), i)
            for quote in ('"""', "'''"):
                if ln.count(quote) % 2:
                    in_string = quote
                    break

    def _record(self, path: tuple[Any, ...], line: int) -> None:
        for k in range(1, len(path) + 1):
            self.at.setdefault(path[:k], line)
        self.starts.append(line)

    def line(self, *path: Any) -> int:
        """The line of a key path: its own, or the one of the closest enclosing path that was found."""
        if path in self.at:
            return self.at[path]
        for k in range(len(path) - 1, 0, -1):
            outer = self.at.get(path[:k])
            if outer is None:
                continue
            inner = self._inside(outer, str(path[k])) if isinstance(path[k], str) else None
            return inner or outer
        return 1

    def _inside(self, start: int, key: str) -> int | None:
        """The line of `key = ` in the lines of the key or header at `start` (an inline table may span
        lines where it holds an array)."""
        later = [s for s in self.starts if s > start]
        end = later[0] if later else len(self.lines) + 1
        pat = re.compile(rf"""(?:^|[{{,\s])(?:"{re.escape(key)}"|'{re.escape(key)}'|{re.escape(key)})\s*=""")
        for i in range(start, end):
            if pat.search(self.lines[i - 1]):
                return i
        return None


# --- checking ------------------------------------------------------------------------------------


def _unknown(key: str, known: Iterable[str]) -> str:
    known = list(known)
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key; {hint}(keys: {', '.join(known)})"


class _Checker:
    """Checks one mapping document; every error names the file, the line and the field."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.pos = _Positions(text)

    def fail(self, at: tuple[Any, ...], fld: str, msg: str) -> MappingFileError:
        return MappingFileError(f"{self.path}:{self.pos.line(*at)}: {fld}: {msg}")

    def formats(self, value: Any, at: tuple[Any, ...], fld: str) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(f, str) and f for f in items):
            raise self.fail(at, fld, "give a format string or a non-empty list of them, e.g. \"%d/%m/%Y\"")
        for f in items:
            if "%" not in f:
                raise self.fail(at, fld, f"{f!r} has no % directive (e.g. %Y-%m-%d)")
        return tuple(dict.fromkeys(items))

    def source(self, src: Any) -> dict[str, Any]:
        if not isinstance(src, dict):
            raise self.fail(("source",), "source", "must be a table ([source])")
        for k in src:
            if k not in SOURCE_KEYS:
                raise self.fail(("source", k), f"source.{k}", _unknown(k, SOURCE_KEYS))
        fmt = src.get("format", "csv")
        if not isinstance(fmt, str) or fmt.lower() not in ("csv", "parquet"):
            raise self.fail(("source", "format"), "source.format", f"must be csv or parquet, not {fmt!r}")
        delimiter = src.get("delimiter", ",")
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise self.fail(("source", "delimiter"), "source.delimiter", "must be one character")
        encoding = src.get("encoding", "utf-8")
        try:
            if not isinstance(encoding, str):
                raise LookupError
            codec = codecs.lookup(encoding).name
        except LookupError:
            raise self.fail(("source", "encoding"), "source.encoding",
                            f"unknown encoding {encoding!r} (e.g. utf-8, gb18030, latin-1, cp1252)") from None
        sender = src.get("sender")
        if sender is not None and (not isinstance(sender, str) or not sender.strip()):
            raise self.fail(("source", "sender"), "source.sender", "must be a non-empty string")
        return {
            "format": fmt.lower(),
            "delimiter": delimiter,
            "encoding": "utf-8" if codec == "utf-8-sig" else codec,
            "date_format": self.formats(src.get("date_format", list(DEFAULT_DATE_FORMAT)),
                                        ("source", "date_format"), "source.date_format"),
            "timestamp_format": self.formats(src.get("timestamp_format", list(DEFAULT_TIMESTAMP_FORMAT)),
                                             ("source", "timestamp_format"), "source.timestamp_format"),
            "sender": sender.strip() if sender is not None else None,
        }

    def table(self, n: int, block: Any) -> TableMapping:
        at = ("table", n)
        if not isinstance(block, dict):
            raise self.fail(at, "table", "each [[table]] must be a table")
        for k in block:
            if k not in TABLE_KEYS:
                raise self.fail((*at, k), f"table.{k}", _unknown(k, TABLE_KEYS))
        name = block.get("table")
        if name is None:
            raise self.fail(at, "table.table", "missing: the model table this block fills")
        if not isinstance(name, str) or name not in TABLES:
            close = difflib.get_close_matches(str(name), list(TABLES), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise self.fail((*at, "table"), "table.table",
                            f"{name!r} is not a model table; {hint}(known: {', '.join(TABLES)})")
        spec = TABLES[name]
        pattern = block.get("file")
        if not isinstance(pattern, str) or not pattern:
            raise self.fail((*at, "file"), "table.file", f"missing: the file(s) that fill {name}")
        files = tuple(sorted(self.path.parent.glob(pattern))) if any(c in pattern for c in "*?[") else (
            self.path.parent / pattern,
        )
        if not files or not all(f.is_file() for f in files):
            raise self.fail((*at, "file"), "table.file", f"no file matches {pattern!r} next to the mapping")
        columns = block.get("columns")
        if not isinstance(columns, dict) or not columns:
            raise self.fail((*at, "columns"), f"{name}", "[table.columns] is missing or empty")
        rules = [self.rule(name, (*at, "columns", fname), fname, rule) for fname, rule in columns.items()]
        split = [r for r in rules if r.split is not None]
        if len(split) > 1:
            raise self.fail((*at, "columns", split[1].field, "split"), f"{name}.{split[1].field}.split",
                            f"only one field of a table can be split (already {name}.{split[0].field})")
        mapped = {r.field for r in rules}
        missing = [f for f in spec.required if f not in mapped and f not in COMPUTED]
        if missing:
            raise self.fail((*at, "columns"), name, f"required field(s) not mapped: {', '.join(missing)}")
        if "code" in spec and not mapped & {"code", "display"}:
            raise self.fail((*at, "columns"), name, "map `code` or `display` (or both): a row needs one")
        return TableMapping(table=name, files=files, rules=tuple(rules), line=self.pos.line(*at))

    def rule(self, table: str, at: tuple[Any, ...], fname: str, rule: Any) -> ColumnRule:
        spec = TABLES[table]
        fld = f"{table}.{fname}"
        line = self.pos.line(*at)
        if fname in COMPUTED:
            raise self.fail(at, fld, "computed by the connector and cannot be mapped")
        if fname not in spec:
            close = difflib.get_close_matches(fname, [f for f in spec.names if f not in COMPUTED], n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise self.fail(at, fld, f"not a field of {table}; {hint}(fields: "
                                     f"{', '.join(f for f in spec.names if f not in COMPUTED)})")
        if isinstance(rule, str):
            if not rule:
                raise self.fail(at, fld, "the column name is empty")
            return ColumnRule(fname, column=rule, line=line)
        if not isinstance(rule, dict):
            raise self.fail(at, fld, "give a column name or an inline table ({ column = ..., ... })")
        for k in rule:
            if k not in RULE_KEYS:
                raise self.fail((*at, k), f"{fld}.{k}", _unknown(k, RULE_KEYS))
        if ("column" in rule) == ("value" in rule):
            raise self.fail(at, fld, "give exactly one of `column` or `value`")
        for k in ("column", "value", "default"):
            if k in rule and (not isinstance(rule[k], str | int | float) or rule[k] == ""):
                raise self.fail((*at, k), f"{fld}.{k}", "must be a non-empty string")
        ftype = spec[fname].type
        fmt = rule.get("format")
        formats = None
        if fmt is not None:
            if ftype not in (FieldType.DATE, FieldType.TIMESTAMP):
                raise self.fail((*at, "format"), f"{fld}.format", "applies only to date and timestamp fields")
            formats = self.formats(fmt, (*at, "format"), f"{fld}.format")
        values = rule.get("values")
        if values is not None and (
            not isinstance(values, dict) or not values or not all(isinstance(v, str) for v in values.values())
        ):
            raise self.fail((*at, "values"), f"{fld}.values", "must map source values to strings")
        if "default" in rule and values is None:
            raise self.fail((*at, "default"), f"{fld}.default",
                            "applies with `values`: the value for source values outside the map")
        split = rule.get("split")
        if split is not None:
            if not isinstance(split, str) or not split:
                raise self.fail((*at, "split"), f"{fld}.split", "must be the separator, e.g. \";\"")
            if "column" not in rule:
                raise self.fail((*at, "split"), f"{fld}.split", "applies to a column, not a constant")
            if ftype is not FieldType.STR or fname == "id":
                raise self.fail((*at, "split"), f"{fld}.split", "applies to a text field other than `id` "
                                                                "(e.g. a code column)")
        return ColumnRule(
            fname,
            column=str(rule["column"]) if "column" in rule else None,
            value=str(rule["value"]) if "value" in rule else None,
            format=formats,
            values={str(k): str(v) for k, v in values.items()} if values else None,
            default=str(rule["default"]) if "default" in rule else None,
            split=split,
            line=line,
        )


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; a mistake raises MappingFileError naming its line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise MappingFileError(f"{path}: cannot read mapping file: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise MappingFileError(f"{path}: a mapping file must be UTF-8 text") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise MappingFileError(f"{path}:{m.group(1) if m else 1}: not valid TOML: {str(e).split(' (at ')[0]}") \
            from None
    check = _Checker(path, text)
    for k in doc:
        if k not in TOP_KEYS:
            raise check.fail((k,), k, _unknown(k, TOP_KEYS).replace("key", "section", 1))
    src = check.source(doc.get("source", {}))
    blocks = doc.get("table")
    if not isinstance(blocks, list) or not blocks:
        raise check.fail(("table",), "table", "no [[table]] blocks: a mapping needs at least one")
    tables = tuple(check.table(n, block) for n, block in enumerate(blocks))
    return Mapping(path=path, tables=tables, **src)
