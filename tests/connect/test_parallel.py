"""Parallel ingest: worker processes map, the parent replays in file order, and the store ends up exactly as a
serial ingest leaves it (rows, last-row-wins, quarantine with positions, findings, skips, report)."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import tempfile
from io import BytesIO
from pathlib import Path
from typing import Any

import carebundle
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medspace.connect import parallel
from medspace.connect.base import MemorySink
from medspace.connect.errors import SourceError
from medspace.connect.fhir import _ingest_lines
from medspace.connect.parallel import ParallelIngest, Piece, WorkerError, default_jobs, plan
from medspace.connect.sources import SourceKind, discover
from medspace.model import TABLES
from medspace.store import Store
from medspace.synth import Manifest, generate

pytestmark = pytest.mark.skipif(not parallel.can_fork(), reason="workers are forked")

Sources = list[tuple[Path, SourceKind]]


def ndjson(*resources: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in resources)


def patient(pid: str, **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1980-01-02", **extra}


def condition(cid: str, pid: str, code: str = "E11.9", system: str = "http://hl7.org/fhir/sid/icd-10",
              **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Condition", "id": cid, "subject": {"reference": f"Patient/{pid}"},
            "code": {"coding": [{"system": system, "code": code}], "text": "a condition"}, **extra}


def sources_of(*paths: Path) -> Sources:
    return [(p, k) for p, k in discover(list(paths)) if k is not None]


def run_ingest(store: Path, sources: Sources, *, jobs: int, task_bytes: int | None = None,
               strict: bool = False) -> dict[str, Any]:
    """Ingest into a fresh store; the report, every table's contents and the progress calls."""
    events: list[tuple[str, str]] = []
    with ParallelIngest(sources, jobs=jobs, strict=strict, task_bytes=task_bytes, min_bytes=0) as ing, \
            Store(store) as st, st.batch("test") as batch:
        assert ing.parallel is (jobs > 1)
        ing.run(batch, start=lambda p, k: events.append(("start", p.name)),
                done=lambda p, k: events.append(("done", p.name)))
    return {"report": batch.report.to_dict(), "events": events, **contents(store)}


def contents(path: Path) -> dict[str, pa.Table]:
    with Store(path, read_only=True) as st:
        out = {t: st.arrow(f"SELECT * FROM {t} ORDER BY id") for t in TABLES}
        out["quarantine"] = st.arrow("SELECT * EXCLUDE (received_at) FROM quarantine ORDER BY id")
        out["data_quality"] = st.arrow("SELECT * FROM data_quality ORDER BY ALL")
        out["batches"] = st.arrow("SELECT id, label, rows_received, rows_new, rows_updated, quarantined, skipped "
                                  "FROM ingest_batch")
    return out


def assert_same(serial: dict[str, Any], par: dict[str, Any]) -> None:
    assert par["report"] == serial["report"]
    assert par["events"] == serial["events"]
    for name in serial:
        if name not in ("report", "events"):
            assert par[name].equals(serial[name]), name


def serial_and_parallel(tmp_path: Path, sources: Sources, task_bytes: int, **kw: Any) -> dict[str, Any]:
    serial = run_ingest(tmp_path / "serial.duckdb", sources, jobs=1, **kw)
    par = run_ingest(tmp_path / "parallel.duckdb", sources, jobs=2, task_bytes=task_bytes, **kw)
    assert_same(serial, par)
    return serial


def pieces(sources: Sources, task_bytes: int) -> list[Piece]:
    return [p for item in plan(sources, task_bytes) if isinstance(item, parallel._Task) for p in item.pieces]


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    root = tmp_path_factory.mktemp("space")
    return root, generate(root, hospitals=5, patients=60, seed=11)


def hospital(space: tuple[Path, Manifest], fmt: str) -> Path:
    root, manifest = space
    return root / next(h.dir for h in manifest.hospitals if h.format == fmt)


# --- the same store, serial or parallel ----------------------------------------------------------------------


