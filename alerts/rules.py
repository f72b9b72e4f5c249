"""Prometheus alert rules as code: one description per alert (its rule, its runbook, and a firing
and a quiet example for promtool), rendered to

    alerts/generated/jobsight-rules.yaml        a plain Prometheus rules file
    alerts/generated/prometheusrule.yaml        the same groups as a PrometheusRule (the chart)
    alerts/generated/jobsight-rules.test.yaml   promtool tests: each alert fires, and stays quiet
    docs/runbooks.md                            a section per alert

Trigger alerts read the sidecar's trigger-state metrics, so thresholds are configured once (in
the sidecar). Metric and trigger names come from the exporter. The SLO objective (30 days) is
JOBSIGHT_SLO_OBJECTIVE at generation time (default 0.99).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import yaml

from jobsight.health.specs import TRIGGERS
from jobsight.sidecar import collector
from jobsight.sources import breakers, jobs, pgqueue

SCRAPE_JOB = "jobsight"  # the job label Prometheus gives the sidecar's targets
RUNBOOK_BASE = os.environ.get(
    "JOBSIGHT_RUNBOOK_BASE_URL", "https://github.com/jobsight/jobsight/blob/main/docs/runbooks.md"
)
GRAFANA_BASE = os.environ.get("JOBSIGHT_GRAFANA_URL", "http://grafana:3000")
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
BY = "job, namespace"


def slo_objective() -> float:
    return float(os.environ.get("JOBSIGHT_SLO_OBJECTIVE", "0.99"))


@dataclass(frozen=True)
class Runbook:
    meaning: str
    confirm: str
    act: str


@dataclass(frozen=True)
class Example:
    """Input series (promtool notation) and the labels the alert then carries (None: quiet)."""

    series: tuple[tuple[str, str], ...]
    labels: dict[str, str] | None
    eval_time: str = "10m"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str
    severity: str
    summary: str
    description: str
    runbook: Runbook
    firing: Example
    quiet: Example
    group: str = "jobsight-triggers"
    dashboard: str = "jobsight-overview"  # the uid of the dashboard that shows it

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": f"{RUNBOOK_BASE}#{self.name.lower()}",
                "dashboard_url": f"{GRAFANA_BASE}/d/{self.dashboard}",
            },
        }


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    group: str = "jobsight-slo"


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


TRIGGER_ACTIONS = {
    "error_rate": "Find the failing job names (Overview: Failed jobs / s) and their errors "
    "(`jobs.error`, the traces); if a new worker version brought them, roll back.",
    "queue_depth": "Check that workers are running and fetching (pollers, workers alive); add "
    "workers or find what blocks them.",
    "worker_crashes": "Read the crashed workers' host and pid (pgqueue.worker, pg-boss "
    "instance) and their logs: OOM kills and panics show there.",
    "db_connections": "Find the applications holding connections (DB connection panel); lower "
    "pool sizes or fix a leak before new connections are refused.",
    "latency_p95": "Find the slow job name (the trigger's detail); check the dependency it "
    "calls and recent deploys.",
    "stuck_jobs": "List the jobs active for longer than JOBSIGHT_STUCK_AFTER and their workers; "
    "cancel or fix the handler that hangs (timeouts, heartbeats).",
    "stalled": "Work is ready but nothing completes: check that workers are alive and can "
    "reach the database and Temporal.",
    "schedule_missed": "A recurring job is past due and has not fired: pgqueue fires schedules "
    "from its workers' maintenance, so check that a worker of the job name runs (the console's "
    "Schedules page; pgqueue.schedule.last_error says why a firing failed). pg-boss: check "
    "that an instance with scheduling on runs. Temporal: the schedule skips its fires while its "
    "previous run still runs (the overlap policy): find the hung run from its last fire.",
}


def trigger_alerts() -> list[Alert]:
    state = collector.TRIGGER_STATE.name
    found = []
    for spec in TRIGGERS:
        levels = [("degraded", "warning", "5m")]
        if spec.rollback is not None:
            levels.append(("rollback", "critical", "1m"))
        for level, severity, for_ in levels:
            series = f'{state}{{job="{SCRAPE_JOB}", trigger="{spec.name}", state="{level}"}}'
            found.append(
                Alert(
                    name=f"Jobsight{_camel(spec.name)}{level.capitalize()}",
                    expr=f'max by ({BY}, trigger) ({state}{{trigger="{spec.name}", '
                    f'state="{level}"}}) == 1',
                    for_=for_,
                    severity=severity,
                    summary=f"jobsight trigger {spec.name} is {level}",
                    description=f"The sidecar's {spec.name} trigger ({spec.help}) is past its "
                    f"{level} threshold. Thresholds are the sidecar's settings "
                    f"(JOBSIGHT_{spec.name.upper()}_*).",
                    runbook=Runbook(
                        meaning=f"{spec.help.capitalize()} is past the {level} threshold "
                        f"configured in the sidecar (data from: {', '.join(spec.sources)}).",
                        confirm="`jobsight verdict --url http://<sidecar>:9465` shows the trigger's"
                        " "
                        "value, thresholds and detail; the Overview dashboard shows it "
                        "against its threshold lines.",
                        act=TRIGGER_ACTIONS[spec.name]
                        + (
                            " A rollback state is what deployment gates act on: if a rollout is in "
                            "progress, let the gate stop it."
                            if level == "rollback"
                            else ""
                        ),
                    ),
                    firing=Example(
                        ((series, "1x20"),),
                        {"severity": severity, "job": SCRAPE_JOB, "trigger": spec.name},
                    ),
                    quiet=Example(((series, "0x20"),), None),
                )
            )
    return found


def meta_alerts() -> list[Alert]:
    up = f'up{{job="{SCRAPE_JOB}"}}'
    source_up, leader = collector.SOURCE_UP.name, collector.LEADER.name
    last = collector.SOURCE_LAST_SUCCESS.name
    source_series = f'{source_up}{{job="{SCRAPE_JOB}", source="jobs"}}'
    stale_series = f'{last}{{job="{SCRAPE_JOB}", source="jobs"}}'
    return [
        Alert(
            "JobsightSidecarDown",
            f"{up} == 0",
            "5m",
            "critical",
            "a jobsight sidecar cannot be scraped",
            "Prometheus cannot scrape a jobsight sidecar: its metrics, verdict and gates are "
            "missing for that pod.",
            Runbook(
                "A sidecar target is down: the process, its pod or the network to it.",
                "Prometheus' targets page; `kubectl get pods`; the sidecar's /livez.",
                "Read the sidecar's logs and events (OOM, crash loop, bad setting: it "
                "exits 2 with one line naming it).",
            ),
            Example(((up, "0x20"),), {"severity": "critical", "job": SCRAPE_JOB}),
            Example(((up, "1x20"),), None),
            group="jobsight-meta",
        ),
        Alert(
            "JobsightSidecarAbsent",
            f"absent({up})",
            "10m",
            "critical",
            "no jobsight sidecar is scraped at all",
            "Prometheus has no jobsight target: nothing watches the jobs, and gates have no "
            "verdict.",
            Runbook(
                'No target with job="jobsight" exists (service discovery, monitors).',
                "Prometheus' targets and service-discovery pages; the ServiceMonitor or "
                "PodMonitor of the chart.",
                "Re-enable the monitor or the scrape config; check the job label.",
            ),
            Example(
                (('up{job="other"}', "1x20"),), {"severity": "critical", "job": SCRAPE_JOB}, "15m"
            ),
            Example(((up, "1x20"),), None, "15m"),
            group="jobsight-meta",
        ),
        Alert(
            "JobsightSourceDown",
            f"min by ({BY}, source) ({source_up}) == 0",
            "10m",
            "warning",
            "a jobsight source has been down for 10 minutes",
            "The sidecar cannot poll one of its sources; triggers that draw on it are unknown.",
            Runbook(
                "A source (database, pg-boss schema, Temporal) fails to answer.",
                "The status page's sources table shows the last error and last success; "
                "the Sidecar dashboard shows when it started.",
                "Fix the dependency (credentials, network, statement timeouts); the "
                "sidecar recovers on its own at the next poll.",
            ),
            Example(
                ((source_series, "0x20"),),
                {"severity": "warning", "job": SCRAPE_JOB, "source": "jobs"},
                "15m",
            ),
            Example(((source_series, "1x20"),), None, "15m"),
            group="jobsight-meta",
        ),
        Alert(
            "JobsightNoLeader",
            f"sum by ({BY}) ({leader}) == 0",
            "5m",
            "critical",
            "no jobsight sidecar is the leader",
            "Sidecars are scraped, but none holds the leader lock: nothing polls, every "
            "figure is frozen.",
            Runbook(
                "Every sidecar of a group is a follower: the database is unreachable for "
                "the lock, or the sidecars' tables are missing.",
                "`jobsight_state_read_up` and the sidecars' logs ('leader election').",
                "Restore database access; run `jobsight migrate up` if the tables are missing.",
            ),
            Example(
                ((f'{leader}{{job="{SCRAPE_JOB}"}}', "0x20"),),
                {"severity": "critical", "job": SCRAPE_JOB},
            ),
            Example(((f'{leader}{{job="{SCRAPE_JOB}"}}', "1x20"),), None),
            group="jobsight-meta",
        ),
        Alert(
            "JobsightPollsStale",
            f"time() - max by ({BY}, source) ({last}) > 600",
            "5m",
            "warning",
            "a jobsight source has not been polled successfully for 10 minutes",
            "The last successful poll of a source is old, though the sidecar is scraped.",
            Runbook(
                "Polls are failing or not running (a stuck leader, timeouts).",
                "Sidecar dashboard: time since last successful poll, poll duration.",
                "Restart the leader pod if its polls hang; raise JOBSIGHT_POLL_TIMEOUT "
                "only if the queries are legitimately slow.",
            ),
            Example(
                ((stale_series, "0x30"),),
                {"severity": "warning", "job": SCRAPE_JOB, "source": "jobs"},
                "20m",
            ),
            Example(((stale_series, "0+60x30"),), None, "20m"),
            group="jobsight-meta",
        ),
        maintenance_alert(),
        breaker_alert(),
    ]


def maintenance_alert() -> Alert:
    """pgqueue workers run, but no maintenance round finished for 5 minutes: schedules do not
    fire, crashed workers' jobs are not recovered, retention stops."""
    stamp, alive = pgqueue.MAINTENANCE.name, pgqueue.WORKERS.name
    stamp_series = f'{stamp}{{job="{SCRAPE_JOB}"}}'
    alive_series = f'{alive}{{job="{SCRAPE_JOB}"}}'
    return Alert(
        "JobsightPgqueueMaintenanceStalled",
        f"time() - max by ({BY}) ({stamp}) > 300 and on ({BY}) max by ({BY}) ({alive}) > 0",
        "5m",
        "warning",
        "pgqueue workers run, but no maintenance round has finished for 5 minutes",
        "Recurring schedules are not firing, crashed workers' jobs are not recovered and "
        "retention has stopped, although workers are alive.",
        Runbook(
            "Every worker's maintainer fails its rounds (or none holds the maintenance lock).",
            "Workers' logs ('maintenance round failed', 'schedule ... could not fire'); "
            "pgqueue.schedule.last_error; pg_locks for the maintenance advisory lock.",
            "Fix what the logs name (a database error, a migration not applied); a session "
            "holding the advisory lock can be ended with pg_terminate_backend.",
        ),
        Example(
            ((stamp_series, "0x30"), (alive_series, "1x30")),
            {"severity": "warning", "job": SCRAPE_JOB},
            "20m",
        ),
        Example(((stamp_series, "0+60x30"), (alive_series, "1x30")), None, "20m"),
        group="jobsight-meta",
    )


