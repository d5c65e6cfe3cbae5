"""Mapping files are checked like policy files: every key known, every error with its file, line and field."""

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medspace.connect import MappingFileError
from medspace.connect.mapping import RULE_KEYS, SOURCE_KEYS, TABLE_KEYS, load_mapping

BASE = """\
# a mapping
[source]
format = "csv"
date_format = ["%Y-%m-%d", "%d/%m/%Y"]

[[table]]
file = "p.csv"
table = "patient"
[table.columns]
id = "pid"
birth_date = { column = "dob", format = ["%d/%m/%Y",
                                         "%m/%d/%Y"] }
sex = { column = "sex", values = { M = "male", F = "female" } }

[[table]]
file = "dx.csv"
table = "condition"

[table.columns]
id = "dx_id"
patient_id = "pid"
code = { column = "icd", split = ";" }
code_system = { value = "ICD-10" }
"""


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "p.csv").write_text("pid,dob,sex\n")
    (tmp_path / "dx.csv").write_text("dx_id,pid,icd\n")
    path = tmp_path / "map.toml"
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    with pytest.raises(MappingFileError) as e:
        load_mapping(path)
    return str(e.value)


def test_a_good_mapping_loads_with_lists_of_formats(tmp_path: Path) -> None:
    m = load_mapping(_write(tmp_path, BASE))
    assert m.date_format == ("%Y-%m-%d", "%d/%m/%Y")
    assert m.timestamp_format == ("%Y-%m-%d %H:%M:%S",)
    assert m.encoding == "utf-8"
    rules = {r.field: r for r in m.tables[0].rules}
    assert rules["birth_date"].format == ("%d/%m/%Y", "%m/%d/%Y")
    assert rules["birth_date"].line == 11
    split = {r.field: r for r in m.tables[1].rules}["code"]
    assert split.split == ";" and split.line == 22


@pytest.mark.parametrize(
    ("old", "new", "line", "message"),
    [
        ('date_format = ["%Y', 'date_fromat = ["%Y', 4,
         "source.date_fromat: unknown key; did you mean 'date_format'?"),
        ('table = "condition"', 'table = "condition"\nfilter = "x > 1"', 18,
         "table.filter: unknown key; did you mean 'file'? (keys: file, table, columns)"),
        ('column = "dob", format', 'column = "dob", fromat', 11,
         "patient.birth_date.fromat: unknown key; did you mean 'format'?"),
        ('split = ";"', 'splitt = ";"', 22, "condition.code.splitt: unknown key; did you mean 'split'?"),
        ("[source]", "[sources]", 2, "sources: unknown section; did you mean 'source'?"),
        ('format = "csv"', 'format = "xlsx"', 3, "source.format: must be csv or parquet"),
        ('format = "csv"', 'encoding = "utf-9"', 3, "source.encoding: unknown encoding 'utf-9'"),
        ('"%m/%d/%Y"] }', '"mm/dd/yyyy"] }', 11, "patient.birth_date.format: 'mm/dd/yyyy' has no % directive"),
        ('sex = { column = "sex", values', 'sex = { column = "sex", default = "x", values', 13, None),
        ('sex = { column = "sex", values = { M = "male", F = "female" } }', 'sex = { column = "sex", default = "x" }',
         13, "patient.sex.default: applies with `values`"),
        ('id = "pid"\nbirth', 'id = { column = "pid", split = "," }\nbirth', 10, "patient.id.split: applies to a text"),
        ('code_system = { value = "ICD-10" }', 'code_system = { column = "sys", split = "," }', 23,
         "condition.code_system.split: only one field of a table can be split"),
        ('sex = { column = "sex", values', 'sex = { column = "sex", format = "%Y", values', 13,
         "patient.sex.format: applies only to date and timestamp fields"),
        ('table = "condition"', 'table = "conditon"', 17, "table.table: 'conditon' is not a model table; did you mean"),
        ('patient_id = "pid"', 'patient = "pid"', 21, "condition.patient: not a field of condition; did you mean "
                                                      "'patient_id'?"),
        ('code = { column = "icd", split = ";" }\n', "", 19, "condition: map `code` or `display`"),
        ('sex = { column', 'sensitivity = "s"\nsex = { column', 13, "patient.sensitivity: computed by the connector"),
    ],
)
def test_mistakes_name_file_line_and_field(tmp_path: Path, old: str, new: str, line: int, message: str | None) -> None:
    assert old in BASE
    path = _write(tmp_path, BASE.replace(old, new, 1))
    if message is None:
        load_mapping(path)  # `default` with `values` is fine
        return
    err = _error(path)
    assert err.startswith(f"{path}:{line}: "), err
    assert message in err


