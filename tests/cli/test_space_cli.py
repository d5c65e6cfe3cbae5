"""`medspace space`: init, a hospital's csr, enrol, revoke, list and export; mistakes are one line with exit
status 2 and no traceback; no key is ever printed."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from medspace.cli.main import app
from medspace.policy.pki import Space

ENV = {"COLUMNS": "200", "NO_COLOR": "1", "MEDSPACE_DEBUG": None}
MEDSPACE = shutil.which("medspace", path=str(Path(sys.executable).parent)) or "medspace"


def invoke(cwd: Path, *args: str) -> Result:
    """Run `medspace args` in-process in `cwd`."""
    with contextlib.chdir(cwd):
        return CliRunner().invoke(app, list(args), env=ENV, input="")


def one_line(r: Result) -> str:
    """The single error line of a failed command: exit status 2, no traceback."""
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert "Traceback" not in r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def test_init_csr_enrol_revoke_list(tmp_path: Path) -> None:
    r = invoke(tmp_path, "space", "init", "sp", "--name", "demo", "--node", "h1", "--node", "h2",
               "--witness", "w1", "--days", "30")
    assert r.exit_code == 0, r.output
    assert "space demo created in sp: 4 participants" in r.stdout
    assert stat.S_IMODE((tmp_path / "sp" / "ca" / "ca.key").stat().st_mode) == 0o600

    r = invoke(tmp_path, "space", "csr", "--name", "h6", "--out", "h6")
    assert r.exit_code == 0, r.output
    key = (tmp_path / "h6" / "key.pem").read_text()
    assert stat.S_IMODE((tmp_path / "h6" / "key.pem").stat().st_mode) == 0o600
    r = invoke(tmp_path, "space", "enrol", "sp", "--csr", "h6/csr.pem", "--role", "node", "--name", "h6",
               "--out", "h6/cert.pem")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "h6" / "cert.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")

    r = invoke(tmp_path, "space", "revoke", "sp", "h2", "--reason", "key_compromise")
    assert r.exit_code == 0, r.output
    assert "h2 revoked" in r.stdout

    r = invoke(tmp_path, "space", "list", "sp", "--json")
    assert r.exit_code == 0, r.output
    listed = json.loads(r.stdout)
    assert listed["space"] == "demo"
    rows = {c["name"]: c for c in listed["certificates"]}
    assert set(rows) == {"hub", "h1", "h2", "w1", "h6"}
    assert rows["h6"]["role"] == "node" and rows["h6"]["hospital"] == "h6" and rows["h6"]["revoked_at"] is None
    assert rows["h2"]["reason"] == "key_compromise" and rows["h2"]["revoked_at"]
    table = invoke(tmp_path, "space", "list", "sp")
    assert table.exit_code == 0 and "key_compromise" in table.stdout and "h6" in table.stdout

    r = invoke(tmp_path, "space", "export", "sp", "h1", "--out", "h1-copy")
    assert r.exit_code == 0, r.output
    assert not Space.open(tmp_path / "h1-copy").can_issue

    r = invoke(tmp_path, "space", "refresh-crl", "sp")
    assert r.exit_code == 0, r.output

    ca_key = (tmp_path / "sp" / "ca" / "ca.key").read_text()
    body = key.splitlines()[1]
    for out in (r.output, table.output, json.dumps(listed)):
        assert "PRIVATE KEY" not in out and body not in out and ca_key.splitlines()[1] not in out


def test_user_mistakes_are_one_line(tmp_path: Path) -> None:
    assert invoke(tmp_path, "space", "init", "sp", "--name", "demo", "--node", "h1").exit_code == 0
    line = one_line(invoke(tmp_path, "space", "init", "sp", "--name", "demo"))
    assert line == "error: sp exists and is not empty; a space is created in a new or empty directory"
    assert "name must match" in one_line(invoke(tmp_path, "space", "init", "new", "--name", "Demo"))
    assert not (tmp_path / "new").exists()  # nothing half-made is left
    assert "is not a space directory" in one_line(invoke(tmp_path, "space", "list", "nowhere"))
    assert "has no certificate to revoke" in one_line(invoke(tmp_path, "space", "revoke", "sp", "h9"))
    assert "reason must be one of" in one_line(invoke(tmp_path, "space", "revoke", "sp", "h1", "--reason", "x"))
    assert invoke(tmp_path, "space", "csr", "--name", "h1", "--out", "h1").exit_code == 0
    line = one_line(invoke(tmp_path, "space", "enrol", "sp", "--csr", "h1/csr.pem", "--role", "node",
                           "--name", "h1", "--out", "h1/cert.pem"))
    assert line == "error: h1 is already issued; revoke its certificate before issuing a new one"
    line = one_line(invoke(tmp_path, "space", "enrol", "sp", "--csr", "h1/csr.pem", "--role", "node",
                           "--name", "h7", "--out", "h7.pem"))
    assert "common name (CN) must be the requested name h7" in line
    assert "cannot read missing.pem" in one_line(invoke(tmp_path, "space", "enrol", "sp", "--csr", "missing.pem",
                                                         "--role", "node", "--name", "h7", "--out", "h7.pem"))
    assert "never overwritten" in one_line(invoke(tmp_path, "space", "csr", "--name", "h1", "--out", "h1"))


def test_a_real_process_says_one_line(tmp_path: Path) -> None:
    (tmp_path / "sp").mkdir()
    (tmp_path / "sp" / "mine.txt").write_text("x")
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("MEDSPACE_DEBUG", None)
    r = subprocess.run([MEDSPACE, "space", "init", "sp", "--name", "demo"], cwd=tmp_path, capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: sp exists and is not empty; a space is created in a new or empty directory"]


@pytest.mark.parametrize("bad", ["somefile/sub", "/dev/null/x"])
def test_an_unwritable_path_is_one_line(tmp_path: Path, bad: str) -> None:
    (tmp_path / "somefile").write_text("x")
    assert invoke(tmp_path, "space", "init", "sp", "--name", "demo").exit_code == 0
    assert invoke(tmp_path, "space", "csr", "--name", "h6", "--out", "h6").exit_code == 0
    before = sorted(tmp_path.rglob("*"))
    for args in (["space", "init", bad, "--name", "demo"], ["space", "csr", "--name", "h7", "--out", bad],
                 ["space", "export", "sp", "hub", "--out", bad]):
        assert bad in one_line(invoke(tmp_path, *args))
    assert sorted(tmp_path.rglob("*")) == before  # nothing half-made stays behind
    # an enrolment whose --out cannot be written still happened: the line says where the certificate is
    line = one_line(invoke(tmp_path, "space", "enrol", "sp", "--csr", "h6/csr.pem", "--role", "node", "--name", "h6",
                           "--out", bad))
    assert bad in line and line.endswith("the certificate is also in sp/participants/h6/cert.pem"), line


def test_enrolment_and_revocation_are_logged(tmp_path: Path) -> None:
    from medspace.ledger.entry import Action, AuditEvent
    from medspace.ledger.log import AuditLog, init_log

    init_log(tmp_path / "log", "medspace.test/ca-log")
    with AuditLog(tmp_path / "log", create=True):
        pass
    r = CliRunner().invoke(app, ["space", "init", str(tmp_path / "sp"), "--name", "s1", "--node", "h1"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["space", "csr", "--name", "h2", "--out", str(tmp_path / "h2")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["space", "enrol", str(tmp_path / "sp"), "--csr", str(tmp_path / "h2" / "csr.pem"),
                                 "--role", "node", "--name", "h2", "--out", str(tmp_path / "h2" / "cert.pem"),
                                 "--log", str(tmp_path / "log")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["space", "revoke", str(tmp_path / "sp"), "h2", "--log", str(tmp_path / "log")])
    assert r.exit_code == 0, r.output
    with AuditLog(tmp_path / "log") as log:
        events = [AuditEvent.from_bytes(log.store.entry(i)) for i in range(log.store.size)]
    assert [(e.action, e.resource) for e in events] == [(Action.PARTICIPANT_REGISTER, "participant:h2"),
                                                        (Action.PARTICIPANT_REVOKE, "participant:h2")]
