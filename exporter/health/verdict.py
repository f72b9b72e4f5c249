"""The verdict: every trigger measured on the merged signals, held against flapping, the worst
state wins. Pure, except that an `Evaluator` remembers the held states between evaluations.

    measure(views, settings, now, version)  -> each trigger's value and raw state
    hold(previous, raw, now, seconds)       -> the state after the hold time (no flapping)
    worst(states)                           -> the verdict

A trigger is `unknown` when a source it draws on is enabled but down or stale (no success within
three poll intervals), and `disabled` when none of its sources is enabled; disabled triggers do not
count. With a worker version (canary scope), the version-aware triggers (error rate, p95 latency,
stuck jobs) are judged on that version's own jobs, failing closed (see canary_measurement); the
others are global.

Only the poller evaluates (after each change of the state, and on a short tick so that hold times
run on the clock); it stores the verdicts, and every reader (metrics, endpoints, pages) reads them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jobsight.health.specs import BY_NAME, TRIGGERS, VERSION_AWARE, TriggerConfig
from jobsight.health.state import State
from jobsight.health.triggers import TRIGGER_FUNCTIONS, Measurement
from jobsight.settings import SidecarSettings
from jobsight.sources import load_source
from jobsight.sources.breakers import BreakerRow, not_closed
from jobsight.sources.signals import SourceSignals, merge_all, scoped
from jobsight.sources.status import STALE_AFTER_INTERVALS, Condition, SourceView, condition

MAX_VERSIONS = 32  # canary scopes evaluated and held at once (the busiest versions)


@dataclass(frozen=True)
class HeldState:
    state: State
    since: float
    candidate: State | None = None
    candidate_since: float | None = None
    known: bool = False  # some state other than unknown has taken effect since start


@dataclass
class TriggerResult:
    name: str
    state: State
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
    verdict: State
    triggers: list[TriggerResult]
    evaluated_at: float
    version: str | None = None
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    leader: bool = False
    # Runner processes whose engine's circuit breaker is open or half-open: shown, not judged
    # (their jobs go to pgqueue or fail fast; the triggers judge what that does to the jobs).
    breakers: list[BreakerRow] = field(default_factory=list)


def hold(previous: HeldState | None, raw: State, now: float, seconds: float) -> HeldState:
    """A new raw state takes effect once it has lasted `seconds`. The hold stops flapping
    between known states; it does not delay knowing: the first state, and the first known
    state after start (the first polls have landed), take effect at once."""
    known = raw != State.UNKNOWN
    first_known = previous is not None and not previous.known and known
    if previous is None or seconds <= 0 or first_known:
        if previous is not None and previous.state == raw:
            return previous
        return HeldState(raw, now, known=known or (previous is not None and previous.known))
    if raw == previous.state:
        return HeldState(previous.state, previous.since, known=previous.known)
    if raw == previous.candidate and previous.candidate_since is not None:
        if now - previous.candidate_since >= seconds:
            return HeldState(raw, now, known=True)
        return previous
    return HeldState(previous.state, previous.since, raw, now, known=previous.known)


def worst(states: Iterable[State | str]) -> State:
    counted = [State(s) for s in states if s != State.DISABLED]
    return max(counted, key=lambda s: s.severity) if counted else State.UNKNOWN


def source_problem(
    views: Mapping[str, SourceView], settings: SidecarSettings, sources: tuple[str, ...], now: float
) -> str | None:
    """Why the data behind a trigger cannot be vouched for, or None. An unsupported source
    is no problem: it is left out (see judged_sources)."""
    for name in judged_sources(views, settings, sources, now):
        view = views.get(name)
        found = condition(view, settings.interval(name), now)
        if found == Condition.DOWN:
            error = view.status.error if view and view.status else None
            return f"{name}: down ({error or 'no reason given'})"
        if found == Condition.PENDING:
            return f"{name}: not polled yet"
        if found == Condition.STALE:
            stale = STALE_AFTER_INTERVALS * settings.interval(name)
            return f"{name}: stale (no success in {stale:.0f} s)"
    return None


def judged_sources(
    views: Mapping[str, SourceView], settings: SidecarSettings, sources: tuple[str, ...], now: float
) -> list[str]:
    """The enabled sources a trigger draws on, less those that refused an unsupported release."""
    return [
        name
        for name in sources
        if name in settings.sources
        and condition(views.get(name), settings.interval(name), now) != Condition.UNSUPPORTED
    ]


def signals_of(
    views: Mapping[str, SourceView],
    settings: SidecarSettings,
    made: Callable[[str, Any], SourceSignals] | None = None,
) -> SourceSignals:
    """Every polled source's signals, merged; `made(name, snapshot)` makes one source's (by
    default, the source itself makes them afresh)."""

    def afresh(name: str, snapshot: Any) -> SourceSignals:
        return load_source(name).signals(snapshot, settings)

    make = made or afresh
    return merge_all(
        make(name, view.snapshot)
        for name, view in views.items()
        if view.snapshot is not None and name in settings.sources
    )


def measure(
    views: Mapping[str, SourceView],
    settings: SidecarSettings,
    now: float,
    version: str | None = None,
    signals: SourceSignals | None = None,
) -> dict[str, Measurement]:
    merged = signals if signals is not None else signals_of(views, settings)
    results: dict[str, Measurement] = {}
    for spec in TRIGGERS:
        if not judged_sources(views, settings, spec.sources, now):
            enabled = [name for name in spec.sources if name in settings.sources]
            detail = f"unsupported: {', '.join(enabled)}" if enabled else "no source enabled"
            results[spec.name] = Measurement(None, State.DISABLED, detail=detail)
            continue
        problem = source_problem(views, settings, spec.sources, now)
        if problem:
            results[spec.name] = Measurement(None, State.UNKNOWN, detail=problem)
            continue
        cfg = settings.triggers[spec.name]
        if version is None or spec.name not in VERSION_AWARE:
            results[spec.name] = TRIGGER_FUNCTIONS[spec.name](scoped(merged, None), cfg, now)
        else:
            results[spec.name] = canary_measurement(spec.name, merged, version, cfg, now)
    return results


def canary_measurement(
    name: str, merged: SourceSignals, version: str, cfg: TriggerConfig, now: float
) -> Measurement:
    """A version-aware trigger on one worker version's own jobs, failing closed: a version with
    no jobs in the window (it never ran one, or the name is mistyped) is unknown, and one with
    fewer finished jobs than the trigger's minimum sample (at least one) is inconclusive."""
    if version not in merged.by_version:
        return Measurement(None, State.UNKNOWN, 0,
                           f"version {version!r} has no jobs in the window (none run yet, "
                           "or not a version the workers record)")  # fmt: skip
    measured = TRIGGER_FUNCTIONS[name](scoped(merged, version), cfg, now)
    needed = max(cfg.min_sample or 0, 1)
    if measured.sample is not None and measured.sample < needed:
        detail = f"{measured.sample} finished jobs of this version, {needed} needed to judge"
        return Measurement(measured.value, State.INCONCLUSIVE, measured.sample, detail)
    return measured