def test_sub_table_and_dotted_keys_are_located(tmp_path: Path) -> None:
    old = 'birth_date = { column = "dob", format = ["%d/%m/%Y",\n' + " " * 41 + '"%m/%d/%Y"] }\n'
    assert old in BASE
    text = BASE.replace(
        old,
        "[table.columns.birth_date]\ncolumn = \"dob\"\nformat = \"%d/%m/%Y\"\nfromat = \"%Y\"\n",
    )
    # The sub-table closes [table.columns]: put `sex` back under it as a dotted key.
    text = text.replace('sex = { column = "sex", values = { M = "male", F = "female" } }\n', "")
    text = text.replace('[table.columns.birth_date]', 'sex.column = "sex"\n[table.columns.birth_date]')
    path = _write(tmp_path, text)
    err = _error(path)
    assert err.startswith(f"{path}:15: patient.birth_date.fromat: unknown key"), err


def test_bad_toml_names_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE.replace("[[table]]\nfile = \"dx.csv\"", "[[table]\nfile = \"dx.csv\""))
    assert re.match(rf"{re.escape(str(path))}:15: not valid TOML", _error(path))


def test_byte_order_mark_in_mapping_file(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert load_mapping(path).tables[0].table == "patient"


def test_encoding_names_are_normalised(tmp_path: Path) -> None:
    for given_name, canonical in (("UTF8", "utf-8"), ("utf-8-sig", "utf-8"), ("GB18030", "gb18030"),
                                  ("latin-1", "iso8859-1"), ("cp1252", "cp1252")):
        path = _write(tmp_path, BASE.replace('format = "csv"', f'format = "csv"\nencoding = "{given_name}"'))
        assert load_mapping(path).encoding == canonical


# --- any unknown key, anywhere, is refused at its own line ---------------------------------------------

_typo = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=3, max_size=12)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(["source", "table", "rule", "subtable"]), key=_typo, extra_lines=st.integers(0, 3))
def test_an_unknown_key_is_refused_at_its_line(tmp_path: Path, where: str, key: str, extra_lines: int) -> None:
    known = {"source": SOURCE_KEYS, "table": TABLE_KEYS, "rule": RULE_KEYS, "subtable": RULE_KEYS}[where]
    if key in known:
        return
    pad = "\n" * extra_lines
    lines = ["[source]", 'format = "csv"', pad + "[[table]]", 'file = "p.csv"', 'table = "patient"',
             "[table.columns]", 'id = "pid"', 'sex = { column = "sex", values = { M = "male" } }']
    if where == "source":
        lines.insert(2, f"{key} = 1")
        field = f"source.{key}"
    elif where == "table":
        lines.insert(5, f'{key} = "x"')
        field = f"table.{key}"
    elif where == "rule":
        lines[-1] = 'sex = { column = "sex", ' + f'{key} = "x", ' + 'values = { M = "male" } }'
        field = f"patient.sex.{key}"
    else:
        lines[-1:] = ["[table.columns.sex]", 'column = "sex"', pad + f'{key} = "x"']
        field = f"patient.sex.{key}"
    text = "\n".join(lines) + "\n"
    line = next(i for i, ln in enumerate(text.splitlines(), 1)
                if re.match(rf"^(sex = \{{.*)?{key} = ", ln) or ln.startswith(f"sex = {{ column = \"sex\", {key}"))
    path = _write(tmp_path, text)
    err = _error(path)
    assert err.startswith(f"{path}:{line}: {field}: unknown key;"), err
