import gzip
import io
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medspace.connect import FindingKind, MappingError, MemorySink, Reason, SourceError, hl7v2
from medspace.connect.hl7v2 import (
    ingest_hl7_file,
    ingest_hl7_stream,
    map_message,
    map_message_full,
    split_messages,
)

FIXTURES = Path(__file__).parent / "fixtures" / "hl7"


def seg(name: str, fields: dict[int, str]) -> str:
    """One segment from {field number: value}; MSH-1 is the field separator itself."""
    parts = [fields.get(i, "") for i in range(1, max(fields) + 1)]
    if name == "MSH":
        return "MSH|" + "|".join(parts[1:])
    return name + "|" + "|".join(parts)


def msh(kind: str, control: str = "CTRL1", charset: str = "") -> str:
    fields = {2: "^~\\&", 3: "HIS", 4: "HOSP", 7: "20240101120000", 9: kind, 10: control, 11: "P", 12: "2.5.1"}
    if charset:
        fields[18] = charset
    return seg("MSH", fields)


def build_message(*segments: str, term: str = "\r", encoding: str = "utf-8") -> bytes:
    """A message with every segment terminated, as HL7 wants (the last one too)."""
    return "".join(s + term for s in segments).encode(encoding)


PID = seg("PID", {1: "1", 3: "MRN1^^^HOSP^MR", 5: "Doe^Jane", 7: "19800102", 8: "F"})


def fixture(name: str, term: str = "\r") -> bytes:
    """A fixture message (stored one segment a line) with the given segment terminator."""
    lines = FIXTURES.joinpath(name).read_text(encoding="utf-8").strip().split("\n")
    return build_message(*lines, term=term)


def rows_of(raw: bytes) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for table, row in map_message(raw, "test"):
        out.setdefault(table, []).append(row)
    return out


def reason_of(raw: bytes) -> MappingError:
    with pytest.raises(MappingError) as e:
        map_message(raw, "test")
    return e.value


# --- mapping of realistic messages ----------------------------------------------------------------

def test_adt_a01_maps_patient_visit_diagnoses_and_allergy() -> None:
    rows = rows_of(fixture("adt_a01.hl7"))
    assert sorted(rows) == ["allergy", "condition", "encounter", "patient"]  # NK1, IN1 are not mapped
    (p,) = rows["patient"]
    assert p == {
        "id": "MRN100234", "mrn": "MRN100234", "national_id": "123-45-6789", "insurance_id": "9876543",
        "family_name": "Doe", "given_name": "John Quincy", "birth_date": date(1962, 7, 4), "sex": "male",
        "address_line": "123 Main St, Apt 4B", "city": "Springfield", "province": "IL", "postal_code": "62701",
        "country": "USA", "district": "Sangamon", "phone": "+1 217 5550123", "email": "john.doe@example.com",
        "marital_status": "married", "ethnicity": "Not Hispanic or Latino",
        "sensitivity": "L2", "source": "hl7v2",
    }
    (e,) = rows["encounter"]
    assert e == {
        "id": "V5550001", "patient_id": "MRN100234", "encounter_class": "inpatient",
        "start_time": datetime(2024, 3, 15, 13, 0),  # 08:00 at -0500, in UTC
        "department": "CAR", "reason": "Chest pain, unspecified", "sensitivity": "L2", "source": "hl7v2",
    }
    c1, c2 = rows["condition"]
    assert (c1["id"], c1["code_system"], c1["code"], c1["encounter_id"]) == ("V5550001-DG1-1", "ICD-10", "I21.4",
                                                                             "V5550001")
    assert c1["display"] == "Non-ST elevation myocardial infarction"
    assert c1["onset_date"] == c1["recorded_date"] == date(2024, 3, 15)
    assert (c2["id"], c2["code"], c2["onset_date"]) == ("V5550001-DG1-2", "E11.9", date(2019, 2, 10))
    (a,) = rows["allergy"]
    assert a == {
        "id": "MRN100234-AL1-7980", "patient_id": "MRN100234", "code": "7980", "code_system": "RxNorm",
        "display": "Penicillin G", "category": "medication", "criticality": "high",
        "reaction": "Anaphylaxis; Hives", "recorded_date": date(2010, 5, 1), "sensitivity": "L2",
        "source": "hl7v2", "code_status": "standard",
    }


def test_adt_a03_discharge_closes_the_visit() -> None:
    rows = rows_of(fixture("adt_a03.hl7"))
    (e,) = rows["encounter"]
    assert e["id"] == "V5550001"
    assert e["start_time"] == datetime(2024, 3, 15, 13, 0)
    assert e["end_time"] == datetime(2024, 3, 20, 19, 0)
    assert e["discharge_disposition"] == "01"
    assert rows["patient"][0]["national_id"] == "123-45-6789"  # PID-19 SSN


