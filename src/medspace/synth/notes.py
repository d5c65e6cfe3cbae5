"""Clinical notes written from templates, with the PHI they embed labelled by character span.

Notes are Chinese for CN hospitals and English for US ones. Each note embeds some of: the
patient's name, national ID, phone, address, record number, dates, e-mail, a portal URL, and the
author's name. Spans are [start, end) offsets in Unicode code points into the text exactly as
written to the source files. AGE spans mark only ages over 89 (the HIPAA identifier); younger ages
appear in the text unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from medspace.synth import terminology as t
from medspace.synth.frames import Frame, obj
from medspace.synth.people import (
    CN_GIVEN_FEMALE,
    CN_GIVEN_MALE,
    CN_SURNAMES,
    US_GIVEN_FEMALE,
    US_GIVEN_MALE,
    US_SURNAMES,
    age_in_years,
)

PHI_TYPES = ("NAME", "ID", "PHONE", "ADDRESS", "DATE", "MRN", "EMAIL", "URL", "AGE")
NOTE_SHARE = 0.33  # of encounters that get a note
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


@dataclass
class Context:
    """What a note template may mention."""

    name: str
    family: str
    given: str
    male: bool
    age: int
    age_months: int
    national_id: str
    mrn: str
    phone: str
    email: str | None
    address: str
    birth: date
    start: date
    end: date | None
    follow_up: date
    department: str
    reason: str
    diagnoses: list[str]
    drugs: list[str]
    doctor: str
    url: str
    pick: list[int]  # random numbers for the template's choices
    flavour: str


class _Writer:
    """Builds a note piece by piece, remembering where each PHI piece went."""

    def __init__(self, single_line: bool) -> None:
        self.parts: list[str] = []
        self.spans: list[tuple[int, int, str]] = []
        self.pos = 0
        self.newline = " " if single_line else "\n"

    def add(self, text: str, phi: str | None = None) -> None:
        """Append text, recording its span if it is PHI."""
        if phi is not None:
            self.spans.append((self.pos, self.pos + len(text), phi))
        self.parts.append(text)
        self.pos += len(text)

    def nl(self) -> None:
        """A line break (a space in single-line notes)."""
        self.add(self.newline)

    def text(self) -> str:
        """The note so far."""
        return "".join(self.parts)


def _date(d: date, style: int, zh: bool) -> str:
    if zh:
        return f"{d.year}年{d.month}月{d.day}日" if style % 2 else d.isoformat()
    return (d.isoformat(), f"{d.month:02d}/{d.day:02d}/{d.year}", f"{MONTHS[d.month - 1]} {d.day}, {d.year}")[style % 3]


def _phone(phone: str, style: int, zh: bool) -> str:
    if zh:
        return (phone, f"{phone[:3]}-{phone[3:7]}-{phone[7:]}", f"+86 {phone[:3]} {phone[3:7]} {phone[7:]}")[style % 3]
    digits = "".join(c for c in phone if c.isdigit())
    return (phone, f"{digits[:3]}-{digits[3:6]}-{digits[6:]}", f"{digits[:3]}.{digits[3:6]}.{digits[6:]}")[style % 3]


def _age_zh(w: _Writer, c: Context) -> None:
    if c.age < 2:
        w.add(f"{c.age_months}个月")
        return
    w.add(str(c.age), "AGE" if c.age > 89 else None)
    w.add("岁")


def _age_en(w: _Writer, c: Context, adjective: bool) -> None:
    if c.age < 2:
        w.add(f"{c.age_months}-month-old" if adjective else f"{c.age_months} months old")
        return
    w.add(str(c.age), "AGE" if c.age > 89 else None)
    w.add("-year-old" if adjective else " years old")


def _zh_discharge(w: _Writer, c: Context) -> None:
    r = c.pick
    w.add("出院小结")
    w.nl()
    w.add("姓名：")
    w.add(c.name, "NAME")
    w.add("　性别：" + ("男" if c.male else "女") + "　年龄：")
    _age_zh(w, c)
    w.nl()
    w.add("身份证号：")
    w.add(c.national_id, "ID")
    w.add("　病案号：")
    w.add(c.mrn, "MRN")
    w.nl()
    w.add("联系电话：")
    w.add(_phone(c.phone, r[0], True), "PHONE")
    w.add("　家庭住址：")
    w.add(c.address, "ADDRESS")
    w.nl()
    w.add("入院日期：")
    w.add(_date(c.start, r[1], True), "DATE")
    if c.end is not None:
        w.add("　出院日期：")
        w.add(_date(c.end, r[1], True), "DATE")
    w.nl()
    w.add("入院诊断：" + ("、".join(c.diagnoses) or "待查"))
    w.nl()
    w.add(f"诊疗经过：患者因“{c.reason}”入院，予" + ("、".join(c.drugs) or "对症支持") + "等治疗，病情好转。")
    w.nl()
    w.add("出院医嘱：按时服药，于")
    w.add(_date(c.follow_up, r[1], True), "DATE")
    w.add("来院复查。")
    if c.email and r[2] % 2:
        w.add("如有疑问请发邮件至")
        w.add(c.email, "EMAIL")
        w.add("。")
    if r[3] % 3 == 0:
        w.add("检查报告可登录")
        w.add(c.url, "URL")
        w.add("查询。")
    w.nl()
    w.add("主治医师：")
    w.add(c.doctor, "NAME")


def _zh_progress(w: _Writer, c: Context) -> None:
    r = c.pick
    w.add(_date(c.start, r[1], True), "DATE")
    w.add(f" {c.department}门诊记录")
    w.nl()
    w.add("患者")
    w.add(c.name, "NAME")
    w.add("，" + ("男" if c.male else "女") + "，")
    _age_zh(w, c)
    w.add("，病案号")
    w.add(c.mrn, "MRN")
    w.add("。")
    w.nl()
    w.add(f"主诉：{c.reason}。")
    w.nl()
    w.add("诊断：" + ("、".join(c.diagnoses) or "无特殊") + "。")
    w.nl()
    w.add("处理：" + ("、".join(c.drugs) or "对症处理") + "。")
    if r[2] % 2:
        w.add("患者电话")
        w.add(_phone(c.phone, r[0], True), "PHONE")
        w.add("。")
    w.nl()
    w.add("记录医师：")
    w.add(c.doctor, "NAME")


def _zh_emergency(w: _Writer, c: Context) -> None:
    r = c.pick
    w.add("急诊记录　就诊时间：")
    w.add(_date(c.start, r[1], True), "DATE")
    w.nl()
    w.add("患者姓名：")
    w.add(c.name, "NAME")
    w.add("，身份证号")
    w.add(c.national_id, "ID")
    w.add("，")
    _age_zh(w, c)
    w.add("。")
    if c.email:
        w.add("邮箱：")
        w.add(c.email, "EMAIL")
        w.add("。")
    w.nl()
    w.add(f"主诉：{c.reason}。初步诊断：" + ("、".join(c.diagnoses) or "待查") + "。")
    w.nl()
    w.add("现住址：")
    w.add(c.address, "ADDRESS")
    w.add("，联系电话：")
    w.add(_phone(c.phone, r[0], True), "PHONE")
    w.add("。")
    w.nl()
    w.add("处理意见：" + ("、".join(c.drugs) or "留观") + "。")
    if r[3] % 2:
        w.add("随访链接：")
        w.add(c.url, "URL")
    w.nl()
    w.add("医师签名：")
    w.add(c.doctor, "NAME")


def _en_name(w: _Writer, c: Context, style: int) -> None:
    if style % 3 == 0:
        w.add(c.name, "NAME")
    elif style % 3 == 1:
        w.add(f"{c.family}, {c.given}", "NAME")
    else:
        w.add("Mr. " if c.male else "Ms. ")
        w.add(c.family, "NAME")


def _en_discharge(w: _Writer, c: Context) -> None:
    r = c.pick
    w.add("DISCHARGE SUMMARY")
    w.nl()
    w.add("Patient: ")
    w.add(f"{c.family}, {c.given}", "NAME")
    w.add("    MRN: ")
    w.add(c.mrn, "MRN")
    w.add("    DOB: ")
    w.add(_date(c.birth, r[1], False), "DATE")
    w.nl()
    w.add("SSN: ")
    w.add(c.national_id, "ID")
    w.nl()
    w.add("Address: ")
    w.add(c.address, "ADDRESS")
    w.nl()
    w.add("Phone: ")
    w.add(_phone(c.phone, r[0], False), "PHONE")
    if c.email:
        w.add("    Email: ")
        w.add(c.email, "EMAIL")
    w.nl()
    w.add("Admitted: ")
    w.add(_date(c.start, r[1], False), "DATE")
    if c.end is not None:
        w.add("    Discharged: ")
        w.add(_date(c.end, r[1], False), "DATE")
    w.nl()
    _en_name(w, c, r[4])
    w.add(" is a ")
    _age_en(w, c, True)
    w.add(f" {'man' if c.male else 'woman'} admitted for {c.reason}. Diagnoses: "
          + (", ".join(c.diagnoses) or "none recorded") + ". Treated with "
          + (", ".join(c.drugs) or "supportive care") + ".")
    w.nl()
    w.add("Follow-up appointment on ")
    w.add(_date(c.follow_up, r[1], False), "DATE")
    w.add(".")
    if r[3] % 3 == 0:
        w.add(" Results are available at ")
        w.add(c.url, "URL")
        w.add(".")
    w.nl()
    w.add("Attending: ")
    w.add(c.doctor, "NAME")
    w.add(", MD")


def _en_progress(w: _Writer, c: Context) -> None:
    r = c.pick
    w.add(f"PROGRESS NOTE - {c.department} - ")
    w.add(_date(c.start, r[1], False), "DATE")
    w.nl()
    _age_en(w, c, True)
    w.add(f" {'male' if c.male else 'female'} seen today for {c.reason}. Patient ")
    _en_name(w, c, r[4])
    w.add(" (MRN ")
    w.add(c.mrn, "MRN")
    w.add(") reports symptoms for several days.")
    w.nl()
    w.add("Assessment: " + (", ".join(c.diagnoses) or "no acute findings") + ".")
    w.nl()
    w.add("Plan: " + (", ".join(c.drugs) or "observation") + ".")
    if r[2] % 2:
        w.add(" Call ")
        w.add(_phone(c.phone, r[0], False), "PHONE")
        w.add(" with questions.")
    w.nl()
    w.add("Electronically signed by ")
    w.add(c.doctor, "NAME")
    w.add(", MD on ")
    w.add(_date(c.end or c.start, r[1], False), "DATE")
    w.add(".")


def _en_emergency(w: _Writer, c: Context) -> None:
    r = c.pick
    w.add("EMERGENCY DEPARTMENT NOTE")
    w.nl()
    w.add("Seen: ")
    w.add(_date(c.start, r[1], False), "DATE")
    w.nl()
    _en_name(w, c, r[4])
    w.add(", ")
    _age_en(w, c, False)
    w.add(f", {'male' if c.male else 'female'}, SSN ")
    w.add(c.national_id, "ID")
    w.add(f", presented with {c.reason}.")
    w.nl()
    w.add("Lives at ")
    w.add(c.address, "ADDRESS")
    w.add("; contact ")
    w.add(_phone(c.phone, r[0], False), "PHONE")
    if c.email:
        w.add(" / ")
        w.add(c.email, "EMAIL")
    w.add(".")
    w.nl()
    w.add("Impression: " + (", ".join(c.diagnoses) or "undifferentiated complaint") + ". Plan: "
          + (", ".join(c.drugs) or "discharge with advice") + ".")
    if r[3] % 2:
        w.nl()
        w.add("Portal: ")
        w.add(c.url, "URL")
    w.nl()
    w.add(c.doctor, "NAME")
    w.add(", MD")


_TEMPLATES = {
    ("cn", "discharge"): _zh_discharge, ("cn", "progress"): _zh_progress, ("cn", "consult"): _zh_emergency,
    ("us", "discharge"): _en_discharge, ("us", "progress"): _en_progress, ("us", "consult"): _en_emergency,
}


def render(c: Context, note_type: str, single_line: bool) -> tuple[str, list[tuple[int, int, str]]]:
    """One note's text and its PHI spans."""
    w = _Writer(single_line)
    _TEMPLATES[(c.flavour, note_type)](w, c)
    return w.text(), w.spans


