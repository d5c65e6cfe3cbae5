"""A small CSV hospital export with its mapping file, for command-line tests."""

from __future__ import annotations

from pathlib import Path

PATIENTS = "pid,surname,dob,gender\nP1,Wang,1980-01-02,M\nP2,Li,1980-02-31,F\nP3,Chen,1990-05-06,F\n"
DIAGNOSES = "id,pid,icd\nD1,P1,E11.9\nD2,P3,F32.1\nD3,P3,NOTACODE\n"
MAPPING = (
    '[source]\nformat = "csv"\n\n[[table]]\nfile = "patients.csv"\ntable = "patient"\n[table.columns]\n'
    'id = "pid"\nfamily_name = "surname"\nbirth_date = "dob"\n'
    'sex = { column = "gender", values = { M = "male", F = "female" } }\n\n'
    '[[table]]\nfile = "dx.csv"\ntable = "condition"\n[table.columns]\nid = "id"\npatient_id = "pid"\n'
    'code = "icd"\ncode_system = { value = "ICD-10" }\n'
)


def write_csv_site(d: Path, more_diagnoses: str = "") -> Path:
    """Write patients.csv, dx.csv (plus `more_diagnoses` lines) and the mapping site.toml into `d`."""
    (d / "patients.csv").write_text(PATIENTS)
    (d / "dx.csv").write_text(DIAGNOSES + more_diagnoses)
    (d / "site.toml").write_text(MAPPING)
    return d
