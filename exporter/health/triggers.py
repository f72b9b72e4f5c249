"""Rollback triggers and the verdict, as pure functions of the sources' snapshots.

    measure(views, settings, now, version)  -> each trigger's value and raw state
    hold(previous, raw, now, seconds)       -> the state after the hold time (no flapping)
    worst(states)                           -> the verdict

A trigger is `unknown` when a source it draws on is enabled but down or stale (no success within
three poll intervals), and `disabled` when none of its sources is enabled; disabled triggers do not
count. With a worker version (canary scope), the version-aware triggers (error rate, p95 latency,
stuck jobs) are judged on that version's own jobs from the jobs table; the others are global.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jobsight.health.specs import BY_NAME, SEVERITY, TRIGGERS, VERSION_AWARE, TriggerConfig
from jobsight.settings import SidecarSettings
from jobsight.sources.jobs import JobsSnapshot, stalled_lookback
from jobsight.sources.status import SourceView

STALE_AFTER_INTERVALS = 3


@dataclass
class Measurement:
    value: float | None
    state: str  # ok, degraded, rollback, unknown, disabled
    sample: int | None = None
    detail: str = ""


@dataclass
class HeldState:
    state: str
    since: float
    candidate: str | None = None
    candidate_since: float | None = None


@dataclass
class TriggerResult:
    name: str
    state: str
    value: float | None
    unit: str
    degraded: float
    rollback: float | None
    window: float | None
    min_sample: int | None
    sample: int | None
    since: float
    detail: str
    sources: list[str]


@dataclass
class Verdict:
    verdict: str
    triggers: list[TriggerResult]
    evaluated_at: float
    version: str | None = None
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    leader: bool = False


def compare(value: float, degraded: float, rollback: float | None, inclusive: bool) -> str:
    if rollback is not None and (value >= rollback if inclusive else value > rollback):
        return "rollback"
    return "degraded" if value > degraded else "ok"


def hold(previous: HeldState | None, raw: str, now: float, seconds: float) -> HeldState:
    """A new raw state takes effect once it has lasted `seconds`; the first state at once."""
    if previous is None or seconds <= 0:
        if previous is not None and previous.state == raw:
            return previous
        return HeldState(raw, now)
    if raw == previous.state:
        return HeldState(previous.state, previous.since)
    if raw == previous.candidate and previous.candidate_since is not None:
        if now - previous.candidate_since >= seconds:
            return HeldState(raw, now)
        return previous
    return HeldState(previous.state, previous.since, raw, now)


def worst(states: list[str]) -> str:
    counted = [s for s in states if s != "disabled"]
    return max(counted, key=SEVERITY.__getitem__) if counted else "unknown"


def source_problem(
    views: Mapping[str, SourceView], settings: SidecarSettings, sources: tuple[str, ...], now: float
) -> str | None:
    """Why the data behind a trigger cannot be vouched for, or None."""
    for name in sources:
        if name not in settings.sources:
            continue
        view = views.get(name)
        status = view.status if view else None
        if status is not None and not status.up:
            return f"{name}: down ({status.error or 'no reason given'})"
        if status is None or view is None or view.snapshot is None:
            return f"{name}: not polled yet"
        stale = STALE_AFTER_INTERVALS * settings.interval(name)
        if status.last_success is None or now - status.last_success > stale:
            return f"{name}: stale (no success in {stale:.0f} s)"
    return None


def _snap(views: Mapping[str, SourceView], name: str) -> Any:
    view = views.get(name)
    return view.snapshot if view is not None else None


def _judged(
    value: float, spec_name: str, cfg: TriggerConfig, sample: int | None = None, detail: str = ""
) -> Measurement:
    spec = BY_NAME[spec_name]
    return Measurement(
        value, compare(value, cfg.degraded, cfg.rollback, spec.rollback_inclusive), sample, detail
    )


def measure_error_rate(
    views: Mapping[str, SourceView], cfg: TriggerConfig, version: str | None
) -> Measurement:
    finished = failed = 0
    jobs: JobsSnapshot | None = _snap(views, "jobs")
    window = jobs.window(cfg.window or 0) if jobs else None
    for row in window.rows if window else []:
        if row.version == version:
            finished += row.finished
            failed += row.failed
    boss = _snap(views, "pgboss")
    if version is None and boss is not None:
        for queue in boss.queues:
            finished += queue.window_completed + queue.window_failed
            failed += queue.window_failed
    if finished == 0:
        return Measurement(0.0, "ok", 0, "no finished jobs in the window")
    value = failed / finished
    if cfg.min_sample and finished < cfg.min_sample:
        return Measurement(
            value,
            "ok",
            finished,
            f"{finished} finished, below the minimum sample of {cfg.min_sample}",
        )
    return _judged(value, "error_rate", cfg, finished, f"{failed} of {finished} failed")


def ready_work(views: Mapping[str, SourceView]) -> int:
    total = 0
    queue = _snap(views, "pgqueue")
    if queue is not None:
        total += sum(r.ready for r in queue.queues if r.state != "active")
    boss = _snap(views, "pgboss")
    if boss is not None:
        total += sum(q.ready for q in boss.queues)
    temporal = _snap(views, "temporal")
    if temporal is not None:
        total += sum(q.backlog for q in temporal.task_queues)
    return total


def measure_latency(
    views: Mapping[str, SourceView], cfg: TriggerConfig, version: str | None
) -> Measurement:
    """The worst job name: highest state, then furthest past its own degraded threshold."""
    candidates: list[tuple[str, float, int]] = []
    jobs: JobsSnapshot | None = _snap(views, "jobs")
    window = jobs.window(cfg.window or 0) if jobs else None
    for row in window.rows if window else []:
        if row.version == version and row.p95 is not None:
            candidates.append((row.job_name, row.p95, row.finished))
    boss = _snap(views, "pgboss")
    if version is None and boss is not None:
        candidates += [
            (x.queue, x.run_p95, cfg.min_sample or 1) for x in boss.latency if x.run_p95 is not None
        ]
    ranked = []
    for name, p95, finished in candidates:
        if cfg.min_sample and finished < cfg.min_sample:
            continue
        degraded, rollback = cfg.threshold_for(name)
        state = compare(p95, degraded, rollback, False)
        ranked.append(
            ((SEVERITY[state], p95 / degraded if degraded else p95), name, p95, state, finished)
        )
    if not ranked:
        return Measurement(0.0, "ok", 0, "no job name with enough finished jobs in the window")
    _, name, p95, state, finished = max(ranked)
    return Measurement(p95, state, finished, f"worst: {name}")


def measure_stalled(views: Mapping[str, SourceView], cfg: TriggerConfig, now: float) -> Measurement:
    ready = ready_work(views)
    if ready == 0:
        return Measurement(0.0, "ok", None, "no work ready")
    lookback = stalled_lookback(cfg.window, cfg.degraded)
    last: float | None = None
    jobs: JobsSnapshot | None = _snap(views, "jobs")
    window = jobs.window(lookback) if jobs else None
    for row in window.rows if window else []:
        if row.version is None and row.last_completed is not None:
            last = max(last or 0.0, row.last_completed)
    boss = _snap(views, "pgboss")
    for queue in boss.queues if boss is not None else []:
        if queue.window_completed and queue.window_end is not None:
            last = max(last or 0.0, queue.window_end)
    value = lookback if last is None else max(0.0, now - last)
    return _judged(value, "stalled", cfg, None, f"{ready} jobs ready")


def measure(
    views: Mapping[str, SourceView],
    settings: SidecarSettings,
    now: float,
    version: str | None = None,
) -> dict[str, Measurement]:
    results: dict[str, Measurement] = {}
    for spec in TRIGGERS:
        cfg = settings.triggers[spec.name]
        if not any(name in settings.sources for name in spec.sources):
            results[spec.name] = Measurement(None, "disabled", detail="no source enabled")
            continue
        problem = source_problem(views, settings, spec.sources, now)
        if problem:
            results[spec.name] = Measurement(None, "unknown", detail=problem)
            continue
        scoped = version if spec.name in VERSION_AWARE else None
        results[spec.name] = _measure_one(spec.name, views, settings, cfg, now, scoped)
    return results


def _measure_one(
    name: str,
    views: Mapping[str, SourceView],
    settings: SidecarSettings,
    cfg: TriggerConfig,
    now: float,
    version: str | None,
) -> Measurement:
    if name == "error_rate":
        return measure_error_rate(views, cfg, version)
    if name == "latency_p95":
        return measure_latency(views, cfg, version)
    if name == "stalled":
        return measure_stalled(views, cfg, now)
    if name == "queue_depth":
        return _judged(float(ready_work(views)), name, cfg)
    if name == "worker_crashes":
        queue, boss = _snap(views, "pgqueue"), _snap(views, "pgboss")
        crashes = (queue.worker_crashes if queue is not None else 0) + (
            (boss.crash_restarts or 0) if boss is not None else 0
        )
        return _judged(float(crashes), name, cfg)
    if name == "db_connections":
        pg = _snap(views, "postgres")
        if not pg.available:
            return Measurement(None, "unknown", detail="max_connections unknown")
        return _judged(
            pg.in_use / pg.available, name, cfg, None, f"{pg.in_use} of {pg.available} in use"
        )
    if name == "stuck_jobs":
        jobs: JobsSnapshot | None = _snap(views, "jobs")
        if version is not None:
            stuck = jobs.stuck_by_version.get(version, 0) if jobs else 0
        else:
            stuck = sum(r.stuck for r in jobs.unfinished) if jobs else 0
            boss = _snap(views, "pgboss")
            stuck += sum(q.stuck for q in boss.queues) if boss is not None else 0
        return _judged(float(stuck), name, cfg)
    raise KeyError(name)


class Health:
    """Keeps each scope's held trigger states between evaluations (global, and a few canary
    versions), and evaluates at most once per change of the state."""

    MAX_VERSIONS = 32

    def __init__(self, settings: SidecarSettings) -> None:
        self.settings = settings
        self._held: dict[str | None, dict[str, HeldState]] = {}
        self._cache: dict[str | None, tuple[int, Verdict]] = {}

    def verdict(
        self,
        views: Mapping[str, SourceView],
        state_version: int,
        now: float,
        version: str | None = None,
        leader: bool = False,
    ) -> Verdict:
        cached = self._cache.get(version)
        if cached is not None and cached[0] == state_version and now - cached[1].evaluated_at < 1:
            return cached[1]
        if version not in self._held and len(self._held) > self.MAX_VERSIONS:
            oldest = next(k for k in self._held if k is not None)
            self._held.pop(oldest)
            self._cache.pop(oldest, None)
        held = self._held.setdefault(version, {})
        results = []
        for name, m in measure(views, self.settings, now, version).items():
            cfg = self.settings.triggers[name]
            held[name] = hold(held.get(name), m.state, now, cfg.hold)
            spec = BY_NAME[name]
            results.append(
                TriggerResult(
                    name,
                    held[name].state,
                    m.value,
                    spec.unit,
                    cfg.degraded,
                    cfg.rollback,
                    cfg.window,
                    cfg.min_sample,
                    m.sample,
                    held[name].since,
                    m.detail,
                    [s for s in spec.sources if s in self.settings.sources],
                )
            )
        sources = {
            name: {
                "up": bool(v.status and v.status.up),
                "last_success": v.status.last_success if v.status else None,
                "error": v.status.error if v.status else None,
            }
            for name, v in views.items()
        }
        verdict = Verdict(worst([r.state for r in results]), results, now, version, sources, leader)
        self._cache[version] = (state_version, verdict)
        return verdict
