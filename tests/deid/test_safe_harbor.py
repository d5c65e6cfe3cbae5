"""Safe Harbor's ZIP and age rules."""

from __future__ import annotations

import duckdb

from medspace.deid.safe_harbor import RESTRICTED_ZIP3, age_label, zip3, zip3_sql


def test_the_17_restricted_prefixes() -> None:
    assert len(RESTRICTED_ZIP3) == 17
    assert sorted(RESTRICTED_ZIP3) == ["036", "059", "063", "102", "203", "556", "692", "790", "821", "823",
                                       "830", "831", "878", "879", "884", "890", "893"]


def test_zip3_rule_in_python_and_sql_agree() -> None:
    values = ["02139", "03601", "89301-1234", "10001", "123", None, "abcde", " 20301 ", "790123456", "05901"]
    want = ["021", "000", "000", "100", None, None, None, "000", "000", "000"]
    assert zip3(values).to_pylist() == want
    con = duckdb.connect()
    got = [r[0] for r in con.execute(
        f"SELECT {zip3_sql('z')} FROM (SELECT unnest(?) AS z, generate_subscripts(?, 1) AS i) ORDER BY i",
        [values, values]).fetchall()]
    assert got == want


def test_ages_over_89_are_one_group() -> None:
    assert age_label([0, 17, 89, 90, 104, None]).to_pylist() == ["0", "17", "89", "90+", "90+", None]
