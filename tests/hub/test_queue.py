"""The task queue on SQLite and PostgreSQL: claims hand out each assignment once, the last answer finishes a task
once, leases and deadlines; two processes on one PostgreSQL database lose or duplicate nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import func, select

from medspace.hub.db import Assignment, Task, migrate, utcnow
from medspace.hub.errors import Conflict, NotFound
from medspace.hub.queue import (
    HubDB,
    Part,
    cancel_tasks,
    claim,
    enqueue,
    expire_tasks,
    finish_assignment,
    requeue_expired_leases,
)


def total(task: Task, results: dict[str, Any], errors: dict[str, str]) -> tuple[str, Any, str | None]:
    """Sum of the parts; fails when any part failed (completion 'all') unless completion is 'available'."""
    if errors and task.completion == "all":
        return "failed", None, "; ".join(f"{h}: {e}" for h, e in sorted(errors.items()))
    return "done", {"n": sum(r["n"] for r in results.values()), "hospitals": sorted(results)}, None


def new_task(tid: str, hospitals: list[str], completion: str = "all", deadline_s: float = 60
             ) -> tuple[Task, list[Part]]:
    t = Task(id=tid, kind="count", requester="r1", purpose="HRESCH", params="{}", completion=completion,
             status="queued", deadline=utcnow() + timedelta(seconds=deadline_s))
    return t, [Part(h, f"c-{h}", {"task": tid, "hospital": h}) for h in hospitals]


@pytest.fixture
def db(hub_url: str) -> HubDB:
    migrate(hub_url)
    d = HubDB(hub_url)
    yield d
    d.close()


def test_claim_finish_and_the_last_answer_finishes_the_task(db: HubDB) -> None:
    with db.transaction("assignments") as s:
        enqueue(s, *new_task("t1", ["h1", "h2"]))
    with db.transaction() as s:
        got = claim(s, "h1", "hubA")
        assert [a.hospital for a in got] == ["h1"]
        a1 = got[0].id
    with db.transaction() as s:
        assert claim(s, "h1", "hubA") == []  # handed out once
        a2 = claim(s, "h2", "hubA")[0].id
    with db.transaction("tasks") as s:
        t = finish_assignment(s, a1, "h1", result={"n": 5}, finisher=total)
        assert t.status == "running"
    with db.transaction() as s, pytest.raises(NotFound):
        finish_assignment(s, a2, "h1", result={"n": 1}, finisher=total)  # another hospital's assignment
    with db.transaction("tasks") as s:
        t = finish_assignment(s, a2, "h2", result={"n": 7}, finisher=total)
        assert t.status == "done" and orjson.loads(t.result or "") == {"n": 12, "hospitals": ["h1", "h2"]}
    with db.transaction() as s, pytest.raises(Conflict):
        finish_assignment(s, a2, "h2", result={"n": 7}, finisher=total)  # a replayed answer


def test_leases_requeue_then_fail_and_completion_rules(db: HubDB) -> None:
    with db.transaction() as s:
        enqueue(s, *new_task("all", ["h1", "h2"]))
        enqueue(s, *new_task("avail", ["h1", "h2"], completion="available"))
    later = utcnow() + timedelta(minutes=5)
    for attempt in range(3):
        with db.transaction() as s:
            got = {a.task_id: a.id for a in claim(s, "h2", "hubA")}
            assert set(got) == {"all", "avail"}, attempt
        with db.transaction() as s:
            assert requeue_expired_leases(s, now=later, finisher=total) == 2
    with db.transaction() as s:  # the third lease ended: both h2 parts failed
        assert claim(s, "h2", "hubA") == []
        ids = {a.task_id: a.id for a in claim(s, "h1", "hubA")}
    with db.transaction() as s:
        finish_assignment(s, ids["all"], "h1", result={"n": 3}, finisher=total)
        finish_assignment(s, ids["avail"], "h1", result={"n": 3}, finisher=total)
    with db.sessions() as s:
        t_all, t_avail = s.get(Task, "all"), s.get(Task, "avail")
        assert t_all is not None and t_all.status == "failed" and "h2: node h2 did not answer" in (t_all.error or "")
        assert t_avail is not None and t_avail.status == "done"
        assert orjson.loads(t_avail.result or "") == {"n": 3, "hospitals": ["h1"]}


def test_deadline_and_cancel(db: HubDB) -> None:
    with db.transaction() as s:
        enqueue(s, *new_task("late", ["h1"], deadline_s=-1))
        enqueue(s, *new_task("gone", ["h1", "h2"]))
    with db.transaction() as s:
        assert expire_tasks(s, finisher=total) == ["late"]
        assert cancel_tasks(s, ["gone", "late"], "contract c-h1 revoked") == 1
    with db.sessions() as s:
        late, gone = s.get(Task, "late"), s.get(Task, "gone")
        assert late is not None and late.status == "failed" and "deadline" in (late.error or "")
        assert gone is not None and gone.status == "cancelled" and gone.error == "contract c-h1 revoked"
        assert s.scalar(select(func.count()).select_from(Assignment).where(Assignment.status == "queued")) == 0


def test_a_commit_wakes_a_waiter(db: HubDB) -> None:
    w = db.notifier.wakeup("assignments")
    assert not w.wait_sync(0.01)
    with db.transaction("assignments") as s:
        enqueue(s, *new_task("t", ["h1"]))
    assert w.wait_sync(1)


_WORKER = textwrap.dedent("""
    import sys, time, orjson
    from medspace.hub.queue import HubDB, claim, finish_assignment
    from tests_hub_queue_finisher import total
    db = HubDB(sys.argv[1]); name = sys.argv[2]; n_expected = int(sys.argv[3])
    db.listen()
    claimed = []
    idle_until = time.monotonic() + 60
    while time.monotonic() < idle_until:
        w = db.notifier.wakeup("assignments")
        got = []
        for h in ("h1", "h2", "h3"):
            with db.transaction("tasks") as s:
                got += [(a.id, h) for a in claim(s, h, name, limit=4)]
        for aid, h in got:
            with db.transaction("tasks") as s:
                finish_assignment(s, aid, h, result={"n": 1}, finisher=total)
            claimed.append(aid)
        if not got:
            if not w.wait_sync(0.5):
                with db.sessions() as s:
                    from sqlalchemy import select, func
                    from medspace.hub.db import Task
                    done = s.scalar(select(func.count()).select_from(Task).where(Task.status == "done"))
                if done >= n_expected:
                    break
    print(orjson.dumps(claimed).decode())
    db.close()