def test_adt_a04_outpatient_registration() -> None:
    rows = rows_of(fixture("adt_a04.hl7"))
    (p,) = rows["patient"]
    assert (p["id"], p["mrn"], p["passport_id"]) == ("MRN200871", "MRN200871", "P88776655")
    assert (p["sex"], p["marital_status"], p["phone"]) == ("female", "single", "(312)555-0199")
    assert "email" not in p and "national_id" not in p
    (e,) = rows["encounter"]
    assert (e["encounter_class"], e["department"], e["id"]) == ("ambulatory", "CLINIC2", "V5550077")


def test_adt_a08_chinese_patient_with_z_segments() -> None:
    raw = fixture("adt_a08_zh.hl7")
    rows = rows_of(raw)
    (p,) = rows["patient"]
    assert (p["family_name"], p["given_name"]) == ("张", "伟")
    assert (p["id"], p["national_id"]) == ("PKU0034567", "11010519491231002X")  # GB 11643, type NNCHN
    assert (p["address_line"], p["city"], p["province"], p["district"], p["postal_code"]) == (
        "朝阳路1号, 3单元502", "北京市", "北京", "朝阳区", "100020")
    assert (p["ethnicity"], p["marital_status"], p["phone"]) == ("汉族", "married", "+86 13800138000")
    assert rows["encounter"][0]["start_time"] == datetime(2024, 3, 15, 1, 30)  # 09:30 at +0800
    assert rows["condition"][0]["display"] == "原发性高血压"
    sink = MemorySink()
    ingest_hl7_stream(io.BytesIO(raw), "a08", sink)
    assert sink.skipped == Counter({"HL7 v2 Z-segment": 2})  # ZPI and ZPV: counted, never mapped
    assert not sink.quarantined


def test_msh18_charset_and_fallbacks() -> None:
    utf8 = fixture("adt_a08_zh.hl7")
    gb = utf8.decode("utf-8").replace("UNICODE UTF-8", "GB 18030-2000").encode("gb18030")
    assert gb != utf8
    assert rows_of(gb)["patient"] == rows_of(utf8)["patient"]
    # No MSH-18: UTF-8 if it decodes, else Latin-1.
    latin = build_message(msh("ADT^A04"), seg("PID", {3: "X1^^^H^MR", 5: "Muñoz^José"}), encoding="latin-1")
    assert rows_of(latin)["patient"][0]["given_name"] == "José"


def test_oru_r01_observations() -> None:
    rows = rows_of(fixture("oru_r01.hl7"))
    obs = {o["id"]: o for o in rows["observation"]}
    assert list(obs) == ["FL9911-1", "FL9911-2", "FL9911-3", "FL9912-1", "FL9912-2"]
    glu = obs["FL9911-1"]
    assert glu == {
        "id": "FL9911-1", "patient_id": "MRN100234", "encounter_id": "V5550001", "code": "2345-7",
        "code_system": "LOINC", "display": "Glucose [Mass/volume] in Serum or Plasma", "category": "laboratory",
        "value_num": 182.0, "unit": "mg/dL", "ref_low": 70.0, "ref_high": 99.0, "interpretation": "H",
        "status": "final", "effective_time": datetime(2024, 3, 15, 14, 15), "sensitivity": "L2",
        "source": "hl7v2", "code_status": "standard",
    }
    k = obs["FL9911-2"]
    assert (k["value_num"], k["ref_low"], k["ref_high"]) == (4.1, 3.5, 5.1)
    assert k["effective_time"] == datetime(2024, 3, 15, 14, 0)  # no OBX-14: OBR-7
    color = obs["FL9912-1"]
    assert color["value_text"] == "Yellow" and "value_num" not in color and "unit" not in color
    sg = obs["FL9912-2"]
    assert (sg["value_num"], sg["ref_high"], sg["status"]) == (1.02, 1.03, "preliminary")
    assert "ref_low" not in sg


def test_obx_value_types_and_ranges() -> None:
    obx = [
        seg("OBX", {1: "1", 2: "SN", 3: "2345-7^Glucose^LN", 5: "<^5", 7: ">3"}),
        seg("OBX", {1: "2", 2: "SN", 3: "2345-7^Glucose^LN", 5: "^7.5", 7: "-1.0-1.0"}),
        seg("OBX", {1: "3", 2: "CWE", 3: "5778-6^Color^LN", 5: "371244009^Yellow^SCT", 7: "negative"}),
        seg("OBX", {1: "4", 2: "TX", 3: "5778-6^Color^LN", 5: "pale~straw \\T\\ clear"}),
        seg("OBX", {1: "5", 2: "ED", 3: "5778-6^Color^LN", 5: "^AP^PDF^Base64^JVBERi0="}),
        seg("OBX", {1: "6", 3: "2345-7^Glucose^LN", 5: "6.1"}),
        seg("OBX", {1: "7", 2: "NM", 3: "9999-9^Local^L^2823-3^Potassium^LN", 5: "4.0"}),
    ]
    rows = rows_of(build_message(msh("ORU^R01"), PID, seg("OBR", {1: "1", 3: "F1"}), *obx))
    o = {r["id"]: r for r in rows["observation"]}
    assert (o["F1-1"]["value_text"], o["F1-1"]["ref_low"]) == ("<5", 3.0)
    assert (o["F1-2"]["value_num"], o["F1-2"]["ref_low"], o["F1-2"]["ref_high"]) == (7.5, -1.0, 1.0)
    assert o["F1-3"]["value_text"] == "Yellow" and "ref_low" not in o["F1-3"]
    assert o["F1-4"]["value_text"] == "pale\nstraw & clear"
    assert "value_text" not in o["F1-5"] and "value_num" not in o["F1-5"]
    assert o["F1-6"]["value_num"] == 6.1
    assert (o["F1-7"]["code"], o["F1-7"]["display"]) == ("2823-3", "Potassium")  # alternate coding
    findings = map_message_full(build_message(msh("ORU^R01"), PID, seg("OBR", {1: "1", 3: "F1"}), *obx)).findings
    assert findings == [("observation", "code", FindingKind.ALTERNATE_CODE, 10)]  # OBX 7 is segment 10


