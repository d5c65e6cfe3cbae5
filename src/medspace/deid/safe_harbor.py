"""HIPAA Safe Harbor's two numeric rules: 3-digit ZIP codes and the 90-or-older age group.

45 CFR §164.514(b)(2)(i)(B): the initial three digits of a ZIP code may stay only where the geographic unit
formed by all ZIP codes with those three digits contains more than 20,000 people (current Census data);
otherwise they become ``000``. HHS's guidance lists the 17 three-digit areas at or below 20,000 people in
the 2000 Census. §164.514(b)(2)(i)(C): all ages over 89, and all elements of dates (including the year)
indicative of such an age, are aggregated into a single category of age 90 or older.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

# HHS, "Guidance Regarding Methods for De-identification of PHI", §3.3 (2000 Census).
RESTRICTED_ZIP3: frozenset[str] = frozenset({
    "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831", "878", "879", "884",
    "890", "893",
})
TOP_AGE = 90
TOP_AGE_LABEL = "90+"


def zip3(values: Any) -> pa.Array:
    """ZIP codes to their first three digits, or ``000`` for the restricted areas; malformed ZIPs become null."""
    arr = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, pa.string())
    arr = pc.utf8_trim_whitespace(arr.cast(pa.string()))
    ok = pc.match_substring_regex(arr, r"^[0-9]{5}(-?[0-9]{4})?$")
    head = pc.utf8_slice_codeunits(arr, 0, 3)
    restricted = pc.is_in(head, value_set=pa.array(sorted(RESTRICTED_ZIP3)))
    out = pc.if_else(restricted, pa.scalar("000"), head)
    return pc.if_else(ok, out, pa.scalar(None, pa.string()))


def zip3_sql(col: str) -> str:
    """The same rule as a DuckDB SQL expression over a column."""
    restricted = ", ".join(f"'{z}'" for z in sorted(RESTRICTED_ZIP3))
    c = f"trim({col})"
    return (f"CASE WHEN NOT regexp_full_match({c}, '[0-9]{{5}}(-?[0-9]{{4}})?') THEN NULL "
            f"WHEN left({c}, 3) IN ({restricted}) THEN '000' ELSE left({c}, 3) END")


def age_label(ages: Any, top: int = TOP_AGE) -> pa.Array:
    """Integer ages to labels, with every age at or above `top` in one group (``"90+"``)."""
    arr = ages if isinstance(ages, pa.Array | pa.ChunkedArray) else pa.array(ages, pa.int64())
    label = pc.cast(arr, pa.string())
    return pc.if_else(pc.greater_equal(arr, top), pa.scalar(f"{top}+"), label)
