from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medspace.connect import MappingFileError, MemorySink, Reason
from medspace.connect.mapping import load_mapping
from medspace.connect.tabular import ingest_mapping

MAPPING = """\
[source]
format = "csv"
date_format = "%Y-%m-%d"

[[table]]
file = "patients.csv"
table = "patient"
[table.columns]
id = "patient_no"
family_name = "surname"
birth_date = { column = "dob", format = "%d/%m/%Y" }
sex = { column = "gender", values = { M = "male", F = "female" } }
country = { value = "CN" }

[[table]]
file = "dx.csv"
table = "condition"
[table.columns]
id = "dx_id"
patient_id = "patient_no"
code = "icd"
code_system = "sys"
recorded_date = "dx_date"

[[table]]
file = "labs.csv"
table = "observation"
[table.columns]
id = "lab_id"
patient_id = "patient_no"
code = "loinc"
code_system = { value = "LOINC" }
value_num = "result"
unit = "unit"
effective_time = "taken"
"""

PATIENTS = """\
patient_no,surname,dob,gender
P1,Wang,02/01/1980,M
P2,Li,31/02/1980,F
P3,Chen,01/01/1990,X
P4,"Zhang, Jr",05/05/1975,F
P5,Bad,01/01/1990,F,extra
"""
DX = """\
dx_id,patient_no,icd,sys,dx_date
D1,P1,e11.9,I10,2020-01-02
D2,P1,B20,ICD-10,2020-01-02
D3,P4,ZZZ,ICD-10,2020-01-02
D4,P4,E11,FOO,2020-01-02
D5,,E11,ICD-10,2020-01-02
"""
LABS = """\
lab_id,patient_no,loinc,result,unit,taken
L1,P1,4548-4,7.1,%,2020-01-02 08:00:00
L2,P1,4548-4,abc,%,2020-01-02 08:00:00
L3,P1,2345-7,5.5,mmol/L,2020-01-03
L4,P1,1234-5,5.5,mmol/L,2020-01-03 09:00:00
"""


@pytest.fixture
def src(tmp_path: Path) -> Path:
    (tmp_path / "map.toml").write_text(MAPPING)
    (tmp_path / "patients.csv").write_text(PATIENTS)
    (tmp_path / "dx.csv").write_text(DX)
    (tmp_path / "labs.csv").write_text(LABS)
    return tmp_path / "map.toml"


def test_csv_keeps_flags_and_quarantines(src: Path) -> None:
    sink = MemorySink()
    ingest_mapping(src, sink)
    pats = {r["id"]: r for r in sink.rows["patient"]}
    # Kept with a null and a finding: an impossible date (P2), a value outside the `values` map (P3).
    assert set(pats) == {"P1", "P2", "P3", "P4"}
    assert pats["P1"]["birth_date"] == date(1980, 1, 2) and pats["P1"]["sex"] == "male"
    assert pats["P2"]["birth_date"] is None and pats["P2"]["family_name"] == "Li"
    assert pats["P3"]["sex"] is None and pats["P3"]["birth_date"] == date(1990, 1, 1)
    assert pats["P4"]["family_name"] == "Zhang, Jr" and pats["P4"]["country"] == "CN"
    conds = {r["id"]: r for r in sink.rows["condition"]}
    assert conds["D1"]["code"] == "E11.9" and conds["D1"]["code_system"] == "ICD-10"
    assert conds["D1"]["code_status"] == "standard"
    assert conds["D2"]["sensitivity"] == "L1" and conds["D1"]["sensitivity"] == "L2"
    # A code failing its check is kept as sent; a system the table does not accept is kept as local.
    def concept(r: dict) -> tuple:
        return r["code"], r["code_system"], r["code_status"]

    assert concept(conds["D3"]) == ("ZZZ", "ICD-10", "invalid")
    assert concept(conds["D4"]) == ("E11", "local:FOO", "local")
    labs = {r["id"]: r for r in sink.rows["observation"]}
    assert labs["L1"]["value_num"] == 7.1
    assert labs["L2"]["value_num"] is None and labs["L2"]["unit"] == "%"
    assert labs["L3"]["effective_time"].date() == date(2020, 1, 3)  # a bare date in a timestamp column
    assert labs["L4"]["code_status"] == "invalid"
    got = {(q.source.rsplit("/", 1)[-1], q.position, q.reason) for q in sink.quarantined}
    assert got == {
        ("patients.csv", "malformed row", Reason.PARSE_ERROR),  # one column too many
        ("dx.csv", "row 5", Reason.MISSING_FIELD),  # no patient
    }
    assert sink.finding_counts == {
        ("patient", "birth_date", "bad_date"): 1,
        ("patient", "sex", "bad_value"): 1,
        ("condition", "code", "invalid_code"): 1,
        ("condition", "code", "local_code"): 1,
        ("observation", "value_num", "bad_value"): 1,
        ("observation", "code", "invalid_code"): 1,
    }
    where = {(f.source.rsplit("/", 1)[-1], f.field, f.kind.value): f.position for f in sink.findings}
    assert where[("patients.csv", "birth_date", "bad_date")] == "row 2"
    assert where[("dx.csv", "code", "local_code")] == "row 4"
    assert all(f.connector == "csv" for f in sink.findings)
    raws = {q.raw for q in sink.quarantined}
    assert b"D5,,E11,ICD-10,2020-01-02" in raws and b"P5,Bad,01/01/1990,F,extra" in raws
    for q in sink.quarantined:  # details name fields, never values
        assert "E11" not in q.detail and "D5" not in q.detail
    assert "condition.patient_id" in next(q.detail for q in sink.quarantined if q.reason is Reason.MISSING_FIELD)


