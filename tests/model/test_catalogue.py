from medspace.model import CLINICAL_TABLES, PHI, TABLES, Level, fields_at_level, fields_tagged, row_level


def test_every_table_has_id_meta_and_patient_link() -> None:
    for t in TABLES.values():
        assert t.fields[0].name == "id" and t["id"].required
        assert "sensitivity" in t and "source" in t
        if t.name != "patient":
            assert t["patient_id"].required


def test_direct_identifiers_are_tagged() -> None:
    direct = fields_tagged(PHI.DIRECT)["patient"]
    for name in ("national_id", "family_name", "given_name", "phone", "email", "address_line", "mrn"):
        assert name in direct
    assert "sex" in fields_tagged(PHI.QUASI)["patient"]
    assert "text" in fields_tagged(PHI.FREE_TEXT)["note"]
    assert "birth_date" in fields_tagged(PHI.DATE)["patient"]


def test_genetics_is_l1_everywhere() -> None:
    gv = TABLES["genetic_variant"]
    assert gv.base_level is Level.L1
    assert set(fields_at_level(Level.L1)["genetic_variant"]) >= {"gene", "hgvs", "zygosity"}
    assert row_level("genetic_variant") is Level.L1


def test_row_level_escalates_core_codes() -> None:
    assert row_level("condition", "ICD-10", "B20") is Level.L1  # HIV disease
    assert row_level("condition", "ICD-10", "Z21") is Level.L1  # asymptomatic HIV
    assert row_level("condition", "ICD-10", "F32.9") is Level.L1  # depression
    assert row_level("condition", "ICD-10", "A54.0") is Level.L1  # gonorrhoea
    assert row_level("condition", "ICD-10", "E11.9") is Level.L2
    assert row_level("medication", "ATC", "J05AR03") is Level.L1  # antiretroviral
    assert row_level("medication", "ATC", "A10BA02") is Level.L2  # metformin
    assert row_level("observation", "LOINC", "75622-1") is Level.L1  # HIV test
    assert row_level("observation", "LOINC", "4548-4") is Level.L2


def test_arrow_schema_matches_fields() -> None:
    for name in CLINICAL_TABLES:
        t = TABLES[name]
        assert t.arrow_schema.names == list(t.names)
