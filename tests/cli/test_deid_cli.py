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
    r = run("ingest", "src/h1", "--store", "node.duckdb", "--create", "--json", cwd=root)
    assert r.returncode == 0, r.stderr
    shutil.copy2(root / "node.duckdb", root / "pristine.duckdb")  # for tests that need a store of their own
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


# --- keys and policies that cannot be swapped by accident --------------------------------------------------------


def _store(node: Path, where: Path, name: str = "a.duckdb") -> Path:
    """A copy of the ingested store, before any view or keyring (copies share the store's identity)."""
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy2(node / "pristine.duckdb", where / name)
    return where / name


def _ids(store: Path, view: str = "deid_pipl") -> list[str]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        return sorted(r[0] for r in con.sql(f"SELECT id FROM {view}.patient").fetchall())
    finally:
        con.close()


def _one_line(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_a_store_copied_without_its_keyring_is_refused_not_rekeyed(node: Path, tmp_path: Path) -> None:
    _store(node, tmp_path)
    r = run("deid", "apply", "--policy", "pipl", "--store", "a.duckdb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "note: created keyring a.duckdb.keys.json for this store" in r.stderr
    before = _ids(tmp_path / "a.duckdb")
    (tmp_path / "moved").mkdir()
    shutil.copy2(tmp_path / "a.duckdb", tmp_path / "moved" / "a.duckdb")
    for args in (["deid", "apply", "--policy", "pipl"], ["deid", "apply", "--policy", "research"],
                 ["deid", "keys", "init"], ["deid", "keys", "rotate"]):
        line = _one_line(run(*args, "--store", "moved/a.duckdb", cwd=tmp_path))
        assert line.startswith("error: keyring missing at moved/a.duckdb.keys.json;"), line
        assert f"(last used: {tmp_path / 'a.duckdb.keys.json'})" in line
        assert "`medspace deid keys init --store moved/a.duckdb --force` to start new pseudonyms" in line
        assert not (tmp_path / "moved" / "a.duckdb.keys.json").exists()
    # a keyless policy (random surrogates, years) still builds
    assert run("deid", "apply", "--policy", "safe-harbor", "--store", "moved/a.duckdb", cwd=tmp_path).returncode == 0
    shutil.copy2(tmp_path / "a.duckdb.keys.json", tmp_path / "moved" / "a.duckdb.keys.json")
    r = run("deid", "apply", "--policy", "pipl", "--store", "moved/a.duckdb", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _ids(tmp_path / "moved" / "a.duckdb") == before  # the same pseudonyms, as before the move


def test_keys_init_force_starts_new_pseudonyms_on_purpose(node: Path, tmp_path: Path) -> None:
    line = _one_line(run("deid", "keys", "init", "--store", "missing.duckdb", cwd=tmp_path))
    assert "no store at missing.duckdb" in line and not (tmp_path / "missing.duckdb.keys.json").exists()
    _store(node, tmp_path)
    r = run("deid", "keys", "init", "--store", "a.duckdb", cwd=tmp_path)
    assert r.returncode == 0 and "created keyring a.duckdb.keys.json (node key version 1" in r.stdout, r.stderr
    assert run("deid", "apply", "--policy", "pipl", "--store", "a.duckdb", cwd=tmp_path).returncode == 0
    before = _ids(tmp_path / "a.duckdb")
    line = _one_line(run("deid", "keys", "init", "--store", "a.duckdb", cwd=tmp_path))
    assert "a keyring exists at a.duckdb.keys.json" in line and "--force" in line
    r = run("deid", "keys", "init", "--store", "a.duckdb", "--force", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    kept = sorted(tmp_path.glob("a.duckdb.keys.json.replaced-*"))
    assert len(kept) == 1 and f"kept at {kept[0].name}" in r.stderr
    assert run("deid", "apply", "--policy", "pipl", "--store", "a.duckdb", cwd=tmp_path).returncode == 0
    after = _ids(tmp_path / "a.duckdb")
    assert len(after) == len(before) and not set(after) & set(before)
    # the replaced keyring is not taken back by accident
    line = _one_line(run("deid", "apply", "--policy", "pipl", "--store", "a.duckdb", "--keys", kept[0].name,
                         cwd=tmp_path))
    assert "is not the one this store was last used with" in line


def test_a_keyring_of_another_store_is_refused_until_bound(node: Path, tmp_path: Path) -> None:
    _store(node, tmp_path)
    assert run("deid", "apply", "--policy", "pipl", "--store", "a.duckdb", cwd=tmp_path).returncode == 0
    r = run("ingest", str(node / "src" / "h1"), "--store", "b.duckdb", "--create", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # the same records, another store (its own identity)
    shutil.copy2(tmp_path / "a.duckdb.keys.json", tmp_path / "b.duckdb.keys.json")
    for args in (["deid", "apply", "--policy", "pipl"], ["deid", "keys", "rotate"]):
        line = _one_line(run(*args, "--store", "b.duckdb", cwd=tmp_path))
        assert "keyring b.duckdb.keys.json belongs to another store" in line
        assert "`medspace deid keys bind --store b.duckdb`" in line
    line = _one_line(run("deid", "keys", "bind", "--store", "b.duckdb", cwd=tmp_path))
    assert "run again with --yes" in line
    r = run("deid", "keys", "bind", "--store", "b.duckdb", "--yes", cwd=tmp_path)
    assert r.returncode == 0 and "bound keyring b.duckdb.keys.json to b.duckdb" in r.stdout, r.stderr
    assert run("deid", "apply", "--policy", "pipl", "--store", "b.duckdb", cwd=tmp_path).returncode == 0
    assert _ids(tmp_path / "b.duckdb") == _ids(tmp_path / "a.duckdb")  # the old keys' pseudonyms, on purpose


def test_an_old_keyring_is_bound_on_first_use(node: Path, tmp_path: Path) -> None:
    _store(node, tmp_path)
    assert run("deid", "keys", "init", "--store", "a.duckdb", cwd=tmp_path).returncode == 0
    path = tmp_path / "a.duckdb.keys.json"
    doc = json.loads(path.read_text())
    del doc["store_id"], doc["keyring_id"]
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    con = duckdb.connect(str(tmp_path / "a.duckdb"))
    con.execute("DELETE FROM _medspace_meta WHERE starts_with(key, 'deid_')")  # as a store from before
    con.close()
    r = run("deid", "apply", "--policy", "pipl", "--store", "a.duckdb", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "note: keyring a.duckdb.keys.json had no store identity: bound it to this store" in r.stderr
    assert json.loads(path.read_text())["store_id"]
    json.loads(r.stdout)  # the note went to stderr: --json output stays parseable


def test_keyrings_readable_by_others_are_refused_by_every_command(node: Path, tmp_path: Path) -> None:
    _store(node, tmp_path)
    assert run("deid", "apply", "--policy", "pipl", "--store", "a.duckdb", cwd=tmp_path).returncode == 0
    assert run("deid", "keys", "new-linkage", "space.linkage.json", cwd=tmp_path).returncode == 0
    (tmp_path / "a.duckdb.keys.json").chmod(0o644)
    want = "error: keyring a.duckdb.keys.json is accessible by group or others; run `chmod 600 a.duckdb.keys.json`"
    for args in (["deid", "apply", "--policy", "research"], ["deid", "keys", "rotate"],
                 ["deid", "keys", "import-linkage", "space.linkage.json"], ["deid", "keys", "bind", "--yes"]):
        assert _one_line(run(*args, "--store", "a.duckdb", cwd=tmp_path)) == want, args
    (tmp_path / "a.duckdb.keys.json").chmod(0o600)
    (tmp_path / "space.linkage.json").chmod(0o640)
    line = _one_line(run("deid", "keys", "import-linkage", "space.linkage.json", "--store", "a.duckdb",
                         cwd=tmp_path))
    assert line == ("error: linkage key file space.linkage.json is accessible by group or others; "
                    "run `chmod 600 space.linkage.json`")
    (tmp_path / "space.linkage.json").chmod(0o600)
    r = run("deid", "keys", "import-linkage", "space.linkage.json", "--store", "a.duckdb", cwd=tmp_path)
    assert r.returncode == 0 and "installed" in r.stdout, r.stderr
    assert run("deid", "keys", "new-linkage", "other.linkage.json", cwd=tmp_path).returncode == 0
    line = _one_line(run("deid", "keys", "import-linkage", "other.linkage.json", "--store", "a.duckdb",
                         cwd=tmp_path))
    assert "holds another linkage key" in line and "--force" in line


@pytest.mark.parametrize("name", ["safe-harbor", "Research", "pipl"])
def test_a_policy_file_cannot_take_a_built_in_name(node: Path, tmp_path: Path, name: str) -> None:
    store = _store(node, tmp_path)
    assert run("deid", "apply", "--policy", "safe-harbor", "--store", "a.duckdb", cwd=tmp_path).returncode == 0
    # a policy that keeps names and resident IDs, trying to replace the built-in view
    (tmp_path / "mine.toml").write_text(f'[policy]\nname = "{name}"\n\n[defaults]\ndirect_identifier = '
                                        '"pseudonym"\n\n[rules]\n"patient.national_id" = "pseudonym"\n')
    line = _one_line(run("deid", "apply", "--policy", "mine.toml", "--store", "a.duckdb", cwd=tmp_path))
    assert line.startswith(f"error: mine.toml:2: policy.name: '{name}' is the name of the built-in policy")
    r = run("deid", "policy", "check", "mine.toml", cwd=tmp_path)
    assert r.returncode == 1 and "mine.toml:2: policy.name:" in r.stderr
    con = duckdb.connect(str(store), read_only=True)
    try:
        views = [r[0] for r in con.sql("SELECT view FROM deid_application").fetchall()]
        policy = con.sql("SELECT policy_text FROM deid_application").fetchall()[0][0]
    finally:
        con.close()
    assert views == ["deid_safe_harbor"] and policy.startswith("# HIPAA Safe Harbor")
