"""Ingest many source files on several cores: worker processes map the files, the parent replays what they
mapped into the sink in file order, so that the batch is exactly what a serial ingest makes.

A serial ingest maps on one thread: parsing JSON or HL7 and building rows is Python, and the store's batch
writer only takes the writing off that thread. Here worker processes (forked, so they start with everything
the parent imported) map *tasks*: several small files, one large file, or one line-aligned byte range of a
large NDJSON file. A worker records what a connector gives its sink and sends it back in parts: rows as
Arrow (converted a few thousand at a time, as the store converts them), and per file (or range) the
quarantined units, the data-quality findings, the skipped counts and whether the file ended there. The
parent takes the parts in the tasks' order and replays them into the real sink: the same rows in the same
order per table (so the last row of an id given twice still wins), the same quarantine records with their
positions, the same findings with their first example and counts, the same skips and one `end_source` per
file, after its rows. A task's rows reach the sink in blocks (not file by file: thousands of calls of a few
dozen rows would cost the store more than the mapping they save).

Memory stays flat: a worker sends a part whenever it holds PART_BYTES, the parent plans only a few tasks
per worker ahead, and once it holds MAX_BUFFERED bytes of parts not yet replayed it reads only from the
worker of the task it is replaying, so that the others wait (their pipes fill) instead of piling up.

Mapping files (CSV, Parquet) are read by vectorised code already: they stay in the parent, in their place.
What crosses files or lines is kept as in a serial ingest: FHIR medicationReferences resolve only within one
file, and an NDJSON file is split into ranges only up to the first range that may hold a Medication (from
there on the rest of the file is one piece, so a reference always sees every Medication before it). HL7 v2
files are not split: where a message ends depends on MLLP framing and batch envelopes read from the start.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import multiprocessing
import os
import pickle
import re
import signal
import struct
import traceback
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from multiprocessing.connection import Connection, wait
from pathlib import Path
from types import TracebackType
from typing import Any

import pyarrow as pa

from medspace.connect.base import Finding, Quarantined, Sink
from medspace.connect.errors import ConnectError, SourceError
from medspace.connect.sources import SourceKind, ingest_file
from medspace.gc_pause import gc_paused
from medspace.model import TABLES

__all__ = ["MAX_DEFAULT_JOBS", "ParallelIngest", "Piece", "WorkerError", "default_jobs", "plan"]

MAX_DEFAULT_JOBS = 8
# Below this much input (of the files workers would map) a pool costs more than it saves: forking, and
# pickling what the workers mapped, against a fraction of a second of mapping.
MIN_PARALLEL_BYTES = 8 << 20
# A task is about this share of the input per worker (so that the workers end together), within bounds.
TASKS_PER_WORKER = 12
MIN_TASK_BYTES = 1 << 20
MAX_TASK_BYTES = 16 << 20
MAX_TASK_FILES = 256  # small files per task at most
CONVERT_ROWS = 4_096  # a table's recorded rows become Arrow this many at a time (as the store's buffer does)
PART_BYTES = 8 << 20  # a worker sends what it recorded once it holds this much
MAX_BUFFERED = 128 << 20  # parts received and not yet replayed, beyond which the parent reads in order only
LOOK_AHEAD = 3  # tasks planned and not yet replayed, per worker
PER_WORKER = 2  # tasks handed to one worker at once: it starts the next while the parent reads the last
# A task message larger than this (many long paths) goes only to an idle worker, which is reading its pipe:
# a busy one might be blocked sending its results while the parent, blocked sending it a task, reads none.
PIPE_ROOM = 16 << 10
GZIP_RATIO = 5  # a gzip file's input, relative to its size on disk, when estimating the work it is

_SPLITTABLE = (".ndjson", ".jsonl")
# A Medication resource in an NDJSON range: its type as a JSON string, or a JSON escape of an ASCII letter
# that could spell it (`"Medic\u0061tion"`). Conservative: only a range with neither is split off.
_MEDICATION = b'"Medication"'
_ESCAPED_LETTER = re.compile(rb"\\u00(?:[46][1-9a-fA-F]|[57][0-9aA])")

# A worker's message: a header (task number, what follows) and a pickled body.
_HEADER = struct.Struct("<IB")
_PART, _LAST, _ERROR = 0, 1, 2


class WorkerError(ConnectError):
    """A worker process ended without reporting (killed, out of memory)."""


class RemoteTraceback(Exception):
    """The traceback of an error raised in a worker process (the cause of the error re-raised here)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


