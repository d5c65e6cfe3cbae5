"""The field catalogue: every table and field of the common clinical model, with its type,
sensitivity level (L1 core, L2 sensitive, L3 non-sensitive) and PHI tags.

Everything else (store schema, connectors' validation, de-identification, disclosure rules)
reads field lists from here; nothing hard-codes them elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

import pyarrow as pa


class Level(StrEnum):
    """Sensitivity level of a field or a row."""

    L1 = "L1"  # core: genetics, HIV, psychiatric and sexual health
    L2 = "L2"  # sensitive: identifiers, diagnoses, medications, labs
    L3 = "L3"  # non-sensitive


class PHI(StrEnum):
    """Privacy tags that drive de-identification."""

    DIRECT = "direct_identifier"  # names, IDs, phone numbers, addresses, record numbers
    QUASI = "quasi_identifier"  # sex, age, geography, ethnicity: identifying in combination
    FREE_TEXT = "free_text"  # may contain anything, must be scrubbed
    DATE = "date"  # a date relating to the patient (HIPAA identifier 3)


class FieldType(StrEnum):
    """Storage type of a field."""

    STR = "str"
    DATE = "date"
    TIMESTAMP = "timestamp"
    FLOAT = "float"
    INT = "int"


_ARROW: dict[FieldType, pa.DataType] = {
    FieldType.STR: pa.string(),
    FieldType.DATE: pa.date32(),
    FieldType.TIMESTAMP: pa.timestamp("us"),
    FieldType.FLOAT: pa.float64(),
    FieldType.INT: pa.int64(),
}
_SQL: dict[FieldType, str] = {
    FieldType.STR: "VARCHAR",
    FieldType.DATE: "DATE",
    FieldType.TIMESTAMP: "TIMESTAMP",
    FieldType.FLOAT: "DOUBLE",
    FieldType.INT: "BIGINT",
}


@dataclass(frozen=True)
class Field:
    """One field of the model."""

    name: str
    type: FieldType
    level: Level
    phi: frozenset[PHI] = frozenset()
    required: bool = False
    description: str = ""

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type this field is stored as."""
        return _ARROW[self.type]

    @property
    def sql_type(self) -> str:
        """The DuckDB type this field is stored as."""
        return _SQL[self.type]


