"""Row-level sensitivity: a row is at its table's base level unless its code falls in an L1 category.

L1 (core) categories: genetics, HIV, psychiatric and sexual health. The code sets are data here,
in one place, so a data protection officer can read and extend them.
"""

from __future__ import annotations

import re
from functools import lru_cache

from medspace.model.catalogue import TABLES, Level

# (table, code system) -> code prefixes that make a row L1, with the category they stand for.
L1_PREFIXES: dict[tuple[str, str], dict[str, str]] = {
    ("condition", "ICD-10"): {
        "B20": "hiv", "B21": "hiv", "B22": "hiv", "B23": "hiv", "B24": "hiv", "Z21": "hiv", "O98.7": "hiv",
        "R75": "hiv", "F": "psychiatric", "X6": "psychiatric", "X7": "psychiatric", "X80": "psychiatric",
        "X81": "psychiatric", "X82": "psychiatric", "X83": "psychiatric", "X84": "psychiatric",
        "A5": "sexual_health", "A60": "sexual_health", "A63": "sexual_health", "A64": "sexual_health",
        "N96": "sexual_health", "N97": "sexual_health", "O04": "sexual_health", "Z30": "sexual_health",
        "Z31": "sexual_health", "Q9": "genetics",
    },
    ("condition", "SNOMED"): {
        "86406008": "hiv", "165816005": "hiv", "62479008": "hiv", "79019005": "hiv",
        "35489007": "psychiatric", "58214004": "psychiatric", "13746004": "psychiatric",
        "370143000": "psychiatric", "197480006": "psychiatric", "191736004": "psychiatric",
        "8098009": "sexual_health", "76272004": "sexual_health", "15628003": "sexual_health",
    },
    ("medication", "ATC"): {
        "J05AE": "hiv", "J05AF": "hiv", "J05AG": "hiv", "J05AJ": "hiv", "J05AR": "hiv",
        "N05A": "psychiatric", "N06A": "psychiatric", "N05AN": "psychiatric", "N06B": "psychiatric",
        "G03A": "sexual_health", "G03XB": "sexual_health", "G04BE": "sexual_health",
    },
    ("medication", "RxNorm"): {
        "1999563": "hiv", "1546888": "hiv", "1721613": "hiv",
        "312940": "psychiatric", "351249": "psychiatric", "314155": "psychiatric", "312830": "psychiatric",
        "197889": "psychiatric",
    },
    ("observation", "LOINC"): {
        "7917-8": "hiv", "7918-6": "hiv", "5221-7": "hiv", "25836-8": "hiv", "20447-9": "hiv",
        "56888-1": "hiv", "75622-1": "hiv", "48345-3": "hiv", "48346-1": "hiv", "68961-2": "hiv",
        "44607-9": "psychiatric", "44261-6": "psychiatric", "69737-5": "psychiatric",
        "21613-5": "sexual_health", "43304-5": "sexual_health", "20507-0": "sexual_health",
        "81247-9": "genetics", "69548-6": "genetics", "48018-6": "genetics", "51958-7": "genetics",
    },
}
# Same for the ICD-10-CM flavour of ICD-10.
L1_PREFIXES[("condition", "ICD-10-CM")] = L1_PREFIXES[("condition", "ICD-10")]
# ICD-9-CM, still sent by older systems: 042 HIV disease, V08 asymptomatic HIV, 079.53 HIV-2, 795.71
# non-specific HIV serology; 290-319 mental disorders; 090-099 syphilis and other venereal diseases;
# 758 chromosomal anomalies.
L1_PREFIXES[("condition", "ICD-9-CM")] = {
    "042": "hiv", "V08": "hiv", "079.53": "hiv", "795.71": "hiv",
    **{str(n): "psychiatric" for n in range(290, 320)},
    **{f"0{n}": "sexual_health" for n in range(90, 100)},
    "758": "genetics",
}

# Words that put a row whose code the node cannot read (a local code, text only, a code failing its
# check) in an L1 category: without a standard code, the text is all there is to go on, and a
# sensitive row wrongly left at L2 would reach every view. Matched case-insensitively as substrings.
L1_WORDS: dict[str, tuple[str, ...]] = {
    "hiv": ("hiv", "aids", "human immunodeficiency", "antiretroviral", "艾滋", "人类免疫缺陷"),
    "psychiatric": ("schizo", "psychos", "psychot", "depress", "bipolar", "suicid", "mental disorder",
                    "antipsychotic", "anorexia nervosa", "精神", "抑郁", "躁", "自杀", "心理障碍"),
    "sexual_health": ("syphilis", "gonorr", "chlamydia", "herpes genital", "genital herpes", "sexually transm",
                      "contracept", "abortion", "infertil", "梅毒", "淋病", "衣原体", "性病", "避孕", "流产", "不孕"),
    "genetics": ("genetic", "genomic", "chromosom", "brca", "mutation", "基因", "染色体", "遗传"),
}
# Latin words must start a word ("hiv" but not "archive"; "aids" but not "hearing aids" is the price:
# a false L1 hides a row from views, a missed one would show it).
_L1_RX = tuple(
    (re.compile("|".join(rf"\b{re.escape(w)}" if w.isascii() else re.escape(w) for w in words)), cat)
    for cat, words in L1_WORDS.items()
)


@lru_cache(maxsize=131072)
def l1_category(table: str, system: str | None, code: str | None) -> str | None:
    """The L1 category (hiv, psychiatric, sexual_health, genetics) a coded row falls in, if any."""
    if table == "genetic_variant":
        return "genetics"
    if not system or not code:
        return None
    prefixes = L1_PREFIXES.get((table, system))
    if not prefixes:
        return None
    if system in ("SNOMED", "LOINC", "RxNorm"):
        return prefixes.get(code)
    for p, cat in prefixes.items():
        if code.startswith(p):
            return cat
    return None


@lru_cache(maxsize=65536)
def l1_category_of_text(text: str | None) -> str | None:
    """The L1 category a concept's text names, if any (for rows without a readable standard code)."""
    if not text:
        return None
    low = text.lower()
    for rx, cat in _L1_RX:
        if rx.search(low):
            return cat
    return None


def row_level(table: str, system: str | None = None, code: str | None = None, *,
              text: str | None = None, standard: bool = True) -> Level:
    """The sensitivity level of a row of `table` with the given code; a row whose code is not a verified
    standard one (`standard=False`) is also judged by its code's text."""
    if l1_category(table, system, code) is not None:
        return Level.L1
    if not standard and table in _TEXT_JUDGED and l1_category_of_text(text) is not None:
        return Level.L1
    return TABLES[table].base_level


# Tables whose rows can be L1 by their code (the others' level is their table's).
_TEXT_JUDGED = frozenset(t for t, _ in L1_PREFIXES)
