"""FHIR ingest on third-party data, against parsing the same resources with the fhir.resources R4B models.

    python bench/ingest_thirdparty.py [--tp-patients 1000,3000] [--tp-copies 60] [--tp-repeats 3]
                                      [--tp-sets carebundle,fhir-examples]
                                      [--workdir /tmp/medspace-bench/thirdparty] [--cache ~/.cache/medspace-bench]

Two sets nobody on this project wrote, each fetched from a package index on first use:

- carebundle (PyPI, in the `bench` extra): a US Core R4 generator; cohorts of 1,000 and 3,000 patients (about
  45 resources each) written as one transaction bundle per patient, pretty-printed as the generator writes it.
- hl7.fhir.r4.examples 4.0.1 (npm, HL7's own package of the FHIR R4 specification's examples, CC0): the
  example resources of the types in the Patient compartment (as the package's own CompartmentDefinition
  lists them) and of the types they reference (Medication, Practitioner, Organization, ...), written as bulk
  NDJSON, one file per type, as a bulk export carries them; plus the example bundles of such resources.
  The set is small (a few hundred resources), so it is also run repeated `--tp-copies` times, each copy with its
  ids and references made distinct, to measure throughput rather than start-up.

Each set is timed as two whole commands, start-up included, best of `--tp-repeats`: `medspace ingest DIR --store
X --json` into a fresh store, and a Python process that parses every resource of the same files with its
fhir.resources R4B model (`model_validate`). Figure (issue 10): medspace at least 5x faster. Start-up is part
of both commands and medspace's is the longer (DuckDB, pyarrow, the CLI), so the ratio grows with the set; it is
judged on sets of 10,000 resources or more.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tarfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

EXAMPLES_PACKAGE = "hl7.fhir.r4.examples"
EXAMPLES_VERSION = "4.0.1"
TARGET_RATIO = 5.0
# Below this many resources both commands mostly measure their start-up, so the ratio is shown but not judged.
THROUGHPUT_RESOURCES = 10_000

# What Patient-compartment resources reference, which a bulk export carries beside them.
_REFERENCED = frozenset({"Practitioner", "PractitionerRole", "Organization", "Location", "Medication", "Device",
                         "Substance"})
# Entries a clinical bundle may hold besides Patient-compartment resources.
_SUPPORTING = _REFERENCED | {"MessageHeader"}
_CLINICAL_BUNDLE_TYPES = frozenset({"collection", "document", "transaction", "searchset", "message"})
# Larger example bundles are the specification's own definitions (profiles, value sets), not patient data.
_MAX_BUNDLE_BYTES = 1_000_000

# Parses every resource of the files under argv[1] with its R4B model; prints {"resources", "valid", "invalid"}.
# A failing resource is counted, not fatal: the set is parsed as a validating reader would.
PARSE_WITH_FHIR_RESOURCES = r"""
import sys
from pathlib import Path

import orjson
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

valid = invalid = 0
models = {}


def parse(resource):
    global valid, invalid
    rt = resource.get("resourceType")
    model = models.get(rt)
    if model is None:
        try:
            model = models[rt] = get_fhir_model_class(rt)
        except (KeyError, TypeError, ValueError):
            invalid += 1
            return
    try:
        model.model_validate(resource)
        valid += 1
    except (ValidationError, ValueError, TypeError):
        invalid += 1


for path in sorted(p for p in Path(sys.argv[1]).rglob("*") if p.is_file()):
    if path.name.endswith(".ndjson"):
        with path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    parse(orjson.loads(line))
    elif path.name.endswith(".json"):
        doc = orjson.loads(path.read_bytes())
        if doc.get("resourceType") == "Bundle":
            for entry in doc.get("entry", []):
                if "resource" in entry:
                    parse(entry["resource"])
        else:
            parse(doc)