def test_parquet_source(tmp_path: Path) -> None:
    pq.write_table(
        pa.table({
            "pid": ["A", "B", "C"],
            "born": pa.array([date(1990, 1, 1), date(2000, 6, 1), None], pa.date32()),
            "weight": [70.5, 80.0, None],
        }),
        tmp_path / "p.parquet",
    )
    pq.write_table(pa.table({"oid": ["o1", "o2"], "pid": ["A", "B"], "kg": [70.5, None]}), tmp_path / "o.parquet")
    (tmp_path / "m.toml").write_text(
        '[source]\nformat = "parquet"\n\n[[table]]\nfile = "p.parquet"\ntable = "patient"\n[table.columns]\n'
        'id = "pid"\nbirth_date = "born"\n\n[[table]]\nfile = "o.parquet"\ntable = "observation"\n'
        '[table.columns]\nid = "oid"\npatient_id = "pid"\ncode = { value = "29463-7" }\n'
        'code_system = { value = "http://loinc.org" }\nvalue_num = "kg"\n'
    )
    sink = MemorySink()
    ingest_mapping(tmp_path / "m.toml", sink)
    assert [r["birth_date"] for r in sink.rows["patient"]] == [date(1990, 1, 1), date(2000, 6, 1), None]
    assert [r["value_num"] for r in sink.rows["observation"]] == [70.5, None]
    assert not sink.quarantined


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("table = \"condition\"", "table = \"diagnosis\""), ":17: table.table: 'diagnosis' is not a model table"),
        (("code = \"icd\"", "icd_code = \"icd\""),
         ":21: condition.icd_code: not a field of condition; did you mean 'code'?"),
        (("recorded_date = \"dx_date\"", "sensitivity = \"dx_date\""), "computed by the connector"),
        (("patient_id = \"patient_no\"\ncode = \"icd\"", "code = \"icd\""), "required field(s) not mapped: patient_id"),
        (("format = \"%d/%m/%Y\"", "formt = \"%d/%m/%Y\""),
         ":11: patient.birth_date.formt: unknown key; did you mean 'format'?"),
        (("file = \"dx.csv\"", "file = \"missing.csv\""), "no file matches"),
        (("[[table]]\nfile = \"labs.csv\"", "[[table]\nfile = \"labs.csv\""), "not valid TOML"),
    ],
)
def test_bad_mapping_names_line_and_field(src: Path, change: tuple[str, str], message: str) -> None:
    text = src.read_text()
    assert change[0] in text
    src.write_text(text.replace(change[0], change[1], 1))
    with pytest.raises(MappingFileError) as e:
        load_mapping(src)
    assert message in str(e.value)
    assert str(src) in str(e.value)


def test_mapping_names_a_missing_column(src: Path) -> None:
    src.write_text(src.read_text().replace('unit = "unit"', 'unit = "units"'))
    with pytest.raises(MappingFileError,
                       match=r":34: observation\.unit: column 'units' is not in labs\.csv; did you mean 'unit'"):
        ingest_mapping(src, MemorySink())