def _as_date(v: Any) -> date | None:
    return None if v is None or np.isnat(v) else date.fromisoformat(str(v.astype("datetime64[D]")))


def write_notes(rng: np.random.Generator, flavour: str, hid: str, patients: Frame, encounters: Frame,
                conditions: Frame, medications: Frame, doctors: list[str], single_line: bool) -> Frame:
    """Notes for about a third of the encounters; the frame's `_spans` column holds the labels."""
    ne = len(encounters["_p"])
    chosen = np.nonzero(rng.random(ne) < NOTE_SHARE)[0]
    k = len(chosen)
    picks = rng.integers(0, 1 << 30, (k, 6))
    doc = rng.integers(0, len(doctors), k)
    follow = rng.integers(7, 61, k)
    wanted = set(chosen.tolist())
    dx: dict[int, list[str]] = {}
    for e, d in zip(conditions["_enc"].tolist(), conditions["display"].tolist(), strict=True):
        if e in wanted:
            dx.setdefault(e, []).append(d)
    rx: dict[int, list[str]] = {}
    for e, d in zip(medications["_enc"].tolist(), medications["display"].tolist(), strict=True):
        if e in wanted and d not in rx.get(e, []):
            rx.setdefault(e, []).append(d)

    zh = flavour == "cn"
    p = encounters["_p"][chosen]
    start = encounters["start_time"][chosen]
    end = encounters["end_time"][chosen]
    cls = encounters["_class"][chosen]
    age = age_in_years(patients["birth_date"][p], start)
    months = ((start.astype("datetime64[D]") - patients["birth_date"][p]).astype(np.int64) / 30.44).astype(np.int64)
    kinds = np.where(cls == 2, "discharge", np.where(cls == 1, "consult", "progress"))
    # A stay still open at the extract date has no discharge summary yet.
    kinds = np.where((kinds == "discharge") & np.isnat(end), "progress", kinds)
    lang = "zh" if zh else "en"
    texts: list[str] = []
    spans: list[list[tuple[int, int, str]]] = []
    authored = np.where(np.isnat(end), start + np.timedelta64(30 * 60, "s"), end)
    cols = {f: patients[f][p].tolist() for f in ("family_name", "given_name", "sex", "national_id", "mrn", "phone",
                                                  "email", "address_line", "district", "city", "province",
                                                  "postal_code")}
    for i in range(k):
        e = int(chosen[i])
        s_d = _as_date(start[i])
        assert s_d is not None
        e_d = _as_date(end[i])
        fam, giv = cols["family_name"][i], cols["given_name"][i]
        if zh:
            prov, city = cols["province"][i], cols["city"][i]
            address = (city if prov == city else prov + city) + cols["district"][i] + cols["address_line"][i]
        else:
            address = f"{cols['address_line'][i]}, {cols['city'][i]}, {cols['province'][i]} {cols['postal_code'][i]}"
        b = _as_date(patients["birth_date"][p[i]])
        assert b is not None
        ctx = Context(
            name=fam + giv if zh else f"{giv} {fam}", family=fam, given=giv, male=cols["sex"][i] == "male",
            age=int(age[i]), age_months=int(months[i]), national_id=cols["national_id"][i], mrn=cols["mrn"][i],
            phone=cols["phone"][i], email=cols["email"][i], address=address, birth=b, start=s_d, end=e_d,
            follow_up=date.fromordinal((e_d or s_d).toordinal() + int(follow[i])),
            department=str(encounters["department"][e]), reason=str(encounters["reason"][e]),
            diagnoses=dx.get(e, []), drugs=rx.get(e, []),
            doctor=doctors[int(doc[i])], url=f"https://portal.{hid}.medspace.example/records/{cols['mrn'][i]}",
            pick=picks[i].tolist(), flavour=flavour,
        )
        text, sp = render(ctx, str(kinds[i]), single_line)
        texts.append(text)
        spans.append(sp)
    li = 1 if zh else 0
    type_names = {key: (v[2] if li else v[1]) for key, v in t.NOTE_TYPES.items()}
    return {
        "_p": p,
        "_enc": chosen,
        "_kind": kinds.astype(object),
        "_spans": obj(spans),
        "note_type": obj([type_names[str(x)] for x in kinds.tolist()]),
        "language": np.full(k, lang, dtype=object),
        "authored_time": authored,
        "author": obj(doctors)[doc] if k else np.empty(0, dtype=object),
        "text": obj(texts),
    }


def doctor_names(rng: np.random.Generator, flavour: str, n: int = 40) -> list[str]:
    """A hospital's staff: n doctor names of the hospital's flavour."""
    out: list[str] = []
    for _ in range(n):
        a, b, c, d = (int(x) for x in rng.integers(0, 1 << 30, 4))
        if flavour == "cn":
            chars = CN_GIVEN_MALE if a % 2 else CN_GIVEN_FEMALE
            out.append(CN_SURNAMES[b % 40][0] + chars[c % len(chars)][0] + chars[d % len(chars)][0])
        else:
            given = US_GIVEN_MALE if a % 2 else US_GIVEN_FEMALE
            out.append(f"{given[c % len(given)]} {US_SURNAMES[b % len(US_SURNAMES)]}")
    return out

