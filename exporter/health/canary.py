"""Job-aware canary analysis: is a worker release worse than the one it replaces, on the same
kind of work, in the same window? Pure: rows in, an answer with its explanation out.

The jobs source counts, per fixed 30-second slice of the analysis window, job name and worker
version, the jobs finished, failed, timed and slower than that job name's p95 over the window
(pooled over every version, so the line does not know which side a run was on). For a canary
and its baseline (named, or `auto`: the version that finished the most jobs in the window other
than the canary), each (slice, job name) where both ran is a stratum of the sequential test in
health/sequential.py: failures and slow runs are compared within strata, so a canary that happens
to run more of a flaky job is not blamed for it, and the answer stays valid however often it is
asked. The decision is overall (the comparisons share alpha); per job name results explain it.

Two rarer signals are compared the same way, as one stratum per job name (stuck) or one in all
(crashes): jobs running longer than JOBSIGHT_STUCK_AFTER now, among each side's jobs of that name
in the window (finished or stuck), and pgqueue workers declared crashed among each side's workers
in the window. A canary whose every job hangs has finished nothing, yet its stuck jobs are
evidence: it is compared, not called idle.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobsight.health.sequential import (
    RARE_GRID,
    CanaryPolicy,
    Evidence,
    Slice,
    evidence,
    shown_worse,
)
from jobsight.health.state import State
from jobsight.settings import SidecarSettings
from jobsight.sources.jobs import JobsSnapshot
from jobsight.sources.pgqueue import PgQueueSnapshot, VersionWorkers
from jobsight.sources.status import SourceView
from jobsight.sources.versions import Fingerprint, StuckRow, VersionSlice

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
    canary_stuck: int = 0
    baseline_stuck: int = 0
    failures: Evidence | None = None
    slowness: Evidence | None = None
    stuckness: Evidence | None = None
    answer: str = INCONCLUSIVE


@dataclass
class Crashes:
    """pgqueue workers of each side seen in the window, and how many were declared crashed."""

    canary_workers: int
    canary_crashed: int
    baseline_workers: int
    baseline_crashed: int
    evidence: Evidence
    answer: str


@dataclass
class CanaryAnalysis:
    canary: str
    baseline: str | None
    answer: str
    reason: str
    overall: Comparison | None = None
    by_job: list[Comparison] = field(default_factory=list)
    crashes: Crashes | None = None  # None: no pgqueue workers of both versions in the window
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


def _stuck_strata(
    rows: Sequence[VersionSlice], stuck: Sequence[StuckRow], canary: str, baseline: str
) -> dict[str, Slice]:
    """Per job name that both sides ran (finished or stuck) in the window: each side's jobs,
    finished plus stuck now, and how many of them are stuck."""
    jobs: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        jobs[(row.job_name, row.version)][0] += row.finished
    for s in stuck:
        jobs[(s.job_name, s.version)][0] += s.stuck
        jobs[(s.job_name, s.version)][1] += s.stuck
    names = sorted({name for name, version in jobs if version == canary})
    return {
        name: Slice(*jobs[(name, canary)], *jobs[(name, baseline)])
        for name in names
        if (name, baseline) in jobs
    }


def _compare(
    name: str,
    pairs: Sequence[tuple[VersionSlice, VersionSlice]],
    stuck: Sequence[Slice],
    policy: CanaryPolicy,
) -> Comparison:
    c = Comparison(name)
    c.canary_stuck = sum(s.canary_hits for s in stuck)
    c.baseline_stuck = sum(s.baseline_hits for s in stuck)
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
    c.stuckness = evidence(stuck, policy.failure_margin, RARE_GRID)
    if (
        shown_worse(c.failures, policy, "failures")
        or shown_worse(c.slowness, policy, "run_time")
        or shown_worse(c.stuckness, policy, "stuck")
    ):
        c.answer = FAIL
    elif c.canary_finished >= policy.min_jobs:
        c.answer = PASS
    return c


def compare_crashes(
    workers: Sequence[VersionWorkers], canary: str, baseline: str, policy: CanaryPolicy
) -> Crashes | None:
    """The canary's crashed workers against the baseline's; None when either has no workers."""
    by_version = {w.version: w for w in workers}
    mine, theirs = by_version.get(canary), by_version.get(baseline)
    if mine is None or theirs is None:
        return None
    found = evidence(
        [Slice(mine.workers, mine.crashed, theirs.workers, theirs.crashed)],
        policy.failure_margin,
        RARE_GRID,
    )
    answer = FAIL if shown_worse(found, policy, "crashes") else PASS
    return Crashes(mine.workers, mine.crashed, theirs.workers, theirs.crashed, found, answer)


def analyse(
    rows: Sequence[VersionSlice],
    canary: str,
    baseline: str,
    policy: CanaryPolicy,
    fingerprints: Sequence[Fingerprint] = (),
    stuck: Sequence[StuckRow] = (),
    workers: Sequence[VersionWorkers] = (),
) -> CanaryAnalysis:
    """The canary's answer. Never pass without evidence: no canary jobs, no baseline to compare
    with, or fewer than policy.min_jobs compared canary jobs are inconclusive."""
    chosen = choose_baseline(rows, canary, baseline)
    if not any(r.version == canary for r in rows) and not any(s.version == canary for s in stuck):
        reason = f"version {canary!r} finished no job in the window and has none stuck"
        wait = "wait for the canary to run jobs (or check the version's name)"
        return CanaryAnalysis(canary, chosen, INCONCLUSIVE, reason, next_action=wait)
    if chosen is None or not any(r.version == chosen for r in rows):
        reason = "no baseline version finished jobs in the window"
        name = "name the stable version with baseline="
        return CanaryAnalysis(canary, chosen, INCONCLUSIVE, reason, next_action=name)
    pairs = _strata(rows, canary, chosen)
    stuck_strata = _stuck_strata(rows, stuck, canary, chosen)
    names = sorted({*pairs, *stuck_strata})
    overall = _compare(
        "*", [p for name in names for p in pairs.get(name, [])], list(stuck_strata.values()), policy
    )
    by_job = sorted(
        (
            _compare(name, pairs.get(name, []), [stuck_strata[name]] if name in stuck_strata
                     else [], policy)
            for name in names
        ),
        key=lambda c: -_strongest(c),
    )  # fmt: skip
    crashes = compare_crashes(workers, canary, chosen, policy)
    answer = FAIL if crashes is not None and crashes.answer == FAIL else overall.answer
    analysis = CanaryAnalysis(canary, chosen, answer, "", overall, by_job, crashes)
    if answer == FAIL:
        analysis.rising_errors = rising(fingerprints, canary, chosen)
        analysis.reason, analysis.next_action = explain_failure(overall, by_job, crashes, policy)
    elif overall.answer == PASS:
        analysis.reason = (
            f"{overall.canary_finished} canary jobs compared with {overall.baseline_finished} "
            f"of {chosen}: not shown worse (failures, run time, stuck jobs or crashes)"
        )
        analysis.next_action = "promote when the rollout's steps are done"
    else:
        analysis.reason = (
            f"{overall.canary_finished} canary jobs ran job names {chosen} also ran; "
            f"{policy.min_jobs} needed to pass"
        )
        analysis.next_action = "wait for more canary jobs"
    return analysis


def _strongest(c: Comparison) -> float:
    """The largest log-evidence of a comparison's tests (how to rank job names)."""
    return max((e.log_value for e in (c.failures, c.slowness, c.stuckness) if e), default=0.0)


