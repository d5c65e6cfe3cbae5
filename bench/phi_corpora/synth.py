"""The notes of `medspace.synth` (this project's own generator): a regression set, not evidence.

Hospitals 1 and 2 are one Chinese (zh notes) and one US (en notes) hospital. The notes, their labelled PHI
spans and each note's known identifiers (the patient's own fields and the note's author, as the policy engine
passes them) are built in memory with the generator's own functions, exactly as `generate_hospital` writes
them. Types: the generator's MRN counts as ID; its other types are already ours.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medspace.deid.apply import PATIENT_KNOWN
from medspace.synth.clinical import simulate
from medspace.synth.generate import patient_frame, population
from medspace.synth.notes import doctor_names, write_notes
from medspace.synth.profiles import profile
from phi_corpora import Doc, GoldSpan

KNOWN_FIELDS = ("family_name", "given_name", "national_id", "mrn", "phone", "email", "address_line", "insurance_id",
                "passport_id")
PATIENTS, HOSPITALS, SEED = 2000, 2, 7


def hospital_docs(index: int, hospitals: int, patients: int, seed: int) -> list[Doc]:
    """The notes of synthetic hospital `index`, in memory, with known identifiers as (value, PHI type)."""
    prof = profile(index)
    rng = np.random.default_rng([seed, index])
    people = population(rng, prof, hospitals, patients, seed)
    clinical = simulate(rng, prof, people)
    frames: dict[str, Any] = dict(clinical.frames)
    pat = patient_frame(rng, prof, people, clinical.deceased)
    doctors = doctor_names(rng, prof.flavour)
    notes = write_notes(rng, prof.flavour, prof.id, pat, frames["encounter"], frames["condition"],
                        frames["medication"], doctors, single_line=prof.slot.fmt == "csv")
    cols = {f: pat[f].tolist() for f in KNOWN_FIELDS}
    docs = []
    rows = zip(notes["text"].tolist(), notes["language"].tolist(), notes["_spans"].tolist(), notes["_p"].tolist(),
               notes["author"].tolist(), strict=True)
    for n, (text, lang, spans, p, author) in enumerate(rows):
        known = [(cols[f][p], PATIENT_KNOWN[f]) for f in KNOWN_FIELDS if cols[f][p]]
        known.append((author, "NAME"))
        gold = [GoldSpan(s, e, "ID" if k == "MRN" else k, k) for s, e, k in spans]
        docs.append(Doc(f"synth:{index}:{n}", text, lang, gold, known))
    return docs


def load(patients: int = PATIENTS, hospitals: int = HOSPITALS, seed: int = SEED) -> list[Doc]:
    """All hospitals' notes."""
    return [d for i in range(1, hospitals + 1) for d in hospital_docs(i, hospitals, patients, seed)]
