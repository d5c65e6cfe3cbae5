"""Deterministic synthetic hospital populations with built-in ground truth.

`generate(out_dir, hospitals, patients, seed)` writes one directory per hospital (each in its own
source format: FHIR bundles, FHIR bulk NDJSON, HL7 v2 with a FHIR side file, CSV with a mapping,
or a mix), a labelled corpus of notes per hospital, `manifest.json` and `ground_truth.json`.
`generate_hospital` does one hospital (for parallel processes); `write_manifest` then writes the
two JSON files from the hospitals' results.
"""

from medspace.synth.generate import (
    Hospital,
    HospitalResult,
    Manifest,
    Source,
    generate,
    generate_hospital,
    write_manifest,
)

__all__ = ["Hospital", "HospitalResult", "Manifest", "Source", "generate", "generate_hospital", "write_manifest"]
