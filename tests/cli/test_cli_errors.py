"""One clear line, never a traceback: exit statuses, OS errors on every path a command writes, `--version`, and a
demo directory that is the demo's own. Tests run as root, where chmod stops nothing: an unwritable path is one
under a regular file (`somefile/sub`) or under /dev/null."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner, Result

from medspace.cli.common import (
    EXIT_FINDING,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Finding,
    InputError,
    MedspaceGroup,
    os_error_line,
    writing,
)
from medspace.cli.demo import MARKER
from medspace.cli.main import app
from medspace.store.errors import StoreOpenError

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "MEDSPACE_DEBUG": None, "MEDSPACE_STORE": None}
MEDSPACE = shutil.which("medspace", path=str(Path(sys.executable).parent)) or "medspace"
EVENT = {"actor": "dr-chen@h1", "role": "researcher", "action": "task.submit", "purpose": "HRESCH",
         "resource": "study:x", "time": "2026-11-24T10:00:00Z", "contract_id": "C-1", "input_hashes": ["ab" * 32]}
UNWRITABLE = ["somefile/sub", "/dev/null/x"]


def invoke(cwd: Path, *args: str, **env: str | None) -> Result:
    """Run `medspace args` in-process in `cwd`."""
    with contextlib.chdir(cwd):
        return CliRunner().invoke(app, list(args), env={**ENV, **env}, input="")


def one_line(r: Result) -> str:
    """The single error line of a failed command (asserts there is exactly one and no traceback)."""
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def listing(root: Path) -> set[str]:
    """Every path under root, for "nothing was left behind"."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store, a published audit log with one entry, its bundle and keys, a linkage key and a regular file."""
    root = tmp_path_factory.mktemp("space")
    (root / "somefile").write_text("just text\n")
    (root / "events.json").write_text(json.dumps([EVENT]))
    (root / "patients.csv").write_text("pid,surname,dob,gender\nP1,Wang,1980-01-02,M\n")
    (root / "site.toml").write_text(
        '[source]\nformat = "csv"\n\n[[table]]\nfile = "patients.csv"\ntable = "patient"\n[table.columns]\n'
        'id = "pid"\nfamily_name = "surname"\nbirth_date = "dob"\n'
    )
    for args in (["ingest", "site.toml", "--store", "node.duckdb", "--create"],
                 ["ledger", "init", "--origin", "test.example/log", "--dir", "log"],
                 ["ledger", "append", "events.json", "--dir", "log"],
                 ["ledger", "publish", "--dir", "log"],
                 ["audit", "export", "0", "--dir", "log", "-o", "bundle.json"],
                 ["audit", "keys", "keys.json", "--dir", "log"],
                 ["deid", "keys", "new-linkage", "linkage.key"]):
        r = invoke(root, *args)
        assert r.exit_code == 0, (args, r.output)
    return root


