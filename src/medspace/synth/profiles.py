"""Hospital profiles: how synthetic hospital number i differs from the others.

Hospitals cycle through five slots (1-based index i, slot (i - 1) % 5): flavour (CN or US), source
format, age mix, diabetes prevalence, study drug response offset, HIV and psychiatric rates, code
systems. Hospitals in later cycles get the next region of their flavour and a slightly shifted offset.
"""

from __future__ import annotations

from dataclasses import dataclass

FORMATS = ("fhir-bundle", "fhir-ndjson", "hl7v2", "csv", "mixed")


@dataclass(frozen=True)
class CnRegion:
    """A Chinese city: its districts (GB/T 2260 area code, district), postal prefix and streets."""

    city_en: str
    city_zh: str
    province_zh: str
    districts: tuple[tuple[int, str], ...]
    postal_prefix: str
    hospital: str


@dataclass(frozen=True)
class UsPlace:
    """A US city with its county, state and 3-digit ZIP prefix."""

    city: str
    county: str
    state: str
    zip3: str


@dataclass(frozen=True)
class UsRegion:
    """A US metropolitan area: its places, telephone area codes and time zone."""

    places: tuple[UsPlace, ...]
    area_codes: tuple[int, ...]
    hospital: str
    tz: str


CN_REGIONS: tuple[CnRegion, ...] = (
    CnRegion("Beijing", "北京市", "北京市",
             ((110101, "东城区"), (110102, "西城区"), (110105, "朝阳区"), (110106, "丰台区"), (110108, "海淀区"),
              (110114, "昌平区")), "1000", "Beijing Dongcheng People's Hospital"),
    CnRegion("Shanghai", "上海市", "上海市",
             ((310101, "黄浦区"), (310104, "徐汇区"), (310105, "长宁区"), (310106, "静安区"), (310107, "普陀区"),
              (310115, "浦东新区")), "2000", "Shanghai Xuhui Central Hospital"),
    CnRegion("Guangzhou", "广州市", "广东省",
             ((440103, "荔湾区"), (440104, "越秀区"), (440105, "海珠区"), (440106, "天河区"), (440111, "白云区"),
              (440113, "番禺区")), "5106", "Guangzhou Tianhe First Hospital"),
    CnRegion("Chengdu", "成都市", "四川省",
             ((510104, "锦江区"), (510105, "青羊区"), (510106, "金牛区"), (510107, "武侯区"), (510108, "成华区")),
             "6100", "Chengdu Wuhou People's Hospital"),
    CnRegion("Wuhan", "武汉市", "湖北省",
             ((420102, "江岸区"), (420103, "江汉区"), (420106, "武昌区"), (420111, "洪山区")), "4300",
             "Wuhan Jianghan Central Hospital"),
    CnRegion("Hangzhou", "杭州市", "浙江省",
             ((330102, "上城区"), (330105, "拱墅区"), (330106, "西湖区"), (330108, "滨江区")), "3100",
             "Hangzhou Xihu Hospital"),
    CnRegion("Xi'an", "西安市", "陕西省",
             ((610102, "新城区"), (610103, "碑林区"), (610104, "莲湖区"), (610113, "雁塔区")), "7100",
             "Xi'an Yanta People's Hospital"),
    CnRegion("Nanjing", "南京市", "江苏省",
             ((320102, "玄武区"), (320104, "秦淮区"), (320105, "建邺区"), (320106, "鼓楼区")), "2100",
             "Nanjing Gulou District Hospital"),
)

US_REGIONS: tuple[UsRegion, ...] = (
    UsRegion((UsPlace("Boston", "Suffolk County", "MA", "021"), UsPlace("Cambridge", "Middlesex County", "MA", "021"),
              UsPlace("Quincy", "Norfolk County", "MA", "021"), UsPlace("Brookline", "Norfolk County", "MA", "024"),
              UsPlace("Worcester", "Worcester County", "MA", "016")),
             (617, 857, 781, 508), "Boston Harbor Medical Center", "-05:00"),
    UsRegion((UsPlace("Houston", "Harris County", "TX", "770"), UsPlace("Pasadena", "Harris County", "TX", "775"),
              UsPlace("Sugar Land", "Fort Bend County", "TX", "774"),
              UsPlace("Pearland", "Brazoria County", "TX", "775"), UsPlace("Katy", "Harris County", "TX", "774")),
             (713, 281, 832, 346), "Houston Bayou General Hospital", "-06:00"),
    UsRegion((UsPlace("Chicago", "Cook County", "IL", "606"), UsPlace("Evanston", "Cook County", "IL", "602"),
              UsPlace("Oak Park", "Cook County", "IL", "603"), UsPlace("Naperville", "DuPage County", "IL", "605")),
             (312, 773, 847, 630), "Chicago Lakeside Hospital", "-06:00"),
    UsRegion((UsPlace("Phoenix", "Maricopa County", "AZ", "850"), UsPlace("Mesa", "Maricopa County", "AZ", "852"),
              UsPlace("Tempe", "Maricopa County", "AZ", "852"), UsPlace("Scottsdale", "Maricopa County", "AZ", "852")),
             (602, 480, 623), "Phoenix Desert Regional Medical Center", "-07:00"),
    UsRegion((UsPlace("Seattle", "King County", "WA", "981"), UsPlace("Bellevue", "King County", "WA", "980"),
              UsPlace("Tacoma", "Pierce County", "WA", "984"), UsPlace("Everett", "Snohomish County", "WA", "982")),
             (206, 425, 253), "Seattle Sound Community Hospital", "-08:00"),
)