def default_jobs() -> int:
    """The processes an ingest uses by default: the cores this process may run on, at most MAX_DEFAULT_JOBS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_DEFAULT_JOBS, cores))


def can_fork() -> bool:
    """Whether worker processes can be forked here (they must start with what the parent imported)."""
    return "fork" in multiprocessing.get_all_start_methods()


# --- the work ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Piece:
    """A source file, or a line-aligned byte range of an NDJSON file, mapped in one go."""

    path: Path
    kind: SourceKind
    start: int = 0  # byte offset where the range begins
    end: int | None = None  # byte offset where it ends; None: the end of the file
    first_line: int = 1  # the number of the range's first line
    whole: bool = True  # the whole file, mapped as a serial ingest maps it
    last: bool = True  # the piece ends its file


@dataclass(frozen=True, slots=True)
class _Task:
    seq: int
    pieces: tuple[Piece, ...]


@dataclass(frozen=True, slots=True)
class _Serial:
    """A source the parent ingests itself, in its place (a mapping file)."""

    path: Path
    kind: SourceKind


@dataclass(slots=True)
class _Segment:
    """What a connector gave its sink for one piece besides rows, in order (or its part so far)."""

    piece: int  # the piece's index in its task
    quarantined: list[Quarantined] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    findings: list[tuple[Finding, int]] = field(default_factory=list)  # one per kind: the first, and the count
    ended: bool = False  # the connector called end_source
    closed: bool = False  # the piece is done (else more of it follows in a later part)


@dataclass(slots=True)
class _Part:
    """What a worker sends: rows in the order they were converted, per table either Arrow or, if they did not
    convert, the rows themselves (the parent's sink then refuses them with its own message); then segments."""

    rows: list[tuple[str, pa.Table | list[dict[str, Any]]]]
    segments: list[_Segment]


class _Recorder:
    """A sink that records what a connector gives it and sends it on in parts (through `send`)."""

    def __init__(self, send: Callable[[_Part], None]) -> None:
        self._send = send
        self._pending: dict[str, list[dict[str, Any]]] = {}
        self._rows: list[tuple[str, pa.Table | list[dict[str, Any]]]] = []
        self._segments: list[_Segment] = []
        self._seg = _Segment(0)
        self._found: dict[tuple[str, str, str, str], int] = {}
        self._bytes = 0

    def add(self, table: str, row: dict[str, Any]) -> None:
        """Record a row."""
        rows = self._pending.get(table)
        if rows is None:
            rows = self._pending[table] = []
        rows.append(row)
        if len(rows) >= CONVERT_ROWS:
            self._convert(table)

    def add_arrow(self, table: str, data: pa.Table) -> None:
        """Record rows given as Arrow (no connector a worker runs does)."""
        for row in data.to_pylist():
            self.add(table, row)

    def quarantine(self, item: Quarantined) -> None:
        """Record a quarantined unit."""
        self._seg.quarantined.append(item)
        self._grow(len(item.raw) + len(item.detail) + len(item.source) + 64)

    def skip(self, kind: str, n: int = 1) -> None:
        """Count skipped input."""
        self._seg.skipped[kind] += n

    def finding(self, item: Finding, n: int = 1) -> None:
        """Count a finding; the first of each kind is the one a batch keeps as its example."""
        key = (item.connector, item.table, item.field, item.kind.value)
        at = self._found.get(key)
        findings = self._seg.findings
        if at is None:
            self._found[key] = len(findings)
            findings.append((item, n))
        else:
            first, count = findings[at]
            findings[at] = (first, count + n)

    def end_source(self, source: str | None = None) -> None:
        """Note that the file ends here (the parent names it when it replays the end)."""
        self._seg.ended = True

    def close_piece(self) -> None:
        """The current piece is done: the next one begins."""
        seg = self._seg
        seg.closed = True
        self._segments.append(seg)
        self._seg = _Segment(seg.piece + 1)
        self._found = {}

    def finish(self) -> None:
        """Send what is left: the task's last part."""
        self._flush()

    def _convert(self, table: str, *, grow: bool = True) -> None:
        rows = self._pending.pop(table)
        data: pa.Table | list[dict[str, Any]]
        try:
            data = pa.Table.from_struct_array(pa.array(rows, type=TABLES[table].row_type))
            size = data.nbytes
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            data, size = rows, 0
        self._rows.append((table, data))
        if grow:
            self._grow(size)

    def _grow(self, size: int) -> None:
        self._bytes += size
        if self._bytes >= PART_BYTES:
            self._flush(more=True)

    def _flush(self, *, more: bool = False) -> None:
        """Send what is recorded (every row with it, so that a file's end comes after its rows); `more`: in the
        middle of a piece."""
        for table in list(self._pending):
            self._convert(table, grow=False)
        segments = self._segments
        if more:
            # The piece goes on in the next part: what it gave so far goes now, as a segment of its own.
            seg = self._seg
            segments.append(seg)
            self._seg = _Segment(seg.piece)
            self._found = {}
        part = _Part(self._rows, segments)
        self._rows, self._segments, self._bytes = [], [], 0
        self._send(part)


def _map_piece(piece: Piece, sink: Sink, strict: bool) -> None:
    """Map one piece into a sink as a serial ingest would: a whole file through `ingest_file`, an NDJSON
    range line by line with its lines numbered as in the whole file."""
    if piece.whole:
        ingest_file(piece.path, piece.kind, sink, strict=strict)
        return
    from medspace.connect.fhir import _ingest_lines, _open_stream

    source = str(piece.path)
    with gc_paused(), _open_stream(piece.path) as fh:
        try:
            fh.seek(piece.start)
            lines: Any = fh if piece.end is None else BytesIO(fh.read(piece.end - piece.start))
        except OSError as e:
            raise SourceError(f"{source}: cannot read past line {piece.first_line - 1} ({type(e).__name__})") from None
        # A fresh Medication index: the planner splits a file only where no earlier range may hold one.
        _ingest_lines(lines, source, sink, strict, {}, first_line=piece.first_line)
    if piece.last:
        sink.end_source()


def run_task(pieces: tuple[Piece, ...], send: Callable[[_Part], None], strict: bool = False) -> None:
    """Map a task's pieces in order, sending what they gave in parts (the last after the last piece)."""
    rec = _Recorder(send)
    # Parsing makes many short-lived acyclic objects, and recorded rows stay alive until converted: the
    # collector's passes over them would cost a good part of the task (see gc_pause).
    with gc_paused():
        for piece in pieces:
            _map_piece(piece, rec, strict)
            rec.close_piece()
        rec.finish()


def _portable(e: BaseException) -> BaseException:
    """An exception the parent can re-raise: itself if it pickles, else a RuntimeError naming it."""
    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        text = "".join(traceback.format_exception_only(type(e), e)).strip()
        return RuntimeError(f"in an ingest worker: {text}")


def _worker(tasks: Connection, results: Connection, strict: bool) -> None:
    """A worker process: map tasks until told to stop (None) or the parent goes away."""
    # Ctrl-C reaches the whole process group: the parent handles it and ends the workers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    seq = 0

    def send(part: _Part) -> None:
        results.send_bytes(_HEADER.pack(seq, _PART) + pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL))

    while True:
        try:
            msg = tasks.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        seq, pieces = msg
        try:
            run_task(pieces, send, strict)
            out = _HEADER.pack(seq, _LAST)
        except BaseException as e:  # reported in the parent, in the task's place
            tb = "".join(traceback.format_exception(type(e), e, e.__traceback__))
            out = _HEADER.pack(seq, _ERROR) + pickle.dumps((_portable(e), tb))
        try:
            results.send_bytes(out)
        except OSError:
            return