def test_rde_o11_medications() -> None:
    rows = rows_of(fixture("rde_o11.hl7"))
    m1, m2 = rows["medication"]
    assert m1 == {
        "id": "RX5001", "patient_id": "MRN100234", "encounter_id": "V5550001", "code": "A10BA02",
        "code_system": "ATC", "display": "metformin", "status": "active", "start_date": date(2024, 3, 15),
        "dose_value": 500.0, "dose_unit": "mg", "route": "Oral", "frequency": "BID",
        "sensitivity": "L2", "source": "hl7v2", "code_status": "standard",
    }
    assert (m2["id"], m2["code_system"], m2["code"], m2["frequency"]) == ("RX5002", "ATC", "C10AA05", "Q24H")
    assert (m2["start_date"], m2["end_date"], m2["dose_value"]) == (date(2024, 3, 16), date(2024, 3, 22), 40.0)


def test_ras_o17_administrations_and_orders_without_numbers() -> None:
    raw = build_message(
        msh("RAS^O17", control="C77"), PID,
        seg("ORC", {1: "RE", 2: "RX9"}),
        seg("RXA", {1: "0", 2: "1", 3: "20240101080000", 5: "860975^metformin 500 MG^RXNORM", 6: "500", 7: "mg",
                    20: "CP"}),
        seg("RXR", {1: "PO^Oral"}),
        seg("ORC", {1: "RE"}),
        seg("RXA", {1: "0", 2: "1", 3: "20240101090000", 5: "J01CA04^amoxicillin^ATC", 20: "RE"}),
    )
    m1, m2 = rows_of(raw)["medication"]
    assert (m1["id"], m1["code_system"], m1["dose_value"], m1["route"], m1["status"]) == (
        "RX9-RXA-1", "RxNorm", 500.0, "Oral", "completed")
    assert (m2["id"], m2["status"], m2["start_date"]) == ("C77-RXA-2", "not-done", date(2024, 1, 1))


def test_reads_agree_with_python_hl7() -> None:
    for name in ("adt_a01.hl7", "adt_a08_zh.hl7", "oru_r01.hl7", "rde_o11.hl7"):
        raw = fixture(name)
        theirs = hl7.parse(raw.decode("utf-8"))
        ours = hl7v2._Message(raw)
        counts: Counter[str] = Counter()
        for s in ours.segments:
            counts[s.sid] += 1
            their_seg = theirs.segments(s.sid)(counts[s.sid])
            for n in range(1, len(s.f)):
                for k in (1, 2, 3, 5):
                    try:
                        expected = their_seg.extract_field(field_num=n, component_num=k).strip()
                    except IndexError:
                        expected = ""
                    assert ours.get(s, n, k) == expected, (name, s.sid, n, k)
        assert ours.get(ours.msh, 9, 2) == theirs.extract_field("MSH", 1, 9, 1, 2)
        assert ours.get(ours.msh, 10) == theirs.extract_field("MSH", 1, 10)


def test_escape_sequences() -> None:
    pid = seg("PID", {3: "ID\\T\\1^^^H^MR", 5: "O\\X27\\Brien\\S\\x^Ann\\.br\\Marie", 11: "a \\F\\ b^^c\\E\\d"})
    p = rows_of(build_message(msh("ADT^A04"), pid))["patient"][0]
    assert (p["id"], p["family_name"], p["given_name"]) == ("ID&1", "O'Brien^x", "Ann\nMarie")
    assert (p["address_line"], p["city"]) == ("a | b", "c\\d")


# --- splitting files --------------------------------------------------------------------------------

MESSAGES = ["adt_a01.hl7", "oru_r01.hl7", "rde_o11.hl7"]


def split(data: bytes) -> list[bytes]:
    units = list(split_messages(io.BytesIO(data)))
    assert [n for n, _ in units] == list(range(1, len(units) + 1))
    return [raw for _, raw in units]