def breaker_alert() -> Alert:
    """A runner process's Temporal breaker is open (or probing): its jobs go to pgqueue or are
    refused. Fires at once, for as long as it lasts."""
    name = breakers.BREAKERS.name
    open_series = f'{name}{{job="{SCRAPE_JOB}",engine="temporal",state="open"}}'
    closed_series = f'{name}{{job="{SCRAPE_JOB}",engine="temporal",state="closed"}}'
    return Alert(
        "JobsightRunnerBreakerOpen",
        f'max by ({BY}, engine) ({name}{{state=~"open|half_open"}}) > 0',
        "0s",
        "warning",
        "An engine's circuit breaker is open in a runner process (the engine label names it)",
        "Scheduling calls to that engine failed repeatedly; while the breaker is open its jobs "
        "go to pgqueue (JOB_RUNNER_FALLBACK_TO_PGQUEUE) or are refused at once.",
        Runbook(
            "Temporal did not answer (or answered too slowly) the runner's calls often enough "
            "to open the breaker (JOB_RUNNER_BREAKER_FAILURES within JOB_RUNNER_BREAKER_WINDOW).",
            "The sidecar's status page, 'Circuit breakers' (each process, since when, why); "
            "jobsight_runner_fallbacks_total; the runner's log ('Temporal breaker open'); "
            "Temporal's own health (`temporal operator cluster health`).",
            "Bring Temporal back: the breaker probes every JOB_RUNNER_BREAKER_COOLDOWN and "
            "closes on the first call that succeeds. Jobs sent to pgqueue run there (their "
            "rows say runner_type pgqueue, with a 'fallback' detail); nothing is moved back.",
        ),
        Example(
            ((open_series, "1x30"), (closed_series, "0x30")),
            {"severity": "warning", "job": SCRAPE_JOB, "engine": "temporal"},
        ),
        Example(((open_series, "0x30"), (closed_series, "1x30")), None),
        group="jobsight-meta",
    )


