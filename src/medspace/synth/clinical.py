"""Clinical content per patient: encounters, conditions, medications, observations, procedures,
allergies and genetic variants, all drawn as arrays for a whole hospital at once.

Values are coherent enough to be useful: diabetics have high HbA1c and glucose, hypertensives high
blood pressure, kidney disease raises creatinine; metformin responders' follow-up HbA1c falls.
Codes and displays follow the hospital: ICD-10 / ICD-10-CM / SNOMED CT for diagnoses, ATC or RxNorm
for drugs, SI (CN) or conventional (US) units and the matching LOINC codes, Chinese or English text.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medspace.synth import study
from medspace.synth import terminology as t
from medspace.synth.frames import Arr, Frame, concat, obj, pick, sort_by_patient
from medspace.synth.people import REF_DATE, People, age_in_years
from medspace.synth.profiles import Profile

WINDOW_START = np.datetime64("2019-01-01", "D")  # encounters fall in [WINDOW_START, REF_DATE)
NAT_D = np.datetime64("NaT", "D")
NAT_S = np.datetime64("NaT", "s")

# One catalogue of every diagnosis, so a condition row is an index into it.
T2D_CONDITIONS = tuple(
    t.Condition(f"t2d:{icd}", icd, cm, t.T2D_SNOMED, en, zh, True, (w, w, w))
    for icd, cm, en, zh, w in t.T2D_CODES
)
ALL_CONDITIONS: tuple[t.Condition, ...] = t.CONDITIONS + T2D_CONDITIONS + t.HIV_CONDITIONS + t.PSYCH_CONDITIONS
T2D_FIRST = len(t.CONDITIONS)
HIV_FIRST = T2D_FIRST + len(T2D_CONDITIONS)
PSYCH_FIRST = HIV_FIRST + len(t.HIV_CONDITIONS)


@dataclass
class Clinical:
    """A hospital's clinical tables (frames) and the per-patient facts the ground truth needs."""

    frames: dict[str, Frame]
    t2d: Arr  # bool per patient
    hiv: Arr
    psych: Arr
    deceased: Arr  # datetime64[D], NaT if alive


def _days(x: Arr) -> Arr:
    return np.asarray(x, dtype=np.int64).astype("timedelta64[D]")


def _secs(x: Arr) -> Arr:
    return np.asarray(x, dtype=np.int64).astype("timedelta64[s]")