@dataclass(frozen=True)
class Table:
    """One table of the model: an entity such as patient or observation."""

    name: str
    description: str
    fields: tuple[Field, ...]
    code_systems: tuple[str, ...] = ()  # accepted code systems, in order of preference
    base_level: Level = Level.L2
    _index: dict[str, Field] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({f.name: f for f in self.fields})

    def __getitem__(self, name: str) -> Field:
        return self._index[name]

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __iter__(self) -> Iterator[Field]:
        return iter(self.fields)

    @cached_property
    def names(self) -> tuple[str, ...]:
        """Field names in storage order."""
        return tuple(f.name for f in self.fields)

    @cached_property
    def required(self) -> tuple[str, ...]:
        """Names of the fields a row must have."""
        return tuple(f.name for f in self.fields if f.required)

    @cached_property
    def buffer_schema(self) -> pa.Schema:
        """The Arrow schema rows are buffered in before storage: the field types, every column nullable (the
        store checks required fields itself, so a missing value fails with the store's message)."""
        return pa.schema([pa.field(f.name, f.arrow_type) for f in self.fields])

    @cached_property
    def row_type(self) -> pa.StructType:
        """A row as an Arrow struct of `buffer_schema`: dict rows convert to it in one call, in C++."""
        return pa.struct(list(self.buffer_schema))

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of the table."""
        return pa.schema([pa.field(f.name, f.arrow_type, nullable=not f.required) for f in self.fields])


L1, L2, L3 = Level.L1, Level.L2, Level.L3
S, D, TS, F, I_ = FieldType.STR, FieldType.DATE, FieldType.TIMESTAMP, FieldType.FLOAT, FieldType.INT
DIRECT = frozenset({PHI.DIRECT})
QUASI = frozenset({PHI.QUASI})
DATE = frozenset({PHI.DATE})
QDATE = frozenset({PHI.DATE, PHI.QUASI})
TEXT = frozenset({PHI.FREE_TEXT})


def _key(desc: str = "source identifier of the row, unique within its table") -> Field:
    # The source system's record identifiers are record numbers: HIPAA identifier 8.
    return Field("id", S, L2, DIRECT, True, desc)


def _patient_ref() -> Field:
    return Field("patient_id", S, L2, DIRECT, True, "the hospital's identifier of the patient")


def _encounter_ref() -> Field:
    return Field("encounter_id", S, L2, DIRECT, False, "the encounter the row belongs to")


# What `code_status` says of a coded row's code. A node keeps what senders send (architecture:
# "stored as sent and counted as a data-quality finding"), so analyses over standard codes filter on it.
CODE_STATUSES: tuple[str, ...] = (
    "standard",  # a code in a system the table accepts, format and check digit verified
    "local",  # a code in a local or non-accepted system, kept as sent (system `local:<sender>` or as named)
    "text",  # no code at all: the concept's text only
    "invalid",  # a code of an accepted system that fails its format or check digit, kept as sent
)


def _coded(desc: str, level: Level = L2) -> tuple[Field, ...]:
    return (
        Field("code", S, level, frozenset(), False, desc + "; null when the concept came as text only"),
        Field("code_system", S, level, frozenset(), False,
              "short name of the code system, e.g. ICD-10; `local:<sender>` for a local code"),
        Field("display", S, level, frozenset(), False, "human-readable text of the code"),
        Field("code_status", S, L3, frozenset(), True,
              "standard, local, text or invalid: whether `code` is a verified standard code"),
    )


def _meta() -> tuple[Field, ...]:
    return (
        Field("sensitivity", S, L3, frozenset(), True, "the row's sensitivity level, from its codes"),
        Field("source", S, L3, frozenset(), True, "connector that produced the row (fhir, hl7v2, csv)"),
    )


TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        Table(
            "patient",
            "a person who receives care at the hospital",
            (
                _key("the hospital's identifier of the patient"),
                Field("mrn", S, L2, DIRECT, False, "medical record number"),
                Field("national_id", S, L2, DIRECT, False,
                      "national identifier: GB 11643 resident ID or US SSN; links hospitals"),
                Field("insurance_id", S, L2, DIRECT, False, "health plan beneficiary number"),
                Field("passport_id", S, L2, DIRECT, False, "passport number"),
                Field("family_name", S, L2, DIRECT, False, "family name"),
                Field("given_name", S, L2, DIRECT, False, "given names"),
                Field("sex", S, L3, QUASI, False, "administrative sex: male, female, other, unknown"),
                Field("birth_date", D, L2, QDATE, False, "date of birth"),
                Field("deceased_date", D, L2, QDATE, False, "date of death"),
                Field("ethnicity", S, L2, QUASI, False, "ethnic group or race"),
                Field("marital_status", S, L3, QUASI, False, "marital status"),
                Field("phone", S, L2, DIRECT, False, "telephone number"),
                Field("email", S, L2, DIRECT, False, "e-mail address"),
                Field("address_line", S, L2, DIRECT, False, "street address"),
                Field("district", S, L3, QUASI, False, "district or county"),
                Field("city", S, L3, QUASI, False, "city"),
                Field("province", S, L3, QUASI, False, "province or state"),
                Field("postal_code", S, L2, QUASI, False, "postal or ZIP code"),
                Field("country", S, L3, QUASI, False, "ISO 3166 country code"),
                *_meta(),
            ),
        ),
        Table(
            "encounter",
            "a visit or stay: outpatient, inpatient, emergency",
            (
                _key(),
                _patient_ref(),
                Field("encounter_class", S, L3, frozenset(), False,
                      "ambulatory, inpatient, emergency, virtual, other"),
                Field("start_time", TS, L2, DATE, False, "when the encounter began"),
                Field("end_time", TS, L2, DATE, False, "when the encounter ended"),
                Field("department", S, L3, frozenset(), False, "department or ward"),
                Field("reason", S, L2, frozenset(), False, "reason for the visit (text or code)"),
                Field("discharge_disposition", S, L2, frozenset(), False, "where the patient went after"),
                *_meta(),
            ),
        ),
        Table(
            "condition",
            "a diagnosis or problem",
            (
                _key(),
                _patient_ref(),
                _encounter_ref(),
                *_coded("diagnosis code (ICD-10, SNOMED CT or ICD-9-CM)"),
                Field("clinical_status", S, L2, frozenset(), False, "active, resolved, ..."),
                Field("onset_date", D, L2, DATE, False, "when the condition began"),
                Field("recorded_date", D, L2, DATE, False, "when it was recorded"),
                *_meta(),
            ),
            code_systems=("ICD-10", "ICD-10-CM", "SNOMED", "ICD-9-CM"),
        ),
        Table(
            "medication",
            "a medication order, statement or administration",
            (
                _key(),
                _patient_ref(),
                _encounter_ref(),
                *_coded("drug code (ATC or RxNorm)"),
                Field("status", S, L2, frozenset(), False, "active, completed, stopped, ..."),
                Field("start_date", D, L2, DATE, False, "when the medication was ordered or started"),
                Field("end_date", D, L2, DATE, False, "when it ended"),
                Field("dose_value", F, L2, frozenset(), False, "dose quantity"),
                Field("dose_unit", S, L2, frozenset(), False, "dose unit (UCUM)"),
                Field("route", S, L2, frozenset(), False, "route of administration"),
                Field("frequency", S, L2, frozenset(), False, "dosing frequency"),
                Field("response", S, L2, frozenset(), False, "observed treatment response, if recorded"),
                *_meta(),
            ),
            code_systems=("ATC", "RxNorm", "SNOMED"),
        ),
        Table(
            "observation",
            "a laboratory result or vital sign",
            (
                _key(),
                _patient_ref(),
                _encounter_ref(),
                *_coded("test code (LOINC)"),
                Field("category", S, L2, frozenset(), False, "laboratory, vital-signs, ..."),
                Field("value_num", F, L2, frozenset(), False, "numeric result"),
                Field("value_text", S, L2, frozenset(), False, "coded or textual result"),
                Field("unit", S, L2, frozenset(), False, "unit (UCUM)"),
                Field("ref_low", F, L2, frozenset(), False, "reference range low"),
                Field("ref_high", F, L2, frozenset(), False, "reference range high"),
                Field("interpretation", S, L2, frozenset(), False, "H, L, N, A, ..."),
                Field("status", S, L2, frozenset(), False, "final, preliminary, ..."),
                Field("effective_time", TS, L2, DATE, False, "when the specimen or measurement was taken"),
                *_meta(),
            ),
            code_systems=("LOINC", "SNOMED"),
        ),
        Table(
            "procedure",
            "a procedure performed on the patient",
            (
                _key(),
                _patient_ref(),
                _encounter_ref(),
                *_coded("procedure code (SNOMED CT, ICD-10-PCS, CPT)"),
                Field("status", S, L2, frozenset(), False, "completed, in-progress, ..."),
                Field("performed_time", TS, L2, DATE, False, "when it was performed"),
                *_meta(),
            ),
            code_systems=("SNOMED", "ICD-10-PCS", "CPT", "ICD-9-CM"),
        ),
        Table(
            "allergy",
            "an allergy or intolerance",
            (
                _key(),
                _patient_ref(),
                *_coded("substance code (SNOMED CT, RxNorm, ATC)"),
                Field("category", S, L2, frozenset(), False, "food, medication, environment, biologic"),
                Field("criticality", S, L2, frozenset(), False, "low, high, unable-to-assess"),
                Field("reaction", S, L2, frozenset(), False, "manifestation of the reaction"),
                Field("recorded_date", D, L2, DATE, False, "when it was recorded"),
                *_meta(),
            ),
            code_systems=("SNOMED", "RxNorm", "ATC", "UNII"),
        ),
        Table(
            "genetic_variant",
            "a genetic variant found in the patient (always L1)",
            (
                _key(),
                _patient_ref(),
                Field("gene", S, L1, frozenset(), True, "HGNC gene symbol"),
                Field("hgvs", S, L1, frozenset(), False, "HGVS expression of the variant"),
                Field("variant_id", S, L1, frozenset(), False, "dbSNP or ClinVar identifier"),
                Field("zygosity", S, L1, frozenset(), False, "heterozygous, homozygous, hemizygous"),
                Field("significance", S, L1, frozenset(), False, "pathogenic, likely pathogenic, VUS, ..."),
                Field("recorded_date", D, L1, DATE, False, "when the result was reported"),
                *_meta(),
            ),
            base_level=L1,
        ),
        Table(
            "note",
            "a free-text clinical note (may contain PHI until scrubbed)",
            (
                _key(),
                _patient_ref(),
                _encounter_ref(),
                Field("note_type", S, L2, frozenset(), False, "discharge summary, progress note, ..."),
                Field("language", S, L3, frozenset(), False, "BCP 47 language tag, e.g. en, zh"),
                Field("authored_time", TS, L2, DATE, False, "when it was written"),
                Field("author", S, L2, DIRECT, False, "who wrote it"),
                Field("text", S, L2, TEXT, True, "the note text"),
                *_meta(),
            ),
        ),
    )
}

CLINICAL_TABLES: tuple[str, ...] = tuple(t for t in TABLES if t != "patient")


def table(name: str) -> Table:
    """The catalogue entry of a table, or KeyError naming the known tables."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)}") from None


def fields_tagged(tag: PHI) -> dict[str, tuple[str, ...]]:
    """Per table, the names of fields that carry a PHI tag."""
    return {t.name: tuple(f.name for f in t if tag in f.phi) for t in TABLES.values()}


def fields_at_level(level: Level) -> dict[str, tuple[str, ...]]:
    """Per table, the names of fields at a sensitivity level."""
    return {t.name: tuple(f.name for f in t if f.level == level) for t in TABLES.values()}