print(orjson.dumps({"resources": valid + invalid, "valid": valid, "invalid": invalid}).decode())
"""


@dataclass
class SetInfo:
    """A third-party set written to a directory: what it holds."""

    name: str
    path: Path
    resources: int
    files: int


@dataclass
class Timing:
    """Best-of-N wall time of one whole command on one set, with what it reported."""

    seconds: float
    report: dict[str, Any]
    cpu: float = 0.0


# --- the sets ------------------------------------------------------------------------------------------------


def write_carebundle(work: Path, sizes: list[int], seed: int = 20240501) -> list[SetInfo]:
    """carebundle cohorts of each size, one transaction bundle file per patient: the largest is generated, a
    smaller one is its first patients (hard links, so the files are byte for byte the same)."""
    import carebundle

    largest = max(sizes)
    full = work / f"carebundle-{largest}"
    shutil.rmtree(full, ignore_errors=True)
    full.mkdir(parents=True)
    per_file: list[int] = []
    for i, bundle in enumerate(carebundle.generate_cohort(count=largest, seed=seed)):
        text = carebundle.to_json(bundle)
        data = text.encode() if isinstance(text, str) else text
        per_file.append(len(orjson.loads(data).get("entry", [])))
        (full / f"patient-{i:05d}.json").write_bytes(data)
    out = []
    for n in sorted(set(sizes)):
        dst = full
        if n != largest:
            dst = work / f"carebundle-{n}"
            shutil.rmtree(dst, ignore_errors=True)
            dst.mkdir(parents=True)
            for i in range(n):
                os.link(full / f"patient-{i:05d}.json", dst / f"patient-{i:05d}.json")
        out.append(SetInfo(f"carebundle, {n:,} patients", dst, sum(per_file[:n]), n))
    return out


def fetch_npm_package(name: str, version: str, cache: Path) -> Path:
    """The tarball of an npm package, fetched once into `cache` with `npm pack` (npm checks its integrity)."""
    tgz = cache / f"{name}-{version}.tgz"
    if tgz.exists():
        return tgz
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(f"npm is not installed: cannot fetch {name}@{version}")
    cache.mkdir(parents=True, exist_ok=True)
    part = cache / "partial"
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir()
    out = subprocess.run([npm, "pack", f"{name}@{version}", "--silent", "--pack-destination", str(part)],
                         capture_output=True, text=True, check=False)
    got = list(part.glob("*.tgz"))
    if out.returncode != 0 or len(got) != 1:
        raise RuntimeError(f"npm pack {name}@{version} failed: {out.stderr.strip()[-300:]}")
    got[0].replace(tgz)
    shutil.rmtree(part, ignore_errors=True)
    return tgz


def _type_of_member(name: str) -> str | None:
    """The resource type a package member holds, from its name (`package/Observation-bmi.json`)."""
    base = name.rsplit("/", 1)[-1]
    if not base.endswith(".json") or "-" not in base:
        return None
    return base.split("-", 1)[0]


def _members(tgz: Path, wanted: Callable[[str, int], bool]) -> dict[str, bytes]:
    """The JSON members of a package tarball whose (resource type, size) are wanted, by name."""
    out: dict[str, bytes] = {}
    with tarfile.open(tgz, "r:gz") as tar:
        for info in tar:
            rt = _type_of_member(info.name)
            if info.isfile() and rt is not None and wanted(rt, info.size):
                fh = tar.extractfile(info)
                if fh is not None:
                    out[info.name] = fh.read()
    return out


def read_examples(tgz: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A FHIR examples package's resources of the Patient compartment and those they reference (Medication,
    Practitioner, ...), and its example bundles of such resources."""
    compartment = patient_compartment(_members(tgz, lambda rt, _: rt == "CompartmentDefinition"))
    single = compartment | _REFERENCED
    members = _members(tgz, lambda rt, size: rt in single or (rt == "Bundle" and size <= _MAX_BUNDLE_BYTES))
    resources: list[dict[str, Any]] = []
    bundles: list[dict[str, Any]] = []
    for name in sorted(members):
        doc = orjson.loads(members[name])
        if _type_of_member(name) in single:
            resources.append(doc)
        elif is_clinical_bundle(doc, compartment):
            bundles.append(doc)
    return resources, bundles


def patient_compartment(members: dict[str, bytes]) -> frozenset[str]:
    """Resource types in the Patient compartment, from the package's CompartmentDefinition-patient."""
    for name, data in members.items():
        if name.rsplit("/", 1)[-1] == "CompartmentDefinition-patient.json":
            doc = orjson.loads(data)
            return frozenset(r["code"] for r in doc.get("resource", []) if r.get("param"))
    raise RuntimeError("the package has no CompartmentDefinition-patient.json")


def is_clinical_bundle(doc: dict[str, Any], compartment: frozenset[str]) -> bool:
    """A bundle of patient data: every entry a Patient-compartment or supporting resource, at least one of the first."""
    if doc.get("resourceType") != "Bundle" or doc.get("type") not in _CLINICAL_BUNDLE_TYPES:
        return False
    types = [e.get("resource", {}).get("resourceType") for e in doc.get("entry", [])]
    return bool(types) and all(t in compartment or t in _SUPPORTING for t in types) and any(
        t in compartment for t in types)


