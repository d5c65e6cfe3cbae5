"""Measure a de-identified view: k, l, t, re-identification risk, and what the policy changed."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from medspace.deid.anonymity import measure
from medspace.deid.apply import view_schema
from medspace.deid.errors import DeidError
from medspace.deid.risk import reidentification_risk
from medspace.model.catalogue import PHI, TABLES
from medspace.store import Store

DERIVED_QUASI = ("age", "area")


def default_quasi(columns: list[str]) -> list[str]:
    """The patient view's columns that the catalogue tags as quasi-identifiers (plus derived age and area)."""
    patient = TABLES["patient"]
    names = [c for c in columns if (c in patient and PHI.QUASI in patient[c].phi) or c in DERIVED_QUASI]
    # a date reduced to its year is still a quasi-identifier
    names += [c for c in columns if c.endswith("_year") and c[:-5] + "_date" in patient
              and PHI.QUASI in patient[c[:-5] + "_date"].phi]
    return names


def measure_view(st: Store, view: str, *, qi: list[str] | None = None, sensitive: str | None = None,
                 threshold: float = 0.2) -> dict[str, Any]:
    """k / l / t and prosecutor, journalist and marketer risk of a policy's view (one record per patient,
    or per row of the sensitive attribute's table when it names another table)."""
    schema = view_schema(view)
    found = st.con.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                       params=[schema]).fetchall()
    if not found:
        raise DeidError(f"no view {view!r} in this store: build it with `medspace deid apply --policy {view}`")
    patients = st.con.sql(f"SELECT * FROM {schema}.patient").to_arrow_table()
    quasi = qi or default_quasi(patients.column_names)
    unknown = [q for q in quasi if q not in patients.column_names]
    if unknown:
        raise DeidError(f"the patient view of {view} has no column {', '.join(unknown)}")
    if not quasi:
        raise DeidError("no quasi-identifiers to measure; name them with --qi")
    data = patients.select(quasi)
    sens_col: str | None = None
    per = "patient"
    if sensitive:
        tbl, _, fld = sensitive.partition(".")
        if not fld:
            tbl, fld = "patient", tbl
        cols = [r[0] for r in st.con.sql("SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                                         "AND table_name = ?", params=[schema, tbl]).fetchall()]
        if fld not in cols:
            raise DeidError(f"the view {view} has no column {tbl}.{fld}")
        if tbl == "patient":
            data = patients.select([*quasi, fld])
        else:
            qcols = ", ".join(f'p."{q}"' for q in quasi)
            data = st.con.sql(f'SELECT {qcols}, s."{fld}" FROM {schema}.{tbl} s JOIN {schema}.patient p '
                              "ON p.id = s.patient_id").to_arrow_table()
            per = f"{tbl} row"
        sens_col = fld
    # Suppressed records carry "*" in every quasi-identifier: they are left out of the classes (ARX's convention).
    stars = np.ones(data.num_rows, dtype=bool)
    for q in quasi:
        col = pc.cast(data.column(q), pa.string())
        stars &= np.asarray(pc.fill_null(pc.equal(col, "*"), False).to_numpy(zero_copy_only=False), dtype=bool)
    exclude = stars if stars.any() else None
    m = measure(data, quasi, sens_col, exclude=exclude)
    r = reidentification_risk(data, quasi, threshold=threshold, exclude=exclude)
    measures: dict[str, Any] = {
        "records": m.rows, "suppressed records": int(stars.sum()), "classes": m.classes, "k": m.k,
        "records in classes below 5": m.rows_in_classes_below(5),
    }
    if sens_col:
        measures |= {"l (distinct)": m.l_distinct, "l (entropy)": m.l_entropy, "t (EMD)": m.t}
    rs = r.summary()
    for model in ("prosecutor", "journalist"):
        d = rs[model]
        assert isinstance(d, dict)
        measures[f"{model} risk, highest"] = d["highest"]
        measures[f"{model} risk, average"] = d["average"]
        measures[f"{model}: share of records above {threshold:g}"] = d["at_risk"]
    measures["marketer risk"] = rs["marketer"]
    measures["journalist basis"] = rs["journalist_basis"]
    applied = st.con.sql("SELECT report FROM deid_application WHERE view = ?", params=[schema]).fetchall() \
        if st.con.sql("SELECT count(*) FROM information_schema.tables WHERE table_name = 'deid_application'"
                      ).fetchall()[0][0] else []
    report = json.loads(applied[0][0]) if applied else {}
    anonymity = report.get("anonymity") or {}
    if anonymity:
        measures["information loss (" + str(anonymity.get("metric")) + ")"] = anonymity.get("information_loss")
    return {"view": view, "schema": schema, "records": m.rows, "per": per, "quasi": quasi, "sensitive": sensitive,
            "measures": measures, "class_sizes": {str(k): v for k, v in sorted(m.class_sizes.items())},
            "changes": report.get("changes", []), "anonymity": anonymity, "as_of": report.get("as_of")}
