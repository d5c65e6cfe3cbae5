"""CSV exports with the mapping file (TOML) the CSV connector reads.

Column names are deliberately not the model's (and in Chinese for the CN export), codes are the
source's own (M/F, 男/女, OP/IP/ER, 门诊/住院/急诊) with `values` maps back to the model's, and some
dates use non-default formats, so every feature of the mapping is exercised. Files are written by
pyarrow (strings quoted, nulls empty); the mapping never names `sensitivity` or `source`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from medspace.model import TABLES, FieldType
from medspace.synth.frames import Frame, texts


@dataclass(frozen=True)
class Col:
    """One CSV column: the model field it holds, and how it is written."""

    name: str
    field: str
    fmt: str | None = None  # strftime format of a date or timestamp, when not the source default
    codes: dict[str, str] | None = None  # model value -> source code (the mapping gets the reverse)


@dataclass(frozen=True)
class FileSpec:
    """One CSV file: a model table's columns and constants."""

    file: str
    table: str
    columns: tuple[Col, ...]
    constants: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Export:
    """A CSV export: its files, delimiter and default date formats."""

    files: tuple[FileSpec, ...]
    delimiter: str = ","
    date_format: str = "%Y-%m-%d"
    timestamp_format: str = "%Y-%m-%d %H:%M:%S"


SEX_US = {"male": "M", "female": "F"}
SEX_CN = {"male": "男", "female": "女"}
MARITAL_US = {"never married": "S", "married": "M", "divorced": "D", "widowed": "W"}
MARITAL_CN = {"never married": "未婚", "married": "已婚", "divorced": "离异", "widowed": "丧偶"}
CLASS_US = {"ambulatory": "OP", "emergency": "ER", "inpatient": "IP"}
CLASS_CN = {"ambulatory": "门诊", "emergency": "急诊", "inpatient": "住院"}

US_EXPORT = Export(files=(
    FileSpec("patients.csv", "patient", (
        Col("patient_no", "id"), Col("mrn_no", "mrn"), Col("ssn", "national_id"), Col("member_id", "insurance_id"),
        Col("passport_no", "passport_id"), Col("last_name", "family_name"), Col("first_name", "given_name"),
        Col("gender", "sex", codes=SEX_US), Col("dob", "birth_date", fmt="%m/%d/%Y"),
        Col("death_dt", "deceased_date", fmt="%m/%d/%Y"), Col("race_eth", "ethnicity"),
        Col("marital", "marital_status", codes=MARITAL_US), Col("phone_no", "phone"), Col("email_addr", "email"),
        Col("street", "address_line"), Col("county", "district"), Col("city_name", "city"),
        Col("state_cd", "province"), Col("zip", "postal_code"),
    ), (("country", "US"),)),
    FileSpec("visits.csv", "encounter", (
        Col("visit_no", "id"), Col("patient_no", "patient_id"), Col("visit_type", "encounter_class", codes=CLASS_US),
        Col("admit_ts", "start_time", fmt="%m/%d/%Y %H:%M"), Col("discharge_ts", "end_time", fmt="%m/%d/%Y %H:%M"),
        Col("dept_name", "department"), Col("chief_complaint", "reason"), Col("disposition", "discharge_disposition"),
    )),
    FileSpec("diagnoses.csv", "condition", (
        Col("dx_id", "id"), Col("patient_no", "patient_id"), Col("visit_no", "encounter_id"), Col("dx_code", "code"),
        Col("coding_scheme", "code_system"), Col("dx_desc", "display"), Col("dx_status", "clinical_status"),
        Col("onset_dt", "onset_date"), Col("noted_dt", "recorded_date"),
    )),
    FileSpec("prescriptions.csv", "medication", (
        Col("rx_id", "id"), Col("patient_no", "patient_id"), Col("visit_no", "encounter_id"),
        Col("rxnorm_cui", "code"), Col("drug_name", "display"), Col("rx_status", "status"),
        Col("start_dt", "start_date"), Col("stop_dt", "end_date"), Col("dose_qty", "dose_value"),
        Col("dose_uom", "dose_unit"), Col("route_desc", "route"), Col("sig_freq", "frequency"),
        Col("outcome", "response"),
    ), (("code_system", "RxNorm"),)),
    FileSpec("labs.csv", "observation", (
        Col("result_id", "id"), Col("patient_no", "patient_id"), Col("visit_no", "encounter_id"),
        Col("loinc_code", "code"), Col("test_name", "display"), Col("test_category", "category"),
        Col("result_num", "value_num"), Col("result_text", "value_text"), Col("units", "unit"),
        Col("ref_lo", "ref_low"), Col("ref_hi", "ref_high"), Col("abn_flag", "interpretation"),
        Col("result_status", "status"), Col("collected_at", "effective_time"),
    ), (("code_system", "LOINC"),)),
    FileSpec("procedures.csv", "procedure", (
        Col("proc_id", "id"), Col("patient_no", "patient_id"), Col("visit_no", "encounter_id"),
        Col("snomed_code", "code"), Col("proc_desc", "display"), Col("proc_status", "status"),
        Col("performed_at", "performed_time"),
    ), (("code_system", "SNOMED"),)),
    FileSpec("allergies.csv", "allergy", (
        Col("allergy_id", "id"), Col("patient_no", "patient_id"), Col("substance_code", "code"),
        Col("substance", "display"), Col("allergy_type", "category"), Col("severity", "criticality"),
        Col("reaction_desc", "reaction"), Col("noted_on", "recorded_date", fmt="%m/%d/%Y"),
    ), (("code_system", "SNOMED"),)),
    FileSpec("genomics.csv", "genetic_variant", (
        Col("variant_no", "id"), Col("patient_no", "patient_id"), Col("gene_symbol", "gene"), Col("hgvs_c", "hgvs"),
        Col("dbsnp", "variant_id"), Col("zygosity", "zygosity"), Col("clinical_significance", "significance"),
        Col("report_date", "recorded_date"),
    )),
    FileSpec("notes.csv", "note", (
        Col("note_id", "id"), Col("patient_no", "patient_id"), Col("visit_no", "encounter_id"),
        Col("note_kind", "note_type"), Col("lang", "language"), Col("written_at", "authored_time"),
        Col("written_by", "author"), Col("note_text", "text"),
    )),
))

