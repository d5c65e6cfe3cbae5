"""HL7 v2.5 output: ADT (A01/A04/A08/A03), ORU^R01 and RDE^O11 feeds, one file per feed.

Framing: segments end with a carriage return (\\r) and every message is followed by a line feed
(\\n), so each message ends in "\\r\\n" and a file is one message per "line". No MLLP bytes.
MSH-18 is "UNICODE UTF-8" and the files are UTF-8. Coded fields are CE code^text^system with
system names I10, I10C, SCT, LN, WHOATC, RXNORM; timestamps are YYYYMMDDHHMMSS+ZZZZ.

What HL7 v2 carries poorly goes to a FHIR NDJSON side file instead (see generate.py): notes,
genetic variants and the study drug's orders with their treatment response.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from medspace.synth import terminology as t
from medspace.synth.frames import Arr, Frame, hl7_dates, hl7_timestamps, texts
from medspace.synth.profiles import Profile

V2_SYSTEM = {"ICD-10": "I10", "ICD-10-CM": "I10C", "SNOMED": "SCT", "LOINC": "LN", "ATC": "WHOATC",
             "RxNorm": "RXNORM"}
_ESCAPES = (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\"))
ORDER_STATUS = {"active": "IP", "completed": "CM", "stopped": "DC"}
ALLERGY_TYPE = {"medication": ("DA", "Drug allergy"), "food": ("FA", "Food allergy"),
                "environment": ("EA", "Environmental allergy")}
SEVERITY = {"high": ("SV", "Severe"), "low": ("MI", "Mild")}
MARITAL_DISPLAY = {"S": "Never Married", "M": "Married", "D": "Divorced", "W": "Widowed"}  # HL7 table 0002
INSURANCE_TYPES_CN = ("城镇职工基本医疗保险", "城乡居民基本医疗保险", "商业保险", "自费")
INSURANCE_TYPES_US = ("Commercial", "Medicare", "Medicaid", "Self-pay")


def esc(value: str | None) -> str:
    """A value with HL7 delimiters escaped ("" for None)."""
    if not value:
        return ""
    if any(c in value for c in "\\|^&~"):
        for a, b in _ESCAPES:
            value = value.replace(a, b)
    return value


def segment(name: str, fields: Iterable[str]) -> str:
    """A segment from its fields 1..n, trailing empty fields dropped."""
    f = list(fields)
    while f and f[-1] == "":
        f.pop()
    return name + "|" + "|".join(f)


def _num(value: float, decimals: int) -> str:
    return f"{value:.{decimals}f}"


class Feeds:
    """Builds the three HL7 v2 feeds of one hospital."""

    def __init__(self, prof: Profile, frames: dict[str, Frame], extra: Frame, rng: np.random.Generator) -> None:
        self.prof = prof
        self.f = frames
        self.extra = extra
        self.rng = rng
        self.zh = prof.flavour == "cn"
        self.tz = prof.tz
        self.hid = prof.id.upper()
        self.country = "CHN" if self.zh else "USA"
        self.n = len(frames["patient"]["id"])
        self.pid = self._pid_segments()
        self.counter = {"ADT": 0, "ORU": 0, "RDE": 0}

    def _msh(self, app: str, ts: str, mtype: str, feed: str) -> str:
        self.counter[feed] += 1
        control = f"{self.hid}{feed}{self.counter[feed]:08d}"
        return segment("MSH", ["^~\\&", app, self.hid, "MEDSPACE", "NODE", ts, "", mtype, control, "P", "2.5", "",
                               "", "", "", self.country, "UNICODE UTF-8"])

    def _pid_segments(self) -> list[str]:
        f = self.f["patient"]
        cols = {k: texts(f[k]) for k in ("mrn", "national_id", "insurance_id", "passport_id", "family_name",
                                         "given_name", "sex", "phone", "email", "address_line", "district", "city",
                                         "province", "postal_code")}
        birth = hl7_dates(f["birth_date"])
        death = hl7_dates(f["deceased_date"])
        eth_code = texts(self.extra["ethnicity_code"])
        eth_text = texts(f["ethnicity"])
        hispanic = self.extra["hispanic"].tolist()
        marital = texts(self.extra["marital"])
        out = []
        for i in range(self.n):
            c = {k: v[i] for k, v in cols.items()}
            ids = [f"{esc(c['mrn'])}^^^{self.hid}^MR"]
            if self.zh:
                ids.append(f"{c['national_id']}^^^CHN^NNCHN")
            else:
                ids.append(f"{c['national_id']}^^^USSSA^SS")
            if c["insurance_id"]:
                ids.append(f"{c['insurance_id']}^^^{self.hid}INS^MB")
            if c["passport_id"]:
                ids.append(f"{c['passport_id']}^^^{self.country}^PPN")
            given = c["given_name"].split(" ", 1)
            name = f"{esc(c['family_name'])}^{esc(given[0])}^{esc(given[1]) if len(given) > 1 else ''}^^^^L"
            address = (f"{esc(c['address_line'])}^^{esc(c['city'])}^{esc(c['province'])}^{c['postal_code']}^"
                       f"{self.country}^H^^{esc(c['district'])}")
            if self.zh:
                phones = [f"^PRN^CP^^86^^{c['phone']}"]
            else:
                digits = "".join(ch for ch in c["phone"] if ch.isdigit())
                phones = [f"{c['phone']}^PRN^PH^^1^{digits[:3]}^{digits[3:]}"]
            if c["email"]:
                phones.append(f"^NET^Internet^{esc(c['email'])}")
            fields = [""] * 30
            fields[0] = "1"
            fields[2] = "~".join(ids)
            fields[4] = name
            fields[6] = birth[i]
            fields[7] = "M" if c["sex"] == "male" else "F"
            fields[10] = address
            fields[12] = "~".join(phones)
            fields[15] = f"{marital[i]}^{MARITAL_DISPLAY[marital[i]]}^HL70002"
            if self.zh:
                fields[21] = f"{eth_code[i]}^{esc(eth_text[i])}^GB3304"
            else:
                race = eth_text[i].split("; ")[0]
                fields[9] = f"{eth_code[i]}^{esc(race)}^CDCREC"
                fields[18] = c["national_id"]
                fields[21] = "2135-2^Hispanic or Latino^CDCREC" if hispanic[i] else \
                    "2186-5^Not Hispanic or Latino^CDCREC"
            if death[i]:
                fields[28] = death[i]
                fields[29] = "Y"
            out.append(segment("PID", fields))
        return out

    # --- ADT ---

    def adt(self) -> str:
        """The ADT feed: A01 (inpatient) or A04 (outpatient, emergency) per encounter with its
        diagnoses, procedures and (first visit) allergies; some A08 updates; A03 at discharge."""
        enc = self.f["encounter"]
        ne = len(enc["id"])
        start = hl7_timestamps(enc["start_time"], self.tz)
        end = hl7_timestamps(enc["end_time"], self.tz)
        ids, p_of, cls = texts(enc["id"]), enc["_p"].tolist(), enc["_class"].tolist()
        dept, reason, disp = texts(enc["department"]), texts(enc["reason"]), enc["_disp"].tolist()
        dg1 = self._by_encounter("condition", ne, self._dg1)
        pr1 = self._by_encounter("procedure", ne, self._pr1)
        al1 = self._allergies()
        first_enc = np.searchsorted(enc["_p"], np.arange(self.n)).tolist()
        update = (self.rng.random(ne) < 0.15).tolist()
        zpi = (self.rng.random(ne) < 0.3).tolist()
        ins = self.rng.integers(0, 4, ne).tolist()
        out: list[str] = []
        for e in range(ne):
            p = p_of[e]
            inpatient = cls[e] == 2
            v2 = t.ENCOUNTER_CLASSES[cls[e]][1]
            pv1 = [""] * 45
            pv1[0], pv1[1] = "1", v2
            pv1[2] = f"{esc(dept[e])}^^^{self.hid}"
            pv1[18] = ids[e]
            pv1[43] = start[e]
            if not inpatient:
                pv1[44] = end[e]
            pv2 = segment("PV2", ["", "", f"^{esc(reason[e])}"])
            event = "A01" if inpatient else "A04"
            segs = [self._msh("HIS", start[e], f"ADT^{event}^ADT_A01", "ADT"), segment("EVN", [event, start[e]]),
                    self.pid[p], segment("PV1", pv1), pv2]
            if first_enc[p] == e:
                segs.extend(al1[p])
            segs.extend(dg1[e])
            segs.extend(pr1[e])
            if zpi[e]:
                kinds = INSURANCE_TYPES_CN if self.zh else INSURANCE_TYPES_US
                segs.append(segment("ZPI", ["1", esc(kinds[ins[e]]), "N"]))
            out.append("\r".join(segs) + "\r\n")
            if update[e]:
                segs = [self._msh("HIS", start[e], "ADT^A08^ADT_A01", "ADT"), segment("EVN", ["A08", start[e]]),
                        self.pid[p], segment("PV1", pv1)]
                out.append("\r".join(segs) + "\r\n")
            if inpatient and end[e]:
                pv1[35] = t.DISPOSITIONS[disp[e]][1] if disp[e] >= 0 else ""
                pv1[44] = end[e]
                segs = [self._msh("HIS", end[e], "ADT^A03^ADT_A03", "ADT"), segment("EVN", ["A03", end[e]]),
                        self.pid[p], segment("PV1", pv1)]
                out.append("\r".join(segs) + "\r\n")
        return "".join(out)

    def _by_encounter(self, table: str, ne: int, build: Callable[[Frame], list[str]]) -> list[list[str]]:
        f = self.f[table]
        out: list[list[str]] = [[] for _ in range(ne)]
        rows = build(f)
        for e, seg in zip(f["_enc"].tolist(), rows, strict=True):
            out[e].append(seg)
        # Set IDs count within each encounter's segments.
        for segs in out:
            for k, s in enumerate(segs):
                name, rest = s.split("|", 1)
                segs[k] = f"{name}|{k + 1}|{rest}"
        return out

    def _dg1(self, f: Frame) -> list[str]:
        system = V2_SYSTEM[str(f["code_system"][0])] if len(f["_p"]) else ""
        onset, recorded = hl7_dates(f["onset_date"]), hl7_dates(f["recorded_date"])
        out = []
        enc_class = self.f["encounter"]["_class"][f["_enc"]].tolist()
        for i, (cid, code, display, cls) in enumerate(zip(texts(f["id"]), texts(f["code"]), texts(f["display"]),
                                                          enc_class, strict=True)):
            fields = [""] * 19  # DG1-2 .. DG1-20 (DG1-1, the set ID, is added per message)
            fields[1] = f"{code}^{esc(display)}^{system}"
            fields[3] = onset[i]  # DG1-5 diagnosis date/time
            fields[4] = "A" if cls == 2 else "F"
            fields[17] = recorded[i]  # DG1-19 attestation date/time
            fields[18] = cid
            out.append(segment("DG1", fields))
        return out

    def _pr1(self, f: Frame) -> list[str]:
        when = hl7_timestamps(f["performed_time"], self.tz)
        out = []
        for i, (pid, code, display) in enumerate(zip(texts(f["id"]), texts(f["code"]), texts(f["display"]),
                                                      strict=True)):
            fields = [""] * 18  # PR1-2 .. PR1-19
            fields[1] = f"{code}^{esc(display)}^SCT"
            fields[3] = when[i]
            fields[17] = pid
            out.append(segment("PR1", fields))
        return out

    def _allergies(self) -> list[list[str]]:
        f = self.f["allergy"]
        recorded = hl7_dates(f["recorded_date"])
        out: list[list[str]] = [[] for _ in range(self.n)]
        for i, (p, code, display, cat, crit, reaction) in enumerate(zip(
                f["_p"].tolist(), texts(f["code"]), texts(f["display"]), texts(f["category"]), texts(f["criticality"]),
                texts(f["reaction"]), strict=True)):
            kind, sev = ALLERGY_TYPE[cat], SEVERITY[crit]
            k = len(out[p]) + 1
            out[p].append(segment("AL1", [str(k), f"{kind[0]}^{kind[1]}^HL70127", f"{code}^{esc(display)}^SCT",
                                          f"{sev[0]}^{sev[1]}^HL70128", esc(reaction), recorded[i]]))
        return out

    def _pv1_short(self, e: int) -> str:
        enc = self.f["encounter"]
        v2 = t.ENCOUNTER_CLASSES[int(enc["_class"][e])][1]
        fields = [""] * 19
        fields[0], fields[1] = "1", v2
        fields[2] = f"{esc(str(enc['department'][e]))}^^^{self.hid}"
        fields[18] = str(enc["id"][e])
        return segment("PV1", fields)

    # --- ORU ---

    def oru(self) -> str:
        """The ORU^R01 feed: one message per encounter (or per result without one), one OBR per
        category of results, one OBX per result."""
        # One message per encounter: the frame lists a patient's vitals before their labs, so
        # regroup by (patient, encounter), keeping each panel's rows adjacent.
        obs = self.f["observation"]
        m = len(obs["_p"])
        f = {k: v[np.lexsort((np.arange(m), obs["_enc"], obs["_p"]))] for k, v in obs.items()}
        when = hl7_timestamps(f["effective_time"], self.tz)
        p_of, enc_of = f["_p"].tolist(), f["_enc"].tolist()
        cols = list(zip(texts(f["code"]), texts(f["display"]), texts(f["category"]), f["value_num"].tolist(),
                        texts(f["value_text"]), texts(f["unit"]), texts(f["ref_low"]), texts(f["ref_high"]),
                        texts(f["interpretation"]), f["_test"].tolist(), f["_positive"].tolist(), strict=True))
        out: list[str] = []
        order_no = 0
        i = 0
        while i < m:
            j = i + 1
            while j < m and enc_of[i] >= 0 and p_of[j] == p_of[i] and enc_of[j] == enc_of[i]:
                j += 1
            p, e = p_of[i], enc_of[i]
            segs = [self._msh("LIS", when[i], "ORU^R01^ORU_R01", "ORU"), self.pid[p]]
            if e >= 0:
                segs.append(self._pv1_short(e))
            by_cat: dict[str, list[int]] = {}
            for k in range(i, j):
                by_cat.setdefault(cols[k][2], []).append(k)
            for n_obr, (cat, rows) in enumerate(by_cat.items(), 1):
                order_no += 1
                first = cols[rows[0]]
                service = (t.VITALS_PANEL if cat == "vital-signs" else t.LAB_PANEL if cat == "laboratory"
                           else (first[0], first[1]))
                obr = [""] * 25
                obr[0] = str(n_obr)
                obr[1] = f"{self.hid}-PL{order_no:07d}"
                obr[2] = f"{self.hid}-FL{order_no:07d}"
                obr[3] = f"{service[0]}^{esc(service[1])}^LN"
                obr[6] = when[rows[0]]
                obr[24] = "F"
                segs.append(segment("OBR", obr))
                for n_obx, k in enumerate(rows, 1):
                    code, display, _, value, vtext, unit, lo, hi, interp, test, positive = cols[k]
                    dec = t.TESTS[test].decimals_cn if self.zh else t.TESTS[test].decimals_us
                    if vtext is not None:
                        coded = t.POSITIVE if positive else t.NEGATIVE
                        vtype, v = "CE", f"{coded[0]}^{esc(vtext)}^SCT"
                    else:
                        vtype, v = "NM", _num(value, dec)
                    rng_text = f"{_num(lo, dec)}-{_num(hi, dec)}" if lo is not None else ""
                    segs.append(segment("OBX", [str(n_obx), vtype, f"{code}^{esc(display)}^LN", "", v,
                                                f"{esc(unit)}^{esc(unit)}^UCUM" if unit else "", rng_text,
                                                interp or "", "", "", "F", "", "", when[k]]))
            out.append("\r".join(segs) + "\r\n")
            i = j
        return "".join(out)

    # --- RDE ---

    def rde(self, rows: Arr) -> str:
        """The RDE^O11 feed: one pharmacy order message per medication row given."""
        f = self.f["medication"]
        system = V2_SYSTEM[str(f["code_system"][0])] if len(f["_p"]) else ""
        start = hl7_dates(f["start_date"][rows])
        end = hl7_dates(f["end_date"][rows])
        start_ts = hl7_timestamps(f["start_date"][rows].astype("datetime64[s]") + np.timedelta64(9 * 3600, "s"),
                                  self.tz)
        out: list[str] = []
        for i, (mid, p, e, drug, code, display, status, dose, unit, freq) in enumerate(zip(
                texts(f["id"][rows]), f["_p"][rows].tolist(), f["_enc"][rows].tolist(), f["_drug"][rows].tolist(),
                texts(f["code"][rows]), texts(f["display"][rows]), texts(f["status"][rows]),
                f["dose_value"][rows].tolist(), texts(f["dose_unit"][rows]), texts(f["frequency"][rows]),
                strict=True)):
            route = t.ROUTES[t.DRUGS[drug].route]
            segs = [self._msh("CPOE", start_ts[i], "RDE^O11^RDE_O11", "RDE"), self.pid[p]]
            if e >= 0:
                segs.append(self._pv1_short(e))
            segs.append(segment("ORC", ["NW", f"{mid}^{self.hid}", "", "", ORDER_STATUS[status], "", "", "",
                                        start_ts[i]]))
            segs.append(segment("RXE", [f"^{freq}^^{start[i]}^{end[i]}", f"{code}^{esc(display)}^{system}",
                                        f"{dose:g}", "", f"{esc(unit)}^{esc(unit)}^UCUM"]))
            segs.append(segment("TQ1", ["1", "", freq, "", "", "", start[i], end[i]]))
            segs.append(segment("RXR", [f"{route[0]}^{esc(route[3] if self.zh else route[2])}^HL70162"]))
            out.append("\r".join(segs) + "\r\n")
        return "".join(out)


def write(path: Path, text: str) -> bool:
    """Write one feed (UTF-8); False (and no file) when it is empty."""
    if not text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return True