@pytest.fixture
def space(template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template."""
    shutil.copytree(template, tmp_path / "space")
    return tmp_path / "space"


# --- --version --------------------------------------------------------------------------------------------------


def test_version_in_process(tmp_path: Path) -> None:
    r = invoke(tmp_path, "--version")
    assert r.exit_code == 0 and r.stdout == f"medspace {version('medspace')}\n"


def test_version_as_a_process(tmp_path: Path) -> None:
    r = subprocess.run([MEDSPACE, "--version"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == f"medspace {version('medspace')}"


# --- the translation of errors ------------------------------------------------------------------------------------

probe = typer.Typer(cls=MedspaceGroup, pretty_exceptions_enable=False)
FAILURES: dict[str, BaseException] = {
    "value": ValueError("patient Wang Wei, born 1980-01-02"),  # a message with data: must never be printed
    "permission": PermissionError(errno.EACCES, "Permission denied", "/ro/log"),
    "missing": FileNotFoundError(errno.ENOENT, "No such file or directory", "gone.json"),
    "isdir": IsADirectoryError(errno.EISDIR, "Is a directory", "adir"),
    "nospace": OSError(errno.ENOSPC, "No space left on device"),
    "renamed": OSError(errno.EXDEV, "Invalid cross-device link", "a.tmp", None, "b"),
    "interrupt": KeyboardInterrupt(),
    "finding": Finding("check failed: entry 3: the entry does not hash to its stored leaf hash"),
    "input": InputError("cannot write x: no space left on device"),
    "store": StoreOpenError("no store at n.duckdb"),
    "connect": httpx.ConnectError("[Errno 111] Connection refused",
                                  request=httpx.Request("GET", "http://127.0.0.1:1/Patient")),
    "url": httpx.InvalidURL("Invalid port: ':1'"),
    "status": httpx.HTTPStatusError(
        "401", request=httpx.Request("GET", "https://user:secret@[::1]:8443/r4/Patient?_token=abc"),
        response=httpx.Response(401)),
    "sqlite": sqlite3.OperationalError("unable to open database file"),
}


@probe.callback()
def _probe_root() -> None:
    """A test app with the real top-level group."""


@probe.command()
def boom(kind: str) -> None:
    """Raise one of FAILURES, undecorated: the group alone must catch it."""
    raise FAILURES[kind]


@pytest.mark.parametrize(("kind", "code", "line"), [
    ("value", EXIT_INTERNAL, "error: internal error (ValueError); run with MEDSPACE_DEBUG=1 for the traceback"),
    ("permission", EXIT_USAGE, "error: /ro/log: permission denied"),
    ("missing", EXIT_USAGE, "error: gone.json: no such file or directory"),
    ("isdir", EXIT_USAGE, "error: adir: is a directory"),
    ("nospace", EXIT_USAGE, "error: no space left on device"),
    ("renamed", EXIT_USAGE, "error: a.tmp -> b: invalid cross-device link"),
    ("interrupt", EXIT_INTERRUPTED, "interrupted"),
    ("finding", EXIT_FINDING, "error: check failed: entry 3: the entry does not hash to its stored leaf hash"),
    ("input", EXIT_USAGE, "error: cannot write x: no space left on device"),
    ("store", EXIT_USAGE, "error: no store at n.duckdb"),
    ("connect", EXIT_USAGE, "error: cannot reach http://127.0.0.1:1/Patient (ConnectError)"),
    ("url", EXIT_USAGE, "error: invalid URL: Invalid port: ':1'"),
    ("status", EXIT_USAGE, "error: HTTP 401 from https://[::1]:8443/r4/Patient"),  # no credentials, no query
    ("sqlite", EXIT_USAGE, "error: database: unable to open database file"),
])
def test_every_error_is_one_line_and_its_exit_status(kind: str, code: int, line: str) -> None:
    r = CliRunner().invoke(probe, ["boom", kind], env=ENV)
    assert r.exit_code == code
    assert one_line(r) == line
    assert "Wang" not in r.output and "1980" not in r.output


def test_debug_lets_the_traceback_through() -> None:
    r = CliRunner().invoke(probe, ["boom", "value"], env={**ENV, "MEDSPACE_DEBUG": "1"})
    assert isinstance(r.exception, ValueError)


PROBE_SCRIPT = textwrap.dedent("""
    import typer
    from medspace.cli.common import MedspaceGroup

    app = typer.Typer(cls=MedspaceGroup, pretty_exceptions_enable=False)

    @app.callback()
    def root() -> None:
        pass

    @app.command()
    def boom() -> None:
        {}.get("x")["y"]  # a bug: TypeError

    app()
""")


@pytest.mark.parametrize("debug", [False, True])
def test_internal_error_as_a_process(debug: bool, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MEDSPACE_DEBUG"}
    if debug:
        env["MEDSPACE_DEBUG"] = "1"
    r = subprocess.run([sys.executable, "-c", PROBE_SCRIPT, "boom"], capture_output=True, text=True, env=env,
                       cwd=tmp_path, timeout=60)
    if debug:
        assert "Traceback" in r.stderr and "TypeError" in r.stderr
    else:
        assert r.returncode == EXIT_INTERNAL
        assert r.stderr.strip().splitlines() == [
            "error: internal error (TypeError); run with MEDSPACE_DEBUG=1 for the traceback"]


def test_a_long_line_is_not_wrapped(tmp_path: Path) -> None:
    deep = "somefile/" + "/".join(["d" * 40] * 6)
    (tmp_path / "somefile").write_text("x")
    r = invoke(tmp_path, "synth", deep, "--hospitals", "1", "--patients", "1", COLUMNS="40")
    assert r.exit_code == EXIT_USAGE
    assert one_line(r) == f"error: cannot write {deep}: not a directory"


def test_os_error_line_names_path_verb_and_reason(tmp_path: Path) -> None:
    e = PermissionError(errno.EACCES, "Permission denied", "/ro/log")
    assert os_error_line(e, "write") == "cannot write /ro/log: permission denied"
    assert os_error_line(OSError(errno.ENOSPC, "No space left on device"), "write", "out.json") == \
        "cannot write out.json: no space left on device"
    (tmp_path / "f").write_text("x")
    exists = FileExistsError(errno.EEXIST, "File exists", str(tmp_path / "f"))
    assert os_error_line(exists) == f"{tmp_path / 'f'}: exists and is not a directory"


def test_writing_removes_only_what_it_made(tmp_path: Path) -> None:
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "old.txt").write_text("mine")
    with pytest.raises(InputError, match=r"^cannot write .*new: no space left on device$"), \
            writing(tmp_path / "new" / "deeper", tmp_path / "kept", tmp_path / "kept" / "old.txt"):
        (tmp_path / "new" / "deeper").mkdir(parents=True)
        (tmp_path / "kept" / "added.txt").write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "new"))
    assert not (tmp_path / "new").exists()
    assert (tmp_path / "kept" / "old.txt").read_text() == "mine"
    # what it did not declare is not its to judge: left alone
    assert (tmp_path / "kept" / "added.txt").exists()


# --- every command that writes a path -----------------------------------------------------------------------------

WRITERS = {
    "ledger init": ["ledger", "init", "--origin", "t.example/log", "--dir", "{bad}"],
    "ledger init store": ["ledger", "init", "--origin", "t.example/log", "--dir", "newlog", "--store",
                          "{bad}/log.sqlite"],
    "audit export": ["audit", "export", "0", "--dir", "log", "-o", "{bad}/b.json"],
    "audit keys": ["audit", "keys", "{bad}/keys.json", "--dir", "log"],
    "synth": ["synth", "{bad}", "--hospitals", "1", "--patients", "1"],
    "demo": ["demo", "--dir", "{bad}", "--hospitals", "1", "--patients", "1"],
    "deid keys new-linkage": ["deid", "keys", "new-linkage", "{bad}/linkage.key"],
    "deid keys init": ["deid", "keys", "init", "--store", "node.duckdb", "--keys", "{bad}/keys.json"],
    "deid keys import-linkage": ["deid", "keys", "import-linkage", "linkage.key", "--store", "node.duckdb",
                                 "--keys", "{bad}/keys.json"],
    "witness keygen": ["witness", "keygen", "t.example/witness", "--out", "{bad}"],
    "ingest store": ["ingest", "site.toml", "--store", "{bad}/n.duckdb", "--create"],
    "pull store": ["pull", "http://127.0.0.1:1/r4", "--store", "{bad}/n.duckdb", "--create"],
}


@pytest.mark.parametrize("bad", UNWRITABLE)
@pytest.mark.parametrize("name", sorted(WRITERS))
def test_an_unwritable_path_is_one_line(name: str, bad: str, space: Path) -> None:
    before = listing(space)
    r = invoke(space, *(a.replace("{bad}", bad) for a in WRITERS[name]))
    assert r.exit_code == EXIT_USAGE, r.output
    line = one_line(r)
    assert line.startswith("error: ") and bad in line, line
    assert listing(space) == before  # nothing half-made stays behind


def test_ledger_init_removes_a_log_it_could_not_finish(space: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medspace.ledger.log as log_module

    real = log_module.generate_key_files

    def disk_full(name: str, private: Path, public: Path, **kw: bool) -> str:
        real(name, private, public, **kw)
        raise OSError(errno.ENOSPC, "No space left on device", str(public))

    monkeypatch.setattr(log_module, "generate_key_files", disk_full)
    r = invoke(space, "ledger", "init", "--origin", "t.example/log", "--dir", "fresh/log")
    assert r.exit_code == EXIT_USAGE
    assert one_line(r) == "error: cannot write fresh/log/log.vkey: no space left on device"
    assert not (space / "fresh").exists()
    # into an existing empty directory: the directory stays, the files it wrote go
    (space / "empty").mkdir()
    r = invoke(space, "ledger", "init", "--origin", "t.example/log", "--dir", "empty")
    assert r.exit_code == EXIT_USAGE and list((space / "empty").iterdir()) == []


def test_witness_keygen_and_synth_remove_what_they_made(space: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medspace.cli.demo as demo_module
    import medspace.ledger.checkpoint as checkpoint

    def half_keys(name: str, private: Path, public: Path, **kw: bool) -> str:
        Path(private).write_text("half")
        raise OSError(errno.EIO, "Input/output error", str(public))

    monkeypatch.setattr(checkpoint, "generate_key_files", half_keys)
    r = invoke(space, "witness", "keygen", "t.example/w", "--out", "wk/a")
    assert r.exit_code == EXIT_USAGE and "input/output error" in one_line(r)
    assert not (space / "wk").exists()

    def half_synth(out: Path, *args: object, **kw: object) -> None:
        out.mkdir(parents=True)
        (out / "h1").mkdir()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(demo_module, "generate_all", half_synth)
    r = invoke(space, "synth", "out/src", "--hospitals", "1", "--patients", "1")
    assert r.exit_code == EXIT_USAGE
    assert one_line(r) == "error: cannot write out/src: no space left on device"
    assert not (space / "out").exists()


# --- exit status 1: findings ----------------------------------------------------------------------------------------


def test_a_bundle_that_does_not_verify_is_a_finding(space: Path) -> None:
    assert invoke(space, "audit", "verify", "bundle.json", "--keys", "keys.json").exit_code == 0
    doc = json.loads((space / "bundle.json").read_text())
    (space / "forged.json").write_text(json.dumps(dict(doc, index=doc["index"] + 1)))
    r = invoke(space, "audit", "verify", "forged.json", "--keys", "keys.json")
    assert r.exit_code == EXIT_FINDING and one_line(r).startswith("error: not verified: ")
    r = invoke(space, "audit", "verify", "forged.json", "--keys", "keys.json", "--json")
    assert r.exit_code == EXIT_FINDING and json.loads(r.stdout)["verified"] is False
    # a file that is not a bundle at all, or no keys file: input errors
    assert invoke(space, "audit", "verify", "somefile", "--keys", "keys.json").exit_code == EXIT_USAGE
    assert invoke(space, "audit", "verify", "bundle.json", "--keys", "nokeys.json").exit_code == EXIT_USAGE


def test_a_log_that_does_not_rederive_is_a_finding(space: Path) -> None:
    assert invoke(space, "audit", "check", "--dir", "log").exit_code == 0
    con = sqlite3.connect(space / "log" / "log.sqlite")
    entries = next(t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'") if "entr" in t)
    con.execute(f"UPDATE {entries} SET data = CAST(replace(CAST(data AS TEXT), 'study:x', 'study:y') AS BLOB)")
    con.commit()
    con.close()
    r = invoke(space, "audit", "check", "--dir", "log")
    assert r.exit_code == EXIT_FINDING and one_line(r).startswith("error: check failed: entry 0")
    assert invoke(space, "audit", "check", "--dir", "nolog").exit_code == EXIT_USAGE


def test_policy_check_finding_versus_input_error(space: Path) -> None:
    (space / "mine.toml").write_text('[policy]\nname = "mine"\n[rules]\n"patient.postal_code" = "zip5"\n')
    r = invoke(space, "deid", "policy", "check", "mine.toml")
    assert r.exit_code == EXIT_FINDING
    assert one_line(r).startswith("error: mine.toml:4: rules.patient.postal_code: unknown action 'zip5'")
    assert invoke(space, "deid", "policy", "check", "absent.toml").exit_code == EXIT_USAGE
    assert invoke(space, "deid", "policy", "check", "research").exit_code == 0


# --- URLs -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["not-a-url", "http://[::1", "http://", "ftp://example.invalid/r4",
                                 "http://127.0.0.1:99999/r4"])
def test_a_malformed_url_is_one_line(url: str, space: Path) -> None:
    before = listing(space)
    r = invoke(space, "pull", url, "--store", "new.duckdb", "--create")
    assert r.exit_code == EXIT_USAGE
    assert one_line(r).startswith("error: ")
    assert listing(space) == before


def test_an_unreachable_server_is_one_line(space: Path) -> None:
    r = invoke(space, "pull", "http://127.0.0.1:1/r4", "--store", "node.duckdb")
    assert r.exit_code == EXIT_USAGE
    assert one_line(r).startswith("error: ")


# --- the demo's directory -------------------------------------------------------------------------------------------


def test_demo_refuses_a_directory_it_did_not_make(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("years of work")
    r = invoke(tmp_path, "demo", "--dir", "mine", "--hospitals", "1", "--patients", "1", "--no-space")
    assert r.exit_code == EXIT_USAGE
    assert one_line(r) == ("error: mine is not empty and was not made by `medspace demo`; give --dir a new or empty "
                           "directory")
    assert listing(tmp_path / "mine") == {"thesis.tex"}
    (tmp_path / "afile").write_text("x")
    r = invoke(tmp_path, "demo", "--dir", "afile", "--hospitals", "1", "--patients", "1", "--no-space")
    assert r.exit_code == EXIT_USAGE and one_line(r) == "error: afile is not a directory"


def test_demo_marks_its_directory_and_reuses_it(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    r = invoke(tmp_path, "demo", "--dir", "empty", "--hospitals", "1", "--patients", "3", "--jobs", "1", "--no-space")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "empty" / MARKER).is_file() and (tmp_path / "empty" / "nodes" / "h1.duckdb").is_file()
    (tmp_path / "empty" / "nodes" / "stale.duckdb").write_text("from before")
    r = invoke(tmp_path, "demo", "--dir", "empty", "--hospitals", "1", "--patients", "3", "--jobs", "1", "--no-space")
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "empty" / "nodes" / "stale.duckdb").exists()


def test_a_failed_demo_leaves_nothing_it_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medspace.cli.demo as demo_module

    def disk_full(out: Path, *args: object, **kw: object) -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "h1").mkdir()
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "h1" / "patients.csv"))

    monkeypatch.setattr(demo_module, "generate_all", disk_full)
    r = invoke(tmp_path, "demo", "--dir", "new/demo", "--hospitals", "1", "--patients", "1", "--no-space")
    assert r.exit_code == EXIT_USAGE
    assert one_line(r) == "error: cannot use new/demo/sources/h1/patients.csv: no space left on device"
    assert not (tmp_path / "new").exists()
    # a directory an earlier demo made: the marker stays, what this run made goes
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / MARKER).write_text("")
    r = invoke(tmp_path, "demo", "--dir", "old", "--hospitals", "1", "--patients", "1", "--no-space")
    assert r.exit_code == EXIT_USAGE
    assert listing(tmp_path / "old") == {MARKER}


def test_an_interrupted_demo_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medspace.cli.demo as demo_module

    def interrupted(out: Path, *args: object, **kw: object) -> None:
        out.mkdir(parents=True, exist_ok=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_module, "generate_all", interrupted)
    r = invoke(tmp_path, "demo", "--dir", "d", "--hospitals", "1", "--patients", "1", "--no-space")
    assert r.exit_code == EXIT_INTERRUPTED and r.stderr.strip() == "interrupted"
    assert not (tmp_path / "d").exists()
