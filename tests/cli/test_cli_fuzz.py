"""Every `medspace` command, run with random bad arguments and paths, ends in a documented exit status and at most
one error line: never a traceback, never an uncaught exception.

The command tree is walked from the app, so a new command is covered without a change here. Each example runs one
command in-process (typer's CliRunner) in a fresh copy of a sandbox that holds a real store, a real audit log, a
witness key and assorted wrong things (a file where a directory belongs, a directory where a file belongs, garbage
JSON and TOML, a text file named .duckdb). Paths are relative to the sandbox or provably unwritable (`/dev/null/x`,
a path under a regular file), so nothing is written outside it; URLs are malformed or point at a closed loopback
port, so nothing leaves the machine; servers are patched to return at once instead of serving.

CI runs a few examples per command (about half a minute in all); MEDSPACE_FUZZ_EXAMPLES=150 digs deeper.
"""

from __future__ import annotations

import contextlib
import enum
import json
import os
import shutil
import string
import subprocess
import sys
import tempfile
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.main import get_command
from typer.testing import CliRunner

from medspace.cli.common import EXIT_FINDING, EXIT_OK, EXIT_USAGE
from medspace.cli.main import app

ALLOWED = {EXIT_OK, EXIT_FINDING, EXIT_USAGE}  # 70 (internal error) and anything else is a bug
EXAMPLES = int(os.environ.get("MEDSPACE_FUZZ_EXAMPLES", "8"))
ENV = {"COLUMNS": "200", "NO_COLOR": "1", "MEDSPACE_DEBUG": None, "MEDSPACE_STORE": None}
MEDSPACE = shutil.which("medspace", path=str(Path(sys.executable).parent)) or "medspace"

EVENT = {"actor": "dr-chen@h1", "role": "researcher", "action": "task.submit", "purpose": "HRESCH",
         "resource": "study:x", "time": "2026-11-24T10:00:00Z", "contract_id": "C-1", "input_hashes": ["ab" * 32]}

PATHS = [
    "nonexistent", "nonexistent/deeper/x.json", "adir", "somefile", "somefile/sub", "somefile/sub/x.duckdb",
    "/dev/null/x", "/dev/null", "garbage.json", "bad.toml", "empty.txt", "notdb.duckdb", "bom.csv", "node.duckdb",
    "log", "log/log.key", "log/log.vkey", "bundle.json", "keys.json", "events.json", "w/witness.key", "w", "-", "",
    "site.toml", "patients.csv", "/proc/version", ".", "..",  # ".." is the per-example temporary directory
]
URLS = [
    "not-a-url", "http://[::1", "http://", "ftp://example.invalid/r4", "http://127.0.0.1:1/r4", "https://",
    "http://127.0.0.1:99999/", "http://user@/", "://x", "http:///path", "file:///etc/passwd",
]
# Half good, half bad: a command line with several options should often get past parsing into the command.
INTS = st.sampled_from(["0", "1", "3", "64"]) | st.sampled_from(
    ["-1", "abc", "1.5", "", "99999999999999999999", "-99999999999999999999"])
FLOATS = st.sampled_from(["0", "0.5", "2"]) | st.sampled_from(["-1", "nan", "inf", "-inf", "x", "", "1e999"])
NAMES = ["safe-harbor", "pipl", "research", "nope", "Patient", "condition.code", "patient.age", "age,sex", "all"]
# Sizes that keep `demo` and `synth` quick, and bad ones; never a large valid number (that would run for minutes).
SMALL = {"hospitals": ["1", "2", "0", "-1", "x"], "patients": ["1", "3", "0", "-2", "x", ""],
         "jobs": ["1", "2", "0", "65", "x"]}
SIZED = {("demo",), ("synth",)}

safe_name = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12).filter(
    lambda s: s.strip(".") != "")
# No "/" (an absolute path or URL could reach outside the sandbox) and no NUL (no real argv can hold one).
garbage = st.text(st.characters(blacklist_characters="/\\\x00", blacklist_categories=("Cs",)), max_size=24)