@pytest.mark.parametrize("chunk", [hl7v2.CHUNK_BYTES, 1, 7])
def test_split_mllp_newline_crlf_and_consecutive(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hl7v2, "CHUNK_BYTES", chunk)  # small reads: lines and \r\n straddle chunks
    cr = [fixture(n) for n in MESSAGES]
    assert split(b"".join(b"\x0b" + m + b"\x1c\r" for m in cr)) == cr
    assert split(b"".join(b"\x0b" + m + b"\x1c\r\n" for m in cr)) == cr
    lf = [fixture(n, "\n") for n in MESSAGES]
    assert split(b"\n".join(lf)) == lf  # blank lines between
    assert split(b"".join(lf)) == lf  # consecutive: each MSH starts a message
    crlf = [fixture(n, "\r\n") for n in MESSAGES]
    assert split(b"\r\n".join(crlf) + b"\r\n\r\n") == crlf
    assert split(b"\xef\xbb\xbf" + b"".join(cr)) == cr


def test_split_batch_file_drops_envelopes() -> None:
    raws = split(FIXTURES.joinpath("batch.hl7").read_bytes())
    assert len(raws) == 3
    assert [r[:3] for r in raws] == [b"MSH"] * 3
    assert not any(x in r for r in raws for x in (b"FHS", b"BHS", b"BTS", b"FTS"))
    sink = MemorySink()
    ingest_hl7_file(FIXTURES / "batch.hl7", sink)
    assert not sink.quarantined
    assert {t: len(r) for t, r in sink.rows.items()} == {"patient": 3, "encounter": 3, "observation": 5,
                                                        "medication": 2}


def test_split_streams_without_reading_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hl7v2, "CHUNK_BYTES", 4096)
    one = fixture("oru_r01.hl7")
    stream = io.BytesIO(one * 2000)
    first = next(split_messages(stream))
    assert first == (1, one)
    assert stream.tell() <= 2 * 4096


def test_ingest_file_gzip_and_unreadable_paths(tmp_path: Path) -> None:
    p = tmp_path / "feed.hl7.gz"
    p.write_bytes(gzip.compress(b"".join(fixture(n) for n in MESSAGES)))
    sink = MemorySink()
    ingest_hl7_file(p, sink)
    assert not sink.quarantined and len(sink.rows["patient"]) == 3
    with pytest.raises(SourceError):
        ingest_hl7_file(tmp_path / "missing.hl7", MemorySink())
    with pytest.raises(SourceError):
        ingest_hl7_file(tmp_path, MemorySink())
    bad = tmp_path / "bad.hl7.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(SourceError):
        ingest_hl7_file(bad, MemorySink())


# --- broken input -------------------------------------------------------------------------------------

def broken_messages() -> list[tuple[bytes, Reason | None, str]]:
    """(message, expected reason or None if it maps, text the detail must contain)."""
    a01 = fixture("adt_a01.hl7", "\n").decode()
    lines = a01.splitlines(keepends=True)
    bad_segment = "".join([*lines[:3], "this line is not a segment of Doe MRN100234\n", *lines[3:]])
    no_msh = "".join(lines[2:])
    a40 = a01.replace("ADT^A01^ADT_A01", "ADT^A40^ADT_A39")
    no_pid = "".join(line for line in lines if not line.startswith("PID"))
    # Flawed but tied to a patient: stored, with findings (see test_flaws_are_stored_with_findings).
    bad_dob = a01.replace("|19620704|", "|19621345|")
    bad_loinc = fixture("oru_r01.hl7", "\n").decode().replace("2823-3^Potassium", "2823-4^Potassium")
    return [
        (a01.encode(), None, ""),
        (bad_segment.encode(), Reason.BAD_SEGMENT, "segment 4"),
        (no_msh.encode(), Reason.PARSE_ERROR, "MSH"),
        (a40.encode(), Reason.UNSUPPORTED_MESSAGE, "ADT^A40"),
        (bad_dob.encode(), None, ""),
        (bad_loinc.encode(), None, ""),
        (no_pid.encode(), Reason.MISSING_FIELD, "PID"),
        (fixture("rde_o11.hl7", "\n"), None, ""),
    ]


@pytest.mark.parametrize("framing", ["blank-lines", "mllp"])
def test_broken_messages_quarantined_valid_siblings_ingested(framing: str) -> None:
    cases = broken_messages()
    if framing == "mllp":
        data = b"".join(b"\x0b" + m + b"\x1c\r" for m, _, _ in cases)
    else:
        data = b"\n".join(m for m, _, _ in cases)
    sink = MemorySink()
    ingest_hl7_stream(io.BytesIO(data), "feed.hl7", sink)
    got = {q.position: q for q in sink.quarantined}
    expected = {f"message {i}": (m, r, text) for i, (m, r, text) in enumerate(cases, 1) if r is not None}
    assert set(got) == set(expected)
    for pos, (m, reason, text) in expected.items():
        q = got[pos]
        assert (q.connector, q.source, q.reason) == ("hl7v2", "feed.hl7", reason)
        assert text in q.detail
        assert q.raw == m  # the original bytes, nothing lost
        for secret in ("Doe", "John", "MRN100234", "123-45-6789", "19621345", "19620704", "V5550001", "2823-4"):
            assert secret not in q.detail
    assert [p["id"] for p in sink.rows["patient"]] == ["MRN100234"] * 4
    assert len(sink.rows["medication"]) == 2 and len(sink.rows["condition"]) == 4
    assert len(sink.rows["observation"]) == 5
    assert sink.finding_counts == Counter({("patient", "birth_date", "bad_date"): 1,
                                           ("observation", "code", "invalid_code"): 1})
    assert {f.position for f in sink.findings} == {"message 5, segment 3", "message 6, segment 7"}