def slo_recordings() -> list[Recording]:
    completed, failed = jobs.COMPLETED.name, jobs.FAILED.name
    found = []
    for window in SLO_WINDOWS:
        # Several sidecar pods expose the same counters: one per series (max), then the sum.
        done = f"sum by ({BY}) (max by ({BY}, job_name, runner) (rate({completed}[{window}])))"
        bad = f"sum by ({BY}) (max by ({BY}, job_name, runner) (rate({failed}[{window}])))"
        found.append(
            Recording(f"jobsight:job_error_ratio:rate{window}", f"{bad} / ({done} + {bad})")
        )
    return found


def slo_alerts() -> list[Alert]:
    objective = slo_objective()
    budget = round(1 - objective, 6)

    def burn(long: str, short: str, factor: float) -> str:
        threshold = round(factor * budget, 6)
        return (
            f"(jobsight:job_error_ratio:rate{long} > {threshold} and "
            f"jobsight:job_error_ratio:rate{short} > {threshold})"
        )

    completed = f'{jobs.COMPLETED.name}{{job="{SCRAPE_JOB}", job_name="import", runner="temporal"}}'
    failed = f'{jobs.FAILED.name}{{job="{SCRAPE_JOB}", job_name="import", runner="temporal"}}'
    runbook = Runbook(
        f"Jobs fail faster than the {objective:.2%} 30-day objective allows: at this rate the "
        "error budget runs out early.",
        "Overview dashboard: error ratio and failed jobs / s by job name.",
        "Find the failing job names and what changed; the error_rate trigger and the rollback "
        "gates act on the same counters over a shorter window.",
    )

    def series(minutes: int, failures: int) -> tuple[tuple[str, str], ...]:
        return ((completed, f"0+100x{minutes}"), (failed, f"0+{failures}x{minutes}"))

    # Long enough for the first window pair of each alert (1 h / 5 min; 1 d / 2 h).
    fast, slow = 80, 26 * 60 + 10
    return [
        Alert(
            "JobsightErrorBudgetBurnFast",
            f"{burn('1h', '5m', 14.4)} or {burn('6h', '30m', 6)}",
            "2m",
            "critical",
            "jobs are burning the error budget fast",
            f"Job error ratio above 14.4x (1 h) or 6x (6 h) the budget of a {objective:.2%} "
            "objective.",
            runbook,
            Example(series(fast, 20), {"severity": "critical", "job": SCRAPE_JOB}, "75m"),
            Example(series(fast, 0), None, "75m"),
            group="jobsight-slo",
        ),
        Alert(
            "JobsightErrorBudgetBurnSlow",
            f"{burn('1d', '2h', 3)} or {burn('3d', '6h', 1)}",
            "15m",
            "warning",
            "jobs are burning the error budget",
            f"Job error ratio above 3x (1 d) or 1x (3 d) the budget of a {objective:.2%} "
            "objective.",
            runbook,
            Example(series(slow, 20), {"severity": "warning", "job": SCRAPE_JOB}, "26h"),
            Example(series(slow, 0), None, "26h"),
            group="jobsight-slo",
        ),
    ]