def _walk(cmd: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    subs = getattr(cmd, "commands", None)
    if subs:
        for name, sub in sorted(subs.items()):
            yield from _walk(sub, (*path, name))
    else:
        yield path, cmd


COMMANDS = dict(_walk(get_command(app)))


def _python_type(p: Any) -> Any:
    """The parameter's Python type (typer >= 0.29 keeps the annotation; older typer has a click type)."""
    ann = getattr(getattr(p, "type_descriptor", None), "annotation", None)
    while ann is not None and typing.get_origin(ann) is not None:  # Optional[X], X | None, list[X]
        ann = next((a for a in typing.get_args(ann) if a is not type(None)), None)
    if ann is not None:
        return ann
    name = getattr(getattr(p, "type", None), "name", "text")
    return {"path": Path, "integer": int, "integer range": int, "float": float, "float range": float,
            "boolean": bool}.get(name, str)


def _values(path: tuple[str, ...], p: Any) -> st.SearchStrategy[str]:
    name = p.name or ""
    if path in SIZED and name in SMALL:
        return st.sampled_from(SMALL[name])
    t = _python_type(p)
    if isinstance(t, type) and issubclass(t, enum.Enum):
        return st.sampled_from([str(e.value) for e in t] + ["nope", ""])
    if t is Path:
        return st.one_of(st.sampled_from(PATHS), safe_name)
    if t is int:
        return INTS
    if t is float:
        return FLOATS
    if t is bool:
        return st.sampled_from(["true", "false", "maybe"])
    if "url" in name:
        return st.sampled_from(URLS)
    return st.one_of(st.sampled_from(PATHS + URLS + NAMES), garbage, safe_name)


@st.composite
def argv(draw: st.DrawFn, path: tuple[str, ...]) -> list[str]:
    """A command line for one command: each parameter given a bad (or sometimes good) value, or left out."""
    cmd = COMMANDS[path]
    options: list[str] = []
    positional: list[str] = []
    for p in cmd.params:
        values = _values(path, p)
        if p.param_type_name == "argument":
            if draw(st.integers(0, 9)) == 0:  # a required argument missing: a usage error
                continue
            count = 1 if p.nargs == 1 else draw(st.integers(1, 3))
            positional += [draw(values) for _ in range(count)]
        elif getattr(p, "is_flag", False):
            if draw(st.booleans()):
                options.append(p.opts[0])
        else:
            forced = path in SIZED and p.name in SMALL  # never the default sizes: they take long
            if forced or draw(st.integers(0, 9)) < (9 if p.required else 3):
                for _ in range(draw(st.integers(1, 2)) if getattr(p, "multiple", False) else 1):
                    options += [draw(st.sampled_from(p.opts)), draw(values)]
    if path == ("demo",):
        options.append("--no-space")  # the data space's processes take seconds each: the fuzz tests the nodes part
    extra = draw(st.sampled_from([[], [], [], [], [], [], ["--no-such-option"], ["extra-argument"]]))
    return [*path, *options, *extra, *positional]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The template every example copies: real things to reach deep into commands, and wrong things."""
    root = tmp_path_factory.mktemp("sandbox")
    (root / "somefile").write_text("just text\n")
    (root / "adir").mkdir()
    (root / "garbage.json").write_bytes(b"\xff\xfe{not json at all")
    (root / "bad.toml").write_text("[source\nformat = \n")
    (root / "empty.txt").write_text("")
    (root / "notdb.duckdb").write_text("this is not a database\n")
    (root / "bom.csv").write_bytes(b"\xef\xbb\xbfpid,surname\nP1,Wang\n")
    (root / "events.json").write_text(json.dumps([EVENT]))
    (root / "patients.csv").write_text("pid,surname,dob,gender\nP1,Wang,1980-01-02,M\nP2,Li,1980-02-31,F\n")
    (root / "site.toml").write_text(
        '[source]\nformat = "csv"\n\n[[table]]\nfile = "patients.csv"\ntable = "patient"\n[table.columns]\n'
        'id = "pid"\nfamily_name = "surname"\nbirth_date = "dob"\n'
        'sex = { column = "gender", values = { M = "male", F = "female" } }\n'
    )
    setup = [
        ["ingest", "site.toml", "--store", "node.duckdb", "--create"],
        ["deid", "apply", "--policy", "safe-harbor", "--store", "node.duckdb"],
        ["ledger", "init", "--origin", "fuzz.example/log", "--dir", "log"],
        ["ledger", "append", "events.json", "--dir", "log"],
        ["ledger", "publish", "--dir", "log"],
        ["audit", "export", "0", "--dir", "log", "-o", "bundle.json"],
        ["audit", "keys", "keys.json", "--dir", "log"],
        ["witness", "keygen", "fuzz.example/witness", "--out", "w"],
    ]
    runner = CliRunner()
    with contextlib.chdir(root):
        for args in setup:
            r = runner.invoke(app, args, env=ENV)
            assert r.exit_code == 0, (args, r.output)
    return root


@pytest.fixture(scope="module")
def no_servers() -> Iterator[None]:
    """`ledger serve` and `witness serve` bind their socket, then return instead of serving."""
    import uvicorn

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
        yield


@contextlib.contextmanager
def _fresh(template: Path) -> Iterator[Path]:
    from medspace.connect import set_limits
    from medspace.connect.base import limits

    saved = limits()  # `--max-value-chars` sets a process-wide limit: later tests must not inherit it
    with tempfile.TemporaryDirectory(prefix="medspace-fuzz-") as tmp:
        work = Path(tmp) / "s"
        shutil.copytree(template, work, symlinks=True)
        try:
            with contextlib.chdir(work):
                yield work
        finally:
            set_limits(saved)


def _check(args: list[str], code: int, stdout: str, stderr: str) -> None:
    said = f"medspace {' '.join(args)!r}\nexit {code}\nstdout: {stdout[-2000:]}\nstderr: {stderr[-2000:]}"
    assert code in ALLOWED, said
    assert "Traceback" not in stdout + stderr, said
    assert "internal error" not in stderr, said
    if code != EXIT_OK:
        assert stderr.strip(), said  # a failure always says why
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) <= 1, said


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=" ".join)
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_command_survives_bad_arguments(path: tuple[str, ...], sandbox: Path, no_servers: None,
                                              data: st.DataObject) -> None:
    args = data.draw(argv(path), label="argv")
    with _fresh(sandbox):
        r = CliRunner().invoke(app, args, env=ENV, input="")
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise AssertionError(f"medspace {args!r} raised {type(r.exception).__name__}") from r.exception
    _check(args, r.exit_code, r.stdout, r.stderr)


def test_the_command_tree_is_walked() -> None:
    """The walk reaches nested commands (so a new one is fuzzed without a change here)."""
    names = {" ".join(p) for p in COMMANDS}
    assert {"ingest", "pull", "synth", "demo", "node stats", "deid keys init", "deid policy check", "ledger init",
            "audit verify", "witness serve"} <= names


SUBPROCESS_CASES = [
    ["ingest", "adir", "--store", "somefile/sub/n.duckdb", "--create"],
    ["pull", "http://[::1", "--store", "node.duckdb"],
    ["node", "stats", "--store", "notdb.duckdb"],
    ["audit", "export", "0", "--dir", "log", "-o", "/dev/null/x"],
    ["synth", "/dev/null/x", "--hospitals", "1", "--patients", "1"],
    ["witness", "serve", "--state", "somefile/sub", "--key", "garbage.json", "--log-key", "x", "--port", "70000"],
]


def test_real_processes_end_in_one_line(sandbox: Path) -> None:
    """The same, as real processes (typer's standalone mode, the installed `medspace` script)."""
    with _fresh(sandbox) as work:
        env = {k: v for k, v in os.environ.items() if k not in ("MEDSPACE_DEBUG", "MEDSPACE_STORE")}
        env.update(COLUMNS="200", NO_COLOR="1")
        for args in SUBPROCESS_CASES:
            r = subprocess.run([MEDSPACE, *args], cwd=work, capture_output=True, text=True, env=env, timeout=120,
                               stdin=subprocess.DEVNULL)
            _check(args, r.returncode, r.stdout, r.stderr)
            assert r.returncode != EXIT_OK, args
