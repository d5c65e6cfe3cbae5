"""The declarative mapping file for CSV and Parquet sources: which column feeds which model field.

```toml
[source]
format = "csv"                  # csv or parquet
delimiter = ","
encoding = "utf-8"
date_format = "%Y-%m-%d"
timestamp_format = "%Y-%m-%d %H:%M:%S"

[[table]]
file = "patients.csv"           # relative to the mapping file; a glob is allowed
table = "patient"
[table.columns]
id = "patient_no"                                   # a source column
birth_date = { column = "dob", format = "%d/%m/%Y" }
sex = { column = "gender", values = { M = "male", F = "female" } }
country = { value = "CN" }                          # a constant
```
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medspace.connect.errors import MappingFileError
from medspace.model import TABLES, FieldType

COMPUTED = frozenset({"sensitivity", "source", "code_status"})  # the connector fills these; a mapping may not


@dataclass(frozen=True)
class ColumnRule:
    """How one model field is filled: from a column (optionally re-formatted or re-coded) or a constant."""

    field: str
    column: str | None = None
    value: str | None = None
    format: str | None = None
    values: dict[str, str] | None = None
    default: str | None = None


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
    encoding: str
    date_format: str
    timestamp_format: str
    tables: tuple[TableMapping, ...] = field(default_factory=tuple)


class _Lines:
    """Finds the line of a key inside the n-th `[[table]]` block, so errors can name it."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.blocks = [i + 1 for i, ln in enumerate(self.lines) if re.match(r"^\s*\[\[\s*table\s*\]\]", ln)]

    def block(self, n: int) -> int:
        return self.blocks[n] if n < len(self.blocks) else 0

    def key(self, n: int, key: str) -> int:
        start = self.block(n)
        end = self.blocks[n + 1] if n + 1 < len(self.blocks) else len(self.lines) + 1
        pat = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=")
        for i in range(start, end - 1):
            if pat.match(self.lines[i]):
                return i + 1
        return start

    def source_key(self, key: str) -> int:
        pat = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i, ln in enumerate(self.lines):
            if pat.match(ln):
                return i + 1
        return 1


def load_mapping(path: str | Path) -> Mapping:
    """Read and check a mapping file; a mistake raises MappingFileError naming its line and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise MappingFileError(f"{path}: cannot read mapping file: {e.strerror or e}") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise MappingFileError(f"{path}: not valid TOML: {e}") from None
    lines = _Lines(text)

    def fail(line: int, msg: str) -> MappingFileError:
        return MappingFileError(f"{path}:{line}: {msg}")

    src = doc.get("source", {})
    if not isinstance(src, dict):
        raise fail(1, "[source] must be a table")
    fmt = str(src.get("format", "csv")).lower()
    if fmt not in ("csv", "parquet"):
        raise fail(lines.source_key("format"), f"source.format must be csv or parquet, not {fmt!r}")
    delimiter = str(src.get("delimiter", ","))
    if len(delimiter) != 1:
        raise fail(lines.source_key("delimiter"), "source.delimiter must be one character")
    blocks = doc.get("table")
    if not isinstance(blocks, list) or not blocks:
        raise fail(1, "no [[table]] blocks: a mapping needs at least one")
    tables: list[TableMapping] = []
    for n, block in enumerate(blocks):
        tables.append(_table(path, n, block, lines, fail))
    return Mapping(
        path=path,
        format=fmt,
        delimiter=delimiter,
        encoding=str(src.get("encoding", "utf-8")),
        date_format=str(src.get("date_format", "%Y-%m-%d")),
        timestamp_format=str(src.get("timestamp_format", "%Y-%m-%d %H:%M:%S")),
        tables=tuple(tables),
    )


def _table(path: Path, n: int, block: dict[str, Any], lines: _Lines, fail: Any) -> TableMapping:
    line = lines.block(n)
    name = block.get("table")
    if name not in TABLES:
        raise fail(lines.key(n, "table"), f"table {name!r} is not a model table; known: {', '.join(TABLES)}")
    spec = TABLES[name]
    pattern = block.get("file")
    if not isinstance(pattern, str) or not pattern:
        raise fail(line, f"table {name}: `file` is missing")
    files = tuple(sorted(path.parent.glob(pattern))) if any(c in pattern for c in "*?[") else (
        path.parent / pattern,
    )
    if not files or not all(f.is_file() for f in files):
        raise fail(lines.key(n, "file"), f"table {name}: no file matches {pattern!r} next to the mapping")
    columns = block.get("columns")
    if not isinstance(columns, dict) or not columns:
        raise fail(line, f"table {name}: [table.columns] is missing or empty")
    rules: list[ColumnRule] = []
    for fname, rule in columns.items():
        at = lines.key(n, fname)
        if fname in COMPUTED:
            raise fail(at, f"{name}.{fname} is computed by the connector and cannot be mapped")
        if fname not in spec:
            raise fail(at, f"{name}.{fname} is not a field of {name}; fields: {', '.join(spec.names)}")
        if isinstance(rule, str):
            rules.append(ColumnRule(fname, column=rule))
            continue
        if not isinstance(rule, dict):
            raise fail(at, f"{name}.{fname}: give a column name or an inline table")
        unknown = set(rule) - {"column", "value", "format", "values", "default"}
        if unknown:
            raise fail(at, f"{name}.{fname}: unknown key(s) {', '.join(sorted(unknown))}")
        if ("column" in rule) == ("value" in rule):
            raise fail(at, f"{name}.{fname}: give exactly one of `column` or `value`")
        fmt = rule.get("format")
        if fmt is not None and spec[fname].type not in (FieldType.DATE, FieldType.TIMESTAMP):
            raise fail(at, f"{name}.{fname}: `format` applies only to date and timestamp fields")
        values = rule.get("values")
        if values is not None and (
            not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
        ):
            raise fail(at, f"{name}.{fname}: `values` must map source values to strings")
        rules.append(
            ColumnRule(
                fname,
                column=str(rule["column"]) if "column" in rule else None,
                value=str(rule["value"]) if "value" in rule else None,
                format=str(fmt) if fmt is not None else None,
                values={str(k): str(v) for k, v in values.items()} if values else None,
                default=str(rule["default"]) if "default" in rule else None,
            )
        )
    mapped = {r.field for r in rules}
    missing = [f for f in spec.required if f not in mapped and f not in COMPUTED]
    if missing:
        raise fail(line, f"table {name}: required field(s) not mapped: {', '.join(missing)}")
    return TableMapping(table=name, files=files, rules=tuple(rules), line=line)
