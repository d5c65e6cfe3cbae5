"""The count's two ways of leaving out the patients consent excludes (a bound list for a few, a registered table for
many) give the same protected result."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

import medspace.compute.count as count
from medspace.compute.count import CountQuery, run_count, view_tables
from medspace.privacy.disclosure import DisclosureRules

QUERIES: list[dict[str, Any]] = [
    {},
    {"group_by": ["sex"]},
    {"group_by": ["sex", "age"]},
    {"group_by": ["age"], "filters": [{"table": "condition", "field": "code", "op": "prefix", "value": "E11"}]},
    {"filters": [{"table": "condition", "field": "code", "op": "in", "value": ["E11.9", "I10"]}]},
]


@pytest.fixture(scope="module")
def store() -> Any:
    con = duckdb.connect()
    con.execute("CREATE SCHEMA deid_research")
    con.execute("CREATE TABLE deid_research.patient (id INTEGER, linkage_id VARCHAR, sex VARCHAR, age VARCHAR)")
    con.execute("CREATE TABLE deid_research.condition (patient_id INTEGER, code VARCHAR)")
    rows = [(i, None if i % 17 == 0 else f"{i:032x}", "F" if i % 2 else "M", f"{20 + 10 * (i % 5)}-{29 + 10 * (i % 5)}")
            for i in range(400)]
    con.executemany("INSERT INTO deid_research.patient VALUES (?, ?, ?, ?)", rows)
    con.executemany("INSERT INTO deid_research.condition VALUES (?, ?)",
                    [(i, "E11.9" if i % 3 else "I10") for i in range(0, 400, 2)])
    yield con
    con.close()


@pytest.mark.parametrize("params", QUERIES)
@pytest.mark.parametrize("excluded", [0, 5, 150, 390])
def test_bound_and_registered_exclusions_agree(store: Any, params: dict[str, Any], excluded: int,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    q = CountQuery.from_params(params)
    ex = [f"{i:032x}" for i in range(excluded)]
    rules = DisclosureRules(min_cell=5, nk=None)
    monkeypatch.setattr(count, "BOUND_EXCLUSIONS", 10_000)
    bound = run_count(store, q, ex, rules=rules, tables=view_tables(store, "research"))
    monkeypatch.setattr(count, "BOUND_EXCLUSIONS", -1)
    registered = run_count(store, q, ex, rules=rules)
    assert bound == registered


def test_excluded_patients_are_not_counted(store: Any) -> None:
    everyone = run_count(store, CountQuery(), [])
    # patients 0..9: 0 has no pseudonym (never counted), nine others are excluded
    fewer = run_count(store, CountQuery(), [f"{i:032x}" for i in range(10)])
    assert everyone["rows"][0][0] - fewer["rows"][0][0] == 9
