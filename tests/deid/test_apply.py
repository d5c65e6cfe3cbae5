"""Policies applied to real node stores built from synthetic hospitals."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from medspace.connect.sources import discover, ingest_file
from medspace.deid import keys as K
from medspace.deid.apply import applied_views, apply_policy, rotate_node_key, view_schema
from medspace.deid.policy import load_policy, parse_policy
from medspace.model.catalogue import PHI, TABLES
from medspace.store import Store
from medspace.synth import generate

AS_OF = date(2026, 1, 1)


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three hospitals (CN FHIR bundles, US NDJSON, CN HL7 v2) that share some patients, each in a store."""
    root = tmp_path_factory.mktemp("space")
    manifest = generate(root, hospitals=3, patients=150, seed=11)
    out = {}
    for h in manifest.hospitals:
        path = root / f"{h.id}.duckdb"
        with Store(path) as st, st.batch(h.id) as batch:
            for p, kind in discover([root / h.dir]):
                if kind is not None:
                    ingest_file(p, kind, batch)
        out[h.id] = path
    return out


def _copy(src: Path, tmp: Path) -> Path:
    dst = tmp / src.name
    dst.write_bytes(src.read_bytes())
    return dst


def _identifiers(st: Store) -> set[str]:
    """Every direct identifier the source holds (values of fields tagged direct_identifier)."""
    found: set[str] = set()
    for t in TABLES.values():
        for f in t:
            if PHI.DIRECT in f.phi:
                found.update(v for (v,) in st.con.sql(f"SELECT DISTINCT {f.name} FROM main.{t.name} "
                                                        f"WHERE {f.name} IS NOT NULL").fetchall())
    pts = st.con.sql("SELECT family_name, given_name FROM main.patient").fetchall()
    for fam, giv in pts:
        if fam and giv:
            found.update({fam + giv, f"{giv} {fam}", f"{fam} {giv}"})
    # A surname such as "White" may also be a legitimate value of a non-identifying field (ethnicity).
    legit: set[str] = set()
    for t in TABLES.values():
        for f in t:
            if f.type.value == "str" and not f.phi & {PHI.DIRECT, PHI.FREE_TEXT}:
                legit.update(v for (v,) in st.con.sql(f"SELECT DISTINCT {f.name} FROM main.{t.name} "
                                                        f"WHERE {f.name} IS NOT NULL").fetchall())
    return {v for v in found if len(v) >= 2 and v not in legit}


def _view_strings(st: Store, schema: str) -> tuple[list[str], list[str]]:
    """Every string value of the view, and the free-text values among them."""
    out: list[str] = []
    text: list[str] = []
    tables = [r[0] for r in st.con.sql("SELECT table_name FROM information_schema.tables WHERE table_schema = ?",
                                       params=[schema]).fetchall()]
    for t in tables:
        data = st.con.sql(f"SELECT * FROM {schema}.{t}").to_arrow_table()
        for col in data.columns:
            if pa.types.is_string(col.type):
                out.extend(v for v in col.to_pylist() if v)
        if "text" in data.column_names:
            text.extend(v for v in data.column("text").to_pylist() if v)
    return out, text


@pytest.mark.parametrize("policy", ["safe-harbor", "pipl", "research"])
def test_no_direct_identifier_survives_any_policy(stores: dict[str, Path], tmp_path: Path, policy: str) -> None:
    for hid, src in stores.items():
        path = _copy(src, tmp_path)
        ring = K.load_keyring(tmp_path / f"{hid}.keys.json", create=True)
        with Store(path) as st:
            apply_policy(st, load_policy(policy), ring, as_of=AS_OF)
            idents = _identifiers(st)
            strings, texts = _view_strings(st, view_schema(policy))
        exact = set(strings) & idents
        assert not exact, (hid, policy, len(exact))
        blob = "\x00".join(texts)
        inside = [i for i in idents if len(i) >= 4 and i in blob]
        assert not inside, (hid, policy, len(inside))


