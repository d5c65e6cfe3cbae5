"""Connectors: FHIR R4, HL7 v2 and CSV/Parquet into the common clinical model, with quarantine."""

from medspace.connect.base import MemorySink, Quarantined, Sink, complete, pick_coding
from medspace.connect.errors import ConnectError, MappingError, MappingFileError, Reason, SourceError

__all__ = [
    "ConnectError",
    "MappingError",
    "MappingFileError",
    "MemorySink",
    "Quarantined",
    "Reason",
    "Sink",
    "SourceError",
    "complete",
    "pick_coding",
]