PER_NAME = f"{BY}, job_name"
# Burn-rate pairs (long window, short window, factor of the budget): Google's SRE workbook's.
FAST_BURNS = (("1h", "5m", 14.4), ("6h", "30m", 6.0))
SLOW_BURNS = (("1d", "2h", 3.0), ("3d", "6h", 1.0))
OBJECTIVE_RECORDS = {
    "succeed": "jobsight:job_name_error_ratio",
    "start": "jobsight:job_name_slow_start_ratio",
}


def objective_recordings() -> list[Recording]:
    """Per job name and window: the share of finished jobs that failed, and of jobs that did not
    start within their objective's time (the wait histogram's bucket its objective names)."""
    completed, failed, wait = jobs.COMPLETED.name, jobs.FAILED.name, jobs.WAIT.name
    marker = collector.OBJECTIVE_START_BUCKET.name
    found = []
    for w in SLO_WINDOWS:
        # Several sidecar pods expose the same series: one per series (max), then the sum.
        done = f"sum by ({PER_NAME}) (max by ({PER_NAME}, runner) (rate({completed}[{w}])))"
        bad = f"sum by ({PER_NAME}) (max by ({PER_NAME}, runner) (rate({failed}[{w}])))"
        started = (
            f"sum by ({PER_NAME}) (max by ({PER_NAME}, runner, le) (rate({wait}_bucket[{w}])) "
            f"* on ({PER_NAME}, le) group_left () max by ({PER_NAME}, le) ({marker}))"
        )
        total = f"sum by ({PER_NAME}) (max by ({PER_NAME}, runner) (rate({wait}_count[{w}])))"
        found += [
            Recording(f"{OBJECTIVE_RECORDS['succeed']}:rate{w}", f"{bad} / ({done} + {bad})",
                      "jobsight-objectives"),
            Recording(f"{OBJECTIVE_RECORDS['start']}:rate{w}", f"1 - ({started}) / {total}",
                      "jobsight-objectives"),
        ]  # fmt: skip
    return found