def test_large_csv_streams_in_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medspace.connect.tabular as tab

    monkeypatch.setattr(tab, "BLOCK_BYTES", 4096)  # force many blocks
    rows = ["patient_no,surname,dob,gender"] + [f"P{i},N{i},01/01/19{50 + i % 50},{'MF'[i % 2]}" for i in range(5000)]
    rows[2500] = "P2499,X,99/99/1999,M"
    (tmp_path / "patients.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "m.toml").write_text(MAPPING.split("[[table]]\nfile = \"dx.csv\"")[0])
    sink = MemorySink()
    ingest_mapping(tmp_path / "m.toml", sink)
    assert len(sink.rows["patient"]) == 5000  # the bad date is kept as a null, and flagged
    assert not sink.quarantined
    assert [(f.position, f.field, f.kind.value) for f in sink.findings] == [("row 2500", "birth_date", "bad_date")]


cells = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(cells, min_size=0, max_size=7), max_size=12))
def test_no_csv_content_makes_the_connector_raise(tmp_path: Path, table: list[list[str]]) -> None:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["lab_id", "patient_no", "loinc", "result", "unit", "taken"])
    for row in table:
        w.writerow(row)
    (tmp_path / "labs.csv").write_text(buf.getvalue())
    (tmp_path / "m.toml").write_text("[source]\n" + MAPPING[MAPPING.index("[[table]]\nfile = \"labs.csv\""):])
    sink = MemorySink()
    ingest_mapping(tmp_path / "m.toml", sink)
    # Every data line is accounted for: a row, or a quarantine record (csv.writer writes an empty
    # row as a blank line, which a CSV reader skips).
    lines = sum(1 for row in table if row)
    assert len(sink.rows.get("observation", [])) + len(sink.quarantined) == lines


def test_quoted_newlines_in_values(tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text(
        'nid,pid,body\nN1,P1,"line one\nline two"\nN2,P2,"single"\n'
    )
    (tmp_path / "m.toml").write_text(
        '[source]\n\n[[table]]\nfile = "notes.csv"\ntable = "note"\n[table.columns]\n'
        'id = "nid"\npatient_id = "pid"\ntext = "body"\n'
    )
    sink = MemorySink()
    ingest_mapping(tmp_path / "m.toml", sink)
    assert [r["text"] for r in sink.rows["note"]] == ["line one\nline two", "single"]
    assert not sink.quarantined


# --- the vectorised fast paths give exactly what the general ones do -----------------------------

_date_like = st.one_of(
    st.dates(min_value=date(1, 1, 1), max_value=date(9999, 12, 31)).map(lambda d: d.strftime("%Y-%m-%d")),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%S")),  # a form the cast reads and %S does not
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%d %H:%M")),
    st.builds(lambda y, m, d: f"{y:04d}-{m:02d}-{d:02d}", st.integers(0, 9999), st.integers(0, 13),
              st.integers(0, 32)),  # impossible days and months
    st.builds(lambda y, m, d: f"{y}-{m}-{d}", st.integers(1, 9999), st.integers(1, 12), st.integers(1, 28)),
    st.text(alphabet="0123456789-: T+Z", min_size=8, max_size=20),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.none(), _date_like), max_size=20), st.sampled_from(["%Y-%m-%d", "%Y-%m-%d %H:%M:%S"]))
def test_iso_dates_fast_path_matches_strptime(values: list[str | None], fmt: str) -> None:
    from medspace.connect.tabular import _strict_strptime, _strptime_checked

    col = pa.array(values, pa.string())
    assert _strict_strptime(col, fmt).equals(_strptime_checked(col, fmt))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(alphabet=" \t\u3000ab\u00e9", max_size=4)), max_size=20))
def test_blank_to_null_nulls_blank_and_trims(values: list[str | None]) -> None:
    import pyarrow.compute as pc

    from medspace.connect.tabular import _blank_to_null

    col = pa.array(values, pa.string())
    trimmed = pc.utf8_trim_whitespace(col)
    expected = pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)
    assert _blank_to_null(col).equals(expected)
    assert _blank_to_null(col.slice(1)).equals(expected.slice(1))


# --- real-world exports: mixed date formats, multi-valued cells, encodings, limits -----------------------


def _mapping(tmp_path: Path, text: str, **files: str | bytes) -> Path:
    for name, content in files.items():
        target = tmp_path / name.replace("_csv", ".csv")
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    (tmp_path / "m.toml").write_text(text)
    return tmp_path / "m.toml"


