"""The `medspace` command, run as a real process."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from csv_site import write_csv_site

HERE = Path(__file__).resolve().parent
MEDSPACE = shutil.which("medspace", path=str(Path(sys.executable).parent)) or "medspace"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([MEDSPACE, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture
def csv_source(tmp_path: Path) -> Path:
    return write_csv_site(tmp_path)


def test_ingest_then_stats(csv_source: Path) -> None:
    r = run("ingest", "site.toml", "--store", "node.duckdb", "--create", "--json", cwd=csv_source)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["tables"]["patient"]["new"] == 3 and rep["tables"]["condition"]["new"] == 3
    # An impossible date and a code failing its check are kept (null / as sent) and flagged, not quarantined.
    assert rep["quarantined"] == {}
    assert {(f["field"], f["kind"]) for f in rep["findings"]} == {("birth_date", "bad_date"), ("code", "invalid_code")}
    again = json.loads(run("ingest", "site.toml", "--store", "node.duckdb", "--json", cwd=csv_source).stdout)
    assert again["tables"]["patient"] == {"received": 3, "new": 0, "updated": 0, "unchanged": 3}
    assert again["quarantined_new"] == 0
    s = run("node", "stats", "--store", "node.duckdb", "--json", cwd=csv_source)
    stats = json.loads(s.stdout)
    assert stats["tables"]["condition"]["by_level"] == {"L1": 1, "L2": 2}  # F32.1 is psychiatric: L1
    assert stats["quarantine"]["total"] == 0
    table = run("node", "stats", "--store", "node.duckdb", cwd=csv_source)
    assert table.returncode == 0 and "condition" in table.stdout and "bad_date" in table.stdout
    for out in (r.stdout, s.stdout, table.stdout):  # counts only: no name or date from the data
        assert "Wang" not in out and "1980" not in out


def test_missing_path_is_one_clear_line(tmp_path: Path) -> None:
    r = run("ingest", "nowhere", "--store", "n.duckdb", "--create", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["error: nowhere: no such file or directory"]
    assert not (tmp_path / "n.duckdb").exists()


def test_bad_mapping_writes_nothing(csv_source: Path) -> None:
    m = csv_source / "site.toml"
    m.write_text(m.read_text().replace('table = "condition"', 'table = "diagnoses"'))
    r = run("ingest", "site.toml", "--store", "node.duckdb", "--create", cwd=csv_source)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1
    assert "site.toml:15: table.table: 'diagnoses' is not a model table" in r.stderr
    assert not (csv_source / "node.duckdb").exists()  # the store this run would have made is not left behind


def test_ingest_carebundle_files_into_a_store(tmp_path: Path) -> None:
    import carebundle

    src = tmp_path / "bundles"
    src.mkdir()
    for i, b in enumerate(carebundle.generate_cohort(count=30, seed=11)):
        doc = carebundle.to_json(b)
        (src / f"b{i:03d}.json").write_bytes(doc.encode() if isinstance(doc, str) else doc)
    first = run("ingest", "bundles", "--store", "n.duckdb", "--create", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    rep = json.loads(first.stdout)
    assert rep["quarantined"] == {} and rep["files"] == {"ingested": 30, "ignored": 0, "ignored_paths": []}
    assert rep["tables"]["patient"]["new"] == 30 and rep["tables"]["observation"]["new"] > 300
    again = json.loads(run("ingest", "bundles", "--store", "n.duckdb", "--json", cwd=tmp_path).stdout)
    assert all(t["new"] == 0 and t["updated"] == 0 for t in again["tables"].values())
    strict = json.loads(run("ingest", "bundles", "--store", "n.duckdb", "--strict", "--json", cwd=tmp_path).stdout)
    assert strict["quarantined"] == {}


def test_demo_end_to_end(tmp_path: Path) -> None:
    r = run("demo", "--dir", "d", "--patients", "300", "--hospitals", "5", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = " ".join(r.stdout.split())
    assert "every node holds exactly the rows generated: yes" in out
    assert "study counts equal the ground truth: yes" in out
    for h in ("h1", "h2", "h3", "h4", "h5"):
        assert (tmp_path / "d" / "nodes" / f"{h}.duckdb").exists()
    assert (tmp_path / "d" / ".medspace-demo").is_file()  # the demo's own directory: a later demo may clean it
    stats = json.loads(run("node", "stats", "--store", "d/nodes/h3.duckdb", "--json", cwd=tmp_path).stdout)
    assert stats["tables"]["patient"]["rows"] == 300 and stats["quarantine"]["total"] == 0
    assert stats["rows_by_level"]["L1"] > 0  # genetic variants at least
    # the data space: processes on loopback, an application through approval, a count, a revocation, a checkpoint
    assert out.count("FINALIZED") == 5
    m = re.search(r"revoked consent: total (\d+) -> (\d+)", out)
    assert m and int(m.group(2)) == int(m.group(1)) - 1, out[-3000:]
    assert re.search(r"signed by medspace.demo/hub, medspace.demo/w1, medspace.demo/w2: verified", out)
    assert "every process stopped" in out
    for name in ("hub", "w1", "w2", "h1", "h5"):
        assert (tmp_path / "d" / "logs" / f"{name}.log").is_file()
    leftover = subprocess.run(["pgrep", "-f", str(tmp_path / "d")], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "the demo left processes behind"


def test_synth_is_deterministic(tmp_path: Path) -> None:
    for d in ("a", "b"):
        assert run("synth", d, "--hospitals", "2", "--patients", "50", "--seed", "3", cwd=tmp_path).returncode == 0
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    assert files_a == files_b and files_a
    for f in files_a:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_bulk_export_orders_resolve_medications_of_another_file(tmp_path: Path) -> None:
    """A bulk export writes one NDJSON file per type: orders reference Medications in Medication.ndjson."""
    exp = tmp_path / "export"
    exp.mkdir()
    (exp / "Patient.ndjson").write_text('{"resourceType":"Patient","id":"p1"}\n')
    # Read after MedicationRequest.ndjson in name order, so only the batch-wide index can resolve it.
    (exp / "ZZ-Medication.ndjson").write_text(
        '{"resourceType":"Medication","id":"m1","code":{"coding":[{"system":"http://www.nlm.nih.gov/research/'
        'umls/rxnorm","code":"860975","display":"metformin 500 MG"}]}}\n')
    (exp / "MedicationRequest.ndjson").write_text(
        '{"resourceType":"MedicationRequest","id":"r1","status":"active","intent":"order",'
        '"subject":{"reference":"Patient/p1"},"medicationReference":{"reference":"Medication/m1"}}\n')
    r = run("ingest", "export", "--store", "n.duckdb", "--create", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["quarantined"] == {} and report["tables"]["medication"]["new"] == 1
    con = duckdb.connect(str(tmp_path / "n.duckdb"), read_only=True)
    assert con.execute("SELECT code, code_system, code_status FROM medication").fetchall() == [
        ("860975", "RxNorm", "standard")]
    con.close()