_REF = re.compile(r"^((?:https?://\S*/)?)([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})((?:/_history/[^/]+)?)$")
_UUID = re.compile(r"^urn:uuid:[0-9a-fA-F]{8}")


def copy_rewriter(k: int) -> Callable[[str], str]:
    """Rewrites a reference or fullUrl for copy `k`: `Type/id` gets a suffix, a urn:uuid a new first group."""
    suffix = f"-c{k}"

    def rewrite(ref: str) -> str:
        if ref.startswith("urn:uuid:"):
            return _UUID.sub(f"urn:uuid:{k:08x}", ref, count=1)
        m = _REF.match(ref)
        return f"{m[1]}{m[2]}/{m[3]}{suffix}{m[4]}" if m else ref

    return rewrite


def copy_resource(resource: dict[str, Any], k: int) -> dict[str, Any]:
    """Copy `k` of a resource: its id and every literal reference made distinct; copy 0 is the resource itself."""
    if k == 0:
        return resource
    rewrite = copy_rewriter(k)
    out = _rewrite_refs(resource, rewrite)
    if isinstance(out.get("id"), str):
        out["id"] = f"{out['id']}-c{k}"
    return out


def copy_bundle(bundle: dict[str, Any], k: int) -> dict[str, Any]:
    """Copy `k` of a bundle: its id, each entry's fullUrl and resource made distinct as in `copy_resource`."""
    if k == 0:
        return bundle
    rewrite = copy_rewriter(k)
    out = dict(bundle)
    if isinstance(out.get("id"), str):
        out["id"] = f"{out['id']}-c{k}"
    entries = []
    for entry in bundle.get("entry", []):
        e = dict(entry)
        if isinstance(e.get("fullUrl"), str):
            e["fullUrl"] = rewrite(e["fullUrl"])
        if isinstance(e.get("resource"), dict):
            e["resource"] = copy_resource(e["resource"], k)
        entries.append(e)
    out["entry"] = entries
    return out


def _rewrite_refs(node: Any, rewrite: Callable[[str], str]) -> Any:
    if isinstance(node, dict):
        return {key: rewrite(v) if key == "reference" and isinstance(v, str) else _rewrite_refs(v, rewrite)
                for key, v in node.items()}
    if isinstance(node, list):
        return [_rewrite_refs(v, rewrite) for v in node]
    return node


def write_examples(dst: Path, resources: list[dict[str, Any]], bundles: list[dict[str, Any]],
                   copies: int) -> SetInfo:
    """The examples as bulk NDJSON (one file per type) and bundle files, repeated `copies` times."""
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for r in resources:
        by_type.setdefault(r["resourceType"], []).append(r)
    count = files = 0
    for rt, group in sorted(by_type.items()):
        with (dst / f"{rt}.ndjson").open("wb") as out:
            for k in range(copies):
                for r in group:
                    out.write(orjson.dumps(copy_resource(r, k)) + b"\n")
                    count += 1
        files += 1
    for k in range(copies):
        for i, b in enumerate(bundles):
            (dst / f"bundle-{i:02d}-c{k}.json").write_bytes(orjson.dumps(copy_bundle(b, k), option=orjson.OPT_INDENT_2))
            count += len(b.get("entry", []))
            files += 1
    label = "FHIR R4 examples" + (f" x{copies}" if copies > 1 else "")
    return SetInfo(label, dst, count, files)


# --- the timed commands ----------------------------------------------------------------------------------------


def medspace_command() -> list[str]:
    """The `medspace` command of this interpreter's environment, its modules compiled as an install leaves them
    (an editable install under PYTHONDONTWRITEBYTECODE would compile them again at every start)."""
    import compileall

    import medspace

    compileall.compile_dir(str(Path(medspace.__file__).parent), quiet=1)
    exe = shutil.which("medspace", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "medspace.cli.main"]


def accepts_create(cmd: list[str]) -> bool:
    """Whether `medspace ingest` has a --create option (needed for a new store where it exists)."""
    out = subprocess.run([*cmd, "ingest", "--help"], capture_output=True, text=True, check=False,
                         env={**os.environ, "COLUMNS": "200"})
    return "--create" in out.stdout