DATES = """\
[source]
date_format = ["%Y-%m-%d", "%d/%m/%Y"]

[[table]]
file = "p.csv"
table = "patient"
[table.columns]
id = "pid"
birth_date = { column = "dob", format = ["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d-%b-%Y"] }
deceased_date = "died"
"""


def test_several_date_formats_are_tried_in_order(tmp_path: Path) -> None:
    rows = [
        ("A", "2023-05-17", ""), ("B", "17/05/2023", "01/02/2024"), ("C", "05/17/2023", "2024-02-01"),
        ("D", "17-May-2023", ""), ("E", "", ""), ("F", "05/06/2023", ""),  # d/m and m/d: the first listed wins
        ("G", "31/02/2023", "02/31/2024"), ("H", "not a date", ""),
    ]
    text = "pid,dob,died\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows)
    sink = MemorySink()
    ingest_mapping(_mapping(tmp_path, DATES, p_csv=text), sink)
    got = {r["id"]: (r["birth_date"], r["deceased_date"]) for r in sink.rows["patient"]}
    may17 = date(2023, 5, 17)
    assert got == {
        "A": (may17, None), "B": (may17, date(2024, 2, 1)), "C": (may17, date(2024, 2, 1)), "D": (may17, None),
        "E": (None, None), "F": (date(2023, 6, 5), None), "G": (None, None), "H": (None, None),
    }
    assert not sink.quarantined  # blank cells are nulls; values no format reads are nulls with a finding
    assert sink.finding_counts == {("patient", "birth_date", "bad_date"): 2,
                                   ("patient", "deceased_date", "bad_date"): 1}
    assert {(f.field, f.position) for f in sink.findings} == {("birth_date", "row 7"), ("deceased_date", "row 7")}


def test_a_column_that_never_reads_is_counted_whole(tmp_path: Path) -> None:
    # A likely format mistake: every value fails, every row is kept, and the finding counts them all.
    text = "pid,dob,died\n" + "".join(f"P{i},{i % 28 + 1:02d}.01.1990,\n" for i in range(500))
    sink = MemorySink()
    ingest_mapping(_mapping(tmp_path, DATES, p_csv=text), sink)
    assert len(sink.rows["patient"]) == 500 and not sink.quarantined
    assert sink.finding_counts == {("patient", "birth_date", "bad_date"): 500}


