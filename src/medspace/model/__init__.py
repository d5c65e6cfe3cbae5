"""The common clinical model: tables, fields, sensitivity levels, PHI tags and code systems."""

from medspace.model.catalogue import (
    CLINICAL_TABLES,
    CODE_STATUSES,
    PHI,
    TABLES,
    Field,
    FieldType,
    Level,
    Table,
    fields_at_level,
    fields_tagged,
    table,
)
from medspace.model.codes import canonical_system, code_valid, normalise_code, system_uri
from medspace.model.sensitivity import l1_category, row_level

__all__ = [
    "CLINICAL_TABLES",
    "CODE_STATUSES",
    "PHI",
    "TABLES",
    "Field",
    "FieldType",
    "Level",
    "Table",
    "canonical_system",
    "code_valid",
    "fields_at_level",
    "fields_tagged",
    "l1_category",
    "normalise_code",
    "row_level",
    "system_uri",
    "table",
]