def test_fhir_bundles_with_duplicates_across_files(tmp_path: Path) -> None:
    """carebundle bundles, one sent twice with changed values (the last wins), one broken, one with findings."""
    data = tmp_path / "bundles"
    data.mkdir()
    for i, b in enumerate(carebundle.generate_cohort(count=12, seed=7)):
        text = carebundle.to_json(b)
        (data / f"patient-{i:03d}.json").write_bytes(text.encode() if isinstance(text, str) else text)
    doc = orjson.loads((data / "patient-003.json").read_bytes())
    changed = 0
    for e in doc["entry"]:
        r = e["resource"]
        if r["resourceType"] == "Observation" and "valueQuantity" in r:
            r["valueQuantity"]["value"] = 12345.5
            changed += 1
    assert changed
    (data / "patient-999-again.json").write_bytes(orjson.dumps(doc))
    (data / "broken.json").write_bytes(b'{"resourceType": "Bundle", "entry": [')  # quarantined whole
    local = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": patient("lp1", birthDate="1980-02-30")},
        {"resource": condition("lc1", "lp1", code="X-17", system="urn:oid:1.2.3")},
        {"resource": condition("lc2", "lp1", code="X-18", system="urn:oid:1.2.3")}]}
    (data / "local.json").write_bytes(orjson.dumps(local))  # a local code and a bad date: findings
    sources = sources_of(data)
    out = serial_and_parallel(tmp_path, sources, task_bytes=150_000)
    assert out["report"]["findings"], "carebundle's local codes are findings"
    assert out["report"]["quarantined"] == {"parse_error": 1}
    obs = out["observation"].to_pylist()
    assert sum(1 for r in obs if r["value_num"] == 12345.5) == changed
    assert max(len(t.pieces) for t in plan(sources, 150_000) if isinstance(t, parallel._Task)) > 1


def test_ndjson_split_into_ranges(space: tuple[Path, Manifest], tmp_path: Path) -> None:
    """Bulk NDJSON split into many line-aligned ranges: positions (`line N`) as in the whole file."""
    bulk = hospital(space, "fhir-ndjson")
    extra = tmp_path / "extra"
    extra.mkdir()
    lines = [patient(f"x{i}") for i in range(200)]
    lines[5] = patient("x5", birthDate="1980-13-45")  # a bad date: stored, flagged
    lines[17] = {"resourceType": "Patientt", "id": "p"}  # not an R4 type: quarantined
    lines[30] = patient("x3", gender="male")  # x3 again, later in the file: its values win
    body = b"\xef\xbb\xbf" + ndjson(*lines[:10]) + b"\n\r\n" + ndjson(*lines[10:20]) + b'{"resourceType": \n' + \
        ndjson(*lines[20:]).replace(b"\n", b"\r\n", 3) + ndjson(condition("c1", "x1", code="LOCAL1", system="urn:x"))
    (extra / "more.ndjson").write_bytes(body)
    (extra / "zz-again.ndjson").write_bytes(ndjson(patient("x4", gender="male"), condition("c1", "x1")))
    sources = sources_of(bulk, extra)
    split = [p for p in pieces(sources, 4096) if not p.whole]
    assert len(split) > 20 and any(p.path.name == "more.ndjson" for p in split)
    out = serial_and_parallel(tmp_path, sources, task_bytes=4096)
    q = {(r["source"].rsplit("/", 1)[-1], r["position"], r["reason"]) for r in out["quarantine"].to_pylist()}
    assert ("more.ndjson", "line 20", "invalid_resource") in q
    assert ("more.ndjson", "line 23", "parse_error") in q
    rows = {r["id"]: r for r in out["patient"].to_pylist()}
    assert rows["x4"]["sex"] == "male" and rows["x3"]["sex"] == "male"  # the later row wins
    assert out["report"]["tables"]["patient"]["received"] == out["patient"].num_rows


def test_hl7_files_and_side_ndjson(space: tuple[Path, Manifest], tmp_path: Path) -> None:
    h = hospital(space, "hl7v2")
    extra = tmp_path / "hl7"
    extra.mkdir()
    (extra / "bad.hl7").write_bytes(
        b"MSH|^~\\&|LAB|H|N|H|20240101||ORU^R01|1|P|2.5\rPID|1||P77||Doe^J||19800101|F\r"
        b"OBX|1|NM|001347^Iron Bind.Cap.(TIBC)^L||476|ug/dL\r\n\nMSH|^~\\&|X\rPID|nothing here\r\n"
        b"MSH|^~\\&|LAB|H|N|H|20240101||ZZZ^Z99|3|P|2.5\r")
    sources = sources_of(h, extra)
    assert sum(k is SourceKind.HL7V2 for _, k in sources) == 4
    out = serial_and_parallel(tmp_path, sources, task_bytes=50_000)
    assert out["report"]["quarantined"]
    assert any(f["connector"] == "hl7v2" for f in out["report"]["findings"])