def test_findings_cost_one_call_per_field_and_kind_per_block(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medspace.connect.tabular as tab

    monkeypatch.setattr(tab, "BLOCK_BYTES", 4096)
    text = "pid,dob,died\n" + "".join(f"P{i},{'x' if i % 3 else '1990-01-01'},\n" for i in range(3000))
    sink = MemorySink()
    ingest_mapping(_mapping(tmp_path, DATES, p_csv=text), sink)
    assert sink.finding_counts == {("patient", "birth_date", "bad_date"): 2000}
    blocks = len({r["id"] for r in sink.rows["patient"]}) // 100  # many blocks ...
    assert 1 < len(sink.findings) < blocks  # ... each one call, not one per row
    assert sink.findings[0].position == "row 2"


SPLIT = """\
[source]
sender = "EMR"

[[table]]
file = "dx.csv"
table = "condition"
[table.columns]
id = "dx_id"
patient_id = "pid"
code = { column = "codes", split = ";" }
code_system = "sys"
display = "text"
"""

DX_MULTI = """\
dx_id,pid,codes,sys,text
D1,P1,E11.9;I10,ICD-10,
D2,P1,I10,ICD-10,
D3,P1,,ICD-10,chest pain
D4,P1, ; e11.9 ;,ICD-10,
D5,P2,B20;ZZZ,ICD-10,
D6,,E11.9;I10,ICD-10,
D7,P3,;;,ICD-10,
D8,P3,123;456,,HIV disease
"""


def test_multi_valued_code_cells_become_one_row_per_code(tmp_path: Path) -> None:
    sink = MemorySink()
    ingest_mapping(_mapping(tmp_path, SPLIT, dx_csv=DX_MULTI), sink)
    got = {r["id"]: (r["code"], r["code_system"], r["code_status"], r["sensitivity"]) for r in sink.rows["condition"]}
    assert got == {
        "D1": ("E11.9", "ICD-10", "standard", "L2"), "D1#2": ("I10", "ICD-10", "standard", "L2"),
        "D2": ("I10", "ICD-10", "standard", "L2"),
        "D3": (None, None, "text", "L2"),  # a blank cell with a text: kept as text
        "D4": ("E11.9", "ICD-10", "standard", "L2"),  # empty values around the separator are not codes
        "D5": ("B20", "ICD-10", "standard", "L1"), "D5#2": ("ZZZ", "ICD-10", "invalid", "L2"),
        # codes without a system are the sender's local codes; their text makes them L1
        "D8": ("123", "local:EMR", "local", "L1"), "D8#2": ("456", "local:EMR", "local", "L1"),
    }
    # The row without a patient is quarantined once, not once per code; D7 has neither code nor text.
    assert sorted((q.position, q.reason.value, q.detail) for q in sink.quarantined) == [
        ("row 6", "missing_field", "condition.patient_id (column 'pid'): required but empty"),
        ("row 7", "missing_field", "condition.code: neither a code nor a text"),
    ]
    assert sink.finding_counts == {("condition", "code", "text_only"): 1, ("condition", "code", "invalid_code"): 1,
                                   ("condition", "code", "local_code"): 2}
    assert {f.kind.value: f.position for f in sink.findings}["local_code"] == "row 8"


def test_split_rows_are_idempotent_in_a_store(tmp_path: Path) -> None:
    from medspace.store import Store

    path = _mapping(tmp_path, SPLIT, dx_csv=DX_MULTI)
    reports = []
    with Store(tmp_path / "n.duckdb") as st:
        for label in ("first", "again"):
            with st.batch(label) as b:
                ingest_mapping(path, b)
            reports.append(b.report.to_dict())
        stored = st.con.execute("SELECT count(*), count(DISTINCT id) FROM condition").fetchall()[0]
        quarantined = st.con.execute("SELECT count(*) FROM quarantine").fetchall()[0][0]
    assert reports[0]["tables"]["condition"] == {"received": 9, "new": 9, "updated": 0, "unchanged": 0}
    assert reports[1]["tables"]["condition"] == {"received": 9, "new": 0, "updated": 0, "unchanged": 9}
    assert stored == (9, 9)
    assert sum(reports[0]["quarantined"].values()) == quarantined == 2 and reports[1]["quarantined_new"] == 0


def test_parquet_list_column_is_split(tmp_path: Path) -> None:
    pq.write_table(pa.table({"id": ["a", "b", "c"], "pid": ["P", "P", "P"],
                             "codes": pa.array([["E11.9", "I10"], [], None], pa.list_(pa.string())),
                             "text": [None, "fever", None]}), tmp_path / "dx.parquet")
    (tmp_path / "m.toml").write_text(
        '[source]\nformat = "parquet"\n[[table]]\nfile = "dx.parquet"\ntable = "condition"\n[table.columns]\n'
        'id = "id"\npatient_id = "pid"\ncode = { column = "codes", split = ";" }\ncode_system = { value = "ICD-10" }\n'
        'display = "text"\n'
    )
    sink = MemorySink()
    ingest_mapping(tmp_path / "m.toml", sink)
    assert [(r["id"], r["code"], r["code_status"]) for r in sink.rows["condition"]] == [
        ("a", "E11.9", "standard"), ("a#2", "I10", "standard"), ("b", None, "text")]
    assert [(q.position, q.reason.value) for q in sink.quarantined] == [("row 3", "missing_field")]


ENC = """\
[source]
{encoding}
[[table]]
file = "p.csv"
table = "patient"
[table.columns]
id = "pid"
family_name = "name"
"""


def test_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    sink = MemorySink()
    ingest_mapping(_mapping(tmp_path, ENC.format(encoding=""), p_csv=b"\xef\xbb\xbfpid,name\nP1,M\xc3\xbcller\n"), sink)
    assert sink.rows["patient"][0]["id"] == "P1" and sink.rows["patient"][0]["family_name"] == "Müller"


@pytest.mark.parametrize(
    ("declared", "data", "line", "suggested"),
    [
        ("", "pid,name\nP1,Smith\nP2,Müller\n".encode("latin-1"), 3, "latin-1"),
        ("", "pid,name\nP1,Smith\nP2,O’Brien\n".encode("cp1252"), 3, "cp1252"),
        ("", "pid,name\nP1,王小明\n".encode("gb18030"), 2, "gb18030"),
        ("", "pid,nämé\nP1,x\n".encode("latin-1"), 1, "latin-1"),  # in the header
        ('encoding = "gb18030"', "pid,name\nP1,王\n".encode("gb18030") + b"P2,\x80\xff\n", 3, "cp1252"),
        ('encoding = "gb18030"', "pid,name\nP1,x\nP2,5€\n".encode(), 3, "utf-8"),
    ],
)
def test_decoding_errors_name_the_line_and_the_setting(tmp_path: Path, declared: str, data: bytes, line: int,
                                                       suggested: str) -> None:
    from medspace.connect import SourceError

    path = _mapping(tmp_path, ENC.format(encoding=declared), p_csv=data)
    with pytest.raises(SourceError) as e:
        ingest_mapping(path, MemorySink())
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith(f"{tmp_path / 'p.csv'}: line {line} is not valid ")
    assert f'set encoding = "{suggested}"' in msg and "m.toml" in msg
    assert "Müller" not in msg and "王" not in msg


def test_declared_encoding_is_read(tmp_path: Path) -> None:
    sink = MemorySink()
    data = "pid,name\nP1,王小明\n".encode("gb18030")
    ingest_mapping(_mapping(tmp_path, ENC.format(encoding='encoding = "gb18030"'), p_csv=data), sink)
    assert sink.rows["patient"][0]["family_name"] == "王小明"
    sink = MemorySink()
    data = "pid,name\nP1,Müller\n".encode("latin-1")
    ingest_mapping(_mapping(tmp_path, ENC.format(encoding='encoding = "latin-1"'), p_csv=data), sink)
    assert sink.rows["patient"][0]["family_name"] == "Müller"


def test_strings_over_the_limits_are_quarantined(tmp_path: Path) -> None:
    from medspace.connect import Limits, set_limits

    (tmp_path / "n.csv").write_text("nid,pid,body\nN1,P1,short\nN2,P1,a note of twenty-five c\nN3,P-123456789,x\n"
                                    "N4,P1,ünïcödé txt\n")
    (tmp_path / "m.toml").write_text('[[table]]\nfile = "n.csv"\ntable = "note"\n[table.columns]\n'
                                     'id = "nid"\npatient_id = "pid"\ntext = "body"\n')
    old = set_limits(Limits(value_chars=10, text_chars=20))
    try:
        sink = MemorySink()
        ingest_mapping(tmp_path / "m.toml", sink)
    finally:
        set_limits(old)
    assert [r["id"] for r in sink.rows["note"]] == ["N1", "N4"]  # 12 characters in 17 bytes: within the limit
    assert sorted((q.position, q.reason.value, q.detail.split(" (the")[0]) for q in sink.quarantined) == [
        ("row 2", "bad_value", "note.text: longer than 20 characters"),
        ("row 3", "bad_value", "note.patient_id: longer than 10 characters"),
    ]


def test_a_row_failing_for_two_tables_is_counted_and_stored_twice(tmp_path: Path) -> None:
    from medspace.store import Store

    (tmp_path / "v.csv").write_text("visit,pid,dob\nV1,P1,1990-01-01\nV2,,1990-01-01\n")
    (tmp_path / "m.toml").write_text(
        '[[table]]\nfile = "v.csv"\ntable = "patient"\n[table.columns]\nid = "pid"\nbirth_date = "dob"\n\n'
        '[[table]]\nfile = "v.csv"\ntable = "encounter"\n[table.columns]\nid = "visit"\npatient_id = "pid"\n'
    )
    with Store(tmp_path / "n.duckdb") as st:
        with st.batch("one") as b:
            ingest_mapping(tmp_path / "m.toml", b)
        rows = st.con.execute("SELECT position, reason, detail FROM quarantine ORDER BY detail").fetchall()
    assert b.report.to_dict()["quarantined"] == {"missing_field": 2}
    assert b.report.quarantined_new == 2 == len(rows)
    assert [r[2].split(" (")[0] for r in rows] == ["encounter.patient_id", "patient.id"]
    assert {r[0] for r in rows} == {"row 2"}


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), _date_like,
                          st.dates().map(lambda d: d.strftime("%d/%m/%Y")),
                          st.dates().map(lambda d: d.strftime("%m/%d/%Y")),
                          st.dates().map(lambda d: d.strftime("%d-%b-%Y"))), max_size=20),
       st.permutations(["%Y-%m-%d", "%d/%m/%Y", "%m/%d/%Y", "%d-%b-%Y", "%Y-%m-%d %H:%M:%S"]))