""")


@pytest.mark.slow
def test_two_processes_on_one_postgres_database_lose_and_duplicate_nothing(pg_url: str, tmp_path: Any) -> None:
    migrate(pg_url)
    (tmp_path / "tests_hub_queue_finisher.py").write_text(textwrap.dedent("""
        def total(task, results, errors):
            if errors:
                return "failed", None, str(errors)
            return "done", {"n": sum(r["n"] for r in results.values())}, None
    """))
    n = 150
    env = {**__import__("os").environ, "PYTHONPATH": f"{tmp_path}:" + ":".join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", _WORKER, pg_url, name, str(n)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in ("hubA", "hubB")]
    db = HubDB(pg_url)
    try:
        for i in range(n):  # submitted while both processes claim
            with db.transaction("assignments") as s:
                enqueue(s, *new_task(f"t{i:03d}", ["h1", "h2", "h3"]))
            if i % 25 == 0:
                time.sleep(0.05)
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
        claimed = [orjson.loads(o[0].strip().splitlines()[-1]) for o in outs]
        assert claimed[0] and claimed[1], "both processes took part"
        everything = claimed[0] + claimed[1]
        assert len(everything) == len(set(everything)) == 3 * n  # none duplicated, none lost
        with db.sessions() as s:
            assert s.scalar(select(func.count()).select_from(Task).where(Task.status == "done")) == n
            assert s.scalar(select(func.max(Assignment.attempts))) == 1
            for t in s.scalars(select(Task)):
                assert orjson.loads(t.result or "") == {"n": 3}
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        db.close()