@pytest.mark.parametrize("part_bytes, buffered", [(2_000, 1), (40_000, 200_000)])
def test_parts_and_back_pressure(space: tuple[Path, Manifest], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 part_bytes: int, buffered: int) -> None:
    """Workers send a file in many parts (mid-file), and the parent, its buffer full, reads in order only (and
    hands tasks out only to idle workers, as it does for task messages too big for a pipe's buffer)."""
    monkeypatch.setattr(parallel, "PART_BYTES", part_bytes)  # the workers fork with it
    monkeypatch.setattr(parallel, "CONVERT_ROWS", 50)
    if buffered == 1:
        monkeypatch.setattr(parallel, "PIPE_ROOM", 1)
    monkeypatch.setattr(parallel, "MAX_BUFFERED", buffered)
    sources = sources_of(hospital(space, "hl7v2"), hospital(space, "fhir-ndjson"))
    parts: list[int] = []
    real = parallel._Replay._part

    def counted(self: Any, task: Any, part: Any, begun: int) -> int:
        parts.append(task.seq)
        return real(self, task, part, begun)

    monkeypatch.setattr(parallel._Replay, "_part", counted)
    serial_and_parallel(tmp_path, sources, task_bytes=30_000)
    tasks = [t for t in plan(sources, 30_000) if isinstance(t, parallel._Task)]
    assert len(parts) > len(tasks) and max(parts.count(t.seq) for t in tasks) > (3 if part_bytes < 10_000 else 1)


def test_mapping_files_stay_in_their_place(space: tuple[Path, Manifest], tmp_path: Path) -> None:
    """A hospital mixing NDJSON and a CSV mapping: the mapping is ingested by the parent, in its turn."""
    h = hospital(space, "mixed")
    sources = sources_of(h)
    assert any(k is SourceKind.MAPPING for _, k in sources)
    items = list(plan(sources, 8192))
    assert any(isinstance(i, parallel._Serial) for i in items) and any(isinstance(i, parallel._Task) for i in items)
    out = serial_and_parallel(tmp_path, sources, task_bytes=8192)
    assert [e for e in out["events"] if e[0] == "start"] == [("start", p.name) for p, _ in sources]


def test_medication_references_resolve_as_in_one_pass(tmp_path: Path) -> None:
    """A Medication in the middle of a file: ranges are split off only before it, so later references resolve."""
    med = {"resourceType": "Medication", "id": "m1",
           "code": {"coding": [{"system": "http://www.whocc.no/atc", "code": "A10BA02"}]}}

    def request(i: int) -> dict[str, Any]:
        return {"resourceType": "MedicationRequest", "id": f"r{i}", "status": "active",
                "subject": {"reference": "Patient/p1"}, "medicationReference": {"reference": "Medication/m1"}}

    data = tmp_path / "meds"
    data.mkdir()
    lines = [patient("p1"), *(request(i) for i in range(60)), med, *(request(i) for i in range(60, 120))]
    (data / "all.ndjson").write_bytes(ndjson(*lines))
    (data / "other.ndjson").write_bytes(ndjson(*(patient(f"q{i}") for i in range(60))))
    sources = sources_of(data)
    got = pieces(sources, 2048)
    mine = [p for p in got if p.path.name == "all.ndjson"]
    assert len(mine) > 2 and mine[-1].end is None and not mine[-1].whole
    rest_from = mine[-1].first_line
    assert rest_from <= 62  # the Medication is line 62: the rest of the file, from before it, is one piece
    out = serial_and_parallel(tmp_path, sources, task_bytes=2048)
    meds = {r["id"]: r for r in out["medication"].to_pylist()}
    assert all(meds[f"r{i}"]["code"] == "A10BA02" for i in range(60, 120))
    assert {r["position"] for r in out["quarantine"].to_pylist()} == {f"line {i}" for i in range(2, 62)}


def test_strict_mode_in_workers(space: tuple[Path, Manifest], tmp_path: Path) -> None:
    data = tmp_path / "strict"
    data.mkdir()
    bulk = hospital(space, "fhir-ndjson")
    for name in ("Patient.ndjson", "Condition.ndjson"):
        shutil.copy(bulk / "bulk" / name, data / name)
    (data / "bad.ndjson").write_bytes(ndjson(patient("s1", gender="femme"), patient("s2", birthDate=17)))
    out = serial_and_parallel(tmp_path, sources_of(data), task_bytes=16_384, strict=True)
    assert out["report"]["quarantined"]