# The CN "mixed" hospital exports only its master patient index and visit log as CSV.
CN_EXPORT = Export(delimiter=";", date_format="%Y%m%d", timestamp_format="%Y/%m/%d %H:%M:%S", files=(
    FileSpec("patient_master.csv", "patient", (
        Col("患者编号", "id"), Col("病案号", "mrn"), Col("身份证号", "national_id"), Col("医保号", "insurance_id"),
        Col("护照号", "passport_id"), Col("姓", "family_name"), Col("名", "given_name"),
        Col("性别", "sex", codes=SEX_CN), Col("出生日期", "birth_date", fmt="%Y-%m-%d"),
        Col("死亡日期", "deceased_date"), Col("民族", "ethnicity"), Col("婚姻状况", "marital_status", codes=MARITAL_CN),
        Col("手机", "phone"), Col("邮箱", "email"), Col("地址", "address_line"), Col("区县", "district"),
        Col("城市", "city"), Col("省份", "province"), Col("邮编", "postal_code"),
    ), (("country", "CN"),)),
    FileSpec("visit_log.csv", "encounter", (
        Col("就诊号", "id"), Col("患者编号", "patient_id"), Col("就诊类型", "encounter_class", codes=CLASS_CN),
        Col("入院时间", "start_time"), Col("出院时间", "end_time"), Col("科室", "department"),
        Col("就诊原因", "reason"), Col("离院方式", "discharge_disposition"),
    )),
))


def _column(frame: Frame, table: str, col: Col, export: Export) -> pa.Array:
    values = frame[col.field]
    ftype = TABLES[table][col.field].type
    if ftype in (FieldType.DATE, FieldType.TIMESTAMP):
        fmt = col.fmt or (export.date_format if ftype is FieldType.DATE else export.timestamp_format)
        ts = pa.array(values.astype("datetime64[s]"), pa.timestamp("s"), from_pandas=True)
        return pc.strftime(ts, format=fmt)
    if ftype in (FieldType.FLOAT, FieldType.INT):
        return pa.array(values.astype(np.float64), pa.float64(), from_pandas=True)
    items = texts(values)
    if col.codes is not None:
        items = [None if v is None else col.codes[v] for v in items]
    return pa.array(items, pa.string())


def _toml(s: str) -> str:
    # A JSON string is a valid TOML basic string for everything written here.
    return orjson.dumps(s).decode("utf-8")


def write_export(directory: Path, export: Export, frames: dict[str, Frame], mapping_name: str = "mapping.toml") -> str:
    """Write the CSV files and their mapping; returns the mapping's file name."""
    directory.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Mapping of this hospital's CSV export onto the medspace model (read by the CSV connector).",
        "[source]", 'format = "csv"', f"delimiter = {_toml(export.delimiter)}", 'encoding = "utf-8"',
        f"date_format = {_toml(export.date_format)}", f"timestamp_format = {_toml(export.timestamp_format)}",
    ]
    options = pacsv.WriteOptions(delimiter=export.delimiter)
    for spec in export.files:
        frame = frames[spec.table]
        data = pa.table({c.name: _column(frame, spec.table, c, export) for c in spec.columns})
        pacsv.write_csv(data, directory / spec.file, write_options=options)
        lines += ["", "[[table]]", f"file = {_toml(spec.file)}", f"table = {_toml(spec.table)}", "[table.columns]"]
        for c in spec.columns:
            if c.codes is not None:
                values = ", ".join(f"{_toml(code)} = {_toml(model)}" for model, code in c.codes.items())
                rule = f"{{ column = {_toml(c.name)}, values = {{ {values} }} }}"
            elif c.fmt is not None:
                rule = f"{{ column = {_toml(c.name)}, format = {_toml(c.fmt)} }}"
            else:
                rule = _toml(c.name)
            lines.append(f"{c.field} = {rule}")
        for field, value in spec.constants:
            lines.append(f"{field} = {{ value = {_toml(value)} }}")
    (directory / mapping_name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return mapping_name
