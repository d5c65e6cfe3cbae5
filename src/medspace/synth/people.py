"""Synthetic people, Chinese or US flavoured: names, national IDs, phones, e-mail, addresses, birth dates.

Everything is drawn for all people of a batch at once with numpy; strings are assembled from the
drawn indices. National IDs are unique within a batch, and batches whose `id_block`s differ can
never produce the same ID (the block fixes part of the GB 11643 sequence number or of the SSN's
group number), so patients shared between hospitals are the only IDs hospitals have in common.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from medspace.synth import gb11643
from medspace.synth.profiles import AGE_BANDS, AGE_MIXES, CN_REGIONS, RESTRICTED_PLACES, US_REGIONS, UsPlace

REF_DATE = np.datetime64("2025-01-01", "D")  # the data extract's date: ages are counted to it
Arr = npt.NDArray[Any]

# Surname, pinyin, relative frequency (roughly the national ranking).
CN_SURNAMES: tuple[tuple[str, str, float], ...] = (
    ("王", "wang", 7.1), ("李", "li", 7.0), ("张", "zhang", 6.7), ("刘", "liu", 5.4), ("陈", "chen", 4.5),
    ("杨", "yang", 3.1), ("黄", "huang", 2.2), ("赵", "zhao", 2.0), ("吴", "wu", 2.0), ("周", "zhou", 1.9),
    ("徐", "xu", 1.5), ("孙", "sun", 1.4), ("马", "ma", 1.3), ("朱", "zhu", 1.3), ("胡", "hu", 1.2),
    ("郭", "guo", 1.2), ("何", "he", 1.1), ("高", "gao", 1.1), ("林", "lin", 1.1), ("罗", "luo", 0.9),
    ("郑", "zheng", 0.9), ("梁", "liang", 0.8), ("谢", "xie", 0.7), ("宋", "song", 0.6), ("唐", "tang", 0.6),
    ("许", "xu", 0.5), ("韩", "han", 0.5), ("冯", "feng", 0.5), ("邓", "deng", 0.5), ("曹", "cao", 0.5),
    ("彭", "peng", 0.5), ("曾", "zeng", 0.4), ("肖", "xiao", 0.4), ("田", "tian", 0.4), ("董", "dong", 0.4),
    ("袁", "yuan", 0.4), ("潘", "pan", 0.4), ("于", "yu", 0.3), ("蒋", "jiang", 0.3), ("蔡", "cai", 0.3),
    ("余", "yu", 0.3), ("杜", "du", 0.3), ("叶", "ye", 0.3), ("程", "cheng", 0.3), ("苏", "su", 0.3),
    ("魏", "wei", 0.3), ("吕", "lv", 0.3), ("丁", "ding", 0.3), ("任", "ren", 0.3), ("沈", "shen", 0.3),
    ("姚", "yao", 0.2), ("卢", "lu", 0.2), ("姜", "jiang", 0.2), ("崔", "cui", 0.2), ("钟", "zhong", 0.2),
    ("谭", "tan", 0.2), ("陆", "lu", 0.2), ("汪", "wang", 0.2), ("范", "fan", 0.2), ("金", "jin", 0.2),
    ("欧阳", "ouyang", 0.05), ("司马", "sima", 0.02),
)
CN_GIVEN_MALE: tuple[tuple[str, str], ...] = (
    ("伟", "wei"), ("强", "qiang"), ("磊", "lei"), ("军", "jun"), ("洋", "yang"), ("勇", "yong"), ("杰", "jie"),
    ("涛", "tao"), ("明", "ming"), ("超", "chao"), ("刚", "gang"), ("平", "ping"), ("辉", "hui"), ("鹏", "peng"),
    ("华", "hua"), ("飞", "fei"), ("鑫", "xin"), ("波", "bo"), ("斌", "bin"), ("宇", "yu"), ("浩", "hao"),
    ("凯", "kai"), ("健", "jian"), ("俊", "jun"), ("帆", "fan"), ("旭", "xu"), ("宁", "ning"), ("龙", "long"),
    ("建", "jian"), ("国", "guo"), ("志", "zhi"), ("文", "wen"), ("博", "bo"), ("天", "tian"), ("然", "ran"),
    ("轩", "xuan"), ("子", "zi"), ("晨", "chen"), ("睿", "rui"), ("泽", "ze"),
)
CN_GIVEN_FEMALE: tuple[tuple[str, str], ...] = (
    ("芳", "fang"), ("娜", "na"), ("敏", "min"), ("静", "jing"), ("丽", "li"), ("艳", "yan"), ("娟", "juan"),
    ("霞", "xia"), ("秀", "xiu"), ("英", "ying"), ("玲", "ling"), ("婷", "ting"), ("雪", "xue"), ("慧", "hui"),
    ("洁", "jie"), ("琳", "lin"), ("倩", "qian"), ("颖", "ying"), ("晶", "jing"), ("红", "hong"), ("梅", "mei"),
    ("兰", "lan"), ("萍", "ping"), ("燕", "yan"), ("丹", "dan"), ("璐", "lu"), ("佳", "jia"), ("怡", "yi"),
    ("欣", "xin"), ("悦", "yue"), ("涵", "han"), ("萱", "xuan"), ("诗", "shi"), ("雨", "yu"), ("思", "si"),
    ("子", "zi"), ("晨", "chen"), ("文", "wen"),
)
CN_STREETS = (
    "中山路", "人民路", "解放路", "建设路", "和平路", "新华路", "长江路", "胜利路", "文化路", "朝阳路",
    "青年路", "光明街", "幸福路", "学院路", "东风路", "建国路", "团结路", "育才路", "花园路", "振兴街",
)
CN_MOBILE_PREFIXES = (
    130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 150, 151, 152, 153, 155, 156, 157, 158, 159, 166,
    170, 171, 173, 175, 176, 177, 178, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 191, 193, 195,
    196, 198, 199,
)
# GB 3304 ethnic groups: code, name, weight.
CN_ETHNIC: tuple[tuple[str, str, float], ...] = (
    ("01", "汉族", 0.915), ("08", "壮族", 0.014), ("03", "回族", 0.008), ("11", "满族", 0.008),
    ("05", "维吾尔族", 0.008), ("06", "苗族", 0.008), ("07", "彝族", 0.007), ("15", "土家族", 0.007),
    ("04", "藏族", 0.005), ("02", "蒙古族", 0.005), ("09", "布依族", 0.015),
)

US_SURNAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
    "Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores",
    "Green", "Adams", "Nelson", "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts",
    "O'Brien", "Kim", "Patel", "Murphy", "Cooper",
)
US_GIVEN_MALE = (
    "James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Christopher",
    "Charles", "Daniel", "Matthew", "Anthony", "Mark", "Donald", "Steven", "Andrew", "Paul", "Joshua",
    "Kevin", "Brian", "George", "Timothy", "Ronald", "Jason", "Edward", "Jeffrey", "Ryan", "Jacob",
    "Ethan", "Noah", "Liam", "Luis", "Carlos",
)
US_GIVEN_FEMALE = (
    "Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
    "Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Kimberly", "Emily", "Donna", "Michelle",
    "Carol", "Amanda", "Melissa", "Deborah", "Stephanie", "Olivia", "Emma", "Ava", "Sophia", "Isabella",
    "Mia", "Maria", "Grace",
)
US_STREETS = (
    "Oak", "Maple", "Pine", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Main", "Church", "High",
    "Walnut", "Chestnut", "Spring", "Sunset", "Highland", "Jefferson", "Lincoln", "Madison", "Franklin", "River",
)
US_SUFFIXES = ("St", "Ave", "Rd", "Dr", "Ln", "Blvd", "Ct", "Way")
# OMB race categories (CDC race code, text) and weights; Hispanic ethnicity is drawn separately.
US_RACES: tuple[tuple[str, str, float], ...] = (
    ("2106-3", "White", 0.68), ("2054-5", "Black or African American", 0.14), ("2028-9", "Asian", 0.07),
    ("1002-5", "American Indian or Alaska Native", 0.02), ("2076-8", "Native Hawaiian or Other Pacific Islander",
                                                           0.01),
    ("2131-1", "Other Race", 0.08),
)
HISPANIC = ("2135-2", "Hispanic or Latino")
NOT_HISPANIC = ("2186-5", "Not Hispanic or Latino")
EMAIL_DOMAINS = ("example.com", "example.net", "example.org")
# Marital status (HL7 v3 code): weights for people under 22, 22-39, 40-69 and 70+.
MARITAL_CODES = ("S", "M", "D", "W")
MARITAL_WEIGHTS = ((1.0, 0.0, 0.0, 0.0), (0.55, 0.40, 0.05, 0.0), (0.10, 0.72, 0.12, 0.06),
                   (0.04, 0.55, 0.08, 0.33))


@dataclass
class People:
    """A batch of people, one array element per person (object arrays hold str or None)."""

    family: Arr
    given: Arr
    sex: Arr  # "male" / "female"
    birth: Arr  # datetime64[D]
    national_id: Arr
    phone: Arr
    email: Arr
    address_line: Arr
    district: Arr
    city: Arr
    province: Arr
    postal_code: Arr
    country: Arr
    marital: Arr  # HL7 v3 MaritalStatus code
    ethnicity: Arr  # text
    ethnicity_code: Arr  # GB 3304 code (CN) or CDC race code (US)
    hispanic: Arr  # bool; False for CN
    insurance_id: Arr
    passport_id: Arr

    def __len__(self) -> int:
        return len(self.family)

    def take(self, idx: Arr) -> People:
        """The people at the given positions."""
        return People(**{f.name: getattr(self, f.name)[idx] for f in dataclasses.fields(self)})

    @staticmethod
    def concat(parts: list[People]) -> People:
        """Several batches as one."""
        return People(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                         for f in dataclasses.fields(People)})


def _obj(items: list[Any] | tuple[Any, ...]) -> Arr:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


def _pick(rng: np.random.Generator, weights: list[float] | tuple[float, ...], n: int) -> Arr:
    w = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(w), size=n, p=w / w.sum())


def _digits(rng: np.random.Generator, n: int, k: int) -> list[str]:
    """n strings of k random digits."""
    return [f"{v:0{k}d}" for v in rng.integers(0, 10**k, n).tolist()]


def draw_birth_dates(rng: np.random.Generator, n: int, age_mix: str) -> Arr:
    """Birth dates (datetime64[D]) for an age mix of AGE_MIXES, ages counted to REF_DATE."""
    band = _pick(rng, AGE_MIXES[age_mix], n)
    lo = np.array([b[0] for b in AGE_BANDS], dtype=np.float64)[band]
    hi = np.array([b[1] for b in AGE_BANDS], dtype=np.float64)[band]
    days = np.floor((lo + rng.random(n) * (hi - lo)) * 365.25).astype(np.int64)
    return REF_DATE - np.maximum(days, 30).astype("timedelta64[D]")


def age_in_years(birth: Arr, at: Arr | np.datetime64) -> Arr:
    """Completed years of age at a date (or at each of many dates)."""
    at_d = np.asarray(at).astype("datetime64[D]")
    b = birth.astype("datetime64[D]")

    def ymd(d: Arr) -> tuple[Arr, Arr, Arr]:
        """Year, month and day (from 0) of dates."""
        y = d.astype("datetime64[Y]").astype(np.int64)
        m = d.astype("datetime64[M]").astype(np.int64) % 12
        day = (d - d.astype("datetime64[M]")).astype(np.int64)
        return y, m, day

    by, bm, bd = ymd(b)
    ay, am, ad = ymd(at_d)
    before = (am < bm) | ((am == bm) & (ad < bd))
    return np.asarray(ay - by - before.astype(np.int64))


def _marital(rng: np.random.Generator, age: Arr) -> Arr:
    group = np.digitize(age, [22, 40, 70])
    out = np.empty(len(age), dtype=object)
    for g, w in enumerate(MARITAL_WEIGHTS):
        m = group == g
        out[m] = _obj(MARITAL_CODES)[_pick(rng, w, int(m.sum()))]
    return out


def _unique_keys(rng: np.random.Generator, keys: Arr, redraw: Any) -> Arr:
    """Redraw the part of an ID that `redraw(rng, positions)` returns until all keys are distinct."""
    for _ in range(100):
        _, first = np.unique(keys, return_index=True)
        dup = np.ones(len(keys), dtype=bool)
        dup[first] = False
        if not dup.any():
            return keys
        pos = np.nonzero(dup)[0]
        keys[pos] = redraw(rng, pos)
    raise RuntimeError("could not draw distinct national IDs: the ID block is too small")


def draw_people(rng: np.random.Generator, n: int, flavour: str, home: int, age_mix: str,
                id_block: tuple[int, int]) -> People:
    """n people of a flavour ("cn"/"us") living mostly in region `home`, IDs drawn from `id_block`."""
    if flavour == "cn":
        return _draw_cn(rng, n, home, age_mix, id_block)
    return _draw_us(rng, n, home, age_mix, id_block)


def _draw_cn(rng: np.random.Generator, n: int, home: int, age_mix: str, id_block: tuple[int, int]) -> People:
    male = rng.random(n) < 0.5
    birth = draw_birth_dates(rng, n, age_mix)
    age = age_in_years(birth, REF_DATE)

    # Residence: mostly the hospital's own city, some from the other cities.
    areas = [(code, name, r) for r, reg in enumerate(CN_REGIONS) for code, name in reg.districts]
    area_region = np.array([a[2] for a in areas])
    local = np.nonzero(area_region == home % len(CN_REGIONS))[0]
    other = np.nonzero(area_region != home % len(CN_REGIONS))[0]
    where = np.where(rng.random(n) < 0.85, local[rng.integers(0, len(local), n)],
                     other[rng.integers(0, len(other), n)])
    area_codes = np.array([a[0] for a in areas], dtype=np.int64)[where]
    region = area_region[where]

    # Sequence numbers: the block fixes the leading digits; the last digit's parity is the sex.
    lo, hi = id_block
    pairs = (hi - lo + 1) // 2

    def seq(r: np.random.Generator, pos: Arr) -> Arr:
        """Bodies with fresh sequence numbers for the given positions."""
        s = lo + 2 * r.integers(0, pairs, len(pos)) + male[pos].astype(np.int64)
        return gb11643.bodies(area_codes[pos], birth[pos], s)

    body = _unique_keys(rng, seq(rng, np.arange(n)), seq)
    national_id = _obj(gb11643.make_many(body))

    sur = _pick(rng, [s[2] for s in CN_SURNAMES], n)
    family = _obj([CN_SURNAMES[i][0] for i in sur.tolist()])
    two = rng.random(n) < 0.7
    g1 = rng.integers(0, 1 << 30, n)
    g2 = rng.integers(0, 1 << 30, n)
    given_l: list[str] = []
    given_py: list[str] = []
    for m, t, a, b in zip(male.tolist(), two.tolist(), g1.tolist(), g2.tolist(), strict=True):
        chars = CN_GIVEN_MALE if m else CN_GIVEN_FEMALE
        c1 = chars[a % len(chars)]
        if t:
            c2 = chars[b % len(chars)]
            given_l.append(c1[0] + c2[0])
            given_py.append(c1[1] + c2[1])
        else:
            given_l.append(c1[0])
            given_py.append(c1[1])

    prefix = np.array(CN_MOBILE_PREFIXES)[rng.integers(0, len(CN_MOBILE_PREFIXES), n)]
    phone = _obj([f"{p}{d}" for p, d in zip(prefix.tolist(), _digits(rng, n, 8), strict=True)])

    has_email = rng.random(n) < 0.55
    qq = rng.random(n) < 0.3
    num = rng.integers(1, 1000, n)
    qqnum = rng.integers(10_000_000, 3_000_000_000, n)
    dom = rng.integers(0, len(EMAIL_DOMAINS), n)
    email = _obj([
        (f"{q}@{EMAIL_DOMAINS[d]}" if use_qq else f"{CN_SURNAMES[s][1]}{g}{k}@{EMAIL_DOMAINS[d]}") if e else None
        for e, use_qq, q, s, g, k, d in zip(has_email.tolist(), qq.tolist(), qqnum.tolist(), sur.tolist(),
                                            given_py, num.tolist(), dom.tolist(), strict=True)
    ])

    street = rng.integers(0, len(CN_STREETS), n)
    no = rng.integers(1, 300, n)
    flat = rng.random(n) < 0.7
    bldg = rng.integers(1, 30, n)
    unit = rng.integers(1, 7, n)
    room = rng.integers(1, 30, n) * 100 + rng.integers(1, 5, n)
    address = _obj([
        f"{CN_STREETS[s]}{k}号{b}栋{u}单元{r}室" if f else f"{CN_STREETS[s]}{k}号"
        for s, k, f, b, u, r in zip(street.tolist(), no.tolist(), flat.tolist(), bldg.tolist(), unit.tolist(),
                                    room.tolist(), strict=True)
    ])
    district = _obj([a[1] for a in areas])[where]
    city = _obj([r.city_zh for r in CN_REGIONS])[region]
    province = _obj([r.province_zh for r in CN_REGIONS])[region]
    postal = _obj([f"{CN_REGIONS[r].postal_prefix}{d}" for r, d in zip(region.tolist(), _digits(rng, n, 2),
                                                                        strict=True)])
    eth = _pick(rng, [e[2] for e in CN_ETHNIC], n)
    insured = rng.random(n) < 0.8
    passport = rng.random(n) < 0.05
    return People(
        family=family, given=_obj(given_l), sex=np.where(male, "male", "female").astype(object), birth=birth,
        national_id=national_id, phone=phone, email=email, address_line=address, district=district, city=city,
        province=province, postal_code=postal, country=np.full(n, "CN", dtype=object),
        marital=_marital(rng, age), ethnicity=_obj([CN_ETHNIC[i][1] for i in eth.tolist()]),
        ethnicity_code=_obj([CN_ETHNIC[i][0] for i in eth.tolist()]), hispanic=np.zeros(n, dtype=bool),
        insurance_id=_obj([f"YB{d}" if i else None for i, d in zip(insured.tolist(), _digits(rng, n, 12),
                                                                    strict=True)]),
        passport_id=_obj([f"E{d}" if p else None for p, d in zip(passport.tolist(), _digits(rng, n, 8),
                                                                  strict=True)]),
    )


def _draw_us(rng: np.random.Generator, n: int, home: int, age_mix: str, id_block: tuple[int, int]) -> People:
    male = rng.random(n) < 0.5
    birth = draw_birth_dates(rng, n, age_mix)
    age = age_in_years(birth, REF_DATE)
    lo, hi = id_block

    def ssn(r: np.random.Generator, pos: Arr) -> Arr:
        """Fresh SSN keys (area, group, serial) for the given positions."""
        k = len(pos)
        area = r.integers(1, 899, k)
        area = area + (area >= 666)  # 001-899 without 666 (never issued); 9xx are not SSNs
        group = r.integers(lo, hi + 1, k)
        serial = r.integers(1, 10_000, k)
        return np.asarray(area * 1_000_000 + group * 10_000 + serial, dtype=np.int64)

    keys = _unique_keys(rng, ssn(rng, np.arange(n)), ssn)
    national_id = _obj([f"{k // 1_000_000:03d}-{k // 10_000 % 100:02d}-{k % 10_000:04d}" for k in keys.tolist()])

    family = _obj(US_SURNAMES)[rng.integers(0, len(US_SURNAMES), n)]
    gm = rng.integers(0, len(US_GIVEN_MALE), n)
    gf = rng.integers(0, len(US_GIVEN_FEMALE), n)
    mid = rng.random(n) < 0.25
    mm = rng.integers(0, len(US_GIVEN_MALE), n)
    mf = rng.integers(0, len(US_GIVEN_FEMALE), n)
    first = np.where(male, _obj(US_GIVEN_MALE)[gm], _obj(US_GIVEN_FEMALE)[gf])
    middle = np.where(male, _obj(US_GIVEN_MALE)[mm], _obj(US_GIVEN_FEMALE)[mf])
    given = _obj([f"{f} {m}" if h else f for f, m, h in zip(first.tolist(), middle.tolist(), mid.tolist(),
                                                            strict=True)])

    region = US_REGIONS[home % len(US_REGIONS)]
    others = [p for j, r in enumerate(US_REGIONS) if j != home % len(US_REGIONS) for p in r.places]
    u = rng.random(n)
    places: list[UsPlace] = []
    pi = rng.integers(0, 1 << 30, n).tolist()
    for x, k in zip(u.tolist(), pi, strict=True):
        pool = region.places if x < 0.82 else others if x < 0.97 else RESTRICTED_PLACES
        places.append(pool[k % len(pool)])
    zip2 = rng.integers(1, 100, n).tolist()
    ac = np.array(region.area_codes)[rng.integers(0, len(region.area_codes), n)]
    exch = rng.integers(200, 1000, n)
    exch = np.where(exch % 100 == 11, exch + 1, exch)  # N11 codes are service numbers, not exchanges
    line = rng.integers(0, 10_000, n)
    phone = _obj([f"({a}) {e}-{ln:04d}" for a, e, ln in zip(ac.tolist(), exch.tolist(), line.tolist(), strict=True)])

    has_email = rng.random(n) < 0.65
    num = rng.integers(1, 100, n)
    dom = rng.integers(0, len(EMAIL_DOMAINS), n)
    email = _obj([
        f"{f.lower()}.{''.join(c for c in s.lower() if c.isalpha())}{k}@{EMAIL_DOMAINS[d]}" if e else None
        for e, f, s, k, d in zip(has_email.tolist(), first.tolist(), family.tolist(), num.tolist(), dom.tolist(),
                                 strict=True)
    ])
    sn = rng.integers(0, len(US_STREETS), n)
    sx = rng.integers(0, len(US_SUFFIXES), n)
    hn = rng.integers(1, 9999, n)
    apt = rng.random(n) < 0.2
    aptn = rng.integers(1, 40, n)
    address = _obj([
        f"{h} {US_STREETS[s]} {US_SUFFIXES[x]}" + (f" Apt {a}" if ap else "")
        for h, s, x, ap, a in zip(hn.tolist(), sn.tolist(), sx.tolist(), apt.tolist(), aptn.tolist(), strict=True)
    ])
    race = _pick(rng, [r[2] for r in US_RACES], n)
    hisp = rng.random(n) < 0.18
    ethnicity = _obj([f"{US_RACES[r][1]}; {(HISPANIC if h else NOT_HISPANIC)[1]}"
                      for r, h in zip(race.tolist(), hisp.tolist(), strict=True)])
    insured = rng.random(n) < 0.9
    letters = rng.integers(0, 26, (n, 3))
    ins = [
        ("".join(chr(65 + c) for c in ls) + d) if i else None
        for i, ls, d in zip(insured.tolist(), letters.tolist(), _digits(rng, n, 9), strict=True)
    ]
    passport = rng.random(n) < 0.08
    return People(
        family=family, given=given, sex=np.where(male, "male", "female").astype(object), birth=birth,
        national_id=national_id, phone=phone, email=email, address_line=address,
        district=_obj([p.county for p in places]), city=_obj([p.city for p in places]),
        province=_obj([p.state for p in places]),
        postal_code=_obj([f"{p.zip3}{z:02d}" for p, z in zip(places, zip2, strict=True)]),
        country=np.full(n, "US", dtype=object), marital=_marital(rng, age), ethnicity=ethnicity,
        ethnicity_code=_obj([US_RACES[r][0] for r in race.tolist()]), hispanic=hisp,
        insurance_id=_obj(ins),
        passport_id=_obj([d if p else None for p, d in zip(passport.tolist(), _digits(rng, n, 9), strict=True)]),
    )