def test_safe_harbor_view_shape(stores: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(stores["h2"], tmp_path)  # the US hospital
    with Store(path) as st:
        report = apply_policy(st, load_policy("safe-harbor"), None, as_of=AS_OF)
        cols = {r[0] for r in st.con.sql("SELECT column_name FROM information_schema.columns WHERE "
                                         "table_schema = 'deid_safe_harbor' AND table_name = 'patient'").fetchall()}
        assert {"family_name", "given_name", "phone", "email", "national_id", "mrn", "address_line", "city",
                "district", "birth_date"}.isdisjoint(cols)
        assert {"birth_year", "age", "postal_code", "sex"} <= cols
        zips = {r[0] for r in st.con.sql("SELECT DISTINCT postal_code FROM deid_safe_harbor.patient").fetchall()}
        assert all(z is None or (len(z) == 3 and z.isdigit()) for z in zips)
        # ages over 89 are one group, and their birth years are gone
        old = st.con.sql("SELECT age, birth_year FROM deid_safe_harbor.patient WHERE age = '90+'").fetchall()
        assert all(by is None for _, by in old)
        ages = {r[0] for r in st.con.sql("SELECT DISTINCT age FROM deid_safe_harbor.patient").fetchall()}
        assert all(a == "90+" or int(a) < 90 for a in ages if a is not None)
        # every date is a year
        enc = st.con.sql("SELECT * FROM deid_safe_harbor.encounter LIMIT 1").to_arrow_table()
        assert "start_year" in enc.column_names and "start_time" not in enc.column_names
        # no L1 rows, no genetic table
        assert "genetic_variant" in report.tables_excluded
        for t in ("condition", "medication", "observation"):
            n = st.con.sql(f"SELECT count(*) FROM deid_safe_harbor.{t} WHERE sensitivity = 'L1'").fetchall()[0][0]
            assert n == 0
        assert sum(report.l1_rows_excluded.values()) > 0
        assert report.rows_out["patient"] == report.rows_in["patient"]


@pytest.mark.parametrize("policy", ["safe-harbor", "pipl"])
def test_views_keep_references_between_tables(stores: dict[str, Path], tmp_path: Path, policy: str) -> None:
    path = _copy(stores["h1"], tmp_path)
    ring = K.load_keyring(tmp_path / "k.json", create=True)
    with Store(path) as st:
        apply_policy(st, load_policy(policy), ring, as_of=AS_OF)
        v = view_schema(policy)
        for t in ("encounter", "condition", "observation", "medication", "note"):
            src = st.con.sql(f"SELECT count(*) FROM main.{t} s JOIN main.patient p ON p.id = s.patient_id "
                             "WHERE s.sensitivity <> 'L1'").fetchall()[0][0]
            got = st.con.sql(f"SELECT count(*) FROM {v}.{t} s JOIN {v}.patient p ON p.id = s.patient_id"
                             ).fetchall()[0][0]
            assert got == src > 0, t
        src = st.con.sql("SELECT count(*) FROM main.condition c JOIN main.encounter e ON e.id = c.encounter_id "
                         "WHERE c.sensitivity <> 'L1'").fetchall()[0][0]
        got = st.con.sql(f"SELECT count(*) FROM {v}.condition c JOIN {v}.encounter e ON e.id = c.encounter_id"
                         ).fetchall()[0][0]
        assert got == src > 0
        ids = st.con.sql(f"SELECT count(*), count(DISTINCT id) FROM {v}.observation").fetchall()[0]
        assert ids[0] == ids[1]


def test_pipl_keeps_what_the_resident_id_embeds_coarsely(stores: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(stores["h1"], tmp_path)  # a Chinese hospital
    ring = K.load_keyring(tmp_path / "k.json", create=True)
    with Store(path) as st:
        apply_policy(st, load_policy("pipl"), ring, as_of=AS_OF)
        areas = [r[0] for r in st.con.sql("SELECT area FROM deid_pipl.patient").fetchall()]
        assert areas and all(a is not None and len(a) == 6 and a.endswith("00") for a in areas)
        src = {r[0][:4] for r in st.con.sql("SELECT national_id FROM main.patient").fetchall()}
        assert {a[:4] for a in areas} <= src
        births = [r[0] for r in st.con.sql("SELECT birth_date FROM deid_pipl.patient").fetchall()]
        assert all(b.day == 1 for b in births if b is not None)
        # pseudonyms are the node key's HMAC of the source IDs: stable within the hospital
        pid = st.con.sql("SELECT id FROM main.patient ORDER BY id LIMIT 1").fetchall()[0][0]
        want = K.pseudonymise(ring.active.key, "patient", [pid]).to_pylist()[0]
        got = {r[0] for r in st.con.sql("SELECT id FROM deid_pipl.patient").fetchall()}
        assert want in got


def test_date_shift_keeps_each_patients_intervals(stores: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(stores["h2"], tmp_path)
    ring = K.load_keyring(tmp_path / "k.json", create=True)
    text = load_policy("research").text.split("[anonymity]")[0]
    with Store(path) as st:
        apply_policy(st, parse_policy(text), ring, as_of=AS_OF)
        src = st.con.sql("SELECT patient_id, id, start_time FROM main.encounter WHERE start_time IS NOT NULL"
                         ).to_arrow_table()
        view = st.con.sql("SELECT patient_id, id, start_time FROM deid_research.encounter").to_arrow_table()
    pmap = dict(zip(src.column("patient_id").to_pylist(),
                    K.pseudonymise(ring.active.key, "patient", src.column("patient_id")).to_pylist(), strict=True))
    emap = dict(zip(src.column("id").to_pylist(),
                    K.pseudonymise(ring.active.key, "encounter", src.column("id")).to_pylist(), strict=True))
    shifted = {(p, e): t for p, e, t in zip(*(view.column(c).to_pylist() for c in view.column_names), strict=True)}
    deltas: dict[str, set[int]] = {}
    for p, e, t in zip(*(src.column(c).to_pylist() for c in src.column_names), strict=True):
        d = (shifted[(pmap[p], emap[e])] - t).days
        assert d != 0 and abs(d) <= 365
        deltas.setdefault(p, set()).add(d)
    assert all(len(v) == 1 for v in deltas.values())  # one offset per patient: intervals preserved
    assert len({next(iter(v)) for v in deltas.values()}) > 10  # and offsets differ between patients


def test_linkage_ids_match_across_hospitals(stores: dict[str, Path], tmp_path: Path) -> None:
    link = K.new_key()
    text = load_policy("research").text.split("[anonymity]")[0]
    got: dict[str, dict[str, str]] = {}
    for hid in ("h1", "h3"):
        path = _copy(stores[hid], tmp_path)
        ring = K.load_keyring(tmp_path / f"{hid}.json", create=True)  # each node its own node key
        ring.linkage = link
        with Store(path) as st:
            apply_policy(st, parse_policy(text), ring, as_of=AS_OF)
            pairs = st.con.sql("SELECT p.national_id, v.linkage_id, v.id FROM main.patient p JOIN "
                               "deid_research.patient v ON v.linkage_id IS NOT NULL").fetchall()
            ids = {r[0] for r in st.con.sql("SELECT national_id FROM main.patient").fetchall()}
            want = dict(zip(ids, K.linkage_ids(link, list(ids)).to_pylist(), strict=True))
            view_links = {r[0] for r in st.con.sql("SELECT linkage_id FROM deid_research.patient").fetchall()}
            assert view_links == set(want.values())
            got[hid] = want
            del pairs
    shared = set(got["h1"]) & set(got["h3"])
    assert shared  # the synthetic space has patients attending both
    assert all(got["h1"][n] == got["h3"][n] for n in shared)


def test_rotation_rekeys_views_without_reingest(stores: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(stores["h1"], tmp_path)
    ring = K.load_keyring(tmp_path / "k.json", create=True)
    with Store(path) as st:
        apply_policy(st, load_policy("pipl"), ring, as_of=AS_OF)
        before = {r[0] for r in st.con.sql("SELECT id FROM deid_pipl.patient").fetchall()}
        batches = st.con.sql("SELECT count(*) FROM ingest_batch").fetchall()[0][0]
        reports = rotate_node_key(st, ring, as_of=AS_OF)
        after = {r[0] for r in st.con.sql("SELECT id FROM deid_pipl.patient").fetchall()}
        assert [r.view for r in reports] == ["deid_pipl"]
        assert len(after) == len(before) and not (after & before)
        assert st.con.sql("SELECT count(*) FROM ingest_batch").fetchall()[0][0] == batches
        assert [v[3] for v in applied_views(st)] == [2]
    assert K.load_keyring(tmp_path / "k.json").active.version == 2


def test_a_failing_apply_leaves_the_previous_view(stores: dict[str, Path], tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    path = _copy(stores["h2"], tmp_path)
    with Store(path) as st:
        apply_policy(st, load_policy("safe-harbor"), None, as_of=AS_OF)
        before = st.con.sql("SELECT count(*) FROM deid_safe_harbor.observation").fetchall()[0][0]
        import medspace.deid.apply as A

        # fails inside the transaction, after the new tables were created
        monkeypatch.setattr(A, "APPLICATIONS_DDL", "CREATE TABLE deid_application (")
        with pytest.raises(duckdb.Error):
            apply_policy(st, load_policy("safe-harbor"), None, as_of=AS_OF)
        assert st.con.sql("SELECT count(*) FROM deid_safe_harbor.observation").fetchall()[0][0] == before


def test_l1_only_where_the_policy_names_it(stores: dict[str, Path], tmp_path: Path) -> None:
    path = _copy(stores["h2"], tmp_path)
    text = load_policy("safe-harbor").text.replace('include_l1 = []', 'include_l1 = ["genetic_variant"]')
    pol = parse_policy(text.replace('name = "safe-harbor"', 'name = "sh-genes"'))
    with Store(path) as st:
        report = apply_policy(st, pol, None, as_of=AS_OF)
        assert "genetic_variant" not in report.tables_excluded
        n = st.con.sql("SELECT count(*) FROM deid_sh_genes.genetic_variant").fetchall()[0][0]
        assert n == st.con.sql("SELECT count(*) FROM main.genetic_variant").fetchall()[0][0] > 0
        # still no L1 condition rows: only the named table is admitted
        assert st.con.sql("SELECT count(*) FROM deid_sh_genes.condition WHERE sensitivity = 'L1'"
                          ).fetchall()[0][0] == 0


def test_notes_scrubbed_in_parallel_equal_one_process(stores: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import medspace.deid.apply as A

    path = _copy(stores["h2"], tmp_path)
    monkeypatch.setattr(A, "PARALLEL_NOTES", 10)  # the small store then takes the multi-process path
    with Store(path) as st:
        one = apply_policy(st, load_policy("safe-harbor"), None, as_of=AS_OF, workers=1)
        texts_one = st.con.sql("SELECT text FROM deid_safe_harbor.note ORDER BY text").fetchall()
        two = apply_policy(st, load_policy("safe-harbor"), None, as_of=AS_OF, workers=2)
        texts_two = st.con.sql("SELECT text FROM deid_safe_harbor.note ORDER BY text").fetchall()
    assert one.notes == two.notes and sum(one.notes.values()) > 0
    assert texts_one == texts_two


def test_unverified_concepts_text_is_scrubbed_in_views(tmp_path: Path) -> None:
    """A text-only or local concept is the sender's own words (a misaligned field may hold a name): scrubbed;
    a standard code's display is the code system's and stays."""
    from medspace.connect import complete

    with Store(tmp_path / "n.duckdb") as st:
        with st.batch("t") as b:
            b.add("patient", complete("patient", {"id": "p1", "family_name": "Smith"}, "t"))
            b.add("condition", complete("condition", {
                "id": "c1", "patient_id": "p1", "display": "Referred by Dr. Johnson on 17/05/2023, call 555-201-7788",
                "code_status": "text"}, "t"))
            b.add("condition", complete("condition", {
                "id": "c2", "patient_id": "p1", "code": "E11.9", "code_system": "ICD-10",
                "display": "Type 2 diabetes mellitus without complications"}, "t"))
        ring = K.load_keyring(tmp_path / "keys.json", create=True)
        apply_policy(st, load_policy("safe-harbor"), ring, as_of=date(2026, 1, 1), workers=1)
        rows = dict(st.con.execute("SELECT code_status, display FROM deid_safe_harbor.condition").fetchall())
    assert rows["standard"] == "Type 2 diabetes mellitus without complications"
    assert "Johnson" not in rows["text"] and "555-201-7788" not in rows["text"] and "2023" not in rows["text"]
    assert rows["text"].startswith("Referred by")
