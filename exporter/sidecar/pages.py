"""The status page: what a person on call reads in five seconds. The verdict first, then each
trigger's value against its thresholds, the sources, and whether this sidecar leads. Pure: a
verdict and the state in, HTML out."""

from __future__ import annotations

import html

from jobsight.health.canary import CanaryAnalysis, Comparison
from jobsight.health.state import State
from jobsight.health.verdict import TriggerResult, Verdict
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


def _trigger_row(t: TriggerResult, now: float, outage: str | None = None) -> str:
    detail = t.detail.replace(outage, "the outage above") if outage else t.detail
    rollback = fmt(t.rollback, t.unit) if t.rollback is not None else "-"
    window = fmt(t.window, "seconds") if t.window else ""
    return (
        f'<tr class="trigger" data-trigger="{t.name}" data-state="{t.state}">'
        f"<td>{t.name.replace('_', ' ')}</td>"
        f'<td><span class="pill" style="background:{COLORS[t.state]}">{t.state}</span></td>'
        f'<td class="num">{fmt(t.value, t.unit)}</td>'
        f'<td class="num">{fmt(t.degraded, t.unit)}</td><td class="num">{rollback}</td>'
        f"<td>{window}</td><td>{ago(now - t.since)}</td>"
        f"<td>{html.escape(detail)}</td></tr>"
    )


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


def _outage_banner(error: str | None) -> str:
    if error is None:
        return ""
    return f'<p id="outage" class="down">Sources cannot be read: {html.escape(error)}</p>\n'


def _analysis_section(analysis: CanaryAnalysis | None) -> str:
    if analysis is None:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(c.job_name)}</td><td>{c.answer}</td>"
        f"<td>{c.canary_failed}/{c.canary_finished}</td>"
        f"<td>{c.baseline_failed}/{c.baseline_finished}</td>"
        f"<td>{c.canary_stuck}</td><td>{c.baseline_stuck}</td>"
        f"<td>{_confidence(c):.4f}</td></tr>"
        for c in analysis.by_job
    )
    crashes = analysis.crashes
    crashed = (
        f"<p>pgqueue workers crashed in the window: {crashes.canary_crashed} of "
        f"{crashes.canary_workers} on the canary, {crashes.baseline_crashed} of "
        f"{crashes.baseline_workers} on the baseline ({crashes.answer}).</p>"
        if crashes
        else ""
    )
    errors = "".join(
        f"<li>{html.escape(text)}: {canary} on the canary, {base} on the baseline</li>"
        for text, canary, base in analysis.rising_errors
    )
    return (
        f"<h2>Canary {html.escape(analysis.canary)} against "
        f"{html.escape(analysis.baseline or 'no baseline')}</h2>"
        f'<p id="analysis" data-answer="{analysis.answer}"><b>{analysis.answer}</b>: '
        f"{html.escape(analysis.reason)}. Next: {html.escape(analysis.next_action)}.</p>"
        f"{f'<ul>{errors}</ul>' if errors else ''}{crashed}"
        "<table><tr><th>job name</th><th>answer</th><th>canary failed</th>"
        "<th>baseline failed</th><th>canary stuck</th><th>baseline stuck</th>"
        f"<th>confidence worse</th></tr>{rows}</table>\n"
    )


def _confidence(c: Comparison) -> float:
    """The strongest of a job name's comparisons (failures, run time, stuck jobs)."""
    return max((e.confidence for e in (c.failures, c.slowness, c.stuckness) if e), default=0.0)


def render(
    verdict: Verdict,
    state: SidecarState,
    settings: SidecarSettings,
    now: float,
    analysis: CanaryAnalysis | None = None,
) -> str:
    color = COLORS[verdict.verdict]
    scope = f" for version {html.escape(verdict.version)}" if verdict.version else ""
    role = "leader" if state.leader else "follower"
    leader = state.leader_info or {}
    leader_text = (
        f"{html.escape(str(leader.get('host', '?')))} (pid {leader.get('pid', '?')})"
        if leader
        else "unknown"
    )
    outage = shared_error(state, settings, now)
    rows = "".join(_trigger_row(t, now, outage) for t in verdict.triggers)
    sources = []
    for name, view in sorted(state.views.items()):
        status = view.status
        found = condition(view, settings.interval(name), now)
        up = found == Condition.UP
        last = ago(now - status.last_success) if status and status.last_success else "never"
        error = html.escape(status.error or "") if status else "not polled yet"
        if outage and status and status.error == outage:
            error = "(the outage above)"
        sources.append(
            f'<tr class="source" data-source="{name}" data-up="{int(up)}" '
            f'data-condition="{found}"><td>{name}</td><td class="{"up" if up else "down"}">'
            f"{found if up else found.upper()}</td><td>{last}</td><td>{error}</td></tr>"
        )
    temporal = (
        f' · <a href="{html.escape(settings.temporal_ui_url)}">Temporal UI</a>'
        if settings.temporal_ui_url
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">
<title>jobsight: {verdict.verdict}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem 2rem; color: #1f2328; }}
#verdict {{ font-size: 2.4rem; font-weight: 700; color: #fff; background: {color};
           padding: .6rem 1.2rem; border-radius: .5rem; display: inline-block; }}
table {{ border-collapse: collapse; margin: 1rem 0; }}
th, td {{ padding: .3rem .8rem; text-align: left; border-bottom: 1px solid #d0d7de; }}
th {{ font-size: .8rem; text-transform: uppercase; color: #57606a; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.pill {{ color: #fff; border-radius: 1rem; padding: .1rem .6rem; font-size: .85rem; }}
.up {{ color: #1a7f37; }} .down {{ color: #cf222e; font-weight: 700; }}
.meta {{ color: #57606a; }}
</style></head><body>
<div id="verdict" data-verdict="{verdict.verdict}">{verdict.verdict.upper()}</div>
<p class="meta">verdict{scope} · this sidecar is the <b id="role">{role}</b> of group
<b>{html.escape(settings.instance)}</b> (leader: {leader_text}) ·
<a href="/metrics">/metrics</a> · <a href="/verdict">/verdict</a>{temporal}</p>
{_outage_banner(outage)}{_analysis_section(analysis)}<h2>Triggers</h2>
<table id="triggers"><tr><th>trigger</th><th>state</th><th>value</th><th>degraded above</th>
<th>rollback above</th><th>window</th><th>since</th><th>detail</th></tr>{rows}</table>
<h2>Sources</h2>
<table id="sources"><tr><th>source</th><th>state</th><th>last success</th><th>last error</th></tr>
{"".join(sources)}</table>
</body></html>
"""
