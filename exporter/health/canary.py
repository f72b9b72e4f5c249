"""Job-aware canary analysis: is a worker release worse than the one it replaces, on the same
kind of work, in the same window? Pure: rows in, an answer with its explanation out.

The jobs source counts, per fixed 30-second slice of the analysis window, job name and worker
version, the jobs finished, failed, timed and slower than that job name's p95 over the window
(pooled over every version, so the line does not know which side a run was on). For a canary
and its baseline (named, or `auto`: the version that finished the most jobs in the window other
than the canary), each (slice, job name) where both ran is a stratum of the sequential test in
health/sequential.py: failures and slow runs are compared within strata, so a canary that happens
to run more of a flaky job is not blamed for it, and the answer stays valid however often it is
asked. The decision is overall (both comparisons share alpha); per job name results explain it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobsight.health.sequential import CanaryPolicy, Evidence, Slice, evidence, shown_worse
from jobsight.health.state import State
from jobsight.settings import SidecarSettings
from jobsight.sources.jobs import JobsSnapshot
from jobsight.sources.status import SourceView
from jobsight.sources.versions import Fingerprint, VersionSlice

AUTO = "auto"
PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


@dataclass
class Comparison:
    """One job name (or `*` for all of them), canary against baseline."""

    job_name: str
    canary_finished: int = 0
    canary_failed: int = 0
    baseline_finished: int = 0
    baseline_failed: int = 0
    canary_slow: int = 0
    canary_timed: int = 0
    baseline_slow: int = 0
    baseline_timed: int = 0
    failures: Evidence | None = None
    slowness: Evidence | None = None
    answer: str = INCONCLUSIVE


@dataclass
class CanaryAnalysis:
    canary: str
    baseline: str | None
    answer: str
    reason: str
    overall: Comparison | None = None
    by_job: list[Comparison] = field(default_factory=list)
    rising_errors: list[tuple[str, int, int]] = field(default_factory=list)  # text, canary, base
    next_action: str = ""


def choose_baseline(rows: Iterable[VersionSlice], canary: str, wanted: str) -> str | None:
    """The named baseline, or (auto) the version other than the canary with most finished jobs."""
    if wanted != AUTO:
        return wanted
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.version != canary:
            totals[row.version] += row.finished
    return max(sorted(totals), key=lambda v: totals[v]) if totals else None


def _strata(
    rows: Sequence[VersionSlice], canary: str, baseline: str
) -> dict[str, list[tuple[VersionSlice, VersionSlice]]]:
    """(canary row, baseline row) per job name, for every slice where both ran that name."""
    by_key = {(r.job_name, r.version, r.slice): r for r in rows}
    pairs: dict[str, list[tuple[VersionSlice, VersionSlice]]] = defaultdict(list)
    for (name, version, slice_), row in sorted(by_key.items()):
        if version == canary and (name, baseline, slice_) in by_key:
            pairs[name].append((row, by_key[(name, baseline, slice_)]))
    return pairs


def _compare(
    name: str, pairs: Sequence[tuple[VersionSlice, VersionSlice]], policy: CanaryPolicy
) -> Comparison:
    c = Comparison(name)
    for canary, base in pairs:
        c.canary_finished += canary.finished
        c.canary_failed += canary.failed
        c.baseline_finished += base.finished
        c.baseline_failed += base.failed
        c.canary_slow += canary.slow
        c.canary_timed += canary.timed
        c.baseline_slow += base.slow
        c.baseline_timed += base.timed
    c.failures = evidence(
        (Slice(a.finished, a.failed, b.finished, b.failed) for a, b in pairs),
        policy.failure_margin,
    )
    c.slowness = evidence(
        (Slice(a.timed, a.slow, b.timed, b.slow) for a, b in pairs), policy.slow_margin
    )
    if shown_worse(c.failures, policy) or shown_worse(c.slowness, policy):
        c.answer = FAIL
    elif c.canary_finished >= policy.min_jobs:
        c.answer = PASS
    return c


def analyse(
    rows: Sequence[VersionSlice],
    canary: str,
    baseline: str,
    policy: CanaryPolicy,
    fingerprints: Sequence[Fingerprint] = (),
) -> CanaryAnalysis:
    """The canary's answer. Never pass without evidence: no canary jobs, no baseline to compare
    with, or fewer than policy.min_jobs compared canary jobs are inconclusive."""
    chosen = choose_baseline(rows, canary, baseline)
    if not any(r.version == canary for r in rows):
        reason = f"version {canary!r} finished no job in the window"
        wait = "wait for the canary to run jobs (or check the version's name)"
        return CanaryAnalysis(canary, chosen, INCONCLUSIVE, reason, next_action=wait)
    if chosen is None or not any(r.version == chosen for r in rows):
        reason = "no baseline version finished jobs in the window"
        name = "name the stable version with baseline="
        return CanaryAnalysis(canary, chosen, INCONCLUSIVE, reason, next_action=name)
    pairs = _strata(rows, canary, chosen)
    overall = _compare("*", [p for name in sorted(pairs) for p in pairs[name]], policy)
    by_job = sorted(
        (_compare(name, pairs[name], policy) for name in pairs),
        key=lambda c: -(c.failures.log_value if c.failures else 0.0),
    )
    analysis = CanaryAnalysis(canary, chosen, overall.answer, "", overall, by_job)
    if overall.answer == FAIL:
        analysis.rising_errors = rising(fingerprints, canary, chosen)
        analysis.reason = explain_failure(overall, by_job)
        analysis.next_action = "roll back; read the canary's failed jobs of the first job name"
    elif overall.answer == PASS:
        analysis.reason = (
            f"{overall.canary_finished} canary jobs compared with {overall.baseline_finished} "
            f"of {chosen}: not shown worse (failures or run time)"
        )
        analysis.next_action = "promote when the rollout's steps are done"
    else:
        analysis.reason = (
            f"{overall.canary_finished} canary jobs ran job names {chosen} also ran; "
            f"{policy.min_jobs} needed to pass"
        )
        analysis.next_action = "wait for more canary jobs"
    return analysis


def explain_failure(overall: Comparison, by_job: Sequence[Comparison]) -> str:
    worst = by_job[0] if by_job else overall
    failures = overall.failures
    slowness = overall.slowness
    on_failures = failures is not None and (
        slowness is None or failures.log_value >= slowness.log_value
    )
    if on_failures:
        what = (
            f"failures: {worst.job_name} {worst.canary_failed}/{worst.canary_finished} on the "
            f"canary against {worst.baseline_failed}/{worst.baseline_finished} on the baseline"
        )
        found = failures
    else:
        what = (
            f"run time: {overall.canary_slow}/{overall.canary_timed} canary runs above the p95 "
            f"line against {overall.baseline_slow}/{overall.baseline_timed} on the baseline"
        )
        found = slowness
    assert found is not None
    return (
        f"canary worse on {what}; odds about {found.likeliest_psi:g}x the baseline's, "
        f"confidence {found.confidence:.4f}"
    )


def rising(
    fingerprints: Sequence[Fingerprint], canary: str, baseline: str, top: int = 3
) -> list[tuple[str, int, int]]:
    """The error fingerprints whose share of failures rose most on the canary."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for f in fingerprints:
        if f.version == canary:
            counts[f.fingerprint][0] += f.count
        elif f.version == baseline:
            counts[f.fingerprint][1] += f.count
    canary_total = sum(c for c, _ in counts.values()) or 1
    base_total = sum(b for _, b in counts.values()) or 1
    ranked = sorted(counts.items(), key=lambda kv: kv[1][1] / base_total - kv[1][0] / canary_total)
    return [(text, c, b) for text, (c, b) in ranked[:top] if c]