@pytest.mark.parametrize(
    ("raw", "reason", "text"),
    [
        (b"", Reason.PARSE_ERROR, "empty"),
        (b"hello world\r", Reason.PARSE_ERROR, "MSH"),
        (b"MSH|", Reason.PARSE_ERROR, "separators"),
        (b"MSHa^~\\&|x\r", Reason.PARSE_ERROR, "separators"),
        (build_message(msh("ADT^A01"), "EVN|A01"), Reason.MISSING_FIELD, "PID"),
        (build_message(msh("ADT^A01"), seg("PID", {1: "1", 5: "Doe^Jane"})), Reason.MISSING_FIELD, "PID-3"),
        (build_message(msh("ADT^A01"), PID, seg("PID", {1: "2", 3: "^^^H^MR"})), Reason.MISSING_FIELD, "PID-3"),
        (build_message(msh(""), PID), Reason.MISSING_FIELD, "MSH-9"),
        (build_message(msh("ACK"), "MSA|AA|X"), Reason.UNSUPPORTED_MESSAGE, "ACK"),
        (build_message(msh("ADT^A01"), PID, PID.replace("MSH", "x"), msh("ADT^A01")), Reason.PARSE_ERROR,
         "second MSH"),
        (build_message(msh("ADT^A01"), PID.replace("Doe", "D" * 70_000)), Reason.BAD_VALUE, "patient.family_name"),
    ],
)
def test_errors_carry_the_right_reason(raw: bytes, reason: Reason, text: str) -> None:
    e = reason_of(raw)
    assert e.reason is reason, e.detail
    assert text in e.detail


OBR = seg("OBR", {1: "1", 3: "F"})
ORC = seg("ORC", {1: "NW", 2: "R1"})


def glucose(**fields: str) -> str:
    """An OBX with glucose in OBX-3 and the given fields (by number, as strings: {"f5": "6.1"})."""
    return seg("OBX", {1: "1", 2: "NM", 3: "2345-7^Glucose^LN", 5: "5.0", **{int(k[1:]): v for k, v in fields.items()}})


