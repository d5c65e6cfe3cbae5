"""`medspace ingest`, `node stats|quarantine|quality` and `deid views` as real processes: a store must exist
unless `--create` is given, failed runs leave nothing, a busy store says who holds it, `node stats` answers
during an ingest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from csv_site import write_csv_site
from store_holder import held

MEDSPACE = shutil.which("medspace", path=str(Path(sys.executable).parent)) or "medspace"

def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([MEDSPACE, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=300)


def one_line(r: subprocess.CompletedProcess[str]) -> str:
    """The single error line of a failed command (and that it is the only one, with status 2)."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return write_csv_site(tmp_path, "D4,,E11.9\n")


@pytest.fixture
def node(src: Path) -> Path:
    r = run("ingest", "site.toml", "--store", "node.duckdb", "--create", "--json", cwd=src)
    assert r.returncode == 0, r.stderr
    return src


def _listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


def test_a_missing_store_is_refused_and_nothing_is_made(src: Path) -> None:
    before = _listing(src)
    line = one_line(run("ingest", "site.toml", "--store", "nod.duckdb", cwd=src))
    assert line == "error: no store at nod.duckdb; add --create to make a new one"
    for args in (["node", "stats"], ["node", "quarantine"], ["node", "quality"], ["deid", "views"],
                 ["deid", "apply", "--policy", "research"], ["deid", "risk", "--view", "research"]):
        line = one_line(run(*args, "--store", "sub/nod.duckdb", cwd=src))
        assert line.startswith("error: no store at sub/nod.duckdb"), args
    assert _listing(src) == before  # no store, no keyring, no directory


def test_a_failed_first_ingest_leaves_nothing_behind(src: Path) -> None:
    (src / "bad.toml").write_text((src / "site.toml").read_text().replace('"surname"', '"surnam"'))
    before = _listing(src)
    line = one_line(run("ingest", "bad.toml", "--store", "new/node.duckdb", "--create", cwd=src))
    assert "surnam" in line
    assert _listing(src) == before


def test_a_file_named_explicitly_must_be_a_source(src: Path) -> None:
    (src / "notes.txt").write_text("not a source\n")
    line = one_line(run("ingest", "site.toml", "notes.txt", "--store", "node.duckdb", "--create", cwd=src))
    assert line.startswith("error: notes.txt: not a source medspace reads")
    assert not (src / "node.duckdb").exists()


def test_files_skipped_in_a_directory_are_named(src: Path) -> None:
    (src / "README.txt").write_text("about this export\n")
    r = run("ingest", ".", "--store", "../n.duckdb", "--create", "--json", cwd=src)
    assert r.returncode == 0, r.stderr
    files = json.loads(r.stdout)["files"]
    assert files["ingested"] == 1
    assert files["ignored_paths"] == ["README.txt", "dx.csv", "patients.csv"] and files["ignored"] == 3
    text = run("ingest", ".", "--store", "../n.duckdb", cwd=src)
    assert text.returncode == 0, text.stderr
    assert "not a source: README.txt" in text.stdout and "not a source: dx.csv" in text.stdout


def test_string_limits_are_options_of_ingest(src: Path) -> None:
    long_name = "W" * 40
    (src / "patients.csv").write_text(f"pid,surname,dob,gender\nP1,Wang,1980-01-02,M\nP2,{long_name},1980-01-02,F\n")
    r = run("ingest", "site.toml", "--store", "node.duckdb", "--create", "--max-value-chars", "30", "--json", cwd=src)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["tables"]["patient"]["new"] == 1 and rep["quarantined"] == {"bad_value": 1, "missing_field": 1}
    assert "WWW" not in r.stdout
    again = json.loads(run("ingest", "site.toml", "--store", "node.duckdb", "--json", cwd=src).stdout)
    assert again["tables"]["patient"]["new"] == 1  # the default limit holds 40 characters
    bad = run("ingest", "site.toml", "--store", "node.duckdb", "--max-value-chars", "0", cwd=src)
    assert bad.returncode == 2 and "--max-value-chars" in bad.stderr


def test_quarantine_and_quality_are_listed_without_values(node: Path) -> None:
    q = run("node", "quarantine", "--store", "node.duckdb", "--json", cwd=node)
    assert q.returncode == 0, q.stderr
    data = json.loads(q.stdout)
    assert data["total"] == 1
    (item,) = data["items"]
    assert (item["file"], item["position"], item["reason"], item["batch"]) == ("dx.csv", "row 4", "missing_field", 1)
    assert "patient_id" in item["detail"] and "raw" not in item and "E11.9" not in q.stdout
    assert json.loads(run("node", "quarantine", "--store", "node.duckdb", "--reason", "parse_error", "--json",
                          cwd=node).stdout)["total"] == 0
    text = run("node", "quarantine", "--store", "node.duckdb", "--source", "dx", cwd=node)
    assert text.returncode == 0 and "row 4" in text.stdout and "missing_field" in text.stdout
    none = run("node", "quarantine", "--store", "node.duckdb", "--source", "patients", cwd=node)
    assert none.returncode == 0 and "nothing matches" in none.stdout
    assert "error: --reason nope: not a quarantine reason" in one_line(
        run("node", "quarantine", "--store", "node.duckdb", "--reason", "nope", cwd=node))

    dq = json.loads(run("node", "quality", "--store", "node.duckdb", "--json", cwd=node).stdout)
    kinds = {(f["table"], f["field"], f["kind"]): f for f in dq["findings"]}
    assert kinds[("patient", "birth_date", "bad_date")]["example"]["position"] == "row 2"
    assert kinds[("condition", "code", "invalid_code")]["count"] == 1
    only = json.loads(run("node", "quality", "--store", "node.duckdb", "--table", "condition", "--json",
                          cwd=node).stdout)
    assert {f["table"] for f in only["findings"]} == {"condition"}
    assert "not a finding kind" in one_line(run("node", "quality", "--store", "node.duckdb", "--kind", "x", cwd=node))
    stats = run("node", "stats", "--store", "node.duckdb", cwd=node)
    assert "data-quality findings: 2" in stats.stdout and "patient.birth_date" in stats.stdout
    for out in (q.stdout, text.stdout, stats.stdout):
        assert "Wang" not in out and "1980-02-31" not in out


