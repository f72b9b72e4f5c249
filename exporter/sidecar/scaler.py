"""`/scaler`: the work waiting and running, for KEDA's metrics-api scaler (and anything else that
scales workers from a queue). Built from the sources' latest snapshots, so a request costs the
database nothing, whatever KEDA's polling interval.

    GET /scaler                                   everything (the shape below)
    GET /scaler?engine=pgqueue&queue=send-email   one queue: {"waiting", "running", "total", ...}
    GET /scaler?job_name=send-email               one job name, whichever engine runs it

Engines are pgqueue, pg-boss and temporal (a task queue). `waiting` is ready to run now (not
deferred, not retrying later), `running` is taken by a worker (null when the engine does not say:
Temporal's task queues), `total` their sum. A queue nobody has used reads 0, so a worker scaled to
zero is not woken by a typo's absence of data, but by work; an answer the sidecar cannot vouch for
(the source down or its snapshot stale) is a 503 with the reason, never a 0: KEDA then keeps the
current replicas (or its `fallback`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobsight.console.model import queue_lines
from jobsight.settings import SidecarSettings
from jobsight.sources.jobs import JobsSnapshot
from jobsight.sources.status import Condition, SourceView, condition

# The engine names of the answer, and the source that knows each one's queues.
ENGINE_SOURCES = {"pgqueue": "pgqueue", "pg-boss": "pgboss", "temporal": "temporal"}
WAITING = ("pending", "queued")
RUNNING = ("processing", "active")


@dataclass(frozen=True)
class Work:
    waiting: int
    running: int | None

    @property
    def total(self) -> int:
        return self.waiting + (self.running or 0)

    def body(self) -> dict[str, int | None]:
        return {"waiting": self.waiting, "running": self.running, "total": self.total}


class Unvouched(Exception):
    """The source behind an answer is not current: the reason, for a 503."""


def current(views: Mapping[str, SourceView], source: str, settings: SidecarSettings) -> None:
    view = views.get(source)
    if view is None:
        raise Unvouched(f"the {source} source is not enabled (JOBSIGHT_SOURCES)")
    found = condition(view, settings.interval(source), time.time())
    if found != Condition.UP:
        error = view.status.error if view.status and view.status.error else ""
        raise Unvouched(f"the {source} source is {found}" + (f": {error}" if error else ""))


def by_queue(views: Mapping[str, SourceView], settings: SidecarSettings) -> dict[str, Any]:
    """Every current engine's queues: {engine: {queue: work}}; engines not current are left
    out, and listed under `unavailable` with the reason."""
    lines, _ = queue_lines(views)
    queues: dict[str, dict[str, Any]] = {}
    unavailable: dict[str, str] = {}
    for engine, source in ENGINE_SOURCES.items():
        if source not in views:
            continue
        try:
            current(views, source, settings)
        except Unvouched as exc:
            unavailable[engine] = str(exc)
            continue
        queues[engine] = {
            line.name: Work(line.waiting or 0, line.active).body()
            for line in lines
            if line.engine == engine
        }
    return {"queues": queues, "unavailable": unavailable}


def by_job_name(views: Mapping[str, SourceView], settings: SidecarSettings) -> dict[str, Work]:
    """Per job name, the jobs table's jobs waiting and running (either engine)."""
    current(views, "jobs", settings)
    snapshot = views["jobs"].snapshot
    assert isinstance(snapshot, JobsSnapshot)
    counts: dict[str, list[int]] = {}
    for row in snapshot.unfinished:
        into = counts.setdefault(row.job_name, [0, 0])
        if row.status in WAITING:
            into[0] += row.count
        elif row.status in RUNNING:
            into[1] += row.count
    for name in snapshot.job_names:  # known names read 0
        counts.setdefault(name, [0, 0])
    return {name: Work(w, r) for name, (w, r) in sorted(counts.items())}


def answer(
    views: Mapping[str, SourceView], settings: SidecarSettings, query: Mapping[str, str]
) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body for a /scaler request. Pure."""
    try:
        if "job_name" in query:
            name = query["job_name"]
            work = by_job_name(views, settings).get(name, Work(0, 0))
            return 200, {"job_name": name, **work.body()}
        engine, queue = query.get("engine"), query.get("queue")
        if engine or queue:
            if engine not in ENGINE_SOURCES or not queue:
                engines = ", ".join(ENGINE_SOURCES)
                return 400, {"error": f"engine (one of {engines}) and queue go together"}
            current(views, ENGINE_SOURCES[engine], settings)
            lines, _ = queue_lines(views)
            found = next((q for q in lines if q.engine == engine and q.name == queue), None)
            work = Work(found.waiting or 0, found.active) if found else Work(0, 0)
            running = None if engine == "temporal" else work.running
            return 200, {"engine": engine, "queue": queue, "known": found is not None,
                         **Work(work.waiting, running).body()}  # fmt: skip
        everything = by_queue(views, settings)
        try:
            names = {n: w.body() for n, w in by_job_name(views, settings).items()}
        except Unvouched as exc:
            names, everything["unavailable"]["jobs"] = {}, str(exc)
        return 200, {**everything, "job_names": names}
    except Unvouched as exc:
        return 503, {"error": str(exc)}
