"""`medspace demo`: synthetic hospitals, one node store each, and a summary that checks itself.

Until the hub exists the demo stops at the nodes: generate each hospital's sources, ingest them into
that hospital's own DuckDB store (hospitals in parallel processes), then show what every node holds
and check it against the generator's ground truth.

The working directory is the demo's own: it must be new or empty, and gets a marker file; a later demo may
clean a directory with that marker, and refuses any other non-empty one. A failed run leaves nothing it made.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from medspace.cli import render
from medspace.cli.common import InputError, writing
from medspace.synth.generate import HospitalResult, Manifest, generate_hospital, write_manifest
from medspace.synth.study import STUDY_BANDS

MARKER = ".medspace-demo"
_MARKER_TEXT = "Made by `medspace demo`: a later `medspace demo --dir` may delete its sources/ and nodes/.\n"


def generate_all(out: Path, hospitals: int, patients: int, seed: int, console: Console, jobs: int = 2) -> Manifest:
    """Generate every hospital (in parallel processes) and write the manifest and ground truth."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    results: list[HospitalResult] = []
    with render.progress(console) as bar, ProcessPoolExecutor(max_workers=jobs) as pool:
        task = bar.add_task("generating hospitals", total=hospitals)
        futures = [pool.submit(generate_hospital, out, i, hospitals, patients, seed) for i in range(1, hospitals + 1)]
        for fut in as_completed(futures):
            results.append(fut.result())
            bar.advance(task)
    return write_manifest(out, results, seed, patients)


def _study_drug_codes(truth: dict[str, Any]) -> list[tuple[str, str]]:
    drug = truth["study"]["drug"]
    return [("ATC", drug["atc"]), ("RxNorm", drug["rxnorm"])]


def ingest_hospital(src_dir: str, sources: list[tuple[str, str]], store_path: str,
                    drug_codes: list[tuple[str, str]], linkage_key: bytes | None = None) -> dict[str, Any]:
    """Ingest one hospital's sources into its own store; return the batch report, node statistics and
    the study drug's responders per age (counts only). With the space's linkage key, also give the node its
    keyring and build the research view its tasks run on. Runs in a worker process."""
    from medspace.connect.sources import SourceKind, detect, discover, ingest_file
    from medspace.store import Store, node_stats

    t0 = time.perf_counter()
    with Store(store_path) as st:
        with st.batch(f"demo {Path(src_dir).name}") as batch:
            for rel, _kind in sources:
                for path, kind in discover([Path(src_dir) / rel]):
                    found = kind or detect(path)
                    if found is not None:
                        ingest_file(path, SourceKind(found), batch)
        seconds = time.perf_counter() - t0
        stats = node_stats(st)
        where = " OR ".join("(m.code_system = ? AND m.code = ?)" for _ in drug_codes)
        params = [x for pair in drug_codes for x in pair]
        by_age = st.con.execute(
            "SELECT date_sub('year', p.birth_date, m.start_date) AS age, count(*) AS treated, "
            "count(*) FILTER (WHERE m.response = 'responder') AS responders "
            f"FROM medication m JOIN patient p ON p.id = m.patient_id WHERE {where} GROUP BY 1",
            params,
        ).fetchall()
        if linkage_key is not None:
            from medspace.deid.apply import apply_policy
            from medspace.deid.keys import keyring_path, node_keyring
            from medspace.deid.policy import load_policy

            ring = node_keyring(st, keyring_path(Path(store_path)), create=True)
            ring.linkage = linkage_key
            ring.save()
            apply_policy(st, load_policy("research"), ring)
    return {"report": batch.report.to_dict(), "stats": stats, "seconds": seconds,
            "study_by_age": [(int(a), int(n), int(r)) for a, n, r in by_age if a is not None]}


def _bands(by_age: list[tuple[int, int, int]]) -> dict[str, tuple[int, int]]:
    out: dict[str, tuple[int, int]] = {}
    for label, lo, hi in STUDY_BANDS:
        n = sum(t for a, t, _ in by_age if lo <= a < hi)
        r = sum(x for a, _, x in by_age if lo <= a < hi)
        out[label] = (n, r)
    return out


def _was_demo(workdir: Path, entries: set[str]) -> bool:
    """A directory an older medspace demo made, before the marker: sources/ (with its manifest) and nodes/ only."""
    return bool(entries) and entries <= {"sources", "nodes"} and (workdir / "sources" / "manifest.json").is_file()


@contextmanager
def demo_dir(workdir: Path) -> Iterator[None]:
    """Claim `workdir` for the demo (new, empty, or marked as the demo's) and clean it of a previous run; if the
    block fails, remove what this run made: the whole directory if it created it, else sources/ and nodes/."""
    if os.path.lexists(workdir) and not workdir.is_dir():
        raise InputError(f"{workdir} is not a directory")
    if workdir.is_dir():
        try:
            entries = set(os.listdir(workdir))
        except OSError as e:
            raise InputError(f"cannot read {workdir}: {(e.strerror or type(e).__name__).lower()}") from None
        if entries and MARKER not in entries and not _was_demo(workdir, entries):
            raise InputError(f"{workdir} is not empty and was not made by `medspace demo`; "
                             "give --dir a new or empty directory")
    parts = [workdir / d for d in ("sources", "nodes", "space", "hub", "witnesses", "copies", "logs")]
    with writing(workdir, workdir / MARKER, verb="use"):
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / MARKER).write_text(_MARKER_TEXT, encoding="utf-8")
        for d in parts:  # a demo starts from nothing; both are re-created by the run
            shutil.rmtree(d, ignore_errors=True)
        with writing(*parts, verb="use"):
            yield