def test_date_format_list_takes_the_first_that_reads(values: list[str | None], formats: list[str]) -> None:
    import pyarrow.compute as pc

    from medspace.connect.tabular import _parse_dates, _strict_strptime

    col = pa.array(values, pa.string())
    expected = pc.coalesce(*[_strict_strptime(col, f) for f in formats])
    assert _parse_dates(col, tuple(formats)).equals(expected)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.none(), st.lists(st.text(alphabet="ab ;", max_size=4), max_size=4).map(";".join)),
                min_size=1, max_size=12))
def test_explode_keeps_every_value_in_order(cells: list[str | None]) -> None:
    from medspace.connect.tabular import _as_string, _explode

    col = _as_string(pa.array(cells, pa.string()))
    got = _explode(col, ";")
    expected: list[tuple[int, str | None, int]] = []
    for i, cell in enumerate(col.to_pylist()):
        pieces = [p.strip() for p in (cell or "").split(";") if p.strip()]
        expected += [(i, p, k) for k, p in enumerate(pieces, 1)] if pieces else [(i, None, 1)]
    if got is None:  # no cell holds the separator: every cell is one value already
        assert all(k == 1 for _, _, k in expected) and len(expected) == len(cells)
        return
    values, rows, piece = got
    assert list(zip(rows.tolist(), values.to_pylist(), piece.tolist(), strict=True)) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.one_of(cells, st.sampled_from(["", "P1"])),
                          st.one_of(cells, st.lists(st.sampled_from(["E11.9", "I10", " ", "zz", ""]), max_size=4)
                                    .map(";".join)),
                          st.one_of(cells, st.sampled_from(["ICD-10", "", "LOCAL"])),
                          st.one_of(cells, _date_like, st.just("17/05/2023"))),
                max_size=15))