class Evaluator:
    """Evaluates the verdict of every scope (global, and the busiest worker versions) and keeps
    their held trigger states between evaluations. Owned by the poller: nothing else calls it."""

    def __init__(self, settings: SidecarSettings) -> None:
        self.settings = settings
        self._held: dict[str | None, dict[str, HeldState]] = {}
        # Each source's signals, made once per snapshot (a snapshot is never changed once
        # adopted): evaluations come several times a second, polls once an interval.
        self._signals: dict[str, tuple[Any, SourceSignals]] = {}

    def reconfigure(self, settings: SidecarSettings, triggers_changed: set[str]) -> None:
        """New settings; the triggers in `triggers_changed` forget their held states (the next
        evaluation measures them afresh), every other trigger keeps its own."""
        self.settings = settings
        self._signals.clear()  # the trigger windows may have changed
        for held in self._held.values():
            for name in triggers_changed:
                held.pop(name, None)

    def evaluate(
        self, views: Mapping[str, SourceView], now: float, leader: bool = False
    ) -> dict[str | None, Verdict]:
        signals = signals_of(views, self.settings, self._signals_once)
        scopes: list[str | None] = [None, *busiest_versions(signals, MAX_VERSIONS)]
        self._held = {scope: self._held.get(scope, {}) for scope in scopes}  # forget the rest
        return {
            scope: self._verdict(views, signals, now, scope, leader, self._held[scope])
            for scope in scopes
        }

    def _signals_once(self, name: str, snapshot: Any) -> SourceSignals:
        made = self._signals.get(name)
        if made is None or made[0] is not snapshot:
            made = (snapshot, load_source(name).signals(snapshot, self.settings))
            self._signals[name] = made
        return made[1]

    def _verdict(
        self,
        views: Mapping[str, SourceView],
        signals: SourceSignals,
        now: float,
        version: str | None,
        leader: bool,
        held: dict[str, HeldState],
    ) -> Verdict:
        measured = measure(views, self.settings, now, version, signals)
        for name, m in measured.items():
            held[name] = hold(held.get(name), m.state, now, self.settings.triggers[name].hold)
        return assemble(self.settings, views, measured, held, now, version, leader)


def assemble(
    settings: SidecarSettings,
    views: Mapping[str, SourceView],
    measured: Mapping[str, Measurement],
    held: Mapping[str, HeldState],
    now: float,
    version: str | None,
    leader: bool,
) -> Verdict:
    results = []
    for name, m in measured.items():
        cfg, spec = settings.triggers[name], BY_NAME[name]
        state = held[name] if name in held else HeldState(m.state, now)
        results.append(
            TriggerResult(
                name,
                state.state,
                m.value,
                spec.unit,
                cfg.degraded,
                cfg.rollback,
                cfg.window,
                cfg.min_sample,
                m.sample,
                state.since,
                m.detail,
                [s for s in spec.sources if s in settings.sources],
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
    jobs = views.get("jobs")
    snapshot = jobs.snapshot if jobs is not None else None
    breakers = not_closed(snapshot.breakers) if snapshot is not None else []
    return Verdict(
        worst(r.state for r in results), results, now, version, sources, leader, breakers
    )


def busiest_versions(signals: SourceSignals, limit: int) -> list[str]:
    """The worker versions with the most finished jobs in their widest window."""

    def finished(version: str) -> int:
        counts = signals.by_version[version].finished
        return max((c.finished for c in counts.values()), default=0)

    return sorted(signals.by_version, key=lambda v: (-finished(v), v))[:limit]


def unheld_verdict(
    settings: SidecarSettings,
    views: Mapping[str, SourceView],
    now: float,
    version: str | None,
    leader: bool = False,
) -> Verdict:
    """The verdict of a scope no evaluator holds (a version with no jobs in the window, or a
    one-shot `jobsight verdict --database-url`): measured now, every state as it is now."""
    return assemble(
        settings, views, measure(views, settings, now, version), {}, now, version, leader
    )
