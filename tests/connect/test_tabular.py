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


def test_csv_maps_and_quarantines(src: Path) -> None:
    sink = MemorySink()
    ingest_mapping(src, sink)
    pats = {r["id"]: r for r in sink.rows["patient"]}
    assert set(pats) == {"P1", "P4"}
    assert pats["P1"]["birth_date"] == date(1980, 1, 2) and pats["P1"]["sex"] == "male"
    assert pats["P4"]["family_name"] == "Zhang, Jr" and pats["P4"]["country"] == "CN"
    conds = {r["id"]: r for r in sink.rows["condition"]}
    assert conds["D1"]["code"] == "E11.9" and conds["D1"]["code_system"] == "ICD-10"
    assert conds["D2"]["sensitivity"] == "L1" and conds["D1"]["sensitivity"] == "L2"
    labs = {r["id"]: r for r in sink.rows["observation"]}
    assert labs["L1"]["value_num"] == 7.1
    assert labs["L3"]["effective_time"].date() == date(2020, 1, 3)  # a bare date in a timestamp column
    got = {(q.source.rsplit("/", 1)[-1], q.position, q.reason) for q in sink.quarantined}
    assert got == {
        ("patients.csv", "row 2", Reason.BAD_DATE),  # 31 February
        ("patients.csv", "row 3", Reason.BAD_VALUE),  # gender X not in the values map
        ("patients.csv", "malformed row", Reason.PARSE_ERROR),  # one column too many
        ("dx.csv", "row 3", Reason.INVALID_CODE),
        ("dx.csv", "row 4", Reason.UNKNOWN_CODE_SYSTEM),
        ("dx.csv", "row 5", Reason.MISSING_FIELD),
        ("labs.csv", "row 2", Reason.BAD_VALUE),
        ("labs.csv", "row 4", Reason.INVALID_CODE),
    }
    raws = {q.raw for q in sink.quarantined}
    assert b"P2,Li,31/02/1980,F" in raws and b"P5,Bad,01/01/1990,F,extra" in raws
    for q in sink.quarantined:  # details name fields, never values
        assert "Li" not in q.detail and "31/02" not in q.detail and "ZZZ" not in q.detail


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
        (("table = \"condition\"", "table = \"diagnosis\""), ":17: table 'diagnosis' is not a model table"),
        (("code = \"icd\"", "icd_code = \"icd\""), "condition.icd_code is not a field of condition"),
        (("recorded_date = \"dx_date\"", "sensitivity = \"dx_date\""), "computed by the connector"),
        (("patient_id = \"patient_no\"\ncode = \"icd\"", "code = \"icd\""), "required field(s) not mapped: patient_id"),
        (("format = \"%d/%m/%Y\"", "formt = \"%d/%m/%Y\""), "unknown key(s) formt"),
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
    with pytest.raises(MappingFileError, match=r"column 'units' is not in labs\.csv"):
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
    assert len(sink.rows["patient"]) == 4999
    assert [(q.position, q.reason) for q in sink.quarantined] == [("row 2500", Reason.BAD_DATE)]


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