ANSWER_STATES = {PASS: State.OK, FAIL: State.ROLLBACK, INCONCLUSIVE: State.INCONCLUSIVE}


def policy_of(settings: SidecarSettings) -> CanaryPolicy:
    return CanaryPolicy(
        alpha=settings.canary_alpha,
        failure_margin=settings.canary_failure_margin,
        slow_margin=settings.canary_slow_margin,
        min_jobs=settings.canary_min_jobs,
    )


def analysis_of(
    views: Mapping[str, SourceView], canary: str, baseline: str, policy: CanaryPolicy
) -> CanaryAnalysis:
    """The analysis from the jobs source's latest snapshot (inconclusive when it has none)."""
    view = views.get("jobs")
    snapshot = view.snapshot if view is not None else None
    if (
        not isinstance(snapshot, JobsSnapshot)
        or view is None
        or not view.status
        or not (view.status.up)
    ):
        return CanaryAnalysis(canary, None, INCONCLUSIVE, "the jobs source has no current data",
                              next_action="check /readyz?verbose")  # fmt: skip
    return analyse(snapshot.version_slices, canary, baseline, policy, snapshot.fingerprints)


def analysis_body(analysis: CanaryAnalysis) -> dict[str, Any]:
    """JSON for /verdict, the gates and `jobsight verdict`: the answer, its reason and evidence."""

    def comparison(c: Comparison | None) -> dict[str, Any] | None:
        if c is None:
            return None
        return {
            "job_name": c.job_name,
            "answer": c.answer,
            "canary": {"finished": c.canary_finished, "failed": c.canary_failed,
                       "slow": c.canary_slow, "timed": c.canary_timed},
            "baseline": {"finished": c.baseline_finished, "failed": c.baseline_failed,
                         "slow": c.baseline_slow, "timed": c.baseline_timed},
            "failures": _evidence(c.failures),
            "run_time": _evidence(c.slowness),
        }  # fmt: skip

    return {
        "canary": analysis.canary,
        "baseline": analysis.baseline,
        "answer": analysis.answer,
        "reason": analysis.reason,
        "next_action": analysis.next_action,
        "overall": comparison(analysis.overall),
        "by_job": [comparison(c) for c in analysis.by_job],
        "rising_errors": [
            {"error": text, "canary": canary, "baseline": base}
            for text, canary, base in analysis.rising_errors
        ],
    }


def _evidence(found: Evidence | None) -> dict[str, float] | None:
    if found is None:
        return None
    return {
        "p_value": found.p_value,
        "confidence": found.confidence,
        "likeliest_odds_ratio": found.likeliest_psi,
    }
