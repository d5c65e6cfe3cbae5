"""FHIR R4 output: resources built from the frames, written as transaction / collection Bundles or as
bulk-export NDJSON (one file per resource type).

Resources are plain dicts in R4 shapes (Encounter.class a Coding, MedicationRequest.medication
CodeableConcept, DocumentReference text as base64 `text/plain; charset=utf-8` with a language);
serialisation is orjson. The study outcome rides on MedicationRequest / MedicationStatement as the
extension RESPONSE_EXTENSION with a valueString.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from medspace.model import system_uri
from medspace.synth import terminology as t
from medspace.synth.frames import Arr, Frame, iso_dates, iso_datetimes, texts
from medspace.synth.profiles import Profile
from medspace.synth.study import RESPONSE_EXTENSION

Json = dict[str, Any]
Built = Iterator[tuple[int, Json]]  # (patient position, resource), in patient order

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
UCUM = "http://unitsofmeasure.org"
SNOMED = system_uri("SNOMED")
LOINC = system_uri("LOINC")
CN_RESIDENT_ID = "urn:oid:1.2.156.112604.1.2"
US_SSN = "http://hl7.org/fhir/sid/us-ssn"
CN_ETHNIC_EXT = "http://medspace.example/fhir/StructureDefinition/ethnic-group"
US_RACE = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
US_ETHNICITY = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"
MARITAL_DISPLAY = {"S": "Never Married", "M": "Married", "D": "Divorced", "W": "Widowed"}
# Resource type per table, in the order a patient's entries appear in a bundle.
RESOURCE_TYPES = {
    "patient": "Patient", "encounter": "Encounter", "condition": "Condition", "medication": "MedicationRequest",
    "observation": "Observation", "procedure": "Procedure", "allergy": "AllergyIntolerance",
    "note": "DocumentReference", "genetic_variant": "Observation",
}


def _cc(system: str, code: str, display: str | None, text: str | None = None) -> Json:
    coding: Json = {"system": system, "code": code}
    if display:
        coding["display"] = display
    out: Json = {"coding": [coding]}
    if text:
        out["text"] = text
    return out


def _drop_none(d: Json) -> Json:
    return {k: v for k, v in d.items() if v is not None}


class Builder:
    """Builds the FHIR resources of one hospital's frames."""

    def __init__(self, prof: Profile, frames: dict[str, Frame], people_extra: Frame) -> None:
        self.prof = prof
        self.frames = frames
        self.extra = people_extra  # per patient: ethnicity_code, hispanic, marital code
        self.zh = prof.flavour == "cn"
        self.tz = prof.tz
        self.urn_patient: Arr | None = None

    def _ref(self, kind: str, rid: str | None, p: int) -> Json | None:
        if rid is None:
            return None
        if self.urn_patient is not None and self.urn_patient[p]:
            return {"reference": f"urn:uuid:{rid}"}
        return {"reference": f"{kind}/{rid}"}

    # --- one method per table; each returns (patient position, resource) in row order ---

    def patients(self) -> Built:
        """Patient resources."""
        f = self.frames["patient"]
        hid = self.prof.id
        cols = {k: texts(f[k]) for k in ("id", "mrn", "national_id", "insurance_id", "passport_id", "family_name",
                                         "given_name", "sex", "phone", "email", "address_line", "district", "city",
                                         "province", "postal_code", "country", "ethnicity")}
        birth = iso_dates(f["birth_date"])
        death = iso_dates(f["deceased_date"])
        eth_code = texts(self.extra["ethnicity_code"])
        hispanic = self.extra["hispanic"].tolist()
        marital = texts(self.extra["marital"])
        nat_system, nat_type = (CN_RESIDENT_ID, "NNCHN") if self.zh else (US_SSN, "SS")
        passport_system = "http://hl7.org/fhir/sid/passport-" + ("CHN" if self.zh else "USA")
        for i in range(len(birth)):
            c = {k: v[i] for k, v in cols.items()}
            ident = [
                {"use": "usual", "type": _cc(V2_0203, "MR", "Medical record number"),
                 "system": f"https://{hid}.medspace.example/fhir/sid/mrn", "value": c["mrn"]},
                {"use": "official", "type": _cc(V2_0203, nat_type, None), "system": nat_system,
                 "value": c["national_id"]},
            ]
            if c["insurance_id"]:
                ident.append({"type": _cc(V2_0203, "MB", "Member Number"),
                              "system": f"https://{hid}.medspace.example/fhir/sid/insurance",
                              "value": c["insurance_id"]})
            if c["passport_id"]:
                ident.append({"type": _cc(V2_0203, "PPN", "Passport number"), "system": passport_system,
                              "value": c["passport_id"]})
            telecom: list[Json] = [{"system": "phone", "value": c["phone"], "use": "mobile" if self.zh else "home"}]
            if c["email"]:
                telecom.append({"system": "email", "value": c["email"]})
            if self.zh:
                ext: list[Json] = [{"url": CN_ETHNIC_EXT, "valueCodeableConcept": _cc(
                    "http://medspace.example/fhir/CodeSystem/gb-3304", eth_code[i], c["ethnicity"], c["ethnicity"])}]
                name: Json = {"use": "official", "text": c["family_name"] + c["given_name"],
                              "family": c["family_name"], "given": [c["given_name"]]}
            else:
                race = c["ethnicity"].split("; ")[0]
                eth = ("2135-2", "Hispanic or Latino") if hispanic[i] else ("2186-5", "Not Hispanic or Latino")
                ext = [
                    {"url": US_RACE, "extension": [
                        {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238",
                                                               "code": eth_code[i], "display": race}},
                        {"url": "text", "valueString": race}]},
                    {"url": US_ETHNICITY, "extension": [
                        {"url": "ombCategory", "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238",
                                                               "code": eth[0], "display": eth[1]}},
                        {"url": "text", "valueString": eth[1]}]},
                ]
                name = {"use": "official", "family": c["family_name"], "given": c["given_name"].split(" ")}
            address = _drop_none({"use": "home", "line": [c["address_line"]], "city": c["city"],
                                  "district": c["district"], "state": c["province"], "postalCode": c["postal_code"],
                                  "country": c["country"]})
            res: Json = {"resourceType": "Patient", "id": c["id"], "extension": ext, "identifier": ident,
                         "name": [name], "telecom": telecom, "gender": c["sex"], "birthDate": birth[i]}
            if death[i]:
                res["deceasedDateTime"] = death[i]
            res["address"] = [address]
            res["maritalStatus"] = _cc("http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", marital[i],
                                       MARITAL_DISPLAY[marital[i]])
            yield i, res

    def encounters(self) -> Built:
        """Encounter resources."""
        f = self.frames["encounter"]
        start = iso_datetimes(f["start_time"], self.tz)
        end = iso_datetimes(f["end_time"], self.tz)
        for i, (rid, p, pid, cls, dept, reason, disp, disp_text, status) in enumerate(zip(
                texts(f["id"]), f["_p"].tolist(), texts(f["patient_id"]), f["_class"].tolist(), texts(f["department"]),
                texts(f["reason"]), f["_disp"].tolist(), texts(f["discharge_disposition"]), texts(f["status"]),
                strict=True)):
            act = t.ENCOUNTER_CLASSES[cls]
            res: Json = {
                "resourceType": "Encounter", "id": rid, "status": status,
                "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": act[0],
                          "display": act[2]},
                "serviceType": {"text": dept},
                "subject": self._ref("Patient", pid, p),
                "period": _drop_none({"start": start[i], "end": end[i]}),
                "reasonCode": [{"text": reason}],
            }
            if disp >= 0:
                d = t.DISPOSITIONS[disp]
                res["hospitalization"] = {"dischargeDisposition": _cc(
                    "http://terminology.hl7.org/CodeSystem/discharge-disposition", d[0], d[2], disp_text)}
            res["serviceProvider"] = {"display": self.prof.name}
            yield p, res

    def conditions(self) -> Built:
        """Condition resources."""
        f = self.frames["condition"]
        system = system_uri(str(f["code_system"][0])) if len(f["_p"]) else ""
        onset, recorded = iso_dates(f["onset_date"]), iso_dates(f["recorded_date"])
        for i, (rid, p, pid, eid, code, display, status) in enumerate(zip(
                texts(f["id"]), f["_p"].tolist(), texts(f["patient_id"]), texts(f["encounter_id"]), texts(f["code"]),
                texts(f["display"]), texts(f["clinical_status"]), strict=True)):
            res: Json = {
                "resourceType": "Condition", "id": rid,
                "clinicalStatus": _cc("http://terminology.hl7.org/CodeSystem/condition-clinical", status, None),
                "verificationStatus": _cc("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed",
                                          None),
                "category": [_cc("http://terminology.hl7.org/CodeSystem/condition-category", "encounter-diagnosis",
                                 "Encounter Diagnosis")],
                "code": _cc(system, code, display),
                "subject": self._ref("Patient", pid, p),
            }
            if eid is not None:
                res["encounter"] = self._ref("Encounter", eid, p)
            res["onsetDateTime"] = onset[i]
            res["recordedDate"] = recorded[i]
            yield p, res

    def medications(self, rows: Arr | None = None, statement: bool = False) -> Built:
        """MedicationRequests (or MedicationStatements) for all medication rows or the given ones."""
        f = self.frames["medication"]
        idx = np.arange(len(f["_p"])) if rows is None else rows
        system = system_uri(str(f["code_system"][0])) if len(f["_p"]) else ""
        start, end = iso_dates(f["start_date"][idx]), iso_dates(f["end_date"][idx])
        for i, (rid, p, pid, eid, drug, code, display, status, dose, unit, route, freq, response) in enumerate(zip(
                texts(f["id"][idx]), f["_p"][idx].tolist(), texts(f["patient_id"][idx]),
                texts(f["encounter_id"][idx]), f["_drug"][idx].tolist(), texts(f["code"][idx]),
                texts(f["display"][idx]), texts(f["status"][idx]), f["dose_value"][idx].tolist(),
                texts(f["dose_unit"][idx]), texts(f["route"][idx]), texts(f["frequency"][idx]),
                texts(f["response"][idx]), strict=True)):
            r = t.ROUTES[t.DRUGS[drug].route]
            rep = t.FREQUENCIES[freq]
            bounds = _drop_none({"start": start[i], "end": end[i]})
            repeat: Json = {"boundsPeriod": bounds}
            if rep is not None:
                repeat.update({"frequency": rep[0], "period": rep[1], "periodUnit": rep[2]})
                if freq == "QHS":
                    repeat["when"] = ["HS"]
            dosage: Json = {"text": f"{dose:g} {unit} {freq}", "timing": {"repeat": repeat}}
            if rep is None:
                dosage["asNeededBoolean"] = True
            dosage["route"] = _cc(SNOMED, r[1], r[2], route)
            dosage["doseAndRate"] = [{"doseQuantity": {"value": dose, "unit": unit, "system": UCUM, "code": unit}}]
            res: Json = {"resourceType": "MedicationStatement" if statement else "MedicationRequest", "id": rid}
            if response is not None:
                res["extension"] = [{"url": RESPONSE_EXTENSION, "valueString": response}]
            res["status"] = status
            if not statement:
                res["intent"] = "order"
            res["medicationCodeableConcept"] = _cc(system, code, display, display)
            res["subject"] = self._ref("Patient", pid, p)
            if eid is not None:
                res["context" if statement else "encounter"] = self._ref("Encounter", eid, p)
            if statement:
                res["effectivePeriod"] = bounds
                res["dosage"] = [dosage]
            else:
                res["authoredOn"] = start[i]
                res["dosageInstruction"] = [dosage]
            yield p, res

    def _quantity(self, value: float, unit: str | None) -> Json:
        q: Json = {"value": value}
        if unit:
            q.update({"unit": unit, "system": UCUM, "code": unit})
        return q

    def observations(self) -> Built:
        """Observation resources; a blood pressure pair becomes one panel with two components."""
        f = self.frames["observation"]
        when = iso_datetimes(f["effective_time"], self.tz)
        rows = list(zip(texts(f["id"]), f["_p"].tolist(), texts(f["patient_id"]), texts(f["encounter_id"]),
                        f["_test"].tolist(), f["_bp"].tolist(), f["_positive"].tolist(), texts(f["code"]),
                        texts(f["display"]), texts(f["category"]), texts(f["value_num"]), texts(f["value_text"]),
                        texts(f["unit"]), texts(f["ref_low"]), texts(f["ref_high"]), texts(f["interpretation"]),
                        strict=True))
        i = 0
        while i < len(rows):
            rid, p, pid, eid, _test, bp, positive, code, display, cat, value, vtext, unit, lo, hi, interp = rows[i]
            res: Json = {"resourceType": "Observation", "id": rid, "status": "final",
                         "category": [_cc("http://terminology.hl7.org/CodeSystem/observation-category", cat, None)]}
            if bp == 1:
                res["id"] = rid[:-2]
                res["code"] = _cc(LOINC, t.BP_PANEL[0], t.BP_PANEL[1], t.BP_PANEL[2] if self.zh else None)
            else:
                res["code"] = _cc(LOINC, code, display)
            res["subject"] = self._ref("Patient", pid, p)
            if eid is not None:
                res["encounter"] = self._ref("Encounter", eid, p)
            res["effectiveDateTime"] = when[i]
            if bp == 1:
                comps = []
                for j in (i, i + 1):
                    row = rows[j]
                    comps.append({"code": _cc(LOINC, row[7], row[8]),
                                  "valueQuantity": self._quantity(row[10], row[12])})
                res["component"] = comps
                yield p, res
                i += 2
                continue
            if vtext is not None:
                coded = t.POSITIVE if positive else t.NEGATIVE
                res["valueCodeableConcept"] = _cc(SNOMED, coded[0], coded[1], vtext)
            else:
                res["valueQuantity"] = self._quantity(value, unit)
            if interp is not None:
                res["interpretation"] = [_cc(
                    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", interp, None)]
            if lo is not None:
                res["referenceRange"] = [{"low": self._quantity(lo, unit), "high": self._quantity(hi, unit)}]
            yield p, res
            i += 1

    def procedures(self) -> Built:
        """Procedure resources."""
        f = self.frames["procedure"]
        when = iso_datetimes(f["performed_time"], self.tz)
        for i, (rid, p, pid, eid, code, display, status) in enumerate(zip(
                texts(f["id"]), f["_p"].tolist(), texts(f["patient_id"]), texts(f["encounter_id"]), texts(f["code"]),
                texts(f["display"]), texts(f["status"]), strict=True)):
            yield p, {"resourceType": "Procedure", "id": rid, "status": status,
                      "code": _cc(SNOMED, code, display), "subject": self._ref("Patient", pid, p),
                      "encounter": self._ref("Encounter", eid, p), "performedDateTime": when[i]}

    def allergies(self) -> Built:
        """AllergyIntolerance resources."""
        f = self.frames["allergy"]
        recorded = iso_dates(f["recorded_date"])
        for i, (rid, p, pid, code, display, cat, crit, reaction, ri) in enumerate(zip(
                texts(f["id"]), f["_p"].tolist(), texts(f["patient_id"]), texts(f["code"]), texts(f["display"]),
                texts(f["category"]), texts(f["criticality"]), texts(f["reaction"]), f["_reaction"].tolist(),
                strict=True)):
            rx = t.REACTIONS[ri]
            yield p, {
                "resourceType": "AllergyIntolerance", "id": rid,
                "clinicalStatus": _cc("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active",
                                      "Active"),
                "verificationStatus": _cc("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
                                          "confirmed", "Confirmed"),
                "type": "allergy", "category": [cat], "criticality": crit,
                "code": _cc(SNOMED, code, display), "patient": self._ref("Patient", pid, p),
                "recordedDate": recorded[i],
                "reaction": [{"manifestation": [_cc(SNOMED, rx.snomed, rx.en, reaction)]}],
            }

    def notes(self) -> Built:
        """DocumentReference resources with the note text as a base64 attachment."""
        f = self.frames["note"]
        when = iso_datetimes(f["authored_time"], self.tz)
        for i, (rid, p, pid, eid, kind, ntype, lang, author, text) in enumerate(zip(
                texts(f["id"]), f["_p"].tolist(), texts(f["patient_id"]), texts(f["encounter_id"]), texts(f["_kind"]),
                texts(f["note_type"]), texts(f["language"]), texts(f["author"]), texts(f["text"]), strict=True)):
            loinc = t.NOTE_TYPES[kind]
            yield p, {
                "resourceType": "DocumentReference", "id": rid, "status": "current",
                "type": _cc(LOINC, loinc[0], loinc[1], ntype),
                "subject": self._ref("Patient", pid, p), "date": when[i], "author": [{"display": author}],
                "content": [{"attachment": {"contentType": "text/plain; charset=utf-8", "language": lang,
                                            "data": base64.b64encode(text.encode("utf-8")).decode("ascii"),
                                            "title": ntype}}],
                "context": {"encounter": [self._ref("Encounter", eid, p)]},
            }

    def variants(self) -> Built:
        """Genomic Observations (69548-6) with gene, HGVS, dbSNP id, zygosity and significance."""
        f = self.frames["genetic_variant"]
        recorded = iso_dates(f["recorded_date"])
        obs_cat = _cc("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", None)
        for i, (rid, p, pid, vi, zyg) in enumerate(zip(texts(f["id"]), f["_p"].tolist(), texts(f["patient_id"]),
                                                        f["_variant"].tolist(), texts(f["zygosity"]), strict=True)):
            v = t.VARIANTS[vi]
            sig_code = t.SIGNIFICANCE_ANSWERS.get(v.significance)
            significance = (_cc(LOINC, sig_code, v.significance.capitalize()) if sig_code
                            else {"text": v.significance})
            yield p, {
                "resourceType": "Observation", "id": rid, "status": "final", "category": [obs_cat],
                "code": _cc(LOINC, "69548-6", "Genetic variant assessment"),
                "subject": self._ref("Patient", pid, p), "effectiveDateTime": recorded[i],
                "valueCodeableConcept": _cc(LOINC, "LA9633-4", "Present"),
                "component": [
                    {"code": _cc(LOINC, "48018-6", "Gene studied [ID]"),
                     "valueCodeableConcept": _cc("http://www.genenames.org/geneId", v.hgnc, v.gene)},
                    {"code": _cc(LOINC, "48004-6", "DNA change (c.HGVS)"),
                     "valueCodeableConcept": _cc("http://varnomen.hgvs.org", v.hgvs, None)},
                    {"code": _cc(LOINC, "81252-9", "Discrete genetic variant"),
                     "valueCodeableConcept": _cc("http://www.ncbi.nlm.nih.gov/projects/SNP", v.rsid, None)},
                    {"code": _cc(LOINC, "53034-5", "Allelic state"),
                     "valueCodeableConcept": _cc(LOINC, t.ZYGOSITY_ANSWERS[zyg], zyg.capitalize())},
                    {"code": _cc(LOINC, "53037-8", "Genetic variation clinical significance [Imp]"),
                     "valueCodeableConcept": significance},
                ],
            }

    def table(self, name: str) -> Built:
        """The resources of one model table."""
        return {
            "patient": self.patients, "encounter": self.encounters, "condition": self.conditions,
            "medication": self.medications, "observation": self.observations, "procedure": self.procedures,
            "allergy": self.allergies, "note": self.notes, "genetic_variant": self.variants,
        }[name]()


def write_ndjson(path: Path, resources: Built) -> bool:
    """One resource per line, streamed; False (and no file) when there is nothing to write."""
    first = next(resources, None)
    if first is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.write(orjson.dumps(first[1]) + b"\n")
        for _, res in resources:
            fh.write(orjson.dumps(res) + b"\n")
    return True


def _entries(per_table: list[Built], n_patients: int) -> Iterator[tuple[int, Json]]:
    """Every resource with its patient position, patient by patient, table by table (each table's
    stream is in patient order, so they merge without holding more than one resource each)."""
    heads: list[tuple[int, Json] | None] = [next(it, None) for it in per_table]
    for p in range(n_patients):
        for k, it in enumerate(per_table):
            head = heads[k]
            while head is not None and head[0] == p:
                yield head
                head = next(it, None)
            heads[k] = head


def write_bundles(directory: Path, hid: str, per_table: list[Built], n_patients: int, urn_patient: Arr,
                  chunk: int) -> list[str]:
    """Bundles of `chunk` patients each: transaction bundles with urn:uuid fullUrls (and no resource
    ids) where `urn_patient` is set, collection bundles with resource URLs otherwise."""
    directory.mkdir(parents=True, exist_ok=True)
    names: list[str] = []
    entries: list[Json] = []
    current = -1

    def flush() -> None:
        """Write the bundle being collected."""
        if not entries:
            return
        kind = "transaction" if urn_patient[current * chunk] else "collection"
        name = f"bundle-{current + 1:04d}.json"
        doc = {"resourceType": "Bundle", "id": f"{hid}-bundle-{current + 1:04d}", "type": kind, "entry": entries}
        (directory / name).write_bytes(orjson.dumps(doc))
        names.append(name)

    for p, res in _entries(per_table, n_patients):
        if p // chunk != current:
            flush()
            entries = []
            current = p // chunk
        rtype = res["resourceType"]
        if urn_patient[p]:
            body = {k: v for k, v in res.items() if k != "id"}
            entries.append({"fullUrl": f"urn:uuid:{res['id']}", "resource": body,
                            "request": {"method": "POST", "url": rtype}})
        else:
            entries.append({"fullUrl": f"https://{hid}.medspace.example/fhir/{rtype}/{res['id']}", "resource": res})
    flush()
    return names
