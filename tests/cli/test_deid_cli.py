"""`medspace deid`, run as a real process on a store built by `medspace synth` and `medspace ingest`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

MEDSPACE = shutil.which("medspace", path=str(Path(sys.executable).parent)) or "medspace"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([MEDSPACE, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("node")
    assert run("synth", "src", "--hospitals", "1", "--patients", "120", "--seed", "3", cwd=root).returncode == 0
    r = run("ingest", "src/h1", "--store", "node.duckdb", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    return root


def test_apply_then_risk(node: Path) -> None:
    r = run("deid", "apply", "--policy", "research", "--store", "node.duckdb", "--as-of", "2026-01-01", "--json",
            cwd=node)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["view"] == "deid_research" and rep["anonymity"]["k_measured"] >= 5
    assert (node / "node.duckdb.keys.json").exists()
    r = run("deid", "risk", "--view", "research", "--store", "node.duckdb", "--json", cwd=node)
    assert r.returncode == 0, r.stderr
    risk = json.loads(r.stdout)
    assert risk["measures"]["k"] >= 5
    assert risk["measures"]["prosecutor risk, highest"] <= 0.2
    assert risk["changes"]  # what each rule changed comes with the measures
    table = run("deid", "risk", "--view", "research", "--store", "node.duckdb", cwd=node)
    assert "prosecutor risk, highest" in table.stdout


def test_a_broken_policy_names_line_and_field_and_writes_nothing(node: Path) -> None:
    text = run("deid", "policy", "show", "safe-harbor", cwd=node).stdout
    assert text.startswith("# HIPAA Safe Harbor")
    lines = text.splitlines()
    i = next(n for n, ln in enumerate(lines) if ln.startswith('"patient.postal_code"'))
    lines[i] = '"patient.postal_code" = "zip5"'
    (node / "mine.toml").write_text("\n".join(lines).replace('name = "safe-harbor"', 'name = "mine"') + "\n")
    r = run("deid", "apply", "--policy", "mine.toml", "--store", "node.duckdb", cwd=node)
    assert r.returncode == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1
    assert f"mine.toml:{i + 1}: rules.patient.postal_code: unknown action 'zip5'" in err
    con = duckdb.connect(str(node / "node.duckdb"), read_only=True)
    assert not con.sql("SELECT * FROM information_schema.schemata WHERE schema_name = 'deid_mine'").fetchall()
    con.close()


def test_policy_check_lists_every_field(node: Path) -> None:
    r = run("deid", "policy", "check", "pipl", "--json", cwd=node)
    assert r.returncode == 0, r.stderr
    rules = {x["field"]: x["action"] for x in json.loads(r.stdout)["rules"]}
    assert rules["patient.national_id"] == "drop"
    assert rules["genetic_variant.gene"] == "excluded (L1)"
    assert rules["patient.area"].startswith("derive")


def test_keys_rotate_rebuilds_views(node: Path) -> None:
    assert run("deid", "apply", "--policy", "pipl", "--store", "node.duckdb", "--json", cwd=node).returncode == 0
    con = duckdb.connect(str(node / "node.duckdb"), read_only=True)
    before = {r[0] for r in con.sql("SELECT id FROM deid_pipl.patient").fetchall()}
    con.close()
    r = run("deid", "keys", "rotate", "--store", "node.duckdb", "--destroy-old", cwd=node)
    assert r.returncode == 0, r.stderr
    assert "version 2" in r.stdout and "deid_pipl" in r.stdout
    con = duckdb.connect(str(node / "node.duckdb"), read_only=True)
    after = {r[0] for r in con.sql("SELECT id FROM deid_pipl.patient").fetchall()}
    con.close()
    assert len(after) == len(before) and not after & before
    keys = json.loads((node / "node.duckdb.keys.json").read_text())
    assert [k["version"] for k in keys["node_keys"]] == [2]


def test_linkage_key_install(node: Path) -> None:
    r = run("deid", "keys", "new-linkage", "space.linkage.json", cwd=node)
    assert r.returncode == 0 and "fingerprint" in r.stdout
    again = run("deid", "keys", "new-linkage", "space.linkage.json", cwd=node)
    assert again.returncode == 2 and "refusing" in again.stderr
    r = run("deid", "keys", "import-linkage", "space.linkage.json", "--store", "node.duckdb", cwd=node)
    assert r.returncode == 0, r.stderr
    key = json.loads((node / "space.linkage.json").read_text())["key"]
    for out in (r.stdout, r.stderr):
        assert key not in out