@pytest.mark.parametrize(
    ("segments", "table", "kept", "nulled", "finding"),
    [
        ([msh("ADT^A01"), PID.replace("|F", "|Q")], "patient", {"id": "MRN1"}, "sex", ("sex", "bad_value")),
        ([msh("ADT^A01"), PID.replace("19800102", "1980-01-02")], "patient", {"id": "MRN1", "sex": "female"},
         "birth_date", ("birth_date", "bad_date")),
        ([msh("ADT^A01"), seg("PID", {3: "MRN1^^^H^MR", 29: "20240230"})], "patient", {"id": "MRN1"}, "deceased_date",
         ("deceased_date", "bad_date")),
        ([msh("ADT^A01"), PID, seg("PV1", {2: "I", 19: "V1", 44: "2024013199"})], "encounter",
         {"id": "V1", "encounter_class": "inpatient"}, "start_time", ("start_time", "bad_date")),
        ([msh("ADT^A01"), PID, seg("PV1", {2: "I", 19: "V1", 45: "00010101000000+0100"})], "encounter",
         {"id": "V1"}, "end_time", ("end_time", "bad_date")),  # the time zone takes it below year 1
        ([msh("ORU^R01"), PID, OBR, glucose(f5="high")], "observation", {"code": "2345-7", "value_text": "high"},
         "value_num", ("value_num", "bad_value")),
        ([msh("ORU^R01"), PID, OBR, glucose(f5="nan")], "observation", {"value_text": "nan"}, "value_num",
         ("value_num", "bad_value")),
        ([msh("ORU^R01"), PID, OBR, glucose(f2="SN", f5="<^abc")], "observation", {"value_text": "<abc"},
         "value_num", ("value_num", "bad_value")),
        ([msh("ORU^R01"), PID, OBR, glucose(f3="GLU^Glucose^L")], "observation",
         {"code": "GLU", "code_system": "local:HIS", "display": "Glucose", "code_status": "local", "value_num": 5.0},
         None, ("code", "local_code")),
        ([msh("ORU^R01"), PID, OBR, glucose(f11="Z")], "observation", {"value_num": 5.0}, "status",
         ("status", "bad_value")),
        ([msh("ORU^R01"), PID, seg("OBR", {1: "1", 3: "F", 7: "2024-01-01"}), glucose()], "observation",
         {"id": "F-1"}, "effective_time", ("effective_time", "bad_date")),  # OBR-7, which the OBX would take
        ([msh("RDE^O11"), PID, ORC, seg("RXE", {2: "A10BA02^metformin^WHOATC", 3: "five hundred"})], "medication",
         {"code": "A10BA02", "code_status": "standard"}, "dose_value", ("dose_value", "bad_value")),
        ([msh("RDE^O11"), PID, ORC, seg("RXE", {2: "^metformin", 3: "5"})], "medication",
         {"display": "metformin", "code_status": "text", "dose_value": 5.0}, "code", ("code", "text_only")),
        ([msh("RAS^O17"), PID, seg("ORC", {1: "RE", 2: "RX9", 9: "20240101"}),
          seg("RXA", {2: "1", 3: "20241301", 5: "J01CA04^amoxicillin^ATC", 20: "CP"})], "medication",
         {"status": "completed"}, "start_date", ("start_date", "bad_date")),  # not ORC-9's date instead
        ([msh("RAS^O17"), PID, seg("ORC", {1: "RE", 2: "RX9"}),
          seg("RXA", {2: "1", 5: "J01CA04^amoxicillin^ATC", 20: "??"})], "medication", {"code": "J01CA04"},
         "status", ("status", "bad_value")),
        ([msh("ADT^A01"), PID, seg("DG1", {1: "1", 3: "XYZ^Unknown^I10"})], "condition",
         {"code": "XYZ", "code_system": "ICD-10", "code_status": "invalid", "display": "Unknown"}, None,
         ("code", "invalid_code")),
        ([msh("ADT^A01"), PID, seg("DG1", {1: "1", 3: "Doe^Jane^Smith"})], "condition",
         {"code": "Doe", "code_system": "local:Smith", "code_status": "local"}, None, ("code", "local_code")),
        ([msh("ADT^A01"), PID, seg("DG1", {1: "1", 4: "Chest pain"})], "condition",
         {"display": "Chest pain", "code_status": "text"}, "code", ("code", "text_only")),  # DG1-4 only
        ([msh("ADT^A01"), PID, seg("AL1", {1: "1", 2: "XX", 3: "7980^Penicillin G^RXNORM"})], "allergy",
         {"code": "7980", "code_status": "standard"}, "category", ("category", "bad_value")),
        ([msh("ADT^A01"), PID, seg("AL1", {1: "1", 2: "DA", 3: "7980^Penicillin G^RXNORM", 4: "SEVERE"})],
         "allergy", {"category": "medication"}, "criticality", ("criticality", "bad_value")),
    ],
)
def test_flaws_are_stored_with_findings(segments: list[str], table: str, kept: dict[str, Any], nulled: str | None,
                                        finding: tuple[str, str]) -> None:
    mapped = map_message_full(build_message(*segments))
    assert not mapped.failed
    (row,) = [r for t, r in mapped.rows if t == table]
    assert {k: row.get(k) for k in kept} == kept
    if nulled:
        assert nulled not in row
    assert [(t, f, k.value) for t, f, k, _ in mapped.findings] == [(table, *finding)]


def test_a_flawed_message_keeps_its_other_rows_and_quarantines_what_cannot_be_stored() -> None:
    raw = build_message(
        msh("ORU^R01"), PID, seg("PV1", {2: "O", 19: "V1"}), OBR,
        glucose(f3="001347^Iron Bind.Cap.(TIBC)^L", f5="476"),
        seg("OBX", {1: "2", 2: "NM", 5: "7"}),  # no identifier and no text at all: no row can hold it
        glucose(f1="3", f3="GLU^Glucose^L", f6="x" * 70_000),  # over the size limit: its local code goes too
        glucose(f1="3", f5="6.0"),  # a repeated set id: another result, not a correction of the previous
        glucose(f1="4", f5="high"),
    )
    sink = MemorySink()
    ingest_hl7_stream(io.BytesIO(raw), "lab.hl7", sink)
    assert [(r["id"], r.get("value_num"), r["code_status"]) for r in sink.rows["observation"]] == [
        # The row of segment 7 is not stored, but keeps its id: ids stay the same when the message is fixed.
        ("F-1", 476.0, "local"), ("F-3-dup2", 6.0, "standard"), ("F-4", None, "standard")]
    assert len(sink.rows["patient"]) == len(sink.rows["encounter"]) == 1
    got = sorted((q.position, q.reason, q.detail) for q in sink.quarantined)
    assert got == [
        ("message 1, segment 6", Reason.MISSING_FIELD, "OBX-3 (segment 6): observation has neither a code nor a text"),
        ("message 1, segment 7", Reason.BAD_VALUE, "observation.unit is longer than 65,536 characters (the limit; "
                                                   "see --max-value-chars / --max-text-chars)"),
    ]
    assert all(q.raw == raw for q in sink.quarantined)
    # Findings only for the rows stored, each at its first segment.
    assert sink.finding_counts == Counter({("observation", "code", "local_code"): 1,
                                           ("observation", "value_num", "bad_value"): 1})
    assert sorted(f.position for f in sink.findings) == ["message 1, segment 5", "message 1, segment 9"]
    assert {f.source for f in sink.findings} == {"lab.hl7"}