def objective_burn(kind: str, burns: tuple[tuple[str, str, float], ...]) -> str:
    """Each job name whose ratio burns its own objective's budget (1 - the objective, read from
    the sidecar's jobsight_objective) faster than a factor, over a long and a short window."""
    record, objective = OBJECTIVE_RECORDS[kind], collector.OBJECTIVE.name
    budget = f'(1 - max by ({PER_NAME}) ({objective}{{objective="{kind}"}}))'
    pairs = [
        f"({record}:rate{long} > on ({PER_NAME}) group_left () ({factor:g} * {budget}) "
        f"and on ({PER_NAME}) {record}:rate{short} > on ({PER_NAME}) group_left () "
        f"({factor:g} * {budget}))"
        for long, short, factor in burns
    ]
    return " or ".join(pairs)


def objective_alerts() -> list[Alert]:
    name = "generate-invoice"
    labels = f'job="{SCRAPE_JOB}", job_name="{name}"'
    completed = f'{jobs.COMPLETED.name}{{{labels}, runner="pgqueue"}}'
    failed = f'{jobs.FAILED.name}{{{labels}, runner="pgqueue"}}'
    within = f'{jobs.WAIT.name}_bucket{{{labels}, runner="pgqueue", le="30.0"}}'
    count = f'{jobs.WAIT.name}_count{{{labels}, runner="pgqueue"}}'
    declared = {
        kind: f'{collector.OBJECTIVE.name}{{{labels}, objective="{kind}"}}'
        for kind in OBJECTIVE_RECORDS
    }
    marker = f'{collector.OBJECTIVE_START_BUCKET.name}{{{labels}, le="30.0"}}'

    def series(kind: str, minutes: int, bad: bool) -> tuple[tuple[str, str], ...]:
        if kind == "succeed":  # 99.5%: a budget of 0.5%; 20 of 120 a minute fail when bad
            return ((declared[kind], f"0.995x{minutes}"), (completed, f"0+100x{minutes}"),
                    (failed, f"0+{20 if bad else 0}x{minutes}"))  # fmt: skip
        # 95% within 30 s: a budget of 5%; 90 of 100 a minute start later when bad
        in_time = f"0+{10 if bad else 100}x{minutes}"
        return ((declared[kind], f"0.95x{minutes}"), (marker, f"1x{minutes}"),
                (within, in_time), (count, f"0+100x{minutes}"))  # fmt: skip

    words = {"succeed": ("fail", "succeed"), "start": ("start late", "start in time")}
    found = []
    for kind, (verb, goal) in words.items():
        runbook = Runbook(
            f"A job name's jobs {verb} faster than its own objective (JOBSIGHT_OBJECTIVES: the "
            f"share that must {goal}) allows: at this rate its error budget runs out early.",
            "The alert's job_name; the Overview dashboard's objectives row draws each job name's "
            "ratio against its objective; `jobsight_objective` holds the declared objective.",
            "Find what changed for that job name (a release, a dependency, fewer workers): the "
            "console's Failures page groups its errors; a start objective needs more workers or "
            "a shorter queue ahead of it.",
        )
        fast, slow = 80, 26 * 60 + 10
        for speed, burns, severity, for_, minutes, at in (
            ("Fast", FAST_BURNS, "critical", "2m", fast, "75m"),
            ("Slow", SLOW_BURNS, "warning", "15m", slow, "26h"),
        ):
            factors = " or ".join(f"{f:g}x over {long} and {short}" for long, short, f in burns)
            found.append(Alert(
                f"JobsightObjective{kind.capitalize()}Burn{speed}",
                objective_burn(kind, burns),
                for_,
                severity,
                f"a job name burns its {kind} objective's budget"
                + (" fast" if speed == "Fast" else ""),
                f"The job name's jobs {verb} at {factors} the rate its objective allows.",
                runbook,
                Example(series(kind, minutes, True),
                        {"severity": severity, "job": SCRAPE_JOB, "job_name": name}, at),
                Example(series(kind, minutes, False), None, at),
                group="jobsight-objectives",
            ))  # fmt: skip
    return found