# --- errors ------------------------------------------------------------------------------------------------


def _failing_run(tmp_path: Path, name: str, sources: Sources, jobs: int,
                 expect: type[BaseException]) -> BaseException:
    path = tmp_path / f"{name}.duckdb"
    with ParallelIngest(sources, jobs=jobs, task_bytes=2048, min_bytes=0) as ing, Store(path) as st:
        with pytest.raises(expect) as caught, st.batch("failing") as batch:
            ing.run(batch)
        assert all(st.count(t) == 0 for t in (*TABLES, "quarantine"))
        assert st.con.execute("SELECT count(*) FROM ingest_batch").fetchall()[0][0] == 0
    return caught.value


def mixed_sources(tmp_path: Path) -> tuple[Path, Sources]:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        (data / f"a{i}.ndjson").write_bytes(ndjson(*(patient(f"a{i}-{j}") for j in range(40))))
    return data, sources_of(data)


def test_an_unreadable_file_mid_way_fails_the_same_and_rolls_back(tmp_path: Path) -> None:
    data, _ = mixed_sources(tmp_path)
    whole = gzip.compress(ndjson(*(patient(f"g{j}") for j in range(200))))
    (data / "a3-truncated.ndjson.gz").write_bytes(whole[: len(whole) // 2])
    sources = sources_of(data)
    serial = _failing_run(tmp_path, "serial", sources, 1, SourceError)
    par = _failing_run(tmp_path, "parallel", sources, 2, SourceError)
    assert str(par) == str(serial) and "a3-truncated.ndjson.gz" in str(par)


def test_a_killed_worker_is_an_error_not_a_hang(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, sources = mixed_sources(tmp_path)
    real = parallel._map_piece

    def dies(piece: Piece, sink: Any, strict: bool) -> None:
        if piece.path.name == "a4.ndjson":
            os.kill(os.getpid(), signal.SIGKILL)
        real(piece, sink, strict)

    monkeypatch.setattr(parallel, "_map_piece", dies)  # the workers fork with it
    err = _failing_run(tmp_path, "killed", sources, 2, WorkerError)
    assert "signal 9" in str(err)


def test_a_bug_in_a_worker_is_raised_with_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, sources = mixed_sources(tmp_path)

    def bug(piece: Piece, sink: Any, strict: bool) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(parallel, "_map_piece", bug)
    err = _failing_run(tmp_path, "bug", sources, 2, ZeroDivisionError)
    assert isinstance(err.__cause__, parallel.RemoteTraceback) and "in bug" in str(err.__cause__)


def test_an_interrupt_stops_the_workers(tmp_path: Path) -> None:
    _, sources = mixed_sources(tmp_path)

    class Interrupted(MemorySink):
        def add_arrow(self, table: str, data: pa.Table) -> None:
            raise KeyboardInterrupt

    with ParallelIngest(sources, jobs=2, task_bytes=2048, min_bytes=0) as ing:
        procs = [w.process for w in ing._workers]
        assert len(procs) == 2 and all(p.is_alive() for p in procs)
        with pytest.raises(KeyboardInterrupt):
            ing.run(Interrupted())
        assert not any(p.is_alive() for p in procs)


# --- planning ------------------------------------------------------------------------------------------------


def test_small_inputs_and_one_core_stay_serial(tmp_path: Path) -> None:
    _, sources = mixed_sources(tmp_path)
    assert not ParallelIngest(sources, jobs=4).parallel  # a few KB: not worth forking
    assert not ParallelIngest(sources, jobs=1, min_bytes=0).parallel
    assert not ParallelIngest(sources[:1], jobs=4, min_bytes=0, task_bytes=1 << 20).parallel  # one task
    assert ParallelIngest(sources, jobs=4, min_bytes=0, task_bytes=2048).parallel
    assert 1 <= default_jobs() <= parallel.MAX_DEFAULT_JOBS


_LINES = [
    b"", b"   ", b"\r", b'{"resourceType": "Patient", "id": "a", "gender": "male"}',
    b'{"resourceType": "Patient", "id": "b", "birthDate": "2001-02-30"}', b'{"resourceType": "Pat',
    b'{"resourceType": "Condition", "id": "c", "subject": {"reference": "Patient/a"}, "code": {"text": "x"}}',
    b'{"resourceType": "Medication", "id": "m", "code": {"text": "aspirin"}}',
    b'{"resourceType": "MedicationRequest", "id": "r", "status": "active", "subject": {"reference": "Patient/a"}, '
    b'"medicationReference": {"reference": "Medication/m"}}',
    b'{"resourceType": "Observation", "id": "o", "status": "final", "subject": {"reference": "Patient/b"}, '
    b'"code": {"coding": [{"system": "http://loinc.org", "code": "2345-7"}]}, "valueQuantity": {"value": 5}}',
    b'{"resourceType": "Organization", "id": "org"}', b"[1, 2]",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(range(len(_LINES))), max_size=60), st.integers(min_value=24, max_value=400),
       st.booleans())
def test_ranges_map_like_the_whole_file(picks: list[int], task_bytes: int, final_newline: bool) -> None:
    """Whatever the lines and the range size: ranges tile the file, start on a line, number their lines as
    the whole file does, stop before a Medication, and map to exactly what the whole file maps to."""
    data = b"\n".join(_LINES[i] for i in picks) + (b"\n" if final_newline and picks else b"")
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "x.ndjson"
        path.write_bytes(data)
        got = list(parallel._ndjson_pieces(path, SourceKind.FHIR_NDJSON, len(data), task_bytes))
        at = 0
        for p in got:
            assert p.start == at and p.first_line == data.count(b"\n", 0, p.start) + 1
            assert p.start == 0 or data[p.start - 1:p.start] == b"\n"
            at = len(data) if p.end is None else p.end
            if not p.last:
                assert b'"Medication"' not in data[p.start:p.end]
        assert at == len(data) and got[-1].last and sum(p.last for p in got) == 1
        whole, ranged = MemorySink(), MemorySink()
        _ingest_lines(BytesIO(data), str(path), whole, False, {})
        for p in got:
            parallel._map_piece(p, ranged, False)
        assert ranged.rows == whole.rows
        assert ranged.quarantined == whole.quarantined
        assert ranged.findings == whole.findings and ranged.skipped == whole.skipped


# --- the command ---------------------------------------------------------------------------------------------


def test_cli_jobs_gives_the_same_report(space: tuple[Path, Manifest], tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from medspace.cli.main import app

    monkeypatch.setattr(parallel, "MIN_PARALLEL_BYTES", 0)
    monkeypatch.setattr(parallel, "MIN_TASK_BYTES", 4096)
    forked: list[int] = []
    real_start = ParallelIngest._start

    def start(self: ParallelIngest) -> None:
        forked.append(self.jobs)
        real_start(self)

    monkeypatch.setattr(ParallelIngest, "_start", start)
    src = hospital(space, "fhir-ndjson")
    reports = []
    for jobs in ("1", "2"):
        store = tmp_path / f"cli-{jobs}.duckdb"
        r = CliRunner().invoke(app, ["ingest", str(src), "--store", str(store), "--create", "--json",
                                     "--jobs", jobs])
        assert r.exit_code == 0, r.output
        reports.append(json.loads(r.stdout))
    assert reports[0] == reports[1] and forked == [2]
    r = CliRunner().invoke(app, ["ingest", str(src), "--store", str(tmp_path / "x.duckdb"), "--jobs", "0"])
    assert r.exit_code == 2
    # A file that cannot be read, mapped by a worker: one line, exit status 2, and no store left behind.
    bad = tmp_path / "bad"
    shutil.copytree(src, bad)
    whole = gzip.compress(ndjson(*(patient(f"g{j}") for j in range(300))))
    (bad / "bulk" / "Condition.ndjson.gz").write_bytes(whole[: len(whole) // 2])
    store = tmp_path / "failed.duckdb"
    r = CliRunner().invoke(app, ["ingest", str(bad), "--store", str(store), "--create", "--jobs", "2"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "Condition.ndjson.gz: cannot read past line" in " ".join(r.output.split())
    assert not store.exists()


def test_rows_convert_as_the_store_converts_them() -> None:
    """Workers build Arrow with the store's row types: a change to one must be a change to both."""
    from medspace.store import duckdb_store

    assert all(TABLES[t].row_type == duckdb_store._row_type(t) for t in TABLES)