def test_repeated_set_ids_keep_every_row() -> None:
    raw = build_message(msh("ADT^A01", control="C9"), PID, seg("PV1", {2: "I", 19: "V1"}),
                        seg("DG1", {1: "1", 3: "I10^Hypertension^I10"}), seg("DG1", {1: "1", 3: "E11.9^T2DM^I10"}),
                        seg("AL1", {1: "1", 3: "PENICILLIN"}), seg("AL1", {1: "2", 3: "Penicillin"}))
    rows = rows_of(raw)
    assert [(c["id"], c["code"]) for c in rows["condition"]] == [("V1-DG1-1", "I10"), ("V1-DG1-1-dup2", "E11.9")]
    # An allergy is keyed by patient and substance: the same substance twice is one allergy, however spelt.
    assert len({a["id"] for a in rows["allergy"]}) == 1


def test_rows_not_tied_to_a_visit_or_patient() -> None:
    # A clinical segment before any PID has no patient: it alone is quarantined.
    mapped = map_message_full(build_message(msh("ORU^R01"), glucose(), PID, OBR, glucose(f1="2")))
    assert [(t, r["id"]) for t, r in mapped.rows] == [("patient", "MRN1"), ("observation", "F-2")]
    ((pos, e),) = mapped.failed
    assert (pos, e.reason) == (2, Reason.MISSING_FIELD) and "before any PID" in e.detail
    # A visit without PV1-19 in a message without MSH-10 has no id: rows after it keep no visit reference.
    raw = build_message(msh("ORU^R01", control=""), PID, seg("PV1", {2: "I"}), OBR, glucose(),
                        seg("OBX", {1: "2", 2: "NM", 3: "2823-3^Potassium^LN", 5: "4"}))
    mapped = map_message_full(raw)
    assert [t for t, _ in mapped.rows] == ["patient", "observation", "observation"]
    assert all("encounter_id" not in r for _, r in mapped.rows)
    assert [(t, f, k) for t, f, k, _ in mapped.findings] == [("observation", "encounter_id",
                                                              FindingKind.BAD_REFERENCE)] * 2
    assert [(pos, e.reason) for pos, e in mapped.failed] == [(3, Reason.MISSING_FIELD)]
    assert "PV1-19" in mapped.failed[0][1].detail
    # A visit that fails its final check (over the size limit) is left out; its rows lose the reference only.
    raw = build_message(msh("ADT^A01"), PID, seg("PV1", {2: "I", 10: "W" * 70_000, 19: "V1"}),
                        seg("DG1", {1: "1", 3: "I10^Hypertension^I10"}))
    mapped = map_message_full(raw)
    (dg1,) = [r for t, r in mapped.rows if t == "condition"]
    assert dg1["id"] == "V1-DG1-1" and "encounter_id" not in dg1
    assert [(t, f, k) for t, f, k, _ in mapped.findings] == [("condition", "encounter_id", FindingKind.BAD_REFERENCE)]
    assert [(pos, e.reason) for pos, e in mapped.failed] == [(3, Reason.BAD_VALUE)]


def test_z_segments_never_fail_a_message() -> None:
    raw = build_message(msh("ADT^A01"), "ZPI|\x00\x01 garbage ^^^~~~", PID, "Zx", "ZZZZ|1|2", "ZPV")
    assert rows_of(raw)["patient"][0]["id"] == "MRN1"


def test_ids_fall_back_to_control_id() -> None:
    raw = build_message(msh("ADT^A04", control="C42"), PID, seg("PV1", {2: "E"}),
                        seg("DG1", {3: "J18.9^Pneumonia^I10"}), seg("DG1", {2: "I10", 3: "J45.909"}))
    rows = rows_of(raw)
    assert (rows["encounter"][0]["id"], rows["encounter"][0]["encounter_class"]) == ("C42-visit", "emergency")
    assert [c["id"] for c in rows["condition"]] == ["C42-visit-DG1-1", "C42-visit-DG1-2"]
    assert rows["condition"][1]["code_system"] == "ICD-10"  # coding method in DG1-2


# --- properties ----------------------------------------------------------------------------------------

def check_every_message_accounted_for(data: bytes) -> None:
    """Ingest never raises; each message is quarantined or gives rows (and perhaps findings and segments
    quarantined alone), never an internal error."""
    expected_rows = expected_findings = 0
    failing: set[str] = set()
    for n, raw in split_messages(io.BytesIO(data)):
        try:
            mapped = map_message_full(raw)
        except MappingError as e:
            assert isinstance(e.reason, Reason)
            assert not e.detail.startswith("message could not be read"), e.detail  # the safety net held
            failing.add(f"message {n}")
        else:
            assert mapped.rows and mapped.rows[0][0] == "patient"  # no row without its patient
            expected_rows += len(mapped.rows)
            expected_findings += len(mapped.findings)
            failing.update(f"message {n}, segment {pos}" for pos, _ in mapped.failed)
            for _, e in mapped.failed:
                assert not e.detail.startswith("message could not be read"), e.detail
    sink = MemorySink()
    ingest_hl7_stream(io.BytesIO(data), "prop", sink)
    assert {q.position for q in sink.quarantined} == failing
    assert sum(len(r) for r in sink.rows.values()) == expected_rows
    assert sum(sink.finding_counts.values()) == expected_findings


