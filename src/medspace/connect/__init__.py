"""Connectors: FHIR R4, HL7 v2 and CSV/Parquet into the common clinical model, with quarantine."""

from medspace.connect.base import (
    Concept,
    Finding,
    Limits,
    MemorySink,
    Quarantined,
    Sink,
    complete,
    local_system,
    pick_concept,
    set_limits,
)
from medspace.connect.errors import (
    ConnectError,
    FindingKind,
    MappingError,
    MappingFileError,
    Reason,
    SourceError,
)

__all__ = [
    "Concept",
    "ConnectError",
    "Finding",
    "FindingKind",
    "Limits",
    "MappingError",
    "MappingFileError",
    "MemorySink",
    "Quarantined",
    "Reason",
    "Sink",
    "SourceError",
    "complete",
    "local_system",
    "pick_concept",
    "set_limits",
]
