"""Errors and quarantine reasons of the connectors."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why an input unit went to quarantine."""

    PARSE_ERROR = "parse_error"  # not well-formed: truncated JSON, no MSH segment, bad CSV quoting
    WRONG_TYPE = "wrong_type"  # a field has the wrong type (a string where an object belongs, ...)
    MISSING_FIELD = "missing_field"  # a field the model requires is absent
    BAD_DATE = "bad_date"  # a date or time that is malformed or impossible
    BAD_VALUE = "bad_value"  # a number or enumerated value that is malformed
    UNKNOWN_CODE_SYSTEM = "unknown_code_system"  # coded only in systems the model does not accept
    INVALID_CODE = "invalid_code"  # a code that fails its system's format or check digit
    BAD_REFERENCE = "bad_reference"  # a reference to a patient/encounter that cannot be resolved
    UNSUPPORTED_MESSAGE = "unsupported_message"  # an HL7 v2 message type/event the node does not map
    INVALID_RESOURCE = "invalid_resource"  # not an R4 resource type; strict mode: fails the R4B resource model
    BAD_SEGMENT = "bad_segment"  # an HL7 v2 segment that cannot be read


class FindingKind(StrEnum):
    """A data-quality finding: input that was kept, but not as the standard would have it."""

    LOCAL_CODE = "local_code"  # coded only in a local or non-accepted system: kept with its system and code
    TEXT_ONLY = "text_only"  # a concept with text but no code: kept as text
    INVALID_CODE = "invalid_code"  # a code of an accepted system fails its format or check digit: kept as sent
    INVALID_CODE_SKIPPED = "invalid_code_skipped"  # such a code was passed over for another, valid coding
    ALTERNATE_CODE = "alternate_code"  # the standard code came from an HL7 v2 CE/CWE alternate triplet
    BAD_DATE = "bad_date"  # a malformed or impossible date or time: stored as null
    BAD_VALUE = "bad_value"  # a malformed number or a value outside its value set: stored as null
    BAD_REFERENCE = "bad_reference"  # an optional reference (e.g. to an encounter) that cannot be resolved


class ConnectError(Exception):
    """Base of the connectors' own errors: these stop an ingest (bad path, bad mapping)."""


class SourceError(ConnectError):
    """A source cannot be read at all (missing or unreadable path, unreachable server)."""


class MappingFileError(ConnectError):
    """A CSV/Parquet mapping file is invalid; the message names the line and field."""


class MappingError(Exception):
    """One input unit cannot be mapped into the model; it goes to quarantine with this reason."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
