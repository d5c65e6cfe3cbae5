"""The k-anonymity step of a policy: generalise the patient view's quasi-identifiers to reach the model."""

from __future__ import annotations

from typing import Any

import duckdb

from medspace.deid.anonymity import PrivacyModel, measure
from medspace.deid.errors import AnonymityError
from medspace.deid.hierarchy import spec_from_options
from medspace.deid.lattice import enforce
from medspace.deid.policy import Policy


def enforce_patient_view(con: duckdb.DuckDBPyConnection, schema: str, policy: Policy) -> dict[str, Any]:
    """Replace the patient view's quasi-identifiers by their optimal generalisation; returns the summary.

    Suppressed patients stay in the view with every quasi-identifier set to ``*`` (their clinical rows keep
    their meaning; the all-``*`` class is itself counted). Raises AnonymityError when the model cannot be met.
    """
    spec = policy.anonymity
    if spec is None:
        return {}
    data = con.sql(f"SELECT * FROM {schema}.patient").to_arrow_table()
    present = set(data.column_names)
    missing = [q.name for q in spec.quasi_identifiers if q.name not in present]
    if missing:
        raise AnonymityError(f"the patient view has no column {', '.join(missing)} (dropped by a rule?)")
    hierarchies = {q.name: spec_from_options(q.hierarchy, q.options) for q in spec.quasi_identifiers}
    model = PrivacyModel(k=spec.k, l=spec.l, t=spec.t, sensitive=spec.sensitive,
                         max_suppression=spec.max_suppression)
    result = enforce(data, hierarchies, model, metric=spec.metric, suppressed="star")  # type: ignore[arg-type]
    out = result.table
    assert out is not None
    con.register("_anon_patient", out)
    try:
        con.execute(f"DROP TABLE {schema}.patient")
        con.execute(f"CREATE TABLE {schema}.patient AS SELECT * FROM _anon_patient")
    finally:
        con.unregister("_anon_patient")
    summary = result.summary()
    check = measure(out, list(hierarchies), spec.sensitive, exclude=result.suppressed)
    summary["k_measured"] = int(check.k)
    return summary
