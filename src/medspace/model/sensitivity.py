"""Row-level sensitivity: a row is at its table's base level unless its code falls in an L1 category.

L1 (core) categories: genetics, HIV, psychiatric and sexual health. The code sets are data here,
in one place, so a data protection officer can read and extend them.
"""

from __future__ import annotations

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


def row_level(table: str, system: str | None = None, code: str | None = None) -> Level:
    """The sensitivity level of a row of `table` with the given code."""
    if l1_category(table, system, code) is not None:
        return Level.L1
    return TABLES[table].base_level