def all_alerts() -> list[Alert]:
    return trigger_alerts() + meta_alerts() + slo_alerts() + objective_alerts()


def groups() -> list[dict[str, Any]]:
    ordered: dict[str, list[dict[str, Any]]] = {}
    for rec in slo_recordings() + objective_recordings():
        ordered.setdefault(rec.group, []).append({"record": rec.record, "expr": rec.expr})
    for alert in all_alerts():
        ordered.setdefault(alert.group, []).append(alert.rule())
    return [{"name": name, "rules": rules} for name, rules in ordered.items()]


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True)


def rules_file() -> str:
    return "# Generated by `jobsight generate` from alerts/rules.py; do not edit.\n" + _dump(
        {"groups": groups()}
    )


def prometheus_rule() -> str:
    manifest = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "jobsight", "labels": {"app.kubernetes.io/name": "jobsight"}},
        "spec": {"groups": groups()},
    }
    return "# Generated by `jobsight generate` from alerts/rules.py; do not edit.\n" + _dump(
        manifest
    )


def _case(alert: Alert, example: Example) -> dict[str, Any]:
    expected = []
    if example.labels is not None:
        rule = alert.rule()
        expected = [{"exp_labels": example.labels, "exp_annotations": rule["annotations"]}]
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in example.series],
        "alert_rule_test": [
            {"eval_time": example.eval_time, "alertname": alert.name, "exp_alerts": expected}
        ],
    }


def rules_tests() -> str:
    tests = []
    for alert in all_alerts():
        tests.append(_case(alert, alert.firing))
        tests.append(_case(alert, alert.quiet))
    body = {"rule_files": ["jobsight-rules.yaml"], "evaluation_interval": "1m", "tests": tests}
    return "# Generated by `jobsight generate`: a firing and a quiet case for every alert.\n" + (
        _dump(body)
    )


def runbooks() -> str:
    lines = [
        "# Runbooks",
        "",
        "Generated by `jobsight generate` from alerts/rules.py; do not edit. One section per "
        "alert: what it means, how to confirm it, what to do.",
        "",
    ]
    for alert in all_alerts():
        lines += [
            f"## {alert.name}",
            "",
            f"*Severity:* {alert.severity} · *for:* {alert.for_} · {alert.summary}.",
            "",
            f"**What it means.** {alert.runbook.meaning}",
            "",
            f"**How to confirm.** {alert.runbook.confirm}",
            "",
            f"**What to do.** {alert.runbook.act}",
            "",
            "```promql",
            alert.expr,
            "```",
            "",
        ]
    return "\n".join(lines)


def render_all() -> dict[str, str]:
    return {
        "alerts/generated/jobsight-rules.yaml": rules_file(),
        "alerts/generated/prometheusrule.yaml": prometheus_rule(),
        "alerts/generated/jobsight-rules.test.yaml": rules_tests(),
        "docs/runbooks.md": runbooks(),
    }