# --- planning ---------------------------------------------------------------------------------------------


def _size(path: Path) -> int:
    try:
        size = path.stat().st_size
    except OSError:
        return 0  # the worker reports what is wrong with it
    return size * GZIP_RATIO if path.name.lower().endswith(".gz") else size


def _task_bytes(total: int, jobs: int) -> int:
    """The input of one task: a share of the whole per worker, within bounds."""
    return min(MAX_TASK_BYTES, max(MIN_TASK_BYTES, total // max(1, jobs * TASKS_PER_WORKER)))


def _splittable(path: Path, kind: SourceKind, size: int, task_bytes: int) -> bool:
    """Whether a file is split into ranges (unless a Medication stops it)."""
    return kind is SourceKind.FHIR_NDJSON and path.name.lower().endswith(_SPLITTABLE) and size >= 2 * task_bytes


def _may_hold_medication(data: bytes, end: int) -> bool:
    """Whether data[:end] may hold a Medication resource."""
    return data.find(_MEDICATION, 0, end) >= 0 or (
        data.find(b"\\u00", 0, end) >= 0 and _ESCAPED_LETTER.search(data, 0, end) is not None)


def _ndjson_pieces(path: Path, kind: SourceKind, size: int, task_bytes: int) -> Iterator[Piece]:
    """An NDJSON file as line-aligned ranges of about `task_bytes`, each with the number of its first line;
    from the first range that may hold a Medication on, the rest of the file is one piece."""
    whole = Piece(path, kind)
    if not _splittable(path, kind, size, task_bytes):
        yield whole
        return
    try:
        fh = path.open("rb")
    except OSError:
        yield whole  # the worker says why it cannot be read
        return
    with fh:
        start, line = 0, 1
        while size - start >= task_bytes * 3 // 2:
            try:
                fh.seek(start)
                buf = fh.read(task_bytes)
            except OSError:
                break  # the worker mapping the rest says why
            cut = buf.rfind(b"\n") + 1
            if cut == 0 or _may_hold_medication(buf, cut):
                break  # a line longer than a task, or a Medication: the rest is one piece
            yield Piece(path, kind, start, start + cut, line, whole=False, last=False)
            line += buf.count(b"\n", 0, cut)
            start += cut
        yield whole if start == 0 else Piece(path, kind, start, None, line, whole=False, last=True)


def plan(sources: list[tuple[Path, SourceKind]], task_bytes: int) -> Iterator[_Task | _Serial]:
    """The work of an ingest in file order: tasks for the workers, mapping files for the parent."""
    seq = 0
    group: list[Piece] = []
    group_bytes = 0
    for path, kind in sources:
        if kind is SourceKind.MAPPING:
            if group:
                yield _Task(seq, tuple(group))
                seq, group, group_bytes = seq + 1, [], 0
            yield _Serial(path, kind)
            continue
        size = _size(path)
        for piece in _ndjson_pieces(path, kind, size, task_bytes):
            if not piece.whole:
                if group:
                    yield _Task(seq, tuple(group))
                    seq, group, group_bytes = seq + 1, [], 0
                yield _Task(seq, (piece,))
                seq += 1
                continue
            group.append(piece)
            group_bytes += size
            if group_bytes >= task_bytes or len(group) >= MAX_TASK_FILES:
                yield _Task(seq, tuple(group))
                seq, group, group_bytes = seq + 1, [], 0
    if group:
        yield _Task(seq, tuple(group))


# --- the parent -------------------------------------------------------------------------------------------

Progress = Callable[[Path, SourceKind], None]


def _nothing(path: Path, kind: SourceKind) -> None:
    pass


class _Worker:
    __slots__ = ("assigned", "process", "results", "tasks")

    def __init__(self, process: Any, tasks: Connection, results: Connection) -> None:
        self.process = process
        self.tasks = tasks
        self.results = results
        self.assigned: deque[int] = deque()  # its tasks not yet fully received, in order


class ParallelIngest:
    """Ingest source files into a sink, in worker processes when that pays; the sink gets what a serial
    ingest gives it. Enter it before opening the store (the workers fork then, while the parent runs no
    other thread), then call `run` with the store's batch:

        with ParallelIngest(sources, jobs=4) as ingest, Store(path) as store, store.batch(label) as batch:
            ingest.run(batch)

    Workers see the string limits (`set_limits`) in force when it is entered.
    """

    def __init__(self, sources: list[tuple[Path, SourceKind]], *, jobs: int = 1, strict: bool = False,
                 task_bytes: int | None = None, min_bytes: int | None = None) -> None:
        """`jobs`: processes that map (1: the serial ingest); `task_bytes`: the input of one task (default: from
        the input's size); `min_bytes`: the input below which the ingest stays serial (MIN_PARALLEL_BYTES)."""
        if jobs < 1:
            raise ValueError("jobs must be at least 1")
        self.sources = list(sources)
        self.strict = strict
        mapped = [(p, k, _size(p)) for p, k in self.sources if k is not SourceKind.MAPPING]
        total = sum(size for _, _, size in mapped)
        self.task_bytes = task_bytes or _task_bytes(total, jobs)
        # About the number of tasks the input makes: no more workers than that.
        split = sum(size // self.task_bytes for p, k, size in mapped if _splittable(p, k, size, self.task_bytes))
        tasks = split + -(-max(0, total - split * self.task_bytes) // self.task_bytes)
        workers = min(jobs, len(mapped) + split, tasks)
        least = MIN_PARALLEL_BYTES if min_bytes is None else min_bytes
        self.jobs = workers if workers > 1 and total >= least and can_fork() else 1
        self._workers: list[_Worker] = []
        self._replay: _Replay | None = None
        self._used = False
        self._finished = False

    @property
    def parallel(self) -> bool:
        """Whether worker processes map the sources."""
        return self.jobs > 1

    def __enter__(self) -> ParallelIngest:
        if self.parallel:
            self._start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(kill=exc_type is not None)

    def _start(self) -> None:
        ctx = multiprocessing.get_context("fork")
        # What the workers run is imported once, here, rather than in each of them.
        kinds = {k for _, k in self.sources}
        if kinds & {SourceKind.FHIR_BUNDLE, SourceKind.FHIR_NDJSON}:
            importlib.import_module("medspace.connect.fhir")
        if SourceKind.HL7V2 in kinds:
            importlib.import_module("medspace.connect.hl7v2")

        # Objects alive now are the parent's: frozen, the workers' collections neither walk them nor write
        # to their pages (which the kernel would then copy, page by page, into each worker).
        gc.freeze()
        try:
            for i in range(self.jobs):
                task_r, task_w = ctx.Pipe(duplex=False)
                res_r, res_w = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_worker, args=(task_r, res_w, self.strict), daemon=True,
                                   name=f"medspace-ingest-{i + 1}")
                try:
                    proc.start()
                finally:
                    task_r.close()
                    res_w.close()
                self._workers.append(_Worker(proc, task_w, res_r))
        except BaseException:
            self.close(kill=True)
            raise
        finally:
            gc.unfreeze()
        # The first tasks go out now: the workers map them while the parent opens the store.
        self._replay = _Replay(self._workers, plan(self.sources, self.task_bytes))
        self._replay.feed()

    def close(self, *, kill: bool = False) -> None:
        """Stop the workers: told to end once the run is done, else (a failure, Ctrl-C) at once."""
        kill = kill or not self._finished  # a worker may be waiting to send what nobody will read
        workers, self._workers = self._workers, []
        for w in workers:
            if kill:
                w.process.terminate()
            else:
                with contextlib.suppress(OSError):
                    w.tasks.send(None)
        for w in workers:
            w.process.join(timeout=None if kill else 10)
            if w.process.is_alive():
                w.process.terminate()
                w.process.join()
            w.tasks.close()
            w.results.close()

    def run(self, sink: Sink, *, start: Progress = _nothing, done: Progress = _nothing) -> None:
        """Ingest every source into the sink, in order; `start` and `done` are called around each file."""
        if self._used:
            raise RuntimeError("a ParallelIngest runs once")
        self._used = True
        if not self.parallel:
            for path, kind in self.sources:
                start(path, kind)
                ingest_file(path, kind, sink, strict=self.strict)
                done(path, kind)
            return
        if self._replay is None:
            raise RuntimeError("enter the ParallelIngest before running it")
        try:
            self._replay.run(sink, start, done, self.strict)
        except BaseException:
            self.close(kill=True)  # the workers stop now, before the batch rolls back
            raise
        self._finished = True


class _Replay:
    """The parent's side of a parallel ingest: hands tasks out, takes parts in, replays them in order."""

    def __init__(self, workers: list[_Worker], items: Iterator[_Task | _Serial]) -> None:
        self.workers = workers
        self.items = items
        self.sink: Sink | None = None  # given by `run`
        self.start: Progress = _nothing
        self.done: Progress = _nothing
        self.ahead: deque[_Task | _Serial] = deque()  # planned, in order, not yet replayed
        self.queued: deque[_Task] = deque()  # planned, not yet handed to a worker
        self.inbox: dict[int, deque[bytes]] = {}  # task -> its parts received, not yet replayed
        self.complete: set[int] = set()  # tasks whose last part (or error) was received
        self.buffered = 0
        self.planned = 0  # tasks planned and not yet replayed
        self.limit = LOOK_AHEAD * len(workers)
        self.exhausted = False

    def run(self, sink: Sink, start: Progress, done: Progress, strict: bool) -> None:
        """Replay every planned item into the sink."""
        self.sink, self.start, self.done = sink, start, done
        self.feed()
        while True:
            if not self.ahead:
                if self.exhausted:
                    return
                self.feed()
                continue
            item = self.ahead.popleft()
            if isinstance(item, _Serial):
                self.start(item.path, item.kind)
                ingest_file(item.path, item.kind, self.sink, strict=strict)
                self.done(item.path, item.kind)
            else:
                self.replay(item)
                self.planned -= 1
            self.feed()

    def feed(self) -> None:
        """Plan tasks up to the look-ahead and hand them to workers with room."""
        while True:
            while self.queued:
                w = min(self.workers, key=lambda x: len(x.assigned))
                if len(w.assigned) >= PER_WORKER:
                    return
                task = self.queued[0]
                msg = pickle.dumps((task.seq, task.pieces), protocol=pickle.HIGHEST_PROTOCOL)
                if len(msg) > PIPE_ROOM and w.assigned:
                    return
                self.queued.popleft()
                w.tasks.send_bytes(msg)
                w.assigned.append(task.seq)
            if self.exhausted or self.planned >= self.limit:
                return
            item = next(self.items, None)
            if item is None:
                self.exhausted = True
                return
            self.ahead.append(item)
            if isinstance(item, _Task):
                self.queued.append(item)
                self.inbox[item.seq] = deque()
                self.planned += 1

    def receive(self, current: int) -> None:
        """Wait for messages and file them; past MAX_BUFFERED, only from the worker of the current task."""
        workers = self.workers
        if self.buffered >= MAX_BUFFERED:
            workers = [w for w in workers if w.assigned and w.assigned[0] == current]
        ready = wait([w.results for w in workers] + [w.process.sentinel for w in self.workers])
        for w in workers:
            if w.results not in ready:
                continue
            try:
                msg = w.results.recv_bytes()
            except (EOFError, OSError):
                continue  # the worker ended: its sentinel says how
            seq, status = _HEADER.unpack_from(msg)
            self.inbox[seq].append(msg)
            self.buffered += len(msg)
            if status != _PART:
                self.complete.add(seq)
                w.assigned.popleft()
        for w in self.workers:
            if w.process.sentinel in ready:
                # Workers end only when told to, after the run: this one was killed.
                w.process.join()
                code = w.process.exitcode
                how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
                raise WorkerError(f"an ingest worker process ended unexpectedly ({how}; out of memory?): "
                                  "nothing was stored; try again with --jobs 1")

    def replay(self, task: _Task) -> None:
        """Give the sink a task's parts as they come."""
        inbox = self.inbox[task.seq]
        first = task.pieces[0]
        if first.start == 0:
            self.start(first.path, first.kind)
        begun = 1  # pieces whose start was announced
        while True:
            while inbox:
                msg = inbox.popleft()
                self.buffered -= len(msg)
                _, status = _HEADER.unpack_from(msg)
                if status == _LAST:
                    continue
                body = pickle.loads(memoryview(msg)[_HEADER.size:])
                if status == _ERROR:
                    error, tb = body
                    raise error from RemoteTraceback(tb)
                begun = self._part(task, body, begun)
            if task.seq in self.complete:
                del self.inbox[task.seq]
                self.complete.discard(task.seq)
                return
            self.receive(task.seq)
            self.feed()

    def _part(self, task: _Task, part: _Part, begun: int) -> int:
        sink = self.sink
        assert sink is not None
        for table, data in part.rows:
            if isinstance(data, pa.Table):
                sink.add_arrow(table, data)
            else:
                for row in data:
                    sink.add(table, row)
        for seg in part.segments:
            piece = task.pieces[seg.piece]
            if seg.piece >= begun:
                if piece.start == 0:
                    self.start(piece.path, piece.kind)
                begun = seg.piece + 1
            for q in seg.quarantined:
                sink.quarantine(q)
            for kind, count in seg.skipped.items():
                sink.skip(kind, count)
            for f, count in seg.findings:
                sink.finding(f, count)
            if seg.ended:
                sink.end_source(str(piece.path))
            if seg.closed and piece.last:
                self.done(piece.path, piece.kind)
        return begun