VALUE_TEXT = st.text(st.sampled_from("0123456789+-.:T /eE-naifx\u0661"), max_size=24)


@settings(max_examples=150, deadline=None)
@given(birth=VALUE_TEXT, start=VALUE_TEXT, result=VALUE_TEXT, when=VALUE_TEXT, sex=st.sampled_from("MFQ1 "))
def test_optional_values_never_sink_a_message(birth: str, start: str, result: str, when: str, sex: str) -> None:
    """Whatever an optional date, number or coded value holds, the patient and every row are stored: the
    value parsed, or left out with a finding naming its field."""
    raw = build_message(
        msh("ORU^R01"), seg("PID", {3: "MRN1^^^H^MR", 7: birth, 8: sex}), seg("PV1", {2: "I", 19: "V1", 44: start}),
        OBR, glucose(f5=result, f14=when))
    mapped = map_message_full(raw)
    assert not mapped.failed
    rows = dict(mapped.rows)
    assert set(rows) == {"patient", "encounter", "observation"}
    found = {(t, f) for t, f, _, _ in mapped.findings}
    for table, name, typ in (("patient", "birth_date", date), ("patient", "sex", str),
                             ("encounter", "start_time", datetime), ("observation", "effective_time", datetime),
                             ("observation", "value_num", float)):
        if (table, name) in found:
            assert name not in rows[table]
        elif name in rows[table]:
            assert isinstance(rows[table][name], typ)
    if ("observation", "value_num") in found:
        assert rows["observation"]["value_text"] == result.strip()  # what was sent, kept as text


HL7ISH = st.lists(
    st.sampled_from(["MSH|^~\\&|", "PID|", "PV1|", "OBX|", "OBR|", "RXE|", "ORC|", "DG1|", "AL1|", "ZPI|", "|",
                     "^", "~", "&", "\\", "\r", "\n", "\x0b", "\x1c", "ADT^A01", "ORU^R01", "RDE^O11", "2345-7",
                     "^LN", "NM", "ST", "1", "20240101", "x", "é", "张", "BHS|", "FHS|", "MRN", "MR", " ", "-"]),
    max_size=60,
).map(lambda parts: "".join(parts).encode("utf-8"))


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=400), HL7ISH))
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    check_every_message_accounted_for(data)


VALID = [fixture(n) for n in ("adt_a01.hl7", "oru_r01.hl7", "rde_o11.hl7", "adt_a08_zh.hl7")]
SPECIAL = [b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n", b"\x0b", b"\x1c", b"\x00", b"\xff", b" ", b"Z", b"M"]
EDIT = st.tuples(st.sampled_from(["delete", "duplicate", "replace", "swap"]), st.integers(0, 10_000),
                 st.integers(1, 12), st.sampled_from(SPECIAL))


def mutate(msg: bytes, edits: list[tuple[str, int, int, bytes]]) -> bytes:
    for op, at, width, b in edits:
        if not msg:
            break
        i = at % len(msg)
        if op == "delete":
            msg = msg[:i] + msg[i + width:]
        elif op == "duplicate":
            msg = msg[:i] + msg[i:i + width] * 2 + msg[i + width:]
        elif op == "replace":
            msg = msg[:i] + b * width + msg[i + width:]
        else:  # swap two separators throughout
            a, c = SPECIAL[at % 5], SPECIAL[(at + width) % 5]
            msg = msg.replace(a, b"\x07").replace(c, a).replace(b"\x07", c)
    return msg


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(range(len(VALID))), st.lists(EDIT, min_size=1, max_size=4), st.booleans())
def test_mutated_messages_never_raise(which: int, edits: list[tuple[str, int, int, bytes]], mllp: bool) -> None:
    msg = mutate(VALID[which], edits)
    data = b"\x0b" + msg + b"\x1c\r" if mllp else msg
    check_every_message_accounted_for(data + b"\n" + VALID[0])


def test_details_never_echo_values_from_misaligned_fields() -> None:
    # A name as the message type, or in a segment that cannot be stored: neither may reach the detail.
    e = reason_of(build_message(msh("DOE^JANE"), PID))
    assert e.reason is Reason.UNSUPPORTED_MESSAGE and "DOE" not in e.detail and "JANE" not in e.detail
    raw = build_message(msh("ORU^R01", control=""), PID, seg("OBX", {2: "NM", 3: "^^Smith", 5: "Doe"}),
                        seg("DG1", {1: "1", 3: "Jane^Doe^Smith"}))
    sink = MemorySink()
    ingest_hl7_stream(io.BytesIO(raw), "feed.hl7", sink)
    assert sink.quarantined
    for q in sink.quarantined:
        assert not any(secret in q.detail for secret in ("Doe", "Jane", "Smith", "MRN1")), q.detail
    for f in sink.findings:
        assert not any(secret in f.position for secret in ("Doe", "Jane", "Smith", "MRN1"))
