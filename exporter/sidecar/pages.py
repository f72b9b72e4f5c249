"""The status page: what a person on call reads in five seconds. The verdict first, then each
trigger's value against its thresholds, the sources, and whether this sidecar leads. Pure: a
verdict and the state in, HTML out."""

from __future__ import annotations

from dataclasses import dataclass

from jobsight.console.model import JobNameHour
from jobsight.console.templating import render as render_template
from jobsight.health.canary import CanaryAnalysis, Comparison
from jobsight.health.state import State
from jobsight.health.verdict import Verdict
from jobsight.settings import SidecarSettings
from jobsight.sidecar.poller import SidecarState
from jobsight.sources.status import Condition, condition

COLORS = {
    State.OK: "#1a7f37",
    State.INCONCLUSIVE: "#0969da",
    State.DEGRADED: "#9a6700",
    State.ROLLBACK: "#cf222e",
    State.UNKNOWN: "#6e7781",
    State.DISABLED: "#8c959f",
}


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "seconds":
        if value >= 120:
            return f"{value / 60:.1f} min"
        return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"
    return f"{value:,.0f}"


def ago(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def shared_error(state: SidecarState, settings: SidecarSettings, now: float) -> str | None:
    """One error behind every source that is not up (a database outage, say), or a follower's
    failing read of the leader's state: said once on the page, not on every row."""
    if not state.leader and not state.state_read.up and state.state_read.error:
        return state.state_read.error
    errors = {
        view.status.error
        for name, view in state.views.items()
        if view.status is not None
        and view.status.error
        and condition(view, settings.interval(name), now) != Condition.UP
    }
    down = sum(
        condition(view, settings.interval(name), now) != Condition.UP
        for name, view in state.views.items()
    )
    return errors.pop() if len(errors) == 1 and down >= 2 else None


def _confidence(c: Comparison) -> float:
    """The strongest of a job name's comparisons (failures, run time, stuck jobs)."""
    return max((e.confidence for e in (c.failures, c.slowness, c.stuckness) if e), default=0.0)


@dataclass(frozen=True)
class SourceLine:
    name: str
    up: bool
    condition: str
    last: str
    error: str


def render(
    verdict: Verdict,
    state: SidecarState,
    settings: SidecarSettings,
    now: float,
    analysis: CanaryAnalysis | None = None,
    hours: list[JobNameHour] | None = None,
    hours_error: str = "",
) -> str:
    """The status page; with `hours` (the console on), the job names' last hour below the
    triggers (or `hours_error`, why they are not shown)."""
    role = "leader" if state.leader else "follower"
    leader = state.leader_info or {}
    leader_text = (
        f"{leader.get('host', '?')} (pid {leader.get('pid', '?')})" if leader else "unknown"
    )
    outage = shared_error(state, settings, now)
    sources = []
    for name, view in sorted(state.views.items()):
        status = view.status
        found = condition(view, settings.interval(name), now)
        last = ago(now - status.last_success) if status and status.last_success else "never"
        error = (status.error or "") if status else "not polled yet"
        if outage and status and status.error == outage:
            error = "(the outage above)"
        sources.append(SourceLine(name, found == Condition.UP, str(found), last, error))
    return render_template(
        "status.html",
        "/",
        verdict=verdict,
        colors=COLORS,
        role=role,
        leader_text=leader_text,
        settings=settings,
        outage=outage,
        analysis=analysis,
        confidence=_confidence,
        now=now,
        sources=sources,
        hours=hours,
        hours_error=hours_error,
    )