def run_demo(workdir: Path, hospitals: int, patients: int, seed: int, jobs: int, console: Console, *,
             space: bool = True) -> None:
    """The whole demo: generate, ingest, summarise, check against the ground truth; then the data space."""
    with demo_dir(workdir):
        _run_demo(workdir, hospitals, patients, seed, jobs, console, space)


def _run_demo(workdir: Path, hospitals: int, patients: int, seed: int, jobs: int, console: Console,
              space: bool) -> None:
    import orjson

    from medspace.deid.keys import new_key

    t_start = time.perf_counter()
    src_root, node_root = workdir / "sources", workdir / "nodes"
    node_root.mkdir(parents=True)
    console.print(f"[b]medspace demo[/b]: {hospitals} synthetic hospitals x {patients:,} patients (seed {seed})")
    manifest = generate_all(src_root, hospitals, patients, seed, console, jobs)
    t_gen = time.perf_counter() - t_start
    truth = orjson.loads((src_root / manifest.ground_truth).read_bytes())
    truths = {h["id"]: h for h in truth["hospitals"]}
    drug_codes = _study_drug_codes(truth)
    linkage_key = new_key() if space else None  # the space's linkage key: every node has it, the hub never

    results: dict[str, dict[str, Any]] = {}
    t_ingest = time.perf_counter()
    with render.progress(console) as bar, ProcessPoolExecutor(max_workers=jobs) as pool:
        task = bar.add_task("ingesting into node stores", total=hospitals)
        futures = {
            pool.submit(ingest_hospital, str(src_root / h.dir), [(s.path, s.kind) for s in h.sources],
                        str(node_root / f"{h.id}.duckdb"), drug_codes, linkage_key): h.id
            for h in manifest.hospitals
        }
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            bar.advance(task)
    t_ingest = time.perf_counter() - t_ingest

    nodes = Table(title="hospital nodes (one DuckDB store each)", title_justify="left")
    nodes.add_column("node")
    nodes.add_column("hospital", no_wrap=True, max_width=26, overflow="ellipsis")
    nodes.add_column("sources")
    for col in ("patients", "rows", "L1 rows", "quarantined", "ingest s", "rows = generated"):
        nodes.add_column(col, justify="right")
    all_match = True
    for h in manifest.hospitals:
        res = results[h.id]
        stats = res["stats"]
        held = {t: info["rows"] for t, info in stats["tables"].items()}
        match = all(held.get(t, 0) == n for t, n in h.rows.items())
        all_match &= match
        nodes.add_row(
            h.id, f"{h.flavour.upper()} {h.name}", h.format, f"{held['patient']:,}", f"{sum(held.values()):,}",
            f"{stats['rows_by_level']['L1']:,}", f"{stats['quarantine']['total']:,}", f"{res['seconds']:.1f}",
            "yes" if match else "[red]no[/red]",
        )
    console.print(nodes)

    study = Table(title=f"ground truth check: {truth['study']['drug']['name']} response by age band, read back "
                        "from each node's store (rate, n; true p in brackets)", title_justify="left")
    study.add_column("age band")
    for h in manifest.hospitals:
        study.add_column(h.id, justify="right")
    study_match = True
    bands = {hid: _bands(res["study_by_age"]) for hid, res in results.items()}
    for label, _, _ in STUDY_BANDS:
        cells = []
        for h in manifest.hospitals:
            n, r = bands[h.id][label]
            want = truths[h.id]["study"]["bands"][label]
            study_match &= (n, r) == (want["treated"], want["responders"])
            cells.append(f"{r / n:.0%} n={n:,} [{want['p_true']:.0%}]" if n else "-")
        study.add_row(label, *cells)
    console.print(study)

    total = time.perf_counter() - t_start
    ok = "[green]yes[/green]"
    console.print(
        f"every node holds exactly the rows generated: {ok if all_match else '[red]no[/red]'}; "
        f"study counts equal the ground truth: {ok if study_match else '[red]no[/red]'}"
    )
    first = node_root / f"{manifest.hospitals[0].id}.duckdb"
    console.print(f"generated in {t_gen:.1f} s, ingested in {t_ingest:.1f} s ({jobs} processes), "
                  f"total {total:.1f} s. Stores: {node_root}/  Try: medspace node stats --store {first}")
    if space:
        from medspace.cli.demo_space import DemoHospital, run_space_demo

        t_space = time.perf_counter()
        run_space_demo(workdir, [DemoHospital(h.id, h.flavour, h.name, node_root / f"{h.id}.duckdb")
                                 for h in manifest.hospitals], console)
        console.print(f"data space walk-through in {time.perf_counter() - t_space:.1f} s; every process stopped")
