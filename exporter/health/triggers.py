"""The rollback triggers as pure functions of the merged trigger signals (sources/signals.py),
each registered under the name of its spec (health/specs.py):

    @trigger("queue_depth")
    def queue_depth(signals, cfg, now) -> Measurement

A trigger's function judges numbers only; whether its sources can be vouched for (down, stale,
disabled) is decided before it is called (health/verdict.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from jobsight.health.specs import BY_NAME, TriggerConfig
from jobsight.health.state import State
from jobsight.sources.signals import Finished, Signals, stalled_lookback


@dataclass
class Measurement:
    value: float | None
    state: State
    sample: int | None = None
    detail: str = ""


TriggerFunction = Callable[[Signals, TriggerConfig, float], Measurement]
TRIGGER_FUNCTIONS: dict[str, TriggerFunction] = {}


def trigger(name: str) -> Callable[[TriggerFunction], TriggerFunction]:
    """Registers the function that measures the trigger `name` (which must have a spec)."""

    def register(function: TriggerFunction) -> TriggerFunction:
        if name not in BY_NAME:
            raise KeyError(f"trigger {name!r} has no spec in health/specs.py")
        if name in TRIGGER_FUNCTIONS:
            raise KeyError(f"trigger {name!r} is registered twice")
        TRIGGER_FUNCTIONS[name] = function
        return function

    return register


def compare(value: float, degraded: float, rollback: float | None, inclusive: bool) -> State:
    if rollback is not None and (value >= rollback if inclusive else value > rollback):
        return State.ROLLBACK
    return State.DEGRADED if value > degraded else State.OK


def judged(
    name: str, value: float, cfg: TriggerConfig, sample: int | None = None, detail: str = ""
) -> Measurement:
    inclusive = BY_NAME[name].rollback_inclusive
    return Measurement(value, compare(value, cfg.degraded, cfg.rollback, inclusive), sample, detail)


@trigger("error_rate")
def error_rate(signals: Signals, cfg: TriggerConfig, now: float) -> Measurement:
    counts = signals.finished.get(cfg.window or 0.0, Finished())
    finished, failed = counts.finished, counts.failed
    if finished == 0:
        return Measurement(0.0, State.OK, 0, "no finished jobs in the window")
    value = failed / finished
    if cfg.min_sample and finished < cfg.min_sample:
        detail = f"{finished} finished, below the minimum sample of {cfg.min_sample}"
        return Measurement(value, State.OK, finished, detail)
    return judged("error_rate", value, cfg, finished, f"{failed} of {finished} failed")


@trigger("queue_depth")
def queue_depth(signals: Signals, cfg: TriggerConfig, now: float) -> Measurement:
    return judged("queue_depth", float(signals.ready), cfg)


@trigger("worker_crashes")
def worker_crashes(signals: Signals, cfg: TriggerConfig, now: float) -> Measurement:
    return judged("worker_crashes", float(signals.crashes), cfg)


@trigger("db_connections")
def db_connections(signals: Signals, cfg: TriggerConfig, now: float) -> Measurement:
    if signals.connections is None:
        return Measurement(None, State.UNKNOWN, detail="max_connections unknown")
    in_use, available = signals.connections
    detail = f"{in_use} of {available} in use"
    return judged("db_connections", in_use / available, cfg, None, detail)


@trigger("latency_p95")
def latency_p95(signals: Signals, cfg: TriggerConfig, now: float) -> Measurement:
    """The worst job name: highest state, then furthest past its own degraded threshold. A p95
    counts only when it rests on the minimum sample of finished jobs."""
    ranked = []
    for candidate in signals.latency.get(cfg.window or 0.0, []):
        if cfg.min_sample and candidate.sample < cfg.min_sample:
            continue
        degraded, rollback = cfg.threshold_for(candidate.name)
        state = compare(candidate.p95, degraded, rollback, False)
        past = candidate.p95 / degraded if degraded else candidate.p95
        ranked.append(((state.severity, past), candidate, state))
    if not ranked:
        return Measurement(0.0, State.OK, 0, "no job name with enough finished jobs in the window")
    _, worst_one, state = max(ranked, key=lambda item: item[0])
    return Measurement(worst_one.p95, state, worst_one.sample, f"worst: {worst_one.name}")


@trigger("stuck_jobs")
def stuck_jobs(signals: Signals, cfg: TriggerConfig, now: float) -> Measurement:
    return judged("stuck_jobs", float(signals.stuck), cfg)


@trigger("stalled")
def stalled(signals: Signals, cfg: TriggerConfig, now: float) -> Measurement:
    if signals.ready == 0:
        return Measurement(0.0, State.OK, None, "no work ready")
    lookback = stalled_lookback(cfg.window, cfg.degraded)
    last = signals.last_completion.get(lookback)
    value = lookback if last is None else max(0.0, now - last)
    detail = "; ".join([f"{signals.ready} jobs ready", *signals.stall_notes])
    return judged("stalled", value, cfg, None, detail)


@trigger("schedule_missed")
def schedule_missed(signals: Signals, cfg: TriggerConfig, now: float) -> Measurement:
    """How long the earliest enabled schedule that has not fired is past its due time."""
    if signals.schedule_due is None:
        return Measurement(0.0, State.OK, None, "no schedule due")
    due, name = signals.schedule_due
    late = max(0.0, now - due)
    detail = f"{name} due {late:.0f} s ago, not fired" if late else ""
    return judged("schedule_missed", late, cfg, None, detail)


_missing = set(BY_NAME) - set(TRIGGER_FUNCTIONS)
if _missing:  # a spec without a function would silently never judge
    raise KeyError(f"triggers without a function: {sorted(_missing)}")