def _test_evidence(c: Comparison, test: str) -> Evidence | None:
    return {"failures": c.failures, "run_time": c.slowness, "stuck": c.stuckness}[test]


def explain_failure(
    overall: Comparison,
    by_job: Sequence[Comparison],
    crashes: Crashes | None,
    policy: CanaryPolicy,
) -> tuple[str, str]:
    """Why the canary failed, from the comparison that failed it (the strongest, if several),
    and what to do next."""
    if crashes is not None and crashes.answer == FAIL:
        what = (
            f"worker crashes: {crashes.canary_crashed} of {crashes.canary_workers} canary "
            f"workers against {crashes.baseline_crashed} of {crashes.baseline_workers} on the "
            "baseline"
        )
        return _worse(what, crashes.evidence), "roll back; read the crashed canary workers' logs"
    failed = [
        (found, test)
        for test in ("failures", "run_time", "stuck")
        if (found := _test_evidence(overall, test)) and shown_worse(found, policy, test)
    ]
    found, test = max(failed, key=lambda pair: pair[0].log_value)
    w = max(by_job or [overall], key=lambda c: getattr(_test_evidence(c, test), "log_value", 0.0))
    if test == "stuck":
        what = (
            f"stuck jobs: {w.job_name} {w.canary_stuck} stuck of the canary's "
            f"{w.canary_finished + w.canary_stuck} against {w.baseline_stuck} of "
            f"{w.baseline_finished + w.baseline_stuck} on the baseline"
        )
        action = f"roll back; look at what the canary's running {w.job_name} jobs wait for"
    elif test == "failures":
        what = (
            f"failures: {w.job_name} {w.canary_failed}/{w.canary_finished} on the "
            f"canary against {w.baseline_failed}/{w.baseline_finished} on the baseline"
        )
        action = f"roll back; read the canary's failed {w.job_name} jobs"
    else:
        what = (
            f"run time: {w.job_name} {w.canary_slow}/{w.canary_timed} canary runs above the "
            f"p95 line against {w.baseline_slow}/{w.baseline_timed} on the baseline"
        )
        action = f"roll back; compare the canary's slow {w.job_name} runs with the baseline's"
    return _worse(what, found), action


