"""Row identifiers: readable per-hospital ids (h2-E0000017), or UUIDs for rows sent as urn:uuid in
FHIR transaction bundles; then every row's patient_id and encounter_id from them.

Ids carry the hospital id so that files of several hospitals can share one store without clashes.
A blood pressure panel's two rows are "<panel>.0" and "<panel>.1", exactly the ids the FHIR
connector gives the components of the panel Observation "<panel>".
"""

from __future__ import annotations

import numpy as np

from medspace.synth.frames import Arr, Frame, obj

PREFIX = {
    "patient": "P", "encounter": "E", "condition": "C", "medication": "M", "observation": "O",
    "procedure": "X", "allergy": "A", "genetic_variant": "G", "note": "N",
}


def uuids(rng: np.random.Generator, n: int) -> list[str]:
    """n random (version 4) UUIDs from the generator."""
    hi = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    lo = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    hi = (hi & np.uint64(0xFFFFFFFFFFFF0FFF)) | np.uint64(0x4000)
    lo = (lo & np.uint64(0x3FFFFFFFFFFFFFFF)) | np.uint64(0x8000000000000000)
    out = []
    for h, lw in zip(hi.tolist(), lo.tolist(), strict=True):
        s = f"{h:016x}{lw:016x}"
        out.append(f"{s[:8]}-{s[8:12]}-{s[12:16]}-{s[16:20]}-{s[20:]}")
    return out


def assign(frames: dict[str, Frame], hid: str, rng: np.random.Generator, urn_patients: Arr | None,
           patient_ids: Arr | None = None) -> None:
    """Give every row an `id`, then fill `patient_id` and `encounter_id` from `_p` and `_enc`.
    `patient_ids`, if given, are the patients' ids (an HL7 v2 feed identifies patients by MRN)."""
    for table, letter in PREFIX.items():
        f = frames[table]
        n = len(f["_p"])
        ids = [f"{hid}-{letter}{i + 1:07d}" for i in range(n)]
        if urn_patients is not None:
            fresh = uuids(rng, n)
            for i in np.nonzero(urn_patients[f["_p"]])[0].tolist():
                ids[i] = fresh[i]
        if table == "observation":
            bp = f["_bp"].tolist()
            for i, kind in enumerate(bp):
                if kind == 1:
                    base = ids[i]
                    ids[i] = f"{base}.0"
                    ids[i + 1] = f"{base}.1"
        f["id"] = obj(ids)
    if patient_ids is not None:
        frames["patient"]["id"] = patient_ids
    patient_ids = frames["patient"]["id"]
    enc_ids = np.concatenate([frames["encounter"]["id"], obj([None])])  # position -1 -> None
    for table, f in frames.items():
        if table != "patient":
            f["patient_id"] = patient_ids[f["_p"]]
        if "_enc" in f:
            f["encounter_id"] = enc_ids[f["_enc"]]