class _Sim:
    """The state of one hospital's simulation (the rng is consumed in a fixed order)."""

    def __init__(self, rng: np.random.Generator, prof: Profile, people: People) -> None:
        self.rng = rng
        self.prof = prof
        self.zh = prof.flavour == "cn"
        self.n = len(people)
        self.people = people
        self.male = people.sex == "male"
        self.age = age_in_years(people.birth, REF_DATE)
        self.group = np.digitize(self.age, [18, 65])  # 0 child, 1 adult, 2 elderly

    # --- encounters ---

    def encounters(self) -> Frame:
        """Encounters: 1 + Poisson visits per patient in the window, sorted by patient and start."""
        rng, n = self.rng, self.n
        n_enc = 1 + rng.poisson(np.array([0.4, 0.5, 0.9])[self.group])
        p = np.repeat(np.arange(n), n_enc)
        m = len(p)
        lo = np.maximum(WINDOW_START, self.people.birth[p] + np.timedelta64(1, "D"))
        span = (REF_DATE - lo).astype(np.int64)
        day = lo + _days(np.floor(rng.random(m) * span))
        cls = pick(rng, self.prof.slot.classes, m)
        hour = np.where(cls == 0, rng.integers(8, 18, m), np.where(cls == 1, rng.integers(0, 24, m),
                                                                    rng.integers(7, 21, m)))
        start = day.astype("datetime64[s]") + _secs(hour * 3600 + rng.integers(0, 60, m) * 60)
        stay = np.where(cls == 0, rng.integers(10, 61, m) * 60,
                        np.where(cls == 1, rng.integers(1, 9, m) * 3600,
                                 (1 + rng.poisson(4, m)) * 86400 + rng.integers(-3, 4, m) * 3600))
        end = start + _secs(stay)
        ongoing = end >= REF_DATE.astype("datetime64[s]")
        end[ongoing] = NAT_S
        order = np.lexsort((start, p))
        p, cls, start, end, ongoing = p[order], cls[order], start[order], end[order], ongoing[order]

        child = self.group[p] == 0
        dept = np.where(cls == 1, t.EMERGENCY,
                        np.where(child, t.PEDIATRICS, pick(rng, (3, 2, 1.5, 1.2, 1.2, 1, 0.8, 0.8), m)))
        lang = 3 if self.zh else 2
        reason = rng.integers(0, len(t.REASONS), m)
        disp = pick(rng, [d[4] for d in t.DISPOSITIONS], m)
        disp = np.where((cls == 2) & ~ongoing, disp, -1)
        self.enc_p = p
        self.enc_first = np.searchsorted(p, np.arange(n))
        self.enc_count = n_enc
        self.enc_start = start
        self.enc_end = end
        self.enc_class = cls
        return {
            "_p": p,
            "_class": cls,
            "_disp": disp,
            "encounter_class": obj([c[2] for c in t.ENCOUNTER_CLASSES])[cls],
            "start_time": start,
            "end_time": end,
            "department": obj([d[1] if self.zh else d[0] for d in t.DEPARTMENTS])[dept],
            "reason": obj([r[1] if self.zh else r[0] for r in t.REASONS])[reason],
            "discharge_disposition": obj([*(d[lang] for d in t.DISPOSITIONS), None])[disp],
            "status": np.where(ongoing, "in-progress", "finished").astype(object),
        }

    def any_encounter(self, p: Arr) -> Arr:
        """A random encounter (position) of each given patient."""
        return np.asarray(self.enc_first[p] + np.floor(self.rng.random(len(p)) * self.enc_count[p]).astype(np.int64))

    # --- conditions ---

    def conditions(self) -> Frame:
        """Diagnoses: type 2 diabetes, HIV and psychiatric by their rates, then the rest by age group."""
        rng, n = self.rng, self.n
        prof = self.prof
        # Study condition, at the patient's first encounter.
        self.t2d = rng.random(n) < study.t2d_prevalence(self.age, prof.slot.t2d_factor)
        tp = np.nonzero(self.t2d)[0]
        t2d_block = (tp, self.enc_first[tp], T2D_FIRST + pick(rng, [c[4] for c in t.T2D_CODES], len(tp)))
        self.t2d_enc = np.full(n, -1)
        self.t2d_enc[tp] = self.enc_first[tp]

        self.hiv = (self.age >= 15) & (rng.random(n) < prof.slot.hiv_rate)
        hp = np.nonzero(self.hiv)[0]
        hiv_block = (hp, self.any_encounter(hp), HIV_FIRST + pick(rng, [c.weights[1] for c in t.HIV_CONDITIONS],
                                                                     len(hp)))
        self.hiv_enc = np.full(n, -1)
        self.hiv_enc[hp] = hiv_block[1]

        self.psych = (self.age >= 12) & (rng.random(n) < prof.slot.psych_rate)
        pp = np.nonzero(self.psych)[0]
        psych_block = (pp, self.any_encounter(pp),
                       PSYCH_FIRST + pick(rng, [c.weights[1] for c in t.PSYCH_CONDITIONS], len(pp)))

        # Everything else, by age group; a diagnosis is recorded once per patient.
        k = rng.poisson(np.array([1.1, 1.8, 2.9])[self.group])
        op = np.repeat(np.arange(n), k)
        og = self.group[op]
        oc = np.empty(len(op), dtype=np.int64)
        for g in range(3):
            sel = og == g
            oc[sel] = pick(rng, [c.weights[g] for c in t.CONDITIONS], int(sel.sum()))
        _, first = np.unique(op * 1000 + oc, return_index=True)
        first.sort()
        op, oc = op[first], oc[first]
        other_block = (op, self.any_encounter(op), oc)

        p = np.concatenate([b[0] for b in (t2d_block, hiv_block, psych_block, other_block)])
        enc = np.concatenate([b[1] for b in (t2d_block, hiv_block, psych_block, other_block)])
        ci = np.concatenate([b[2] for b in (t2d_block, hiv_block, psych_block, other_block)])
        m = len(p)
        chronic = np.array([c.chronic for c in ALL_CONDITIONS])[ci]
        recorded = self.enc_start[enc].astype("datetime64[D]")
        back = np.where(chronic, np.floor(rng.random(m) * 3 * 365), np.floor(rng.random(m) * 7))
        onset = np.maximum(recorded - _days(back), self.people.birth[p])
        recent = recorded >= REF_DATE - np.timedelta64(30, "D")
        status = np.where(chronic | recent, "active", "resolved").astype(object)

        system = prof.slot.condition_system
        if system == "SNOMED":
            codes = [c.snomed for c in ALL_CONDITIONS]
            displays = [t.T2D_SNOMED_DISPLAY if c.snomed == t.T2D_SNOMED else c.en for c in ALL_CONDITIONS]
        else:
            codes = [c.icd10cm if system == "ICD-10-CM" else c.icd10 for c in ALL_CONDITIONS]
            displays = [c.zh if self.zh else c.en for c in ALL_CONDITIONS]
        frame = {
            "_p": p,
            "_enc": enc,
            "_cond": ci,
            "code": obj(codes)[ci],
            "code_system": np.full(m, system, dtype=object),
            "display": obj(displays)[ci],
            "clinical_status": status,
            "onset_date": onset,
            "recorded_date": recorded,
        }
        return frame

    # --- medications ---

    def _med_block(self, p: Arr, enc: Arr, drug: Arr, start: Arr) -> Frame:
        return {"_p": p, "_enc": enc, "_drug": drug, "start_date": start.astype("datetime64[D]")}

    def medications(self, cond: Frame) -> Frame:
        """Orders: the study drug (with its drawn response), treatments of diagnoses, ART, acute drugs."""
        rng = self.rng
        prof = self.prof
        blocks: list[Frame] = []
        # Study drug: adult diabetics, most of them, from the diagnosis encounter.
        tp = np.nonzero(self.t2d)[0]
        t_enc = self.t2d_enc[tp]
        t_start = self.enc_start[t_enc].astype("datetime64[D]")
        adult = age_in_years(self.people.birth[tp], t_start) >= 18
        treated = adult & (rng.random(len(tp)) < study.TREATED_SHARE)
        metformin = t.DRUG_INDEX[t.STUDY_DRUG]
        blocks.append(self._med_block(tp[treated], t_enc[treated], np.full(int(treated.sum()), metformin),
                                      t_start[treated]))
        insulin = rng.random(len(tp)) < 0.15
        blocks.append(self._med_block(tp[insulin], t_enc[insulin], np.full(int(insulin.sum()),
                                                                            t.DRUG_INDEX["insulin_glargine"]),
                                      t_start[insulin]))
        # Treatment of the other diagnoses.
        drug_lists = [[t.DRUG_INDEX[d] for d in c.drugs] for c in ALL_CONDITIONS]
        p_treat = np.array([c.p_treat if c.drugs else 0.0 for c in ALL_CONDITIONS])[cond["_cond"]]
        sel = np.nonzero(rng.random(len(p_treat)) < p_treat)[0]
        which = rng.integers(0, 1 << 30, len(sel))
        drugs = np.array([drug_lists[c][w % len(drug_lists[c])]
                          for c, w in zip(cond["_cond"][sel].tolist(), which.tolist(), strict=True)], dtype=np.int64)
        blocks.append(self._med_block(cond["_p"][sel], cond["_enc"][sel], drugs, cond["recorded_date"][sel]))
        # Antiretroviral therapy for most HIV patients.
        hp = np.nonzero(self.hiv)[0]
        art = rng.random(len(hp)) < 0.9
        ap = hp[art]
        art_drugs = np.array([t.DRUG_INDEX[d] for d in t.ART_DRUGS])[rng.integers(0, len(t.ART_DRUGS), len(ap))]
        blocks.append(self._med_block(ap, self.hiv_enc[ap], art_drugs,
                                      self.enc_start[self.hiv_enc[ap]].astype("datetime64[D]")))
        # Everyday acute prescriptions at some encounters.
        ne = len(self.enc_start)
        acute = np.nonzero(rng.random(ne) < 0.4)[0]
        acute_drugs = np.array([t.DRUG_INDEX[d] for d in t.ACUTE_DRUGS])[rng.integers(0, len(t.ACUTE_DRUGS),
                                                                                      len(acute))]
        blocks.append(self._med_block(self.enc_p[acute], acute, acute_drugs,
                                      self.enc_start[acute].astype("datetime64[D]")))

        f = concat(blocks)
        m = len(f["_p"])
        d = f["_drug"]
        chronic = np.array([x.chronic for x in t.DRUGS])[d]
        start = f["start_date"]
        stopped = chronic & (rng.random(m) < 0.15) & (d != metformin)
        length = np.where(chronic, np.floor(30 + rng.random(m) * 335), rng.integers(5, 15, m))
        end = start + _days(length)
        has_end = (~chronic | stopped) & (end < REF_DATE)
        status = np.where(has_end, np.where(chronic, "stopped", "completed"), "active").astype(object)
        end = np.where(has_end, end, NAT_D)

        # The study outcome: response drawn from the band's true probability at this hospital.
        is_study = d == metformin
        band = study.band_of(age_in_years(self.people.birth[f["_p"]], start))
        prob = np.array([study.response_probability(b, prof.response_offset) for b in range(len(study.STUDY_BANDS))])
        p_resp = np.where(is_study & (band >= 0), prob[np.clip(band, 0, None)], np.nan)
        responder = rng.random(m) < p_resp
        response = np.full(m, None, dtype=object)
        response[is_study & responder] = study.RESPONDER
        response[is_study & ~responder] = study.NON_RESPONDER

        rx = prof.slot.drug_system == "RxNorm"
        route = [t.ROUTES[x.route] for x in t.DRUGS]
        return {
            "_p": f["_p"],
            "_enc": f["_enc"],
            "_drug": d,
            "_band": np.where(is_study, band, -1),
            "code": obj([x.rxnorm if rx else x.atc for x in t.DRUGS])[d],
            "code_system": np.full(m, prof.slot.drug_system, dtype=object),
            "display": obj([x.zh if self.zh else x.en for x in t.DRUGS])[d],
            "status": status,
            "start_date": start,
            "end_date": end,
            "dose_value": np.array([x.dose_cn if self.zh else x.dose_us for x in t.DRUGS], dtype=np.float64)[d],
            "dose_unit": obj([x.unit for x in t.DRUGS])[d],
            "route": obj([r[3] if self.zh else r[2] for r in route])[d],
            "frequency": obj([x.frequency for x in t.DRUGS])[d],
            "response": response,
        }

    # --- observations ---

    def observations(self, meds: Frame, cond: Frame) -> Frame:
        """Vital signs and labs at encounters, HbA1c baseline and follow-up, HIV tests, PHQ-9."""
        rng, n = self.rng, self.n
        ne = len(self.enc_start)
        ep = self.enc_p
        adult_e = self.group[ep] >= 1
        T = t.TEST_INDEX
        has = np.zeros((n, len(ALL_CONDITIONS)), dtype=bool)
        has[cond["_p"], cond["_cond"]] = True
        hypert = has[:, t.COND_INDEX["hypertension"]]
        lipid = has[:, t.COND_INDEX["hyperlipidaemia"]]
        ckd = has[:, t.COND_INDEX["ckd"]]
        obese = has[:, t.COND_INDEX["obesity"]]

        blocks: list[Frame] = []

        def block(p: Arr, enc: Arr, test: Arr, when: Arr, bp: Arr | None = None) -> None:
            """Queue rows of one kind of result."""
            blocks.append({"_p": p, "_enc": enc, "_test": test, "effective_time": when,
                           "_bp": np.zeros(len(p), dtype=np.int64) if bp is None else bp})

        # Vital signs at most encounters: blood pressure (a panel), weight, BMI, heart rate.
        vit = rng.random(ne) < 0.6
        cols = np.array([T["systolic"], T["diastolic"], T["weight"], T["bmi"], T["heart_rate"]])
        grid = np.ones((ne, 5), dtype=bool)
        grid[:, 3] = adult_e & (rng.random(ne) < 0.7)
        grid[:, 4] = rng.random(ne) < 0.3
        grid &= vit[:, None]
        e_idx, c_idx = np.nonzero(grid)
        block(ep[e_idx], e_idx, cols[c_idx], self.enc_start[e_idx] + np.timedelta64(10 * 60, "s"),
              np.where(c_idx == 0, 1, np.where(c_idx == 1, 2, 0)))
        # A lab panel at some encounters.
        lab = rng.random(ne) < 0.4
        cols = np.array([T["glucose"], T["creatinine"], T["hemoglobin"], T["wbc"], T["cholesterol"]])
        grid = np.ones((ne, 5), dtype=bool)
        grid[:, 4] = adult_e & (rng.random(ne) < 0.6)
        grid &= lab[:, None]
        e_idx, c_idx = np.nonzero(grid)
        block(ep[e_idx], e_idx, cols[c_idx], self.enc_start[e_idx] + np.timedelta64(45 * 60, "s"))

        # HbA1c: baseline at diagnosis; for treated patients a follow-up 3-6 months later.
        tp = np.nonzero(self.t2d)[0]
        self.hba1c = np.zeros(n)
        self.hba1c[tp] = np.clip(8.3 + rng.normal(0, 1.1, len(tp)), 6.5, 14.0)
        block(tp, self.t2d_enc[tp], np.full(len(tp), T["hba1c"]),
              self.enc_start[self.t2d_enc[tp]] + np.timedelta64(45 * 60, "s"))
        study_rows = np.nonzero(meds["_drug"] == t.DRUG_INDEX[t.STUDY_DRUG])[0]
        sp = meds["_p"][study_rows]
        follow = meds["start_date"][study_rows] + _days(rng.integers(90, 181, len(sp)))
        ok = follow < REF_DATE
        self.followup_p = sp[ok]
        self.followup_responder = (meds["response"][study_rows] == study.RESPONDER)[ok]
        block(sp[ok], np.full(int(ok.sum()), -1), np.full(int(ok.sum()), T["hba1c"]),
              follow[ok].astype("datetime64[s]") + np.timedelta64(9 * 3600, "s"))

        # HIV: a positive test where diagnosed (and often a viral load); negative screening for some adults.
        hp = np.nonzero(self.hiv)[0]
        hiv_test = np.where(self.zh & (rng.random(len(hp)) < 0.5), T["hiv_ab"], T["hiv_ag_ab"])
        when = self.enc_start[self.hiv_enc[hp]] + np.timedelta64(3600, "s")
        block(hp, self.hiv_enc[hp], hiv_test, when)
        vl = rng.random(len(hp)) < 0.5
        block(hp[vl], self.hiv_enc[hp[vl]], np.full(int(vl.sum()), T["hiv_viral_load"]), when[vl])
        screen = np.nonzero(~self.hiv & (self.age >= 18) & (rng.random(n) < 0.02))[0]
        s_enc = self.any_encounter(screen)
        block(screen, s_enc, np.full(len(screen), T["hiv_ag_ab"]), self.enc_start[s_enc] + np.timedelta64(3600, "s"))
        # PHQ-9 for many depressed patients.
        dep = cond["_cond"] == PSYCH_FIRST
        dp = cond["_p"][dep]
        d_sel = rng.random(len(dp)) < 0.6
        block(dp[d_sel], cond["_enc"][dep][d_sel], np.full(int(d_sel.sum()), T["phq9"]),
              self.enc_start[cond["_enc"][dep][d_sel]] + np.timedelta64(20 * 60, "s"))

        f = concat(blocks)
        m = len(f["_p"])
        p, test = f["_p"], f["_test"]
        male = self.male[p]
        age = self.age[p]
        child = age < 18
        z = rng.normal(0, 1, m)
        v = np.full(m, np.nan)

        def put(key: str, values: Arr) -> None:
            """Fill the values of one test's rows."""
            sel = test == T[key]
            v[sel] = values[sel]

        height = np.where(self.male, 1.72, 1.60) + (0.05 if not self.zh else 0.0) + rng.normal(0, 0.07, n)
        bmi = np.clip((23.5 if self.zh else 28.5) + rng.normal(0, 4, n) + 7 * obese, 15, 55)
        kid_weight = np.where(self.age < 1, 3.5 + 6 * rng.random(n), np.where(
            self.age < 12, 2 * self.age + 8, 40 + 4 * (self.age - 12))) * np.exp(rng.normal(0, 0.1, n))
        weight = np.where(self.age < 18, kid_weight, bmi * height**2)
        sys_ = np.where(child, 100 + 8 * z, 118 + 0.35 * np.clip(age - 40, 0, None) + 14 * hypert[p] + 12 * z)
        put("systolic", np.clip(sys_, 80, 220))
        # Diastolic pairs with the systolic drawn just before it (panel rows are adjacent).
        prev = np.roll(np.nan_to_num(v), 1)
        dia = np.where(child, 62 + 6 * z, 76 + 8 * hypert[p] + 8 * z)
        put("diastolic", np.minimum(np.clip(dia, 40, 130), prev - 20))
        put("weight", weight[p] * np.exp(0.01 * z))
        put("bmi", np.where(child, np.nan, bmi[p] + 0.3 * z))
        put("heart_rate", np.where(child, 95, 76) + 10 * z)
        put("glucose", np.where(self.t2d[p], np.clip(8.5 + 2 * z, 4, 30), np.clip(5.1 + 0.5 * z, 3, 9)))
        put("creatinine", np.where(ckd[p], np.clip(160 + 50 * z, 90, 900),
                                   np.clip(np.where(male, 85, 65) * np.where(child, 0.6, 1) + 12 * z, 20, 140)))
        put("hemoglobin", np.clip(np.where(child, 125, np.where(male, 148, 132)) + 12 * z, 60, 190))
        put("wbc", np.exp(np.log(6.5) + 0.25 * z))
        put("cholesterol", np.clip(4.7 + 1.4 * lipid[p] + 0.8 * z, 2.0, 10.0))
        # HbA1c: baseline at the first row of a diabetic, the follow-up moves by the true response.
        hb = self.hba1c[p]
        fu = (test == T["hba1c"]) & (f["_enc"] == -1)
        resp = np.zeros(m, dtype=bool)
        resp[np.nonzero(fu)[0]] = self.followup_responder
        drop = np.where(resp, 0.8 + 1.2 * rng.random(m), -0.4 + 0.8 * rng.random(m))
        put("hba1c", np.where(fu, np.clip(hb - drop, 5.0, 14.0), hb))
        put("hiv_viral_load", np.round(np.exp(np.log(2000) + 2 * z)))
        put("phq9", np.clip(np.round(13 + 5 * z), 5, 27))

        coded = np.isin(test, [T["hiv_ag_ab"], T["hiv_ab"]])
        positive = coded & self.hiv[p]
        pos = t.POSITIVE[2] if self.zh else t.POSITIVE[1]
        neg = t.NEGATIVE[2] if self.zh else t.NEGATIVE[1]
        value_text = np.full(m, None, dtype=object)
        value_text[positive] = pos
        value_text[coded & ~positive] = neg

        tests = t.TESTS
        factor = np.array([1.0 if self.zh else x.factor_us for x in tests])[test]
        decimals = np.array([x.decimals_cn if self.zh else x.decimals_us for x in tests])[test]
        value = v * factor
        # Round each row to its test's decimals (np.round takes one scalar; group by decimals).
        for dd in np.unique(decimals):
            sel = decimals == dd
            value[sel] = np.round(value[sel], int(dd))
        refs = [x.ref_cn if self.zh else x.ref_us for x in tests]
        ref_low = np.array([r[0] if r else np.nan for r in refs])[test]
        ref_high = np.array([r[1] if r else np.nan for r in refs])[test]
        interp = np.full(m, None, dtype=object)
        ranged = ~np.isnan(ref_low) & ~np.isnan(value)
        interp[ranged] = "N"
        interp[ranged & (value > ref_high)] = "H"
        interp[ranged & (value < ref_low)] = "L"
        interp[positive] = "A"
        interp[coded & ~positive] = "N"
        return {
            "_p": p,
            "_enc": f["_enc"],
            "_test": test,
            "_bp": f["_bp"],
            "_positive": positive,
            "code": obj([x.loinc_cn if self.zh else x.loinc_us for x in tests])[test],
            "code_system": np.full(m, "LOINC", dtype=object),
            "display": obj([x.zh if self.zh else x.en for x in tests])[test],
            "category": obj([x.category for x in tests])[test],
            "value_num": value,
            "value_text": value_text,
            "unit": obj([(x.unit_cn if self.zh else x.unit_us) or None for x in tests])[test],
            "ref_low": ref_low,
            "ref_high": ref_high,
            "interpretation": interp,
            "status": np.full(m, "final", dtype=object),
            "effective_time": f["effective_time"],
        }

    # --- procedures, allergies, variants ---

    def procedures(self) -> Frame:
        """Procedures by age group, each at one of the patient's encounters."""
        rng, n = self.rng, self.n
        k = rng.poisson(np.array([0.3, 0.45, 0.8])[self.group])
        p = np.repeat(np.arange(n), k)
        g = self.group[p]
        code = np.empty(len(p), dtype=np.int64)
        for gi in range(3):
            sel = g == gi
            code[sel] = pick(rng, [x.weights[gi] for x in t.PROCEDURES], int(sel.sum()))
        enc = self.any_encounter(p)
        start, end = self.enc_start[enc], self.enc_end[enc]
        span = np.where(np.isnat(end), 3600, (end - start).astype(np.int64))
        when = start + _secs(np.floor(rng.random(len(p)) * np.maximum(span, 60)))
        m = len(p)
        return {
            "_p": p,
            "_enc": enc,
            "code": obj([x.snomed for x in t.PROCEDURES])[code],
            "code_system": np.full(m, "SNOMED", dtype=object),
            "display": obj([x.zh if self.zh else x.en for x in t.PROCEDURES])[code],
            "status": np.full(m, "completed", dtype=object),
            "performed_time": when,
        }

    def allergies(self) -> Frame:
        """Allergies: none for most patients, one or two distinct substances for some."""
        rng, n = self.rng, self.n
        k = pick(rng, (0.78, 0.17, 0.05), n)
        p = np.repeat(np.arange(n), k)
        a = pick(rng, [x.weights[0] for x in t.ALLERGENS], len(p))
        _, first = np.unique(p * 100 + a, return_index=True)
        first.sort()
        p, a = p[first], a[first]
        m = len(p)
        r = pick(rng, [x.weights[0] for x in t.REACTIONS], m)
        severe = np.isin(r, [2, 3]) | (rng.random(m) < 0.1)
        return {
            "_p": p,
            "_reaction": r,
            "code": obj([x.snomed for x in t.ALLERGENS])[a],
            "code_system": np.full(m, "SNOMED", dtype=object),
            "display": obj([x.zh if self.zh else x.en for x in t.ALLERGENS])[a],
            "category": obj([x.category for x in t.ALLERGENS])[a],
            "criticality": np.where(severe, "high", "low").astype(object),
            "reaction": obj([x.zh if self.zh else x.en for x in t.REACTIONS])[r],
            "recorded_date": self.enc_start[self.enc_first[p]].astype("datetime64[D]"),
        }

    def variants(self) -> Frame:
        """Genetic variants for about 5% of patients, one or two distinct each."""
        rng, n = self.rng, self.n
        tested = rng.random(n) < 0.05
        k = np.where(tested, np.where(rng.random(n) < 0.8, 1, 2), 0)
        p = np.repeat(np.arange(n), k)
        vi = pick(rng, [x.w_cn if self.zh else x.w_us for x in t.VARIANTS], len(p))
        _, first = np.unique(p * 100 + vi, return_index=True)
        first.sort()
        p, vi = p[first], vi[first]
        m = len(p)
        enc = self.any_encounter(p)
        reported = self.enc_start[enc].astype("datetime64[D]") + _days(rng.integers(7, 22, m))
        reported = np.minimum(reported, REF_DATE - np.timedelta64(1, "D"))
        return {
            "_p": p,
            "_variant": vi,
            "gene": obj([x.gene for x in t.VARIANTS])[vi],
            "hgvs": obj([x.hgvs for x in t.VARIANTS])[vi],
            "variant_id": obj([x.rsid for x in t.VARIANTS])[vi],
            "zygosity": np.where(rng.random(m) < 0.85, "heterozygous", "homozygous").astype(object),
            "significance": obj([x.significance for x in t.VARIANTS])[vi],
            "recorded_date": reported,
        }

    def deaths(self, frames: dict[str, Frame]) -> Arr:
        """Death dates for some patients, after everything else recorded about them."""
        rng, n = self.rng, self.n
        last = np.full(n, WINDOW_START.astype(np.int64), dtype=np.int64)
        for name, col in (("encounter", "start_time"), ("encounter", "end_time"), ("medication", "start_date"),
                          ("medication", "end_date"), ("observation", "effective_time"),
                          ("procedure", "performed_time"), ("genetic_variant", "recorded_date")):
            f = frames[name]
            d = f[col].astype("datetime64[D]")
            ok = ~np.isnat(d)
            np.maximum.at(last, f["_p"][ok], d[ok].astype(np.int64))
        open_stay = np.zeros(n, dtype=bool)
        open_stay[frames["encounter"]["_p"][np.isnat(frames["encounter"]["end_time"])]] = True
        risk = np.where(self.age >= 80, 0.06, np.where(self.age >= 65, 0.02, np.where(self.age >= 18, 0.002, 0.0)))
        dies = (rng.random(n) < risk) & ~open_stay
        when = last.astype("datetime64[D]") + _days(np.floor(rng.random(n) * 60))
        dies &= when < REF_DATE
        return np.where(dies, when, NAT_D)


def simulate(rng: np.random.Generator, prof: Profile, people: People) -> Clinical:
    """All clinical tables of one hospital, rows ordered by patient."""
    sim = _Sim(rng, prof, people)
    enc = sim.encounters()
    cond = sim.conditions()
    meds = sim.medications(cond)
    obs = sim.observations(meds, cond)
    frames: dict[str, Frame] = {
        "encounter": enc,
        "condition": sort_by_patient(cond),
        "medication": sort_by_patient(meds),
        "observation": sort_by_patient(obs),
        "procedure": sort_by_patient(sim.procedures()),
        "allergy": sort_by_patient(sim.allergies()),
        "genetic_variant": sort_by_patient(sim.variants()),
    }
    deceased = sim.deaths(frames)
    return Clinical(frames=frames, t2d=sim.t2d, hiv=sim.hiv, psych=sim.psych, deceased=deceased)