def test_ingest_reports_the_findings_of_its_batch(src: Path) -> None:
    r = run("ingest", "site.toml", "--store", "node.duckdb", "--create", cwd=src)
    assert r.returncode == 0, r.stderr
    assert "data-quality findings: 2" in r.stdout
    assert "patient.birth_date" in r.stdout and "bad_date" in r.stdout and "row 2" in r.stdout


def test_a_busy_store_says_who_holds_it_and_can_be_waited_for(node: Path) -> None:
    store = node / "node.duckdb"
    with held(store) as proc:
        t0 = time.monotonic()
        line = one_line(run("ingest", "site.toml", "--store", "node.duckdb", cwd=node))
        assert time.monotonic() - t0 < 30
        assert line.startswith(f"error: store node.duckdb is in use by medspace ingest (PID {proc.pid}, writing since")
        assert line.endswith("; add --wait SECONDS to wait for it")
        line = one_line(run("deid", "apply", "--policy", "safe-harbor", "--store", "node.duckdb", "--wait", "0.5",
                            cwd=node))
        assert f"(PID {proc.pid}" in line and line.endswith("; waited 0.5 s")
    with held(store, hold=2.0):
        r = run("ingest", "site.toml", "--store", "node.duckdb", "--wait", "120", "--json", cwd=node)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["batch_id"] == 4  # after the two holders' batches 2 and 3


def test_node_stats_reads_while_an_ingest_runs(node: Path) -> None:
    store = node / "node.duckdb"
    with held(store) as proc:
        r = run("node", "stats", "--store", "node.duckdb", "--json", cwd=node)
        assert r.returncode == 0, r.stderr
        data = json.loads(r.stdout)
        assert data["snapshot"]["batch"] == 1 and data["batches"] == 1
        assert data["snapshot"]["in_use_by"].startswith(f"medspace ingest (PID {proc.pid}")
        assert data["tables"]["patient"]["rows"] == 3  # the held batch's row is not counted: not committed
        text = run("node", "stats", "--store", "node.duckdb", cwd=node)
        assert text.returncode == 0, text.stderr
        note = " ".join(text.stdout.split())
        assert "store in use by medspace ingest" in note and "figures as of batch 1" in note
        assert "quarantine: 1" in note
        (node / "node.duckdb.stats.json").unlink()
        assert "is in use by medspace ingest" in one_line(run("node", "stats", "--store", "node.duckdb", cwd=node))
    live = json.loads(run("node", "stats", "--store", "node.duckdb", "--json", cwd=node).stdout)
    assert live["snapshot"] is None and live["batches"] == 2 and live["tables"]["patient"]["rows"] == 4


def test_deid_views_lists_the_views_of_a_store(node: Path) -> None:
    empty = run("deid", "views", "--store", "node.duckdb", cwd=node)
    assert empty.returncode == 0 and "no de-identified views" in empty.stdout
    r = run("deid", "apply", "--policy", "safe-harbor", "--store", "node.duckdb", "--as-of", "2026-01-01", cwd=node)
    assert r.returncode == 0, r.stderr
    views = json.loads(run("deid", "views", "--store", "node.duckdb", "--json", cwd=node).stdout)["views"]
    (v,) = views
    assert v["view"] == "deid_safe_harbor" and v["policy"] == "safe-harbor" and v["built_at"]
    assert v["tables"]["patient"] == 3 and v["rows"] == sum(v["tables"].values())
    text = run("deid", "views", "--store", "node.duckdb", cwd=node)
    assert "deid_safe_harbor" in text.stdout and "safe-harbor" in text.stdout


def test_a_file_that_is_not_a_store_is_one_line(src: Path) -> None:
    (src / "notes.duckdb").write_text("SQLite format 3\n")
    for args in (["node", "stats"], ["ingest", "site.toml"], ["deid", "apply", "--policy", "safe-harbor"]):
        line = one_line(run(*args, "--store", "notes.duckdb", cwd=src))
        assert line == "error: notes.duckdb is not a medspace store (not a DuckDB database)", args
    assert (src / "notes.duckdb").read_text() == "SQLite format 3\n"


def test_a_writer_records_its_command_and_leaves_limits_as_they_were(node: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import medspace.store.lock as lock
    from medspace.cli.main import app
    from medspace.connect.base import limits

    seen: list[str] = []
    claim = lock.claim
    monkeypatch.setattr(lock, "claim", lambda store, command: (seen.append(command), claim(store, command))[1])
    monkeypatch.chdir(node)
    before = limits()
    r = CliRunner().invoke(app, ["ingest", "site.toml", "--store", "node.duckdb", "--max-value-chars", "50"],
                           prog_name="medspace")
    assert r.exit_code == 0, r.output
    assert seen == ["medspace ingest"]  # the command's name, never its arguments
    assert limits() == before  # --max-value-chars held for that command only