def _worse(what: str, found: Evidence) -> str:
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
    queue = views.get("pgqueue")
    workers = (
        queue.snapshot.workers_by_version
        if queue is not None and isinstance(queue.snapshot, PgQueueSnapshot)
        else []
    )
    return analyse(
        snapshot.version_slices,
        canary,
        baseline,
        policy,
        snapshot.fingerprints,
        snapshot.stuck,
        workers,
    )


def analysis_body(analysis: CanaryAnalysis) -> dict[str, Any]:
    """JSON for /verdict, the gates and `jobsight verdict`: the answer, its reason and evidence."""

    def comparison(c: Comparison | None) -> dict[str, Any] | None:
        if c is None:
            return None
        return {
            "job_name": c.job_name,
            "answer": c.answer,
            "canary": {"finished": c.canary_finished, "failed": c.canary_failed,
                       "slow": c.canary_slow, "timed": c.canary_timed, "stuck": c.canary_stuck},
            "baseline": {"finished": c.baseline_finished, "failed": c.baseline_failed,
                         "slow": c.baseline_slow, "timed": c.baseline_timed,
                         "stuck": c.baseline_stuck},
            "failures": _evidence(c.failures),
            "run_time": _evidence(c.slowness),
            "stuck": _evidence(c.stuckness),
        }  # fmt: skip

    crashes = analysis.crashes

    return {
        "canary": analysis.canary,
        "baseline": analysis.baseline,
        "answer": analysis.answer,
        "reason": analysis.reason,
        "next_action": analysis.next_action,
        "overall": comparison(analysis.overall),
        "by_job": [comparison(c) for c in analysis.by_job],
        "crashes": None
        if crashes is None
        else {
            "answer": crashes.answer,
            "canary": {"workers": crashes.canary_workers, "crashed": crashes.canary_crashed},
            "baseline": {"workers": crashes.baseline_workers, "crashed": crashes.baseline_crashed},
            "evidence": _evidence(crashes.evidence),
        },
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