def _timed(argv: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall and CPU seconds (user + system, the child and its children) of one whole command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out


def time_medspace(cmd: list[str], data: Path, store: Path, *, create: bool, repeats: int) -> Timing:
    """Best wall and CPU time of `medspace ingest DATA --store STORE --json` into a fresh store, with its report."""
    best: Timing | None = None
    for _ in range(repeats):
        for f in (store, Path(f"{store}.wal")):
            f.unlink(missing_ok=True)
        wall, cpu, out = _timed([*cmd, "ingest", str(data), "--store", str(store), "--json",
                                 *(["--create"] if create else [])])
        report = _json_report(out.stdout)
        # Exit 1 means a finding (README's exit codes): the ingest itself went through and reported.
        if out.returncode not in (0, 1) or report is None:
            raise RuntimeError(f"medspace ingest exited {out.returncode}: {out.stderr.strip()[-500:]}")
        best = _better(best, Timing(wall, report, cpu))
    assert best is not None
    return best


def _json_report(stdout: str) -> dict[str, Any] | None:
    """The ingest report printed with --json, or None if the output is not one."""
    try:
        doc = json.loads(stdout)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and "tables" in doc else None


def time_fhir_resources(data: Path, repeats: int) -> Timing:
    """Best wall and CPU time of a fresh process parsing every resource under DATA with its R4B model."""
    best: Timing | None = None
    for _ in range(repeats):
        wall, cpu, out = _timed([sys.executable, "-c", PARSE_WITH_FHIR_RESOURCES, str(data)])
        if out.returncode != 0:
            raise RuntimeError(f"the fhir.resources parser exited {out.returncode}: {out.stderr.strip()[-500:]}")
        best = _better(best, Timing(wall, json.loads(out.stdout), cpu))
    assert best is not None
    return best


def _better(best: Timing | None, run: Timing) -> Timing:
    # The machine is shared: the fastest run is the signal, for wall and CPU time separately.
    if best is None:
        return run
    return Timing(min(best.seconds, run.seconds), best.report, min(best.cpu, run.cpu))


def findings_of(report: dict[str, Any]) -> tuple[int, int]:
    """Rows flagged by data-quality findings and the number of distinct (table, field, kind) findings."""
    findings = report.get("findings") or []
    return sum(int(f.get("count", 0)) for f in findings), len(findings)


def summarise(report: dict[str, Any]) -> dict[str, Any]:
    """What the bench shows of an ingest report: rows stored, quarantined per reason, skipped, findings."""
    rows, kinds = findings_of(report)
    flagged = Counter({f"{f['table']}.{f['field']}:{f['kind']}": int(f["count"]) for f in report.get("findings") or []})
    return {
        "rows": sum(t.get("received", 0) for t in (report.get("tables") or {}).values()),
        "quarantined": dict(report.get("quarantined") or {}),
        "skipped": sum((report.get("skipped") or {}).values()),
        "findings_rows": rows,
        "findings_kinds": kinds,
        "top_findings": flagged.most_common(5),
    }


def quarantine_details(store: Path, limit: int = 6) -> list[tuple[str, str, int]]:
    """The most frequent (reason, detail) pairs of a store's quarantine (details name fields, never values)."""
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        rows = con.execute("SELECT reason, detail, count(*) FROM quarantine GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 "
                           "LIMIT ?", [limit]).fetchall()
    finally:
        con.close()
    return [(str(r), str(d), int(n)) for r, d, n in rows]


# --- the run ---------------------------------------------------------------------------------------------------


SETS = ("carebundle", "fhir-examples")


def build_sets(work: Path, cache: Path, patients: list[int], copies: int, log: Callable[[str], None],
               sets: tuple[str, ...] = SETS) -> Iterator[SetInfo]:
    """The third-party sets, written under `work`; a set that cannot be had is reported and left out."""
    if "carebundle" in sets and patients:
        try:
            yield from write_carebundle(work, patients)
        except ImportError:
            log("carebundle is not installed (pip install -e '.[bench]'): carebundle set left out")
    if "fhir-examples" not in sets:
        return
    try:
        tgz = fetch_npm_package(EXAMPLES_PACKAGE, EXAMPLES_VERSION, cache)
    except RuntimeError as e:
        log(f"{e}: FHIR examples set left out")
        return
    resources, bundles = read_examples(tgz)
    yield write_examples(work / "fhir-examples", resources, bundles, 1)
    if copies > 1:
        yield write_examples(work / f"fhir-examples-x{copies}", resources, bundles, copies)


def run(work: Path, cache: Path, patients: list[int], copies: int, repeats: int, console: Console,
        sets: tuple[str, ...] = SETS) -> Table:
    """Time every set both ways and return the table (details of quarantine and findings go to the console)."""
    work.mkdir(parents=True, exist_ok=True)
    cmd = medspace_command()
    create = accepts_create(cmd)
    table = Table(title=f"FHIR ingest on third-party data: whole commands, start-up included, best of {repeats} "
                        "(wall time; CPU = user + system of the process)"
                        f"{'' if create else ' (this medspace has no ingest --create)'}", title_justify="left")
    for col in ("set", "resources", "medspace s wall/cpu", "res/s", "R4B models s wall/cpu", "res/s",
                "ratio wall/cpu", "quarantined", "findings rows/kinds", "R4B invalid", f">= x{TARGET_RATIO:.0f}"):
        table.add_column(col, justify="left" if col == "set" else "right", no_wrap=col == "set")
    for s in build_sets(work, cache, patients, copies, lambda m: console.print(f"[yellow]{m}[/]"), sets):
        store = work / f"{s.path.name}.duckdb"
        ms = time_medspace(cmd, s.path, store, create=create, repeats=repeats)
        fr = time_fhir_resources(s.path, repeats)
        summary = summarise(ms.report)
        parsed = fr.report["resources"]
        if parsed != s.resources:
            console.print(f"[red]{s.name}: the R4B parser saw {parsed:,} resources, the set holds {s.resources:,}[/]")
        ratio = fr.seconds / ms.seconds
        q = sum(summary["quarantined"].values())
        table.add_row(s.name, f"{s.resources:,}", f"{ms.seconds:.2f} / {ms.cpu:.2f}",
                      f"{s.resources / ms.seconds:,.0f}", f"{fr.seconds:.2f} / {fr.cpu:.2f}",
                      f"{s.resources / fr.seconds:,.0f}",
                      f"x{ratio:.1f} / x{fr.cpu / ms.cpu:.1f}", f"{q:,}",
                      f"{summary['findings_rows']:,} / {summary['findings_kinds']}", f"{fr.report['invalid']:,}",
                      verdict(s.resources, ratio))
        console.print(f"{s.name}: {s.files:,} files, {summary['rows']:,} rows, {summary['skipped']:,} resources "
                      f"outside the model, quarantined {summary['quarantined'] or 'none'}, "
                      f"most frequent findings {summary['top_findings'] or 'none'}")
        if q:
            for reason, detail, n in quarantine_details(store):
                console.print(f"    quarantined {n:>5,} x {reason}: {detail[:110]}")
    table.caption = (f"target: medspace >= x{TARGET_RATIO:.0f} faster (wall time) than the R4B models on sets of "
                     f">= {THROUGHPUT_RESOURCES:,} resources (a smaller set measures start-up: shown, not judged)")
    return table


def verdict(resources: int, ratio: float) -> str:
    """Whether a set's ratio meets the target; small sets are not judged."""
    if resources < THROUGHPUT_RESOURCES:
        return "start-up"
    return "yes" if ratio >= TARGET_RATIO else "NO"


def main() -> None:
    """Run the third-party benchmark alone and print its table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(ap)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/medspace-bench/thirdparty"))
    args = ap.parse_args()
    console = Console(width=150)
    console.print(run(args.workdir, args.cache, args.tp_patients, args.tp_copies, args.tp_repeats, console,
                      tp_sets(args.tp_sets)))


def sizes(value: str) -> list[int]:
    """Comma-separated positive counts (an argparse type)."""
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of counts: {value!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"not a list of positive counts: {value!r}")
    return out


def tp_sets(value: str) -> tuple[str, ...]:
    """The sets named in a --tp-sets value; an unknown name is an argparse error."""
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = sorted(set(names) - set(SETS))
    if unknown:
        raise SystemExit(f"--tp-sets: unknown set(s) {', '.join(unknown)}; known: {', '.join(SETS)}")
    return names


def add_arguments(ap: argparse.ArgumentParser) -> None:
    """The options of this bench (shared with bench/ingest.py)."""
    # Start-up is part of the figure, so the ratio grows with the set: two sizes show how it does.
    ap.add_argument("--tp-patients", type=sizes, default=[1000, 3000],
                    help="carebundle cohort sizes, comma-separated (third-party run)")
    ap.add_argument("--tp-copies", type=int, default=60, help="copies of the FHIR examples set (third-party run)")
    ap.add_argument("--tp-repeats", type=int, default=3, help="runs of each command, best kept (third-party run)")
    ap.add_argument("--tp-sets", default=",".join(SETS), help=f"third-party sets to run ({', '.join(SETS)})")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "medspace-bench",
                    help="where fetched packages are kept")


if __name__ == "__main__":
    main()