def test_every_row_is_stored_or_quarantined_with_split_and_formats(
        tmp_path: Path, table: list[tuple[str, str, str, str]]) -> None:
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["dx_id", "pid", "codes", "sys", "when"])
    for i, row in enumerate(table):
        w.writerow([f"R{i}", *row])
    (tmp_path / "dx.csv").write_text(buf.getvalue())
    (tmp_path / "m.toml").write_text(
        '[source]\ndate_format = ["%Y-%m-%d", "%d/%m/%Y"]\n[[table]]\nfile = "dx.csv"\ntable = "condition"\n'
        '[table.columns]\nid = "dx_id"\npatient_id = "pid"\ncode = { column = "codes", split = ";" }\n'
        'code_system = "sys"\nrecorded_date = "when"\n'
    )
    sink = MemorySink()
    ingest_mapping(tmp_path / "m.toml", sink)
    stored = {r["id"].split("#")[0] for r in sink.rows.get("condition", [])}
    quarantined = {f"R{int(q.position.split()[1]) - 1}" for q in sink.quarantined}
    assert not stored & quarantined
    assert stored | quarantined == {f"R{i}" for i in range(len(table))}
    assert all(r["code_status"] in ("standard", "local", "invalid") for r in sink.rows.get("condition", []))


def test_parquet_types_are_read_or_refused_clearly(tmp_path: Path) -> None:
    from datetime import time

    pq.write_table(pa.table({
        "pid": [1, 2], "born": [20230517, 19991231], "seen": pa.array([time(8, 0), None], pa.time64("us")),
        "tags": pa.array([["a"], ["b"]], pa.list_(pa.string())),
    }), tmp_path / "p.parquet")
    base = ('[source]\nformat = "parquet"\n[[table]]\nfile = "p.parquet"\ntable = "encounter"\n[table.columns]\n'
            'id = "pid"\npatient_id = "pid"\nstart_time = { column = "born", format = "%Y%m%d" }\nend_time = "seen"\n')
    (tmp_path / "m.toml").write_text(base)
    sink = MemorySink()
    ingest_mapping(tmp_path / "m.toml", sink)
    assert [(r["id"], r["start_time"].date(), r["end_time"]) for r in sink.rows["encounter"]] == [
        ("1", date(2023, 5, 17), None), ("2", date(1999, 12, 31), None)]
    assert sink.finding_counts == {("encounter", "end_time", "bad_date"): 1}  # a time of day is not a timestamp
    (tmp_path / "m.toml").write_text(base + 'department = "tags"\n')
    with pytest.raises(MappingFileError, match=r"m\.toml:11: encounter\.department: column 'tags' holds list"):
        ingest_mapping(tmp_path / "m.toml", MemorySink())
