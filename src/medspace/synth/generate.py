"""Orchestration: a hospital's population, clinical tables, notes and source files; the manifest and
the ground truth of a whole synthetic data space.

Determinism: hospital i draws from `default_rng([seed, i])`, the patients hospitals a < b share from
`default_rng([seed, PAIR_STREAM, a, b])`; nothing else is random and nothing depends on the clock or
the output path, so the same arguments write the same bytes, in one process or many.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from medspace.gc_pause import gc_paused
from medspace.model import TABLES, l1_category
from medspace.synth import csvfiles, fhir, hl7, ids, study
from medspace.synth import terminology as t
from medspace.synth.clinical import HIV_FIRST, PSYCH_FIRST, T2D_FIRST, simulate
from medspace.synth.frames import Arr, Frame, obj
from medspace.synth.notes import doctor_names, write_notes
from medspace.synth.people import REF_DATE, People, age_in_years, draw_people
from medspace.synth.profiles import Profile, profile, shared_pairs

MANIFEST_FORMAT = "medspace-synth/1"
SHARE = 0.05  # of a hospital's patients who also attend another hospital of the same flavour
PAIR_STREAM = 1_000_003
BUNDLE_PATIENTS = 200  # patients per FHIR Bundle file
LABELS_FILE = "notes_labels.jsonl"
TABLE_ORDER: tuple[str, ...] = tuple(TABLES)  # patient, encounter, ..., genetic_variant, note
MARITAL_WORDS = {"S": "never married", "M": "married", "D": "divorced", "W": "widowed"}
CN_ABBR = {"Beijing": "BJ", "Shanghai": "SH", "Guangzhou": "GZ", "Chengdu": "CD", "Wuhan": "WH", "Hangzhou": "HZ",
           "Xi'an": "XA", "Nanjing": "NJ"}


@dataclass(frozen=True)
class Source:
    """One source to ingest: its connector kind and its path relative to the hospital's directory
    (for CSV, the mapping file)."""

    kind: str  # "fhir-bundle" | "fhir-ndjson" | "hl7v2" | "csv"
    path: str


@dataclass(frozen=True)
class Hospital:
    """A hospital of the manifest."""

    id: str
    name: str
    flavour: str  # "cn" | "us"
    format: str  # fhir-bundle, fhir-ndjson, hl7v2, csv or mixed
    dir: str  # relative to the manifest's directory
    sources: list[Source]
    patients: int
    rows: dict[str, int]  # rows each model table should hold after ingesting every source

    @property
    def expected_rows(self) -> dict[str, int]:
        """Alias of `rows`: the row count per model table a complete ingest yields."""
        return self.rows


@dataclass(frozen=True)
class Manifest:
    """What `generate` wrote: the hospitals, their sources and expected row counts."""

    seed: int
    patients_per_hospital: int
    hospitals: list[Hospital]
    format: str = MANIFEST_FORMAT
    ground_truth: str = "ground_truth.json"

    def to_json(self) -> bytes:
        """The manifest as indented JSON."""
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2) + b"\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """A manifest from its JSON form."""
        hospitals = [
            Hospital(id=h["id"], name=h["name"], flavour=h["flavour"], format=h["format"], dir=h["dir"],
                     sources=[Source(**s) for s in h["sources"]], patients=h["patients"], rows=dict(h["rows"]))
            for h in data["hospitals"]
        ]
        return cls(seed=data["seed"], patients_per_hospital=data["patients_per_hospital"], hospitals=hospitals,
                   format=data.get("format", MANIFEST_FORMAT), ground_truth=data.get("ground_truth",
                                                                                       "ground_truth.json"))

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Read a manifest.json (or the manifest.json inside a directory)."""
        p = Path(path)
        if p.is_dir():
            p = p / "manifest.json"
        return cls.from_dict(orjson.loads(p.read_bytes()))


@dataclass
class HospitalResult:
    """What `generate_hospital` returns: the manifest entry, the hospital's ground truth and digests
    of its national IDs (to count shared patients without passing the IDs around). Picklable."""

    hospital: Hospital
    truth: dict[str, Any]
    id_digests: bytes = field(repr=False)


