"""FHIR extensions medspace reads and writes, by canonical URL."""

from __future__ import annotations

# A medication's observed treatment response (responder / non-responder): medication.response.
TREATMENT_RESPONSE = "http://medspace.example/fhir/StructureDefinition/treatment-response"