# ZIP3 prefixes that HIPAA Safe Harbor says to zero (population under 20,000), with a place in each.
RESTRICTED_PLACES: tuple[UsPlace, ...] = (
    UsPlace("Walpole", "Cheshire County", "NH", "036"), UsPlace("Averill", "Essex County", "VT", "059"),
    UsPlace("Fishers Island", "Suffolk County", "NY", "063"), UsPlace("New York", "New York County", "NY", "102"),
    UsPlace("Washington", "District of Columbia", "DC", "203"), UsPlace("Grand Marais", "Cook County", "MN", "556"),
    UsPlace("Valentine", "Cherry County", "NE", "692"), UsPlace("Canyon", "Randall County", "TX", "790"),
    UsPlace("Yellowstone National Park", "Park County", "WY", "821"), UsPlace("Rawlins", "Carbon County", "WY", "823"),
    UsPlace("Jackson", "Teton County", "WY", "830"), UsPlace("Kemmerer", "Lincoln County", "WY", "831"),
    UsPlace("Socorro", "Socorro County", "NM", "878"), UsPlace("Truth or Consequences", "Sierra County", "NM", "879"),
    UsPlace("Tucumcari", "Quay County", "NM", "884"), UsPlace("Beatty", "Nye County", "NV", "890"),
    UsPlace("Ely", "White Pine County", "NV", "893"),
)

# Age bands (years at the reference date) and the mixes hospitals draw from.
AGE_BANDS: tuple[tuple[int, int], ...] = ((0, 18), (18, 35), (35, 50), (50, 65), (65, 80), (80, 90), (90, 104))
AGE_MIXES: dict[str, tuple[float, ...]] = {
    "general": (0.18, 0.22, 0.20, 0.20, 0.14, 0.05, 0.01),
    "geriatric": (0.03, 0.08, 0.12, 0.22, 0.32, 0.18, 0.05),
    "paediatric": (0.55, 0.12, 0.10, 0.10, 0.08, 0.04, 0.01),
    "young": (0.15, 0.35, 0.25, 0.15, 0.07, 0.025, 0.005),
}


@dataclass(frozen=True)
class Slot:
    """What the five hospital slots fix."""

    flavour: str
    fmt: str
    age_mix: str
    t2d_factor: float  # multiplies the base type 2 diabetes prevalence
    response_offset: float  # added to the study drug's base response rate
    hiv_rate: float
    psych_rate: float
    classes: tuple[float, float, float]  # ambulatory, emergency, inpatient
    condition_system: str
    drug_system: str


SLOTS: tuple[Slot, ...] = (
    Slot("cn", "fhir-bundle", "general", 1.0, 0.05, 0.006, 0.04, (0.68, 0.12, 0.20), "ICD-10", "ATC"),
    Slot("us", "fhir-ndjson", "geriatric", 1.3, -0.08, 0.009, 0.05, (0.60, 0.15, 0.25), "SNOMED", "RxNorm"),
    Slot("cn", "hl7v2", "paediatric", 0.8, 0.0, 0.004, 0.03, (0.70, 0.18, 0.12), "ICD-10", "ATC"),
    Slot("us", "csv", "general", 1.4, 0.08, 0.010, 0.045, (0.65, 0.17, 0.18), "ICD-10-CM", "RxNorm"),
    Slot("cn", "mixed", "young", 0.9, -0.04, 0.007, 0.035, (0.72, 0.13, 0.15), "ICD-10", "ATC"),
)


@dataclass(frozen=True)
class Profile:
    """Everything that makes one synthetic hospital what it is."""

    index: int  # 1-based
    id: str
    name: str
    slot: Slot
    ordinal: int  # position among hospitals of the same flavour, from 0
    cn_region: CnRegion | None
    us_region: UsRegion | None

    @property
    def flavour(self) -> str:
        """The flavour: cn or us."""
        return self.slot.flavour

    @property
    def tz(self) -> str:
        """The hospital's UTC offset, as FHIR writes it (+08:00)."""
        return "+08:00" if self.us_region is None else self.us_region.tz

    @property
    def response_offset(self) -> float:
        """The hospital's shift of the study drug's response rate."""
        cycle = (self.index - 1) // len(SLOTS)
        return round(self.slot.response_offset + 0.015 * cycle, 4)


def flavour_of(index: int) -> str:
    """The flavour of hospital number `index` (1-based)."""
    return SLOTS[(index - 1) % len(SLOTS)].flavour


def profile(index: int) -> Profile:
    """The profile of hospital number `index` (1-based)."""
    if index < 1:
        raise ValueError("hospitals are numbered from 1")
    slot = SLOTS[(index - 1) % len(SLOTS)]
    ordinal = sum(1 for j in range(1, index) if flavour_of(j) == slot.flavour)

    def named(hospital: str, regions: int) -> str:
        # A region used again (many hospitals) gets a numbered campus so names stay distinct.
        return f"{hospital} (campus {ordinal // regions + 1})" if ordinal >= regions else hospital

    if slot.flavour == "cn":
        cn = CN_REGIONS[ordinal % len(CN_REGIONS)]
        return Profile(index, f"h{index}", named(cn.hospital, len(CN_REGIONS)), slot, ordinal, cn, None)
    us = US_REGIONS[ordinal % len(US_REGIONS)]
    return Profile(index, f"h{index}", named(us.hospital, len(US_REGIONS)), slot, ordinal, None, us)


def shared_pairs(hospitals: int) -> list[tuple[int, int]]:
    """Pairs (a, b), a < b, of same-flavour hospitals that share patients, in a fixed order."""
    return [(a, b) for a in range(1, hospitals + 1) for b in range(a + 1, hospitals + 1)
            if flavour_of(a) == flavour_of(b)]