# --- population ---


def shared_count(patients: int, same_flavour: int) -> int:
    """Patients each pair of same-flavour hospitals has in common."""
    if same_flavour < 2:
        return 0
    k = round(SHARE * patients / (same_flavour - 1))
    return min(k, patients // (2 * (same_flavour - 1)))


def _id_block(prof: Profile, pair: tuple[int, int] | None = None, same_flavour: int = 1) -> tuple[int, int]:
    """The block a batch's national IDs come from: the GB 11643 sequence number's hundreds (CN) or the
    SSN group number (US). Local patients of different hospitals, and the patients of different pairs
    that share a hospital, get different blocks, so no two people of one hospital can share an ID."""
    if pair is None:
        if prof.flavour == "cn":
            slot = prof.ordinal % 9
            return slot * 100, slot * 100 + 99
        slot = prof.ordinal % 8
        return 1 + 10 * slot, 10 + 10 * slot
    # Pairs are the edges of a complete graph on the same-flavour hospitals; colouring edge (i, j)
    # with (i + j) mod m (m odd) gives edges that meet at a hospital different colours.
    m = same_flavour if same_flavour % 2 else same_flavour + 1
    colour = (profile(pair[0]).ordinal + profile(pair[1]).ordinal) % m
    if prof.flavour == "cn":
        return 900 + 10 * (colour % 10), 909 + 10 * (colour % 10)
    g = 81 + colour % 19
    return g, g


def population(rng: np.random.Generator, prof: Profile, hospitals: int, patients: int, seed: int) -> People:
    """The hospital's patients: its own plus those it shares with each same-flavour hospital."""
    mine = [(a, b) for a, b in shared_pairs(hospitals) if prof.index in (a, b)]
    same = 1 + len(mine)
    k = shared_count(patients, same)
    local = draw_people(rng, patients - k * len(mine), prof.flavour, prof.ordinal, prof.slot.age_mix,
                        _id_block(prof))
    parts = [local]
    for a, b in mine:
        pair_rng = np.random.default_rng([seed, PAIR_STREAM, a, b])
        parts.append(draw_people(pair_rng, k, prof.flavour, profile(a).ordinal, "general",
                                 _id_block(prof, (a, b), same)))
    people = People.concat(parts)
    return people.take(rng.permutation(len(people)))


def patient_frame(rng: np.random.Generator, prof: Profile, people: People, deceased: Arr) -> Frame:
    """The patient table: the people plus record numbers and death dates."""
    n = len(people)
    numbers = rng.permutation(10_000_000 + np.cumsum(rng.integers(1, 40, n)))
    if prof.flavour == "cn":
        assert prof.cn_region is not None
        prefix = CN_ABBR.get(prof.cn_region.city_en, "ZY")
        mrn = [f"{prefix}{x:08d}" for x in numbers.tolist()]
    else:
        mrn = [f"MRN{x:08d}" for x in numbers.tolist()]
    return {
        "_p": np.arange(n),
        "mrn": obj(mrn),
        "national_id": people.national_id,
        "insurance_id": people.insurance_id,
        "passport_id": people.passport_id,
        "family_name": people.family,
        "given_name": people.given,
        "sex": people.sex,
        "birth_date": people.birth,
        "deceased_date": deceased,
        "ethnicity": people.ethnicity,
        "marital_status": obj([MARITAL_WORDS[m] for m in people.marital.tolist()]),
        "phone": people.phone,
        "email": people.email,
        "address_line": people.address_line,
        "district": people.district,
        "city": people.city,
        "province": people.province,
        "postal_code": people.postal_code,
        "country": people.country,
    }


# --- writing ---


def _write_fhir_ndjson(directory: Path, builder: fhir.Builder, tables: tuple[str, ...]) -> list[Source]:
    sources = []
    names = {"genetic_variant": "Observation.genomics.ndjson"}
    for table in tables:
        name = names.get(table, f"{fhir.RESOURCE_TYPES[table]}.ndjson")
        if fhir.write_ndjson(directory / name, builder.table(table)):
            sources.append(Source("fhir-ndjson", f"{directory.name}/{name}"))
    return sources


def write_sources(root: Path, prof: Profile, frames: dict[str, Frame], extra: Frame, rng: np.random.Generator,
                  urn_patient: Arr | None) -> list[Source]:
    """Write the hospital's source files in its format; the sources, relative to `root`."""
    fmt = prof.slot.fmt
    builder = fhir.Builder(prof, frames, extra)
    if fmt == "fhir-bundle":
        assert urn_patient is not None
        builder.urn_patient = urn_patient
        order = ("patient", "encounter", "condition", "medication", "observation", "procedure", "allergy", "note",
                 "genetic_variant")
        per_table = [builder.table(name) for name in order]
        names = fhir.write_bundles(root / "bundles", prof.id, per_table, len(frames["patient"]["id"]), urn_patient,
                                   BUNDLE_PATIENTS)
        return [Source("fhir-bundle", f"bundles/{n}") for n in names]
    if fmt == "fhir-ndjson":
        return _write_fhir_ndjson(root / "bulk", builder, TABLE_ORDER)
    if fmt == "hl7v2":
        feeds = hl7.Feeds(prof, frames, extra, rng)
        meds = frames["medication"]
        study_rows = meds["_drug"] == t.DRUG_INDEX[t.STUDY_DRUG]
        sources = []
        for name, text in (("adt.hl7", feeds.adt()), ("oru.hl7", feeds.oru()),
                           ("rde.hl7", feeds.rde(np.nonzero(~study_rows)[0]))):
            if hl7.write(root / "hl7" / name, text):
                sources.append(Source("hl7v2", f"hl7/{name}"))
        # HL7 v2 carries notes, variants and the study outcome poorly: a FHIR side file has them.
        side = root / "side"
        statements = builder.medications(np.nonzero(study_rows)[0], statement=True)
        if fhir.write_ndjson(side / "MedicationStatement.ndjson", statements):
            sources.append(Source("fhir-ndjson", "side/MedicationStatement.ndjson"))
        return sources + _write_fhir_ndjson(side, builder, ("note", "genetic_variant"))
    if fmt == "csv":
        name = csvfiles.write_export(root / "csv", csvfiles.US_EXPORT, frames)
        return [Source("csv", f"csv/{name}")]
    # mixed: the master patient index and visit log as CSV, the rest as FHIR NDJSON.
    name = csvfiles.write_export(root / "mpi", csvfiles.CN_EXPORT, frames)
    return [Source("csv", f"mpi/{name}"), *_write_fhir_ndjson(root / "bulk", builder, TABLE_ORDER[2:])]


def write_labels(path: Path, notes: Frame) -> None:
    """The labelled corpus: one JSON line per note with its PHI spans."""
    with path.open("wb") as fh:
        for nid, pid, lang, text, spans in zip(notes["id"].tolist(), notes["patient_id"].tolist(),
                                               notes["language"].tolist(), notes["text"].tolist(),
                                               notes["_spans"].tolist(), strict=True):
            fh.write(orjson.dumps({
                "note_id": nid, "patient_id": pid, "language": lang,
                "spans": [{"start": s, "end": e, "type": k} for s, e, k in spans], "text": text,
            }))
            fh.write(b"\n")


# --- ground truth ---


def _l1_rows(frames: dict[str, Frame]) -> dict[str, int]:
    out: dict[str, int] = {}
    for table in TABLE_ORDER:
        f = frames[table]
        if table == "genetic_variant":
            out[table] = len(f["_p"])
        elif "code" in f:
            keys, counts = np.unique(np.array([f"{s}|{c}" for s, c in zip(f["code_system"].tolist(),
                                                                          f["code"].tolist(), strict=True)]),
                                     return_counts=True)
            out[table] = int(sum(c for k, c in zip(keys.tolist(), counts.tolist(), strict=True)
                                 if l1_category(table, *k.split("|", 1)) is not None))
        else:
            out[table] = 0
    return out


def hospital_truth(prof: Profile, frames: dict[str, Frame], people: People) -> dict[str, Any]:
    """The hospital's ground truth: true response probabilities and realised outcomes per age band,
    counts of diabetic, HIV, psychiatric and genotyped patients, and row counts."""
    meds = frames["medication"]
    is_study = meds["_drug"] == t.DRUG_INDEX[t.STUDY_DRUG]
    bands = meds["_band"][is_study]
    responded = meds["response"][is_study] == study.RESPONDER
    by_band = {}
    for b, (label, _, _) in enumerate(study.STUDY_BANDS):
        sel = bands == b
        treated, responders = int(sel.sum()), int(responded[sel].sum())
        by_band[label] = {"p_true": round(study.response_probability(b, prof.response_offset), 4), "treated": treated,
                          "responders": responders, "rate": round(responders / treated, 4) if treated else None}
    cond = frames["condition"]
    ci = cond["_cond"]
    t2d_patients = len(np.unique(cond["_p"][(ci >= T2D_FIRST) & (ci < HIV_FIRST)]))
    age = age_in_years(people.birth, REF_DATE)
    return {
        "id": prof.id, "name": prof.name, "flavour": prof.flavour, "format": prof.slot.fmt,
        "age_mix": prof.slot.age_mix, "patients": len(people),
        "patients_over_89": int((age > 89).sum()),
        "condition_system": prof.slot.condition_system, "drug_system": prof.slot.drug_system,
        "study": {
            "response_offset": prof.response_offset, "treated": int(is_study.sum()),
            "responders": int(responded.sum()), "bands": by_band,
        },
        "t2d_patients": t2d_patients,
        "t2d_prevalence_factor": prof.slot.t2d_factor,
        "hiv_patients": len(np.unique(cond["_p"][(ci >= HIV_FIRST) & (ci < PSYCH_FIRST)])),
        "psychiatric_patients": len(np.unique(cond["_p"][ci >= PSYCH_FIRST])),
        "variant_patients": len(np.unique(frames["genetic_variant"]["_p"])),
        "deceased_patients": int((~np.isnat(frames["patient"]["deceased_date"])).sum()),
        "rows": {name: len(frames[name]["_p"]) for name in TABLE_ORDER},
        "l1_rows": _l1_rows(frames),
    }


def _digests(national_ids: Arr) -> bytes:
    d = sorted(hashlib.blake2b(x.encode("utf-8"), digest_size=8).digest() for x in national_ids.tolist())
    return b"".join(d)


# --- entry points ---


def generate_hospital(out_dir: Path, index: int, hospitals: int = 5, patients: int = 20000,
                      seed: int = 7) -> HospitalResult:
    """Generate hospital number `index` (1-based) of `hospitals` into out_dir/<hospital id>/."""
    if not 1 <= index <= hospitals:
        raise ValueError(f"hospital index {index} is not in 1..{hospitals}")
    if patients < 1:
        raise ValueError("a hospital needs at least one patient")
    with gc_paused():
        return _generate_hospital(Path(out_dir), index, hospitals, patients, seed)


def _generate_hospital(out_dir: Path, index: int, hospitals: int, patients: int, seed: int) -> HospitalResult:
    prof = profile(index)
    rng = np.random.default_rng([seed, index])
    people = population(rng, prof, hospitals, patients, seed)
    clinical = simulate(rng, prof, people)
    frames: dict[str, Frame] = dict(clinical.frames)
    frames["patient"] = patient_frame(rng, prof, people, clinical.deceased)
    root = Path(out_dir) / prof.id
    root.mkdir(parents=True, exist_ok=True)
    fmt = prof.slot.fmt
    doctors = doctor_names(rng, prof.flavour)
    # Notes go to CSV only for the CSV hospital, and pyarrow's CSV reader wants one line per row.
    frames["note"] = write_notes(rng, prof.flavour, prof.id, frames["patient"], frames["encounter"],
                                 frames["condition"], frames["medication"], doctors, single_line=fmt == "csv")
    urn = (np.arange(len(people)) // BUNDLE_PATIENTS) % 2 == 0 if fmt == "fhir-bundle" else None
    # An HL7 v2 feed names patients by their PID-3 MRN: that is their id in this hospital's model.
    ids.assign(frames, prof.id, rng, urn, frames["patient"]["mrn"] if fmt == "hl7v2" else None)
    extra = {"ethnicity_code": people.ethnicity_code, "hispanic": people.hispanic, "marital": people.marital}
    sources = write_sources(root, prof, frames, extra, rng, urn)
    write_labels(root / LABELS_FILE, frames["note"])
    truth = hospital_truth(prof, frames, people)
    entry = Hospital(id=prof.id, name=prof.name, flavour=prof.flavour, format=fmt, dir=prof.id, sources=sources,
                     patients=len(people), rows=dict(truth["rows"]))
    return HospitalResult(hospital=entry, truth=truth, id_digests=_digests(people.national_id))


def _overlap(results: list[HospitalResult]) -> dict[str, Any]:
    sets = [np.frombuffer(r.id_digests, dtype="S8") for r in results]
    pairs = []
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            k = len(np.intersect1d(sets[i], sets[j], assume_unique=True))
            if k:
                pairs.append({"hospitals": [results[i].hospital.id, results[j].hospital.id], "shared_patients": k})
    per = {}
    for i, r in enumerate(results):
        others = [s for j, s in enumerate(sets) if j != i]
        seen = np.isin(sets[i], np.concatenate(others)) if others else np.zeros(len(sets[i]), dtype=bool)
        per[r.hospital.id] = {"patients": len(sets[i]), "shared_patients": int(seen.sum())}
    return {"key": "national_id", "pairs": pairs, "per_hospital": per}


def write_manifest(out_dir: Path, results: list[HospitalResult], seed: int, patients: int) -> Manifest:
    """Write manifest.json and ground_truth.json for generated hospitals (in hospital order)."""
    results = sorted(results, key=lambda r: int(r.hospital.id[1:]))
    manifest = Manifest(seed=seed, patients_per_hospital=patients, hospitals=[r.hospital for r in results])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "manifest.json").write_bytes(manifest.to_json())
    truth = {
        "format": MANIFEST_FORMAT, "seed": seed, "patients_per_hospital": patients,
        "reference_date": str(REF_DATE),
        "study": {
            "drug": {"name": "metformin", "atc": t.DRUGS[t.DRUG_INDEX[t.STUDY_DRUG]].atc,
                     "rxnorm": t.DRUGS[t.DRUG_INDEX[t.STUDY_DRUG]].rxnorm},
            "condition": {"icd10": "E11", "snomed": t.T2D_SNOMED},
            "outcome": "medication.response (responder / non-responder), on the study drug's rows",
            "fhir_extension": study.RESPONSE_EXTENSION,
            "age": "completed years at the medication's start_date",
            "age_bands": [b[0] for b in study.STUDY_BANDS],
            "base_response": dict(zip([b[0] for b in study.STUDY_BANDS], study.BASE_RESPONSE, strict=True)),
            "model": "p = clip(base[band] + hospital offset, 0.05, 0.95)",
        },
        "hospitals": [r.truth for r in results],
        "overlap": _overlap(results),
    }
    (out / manifest.ground_truth).write_bytes(orjson.dumps(truth, option=orjson.OPT_INDENT_2) + b"\n")
    return manifest


def generate(out_dir: Path, hospitals: int = 5, patients: int = 20000, seed: int = 7) -> Manifest:
    """Generate `hospitals` synthetic hospitals of `patients` patients each into out_dir, with
    out_dir/manifest.json and out_dir/ground_truth.json. Same arguments, same bytes."""
    if hospitals < 1:
        raise ValueError("generate at least one hospital")
    results = [generate_hospital(out_dir, i, hospitals, patients, seed) for i in range(1, hospitals + 1)]
    return write_manifest(out_dir, results, seed, patients)

