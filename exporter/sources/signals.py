"""Trigger signals: what each source says about the health of the work, in one typed shape, so
that the triggers judge numbers, not snapshots. A source turns its snapshot into signals (pure);
the signals of every source are merged; the triggers read the merge.

Signals come per scope: `overall`, and per worker version (`by_version`, from the jobs table) for
the triggers that can judge one version's own jobs (a canary).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from jobsight.settings import SidecarSettings


@dataclass(frozen=True)
class Finished:
    """Jobs that finished within a window."""

    finished: int = 0
    failed: int = 0

    def __add__(self, other: Finished) -> Finished:
        return Finished(self.finished + other.finished, self.failed + other.failed)


@dataclass(frozen=True)
class LatencyCandidate:
    """One job name's (or queue's) p95 run time over a window, and how many jobs it rests on."""

    name: str
    p95: float  # seconds
    sample: int  # finished jobs behind the estimate


@dataclass
class Signals:
    ready: int = 0  # jobs ready to run now, waiting for a worker
    crashes: int = 0  # worker crashes in the recent window
    stuck: int = 0  # jobs active longer than JOBSIGHT_STUCK_AFTER
    finished: dict[float, Finished] = field(default_factory=dict)  # window (s) -> counts
    latency: dict[float, list[LatencyCandidate]] = field(default_factory=dict)  # window (s) ->
    last_completion: dict[float, float] = field(default_factory=dict)  # look-back (s) -> Unix time
    connections: tuple[int, int] | None = None  # (in use, available) on the database server
    # The earliest due time (Unix) of an enabled schedule that has not fired yet, and its name.
    schedule_due: tuple[float, str] | None = None
    stall_notes: tuple[str, ...] = ()  # what holds ready work back, for the stalled trigger

    def merged(self, other: Signals) -> Signals:
        return Signals(
            self.ready + other.ready,
            self.crashes + other.crashes,
            self.stuck + other.stuck,
            _sum_by_key(self.finished, other.finished),
            {
                w: [*self.latency.get(w, []), *other.latency.get(w, [])]
                for w in {*self.latency, *other.latency}
            },
            {
                w: max(
                    t
                    for t in (self.last_completion.get(w), other.last_completion.get(w))
                    if t is not None
                )
                for w in {*self.last_completion, *other.last_completion}
            },
            other.connections if other.connections is not None else self.connections,
            min(
                (d for d in (self.schedule_due, other.schedule_due) if d is not None),
                default=None,
            ),
            self.stall_notes + other.stall_notes,
        )


@dataclass
class SourceSignals:
    overall: Signals = field(default_factory=Signals)
    by_version: dict[str, Signals] = field(default_factory=dict)


def merge_all(parts: Iterable[SourceSignals]) -> SourceSignals:
    total = SourceSignals()
    for part in parts:
        total.overall = total.overall.merged(part.overall)
        for version, signals in part.by_version.items():
            known = total.by_version.get(version, Signals())
            total.by_version[version] = known.merged(signals)
    return total


def scoped(signals: SourceSignals, version: str | None) -> Signals:
    """The signals a canary scope is judged on: the version's own finished jobs, latency and
    stuck jobs; the queue-wide rest (ready work, crashes, connections) as they are overall."""
    if version is None:
        return signals.overall
    own = signals.by_version.get(version, Signals())
    return replace(signals.overall, finished=own.finished, latency=own.latency, stuck=own.stuck)


def stalled_lookback(window: float | None, degraded: float) -> float:
    """How far back the stalled trigger looks for a completion: twice its threshold, at least."""
    return max(window or 0.0, 2 * degraded)


def trigger_windows(settings: SidecarSettings) -> list[float]:
    """The distinct look-back windows the triggers need (finished counts, p95s, completions)."""
    triggers = settings.triggers
    stalled = triggers["stalled"]
    wanted = {
        triggers["error_rate"].window,
        triggers["latency_p95"].window,
        stalled_lookback(stalled.window, stalled.degraded),
    }
    return sorted(w for w in wanted if w)


def _sum_by_key(a: Mapping[float, Finished], b: Mapping[float, Finished]) -> dict[float, Finished]:
    return {key: a.get(key, Finished()) + b.get(key, Finished()) for key in {*a, *b}}
