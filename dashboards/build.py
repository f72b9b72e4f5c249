"""The Grafana dashboards, built with Grafana Labs' grafana-foundation-sdk (current schema).

Metric and trigger names come from the exporter's own descriptions, so a renamed metric breaks
generation, not a dashboard in production. `render_all()` returns the JSON files that
`jobsight generate` writes to dashboards/generated/.

Every query filters on the scrape job and namespace variables; the job-name, queue and runner
variables narrow the job and queue panels. Temporal panels link to the Temporal UI
(`temporal_ui` variable) filtered by the job's search attribute.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from jobsight.health.specs import TRIGGERS
from jobsight.sidecar import collector
from jobsight.sources import breakers, jobs, pgboss, pgqueue, postgres, temporal

UNITS = {"ratio": "percentunit", "jobs": "short", "crashes": "short", "seconds": "s"}
SEL = 'job=~"$job", namespace=~"$namespace"'
JOB_SEL = f'{SEL}, job_name=~"$job_name", runner=~"$runner"'
QUEUE_SEL = f'{SEL}, queue=~"$queue"'
RATE = "$__rate_interval"
TEMPORAL_UI_DEFAULT = "http://localhost:8233"
INTERVAL_ONLY = ("auto", "auto_min", "auto_count")


def _sdk() -> Any:
    try:
        from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
        from grafana_foundation_sdk.models import dashboard as models
    except ImportError:  # pragma: no cover - the dev extra installs it
        raise SystemExit(
            "grafana-foundation-sdk==0.0.21 is needed to generate the dashboards "
            "(pip install -e '.[dev]')"
        ) from None
    return dashboard, prometheus, stat, timeseries, models


def n(spec: Any) -> str:
    """A metric's exposed name (counters keep their _total)."""
    return str(spec.name)


def total_rate(metric: str, window: str) -> str:
    """Jobs per second over every selected series. Each sidecar pod exposes the same counters
    (the leader's published state), so each series is taken once (max), then summed."""
    return f"sum(max by (job_name, runner) (rate({metric}{{{JOB_SEL}}}[{window}])))"


def error_ratio(completed: str, failed: str, window: str) -> str:
    bad = total_rate(failed, window)
    return f"{bad} / ({total_rate(completed, window)} + {bad})"


def quantile(q: float, histogram: str, by: str = "") -> str:
    keep = f"le, {by}" if by else "le"
    return (
        f"histogram_quantile({q}, sum by ({keep}) (max by (le, job_name, runner) "
        f"(rate({histogram}_bucket{{{JOB_SEL}}}[{RATE}]))))"
    )


def query(expr: str, legend: str = "", ref: str = "A", exemplars: bool = False) -> Any:
    _, prometheus, _, _, _ = _sdk()
    target = prometheus.Dataquery().expr(expr).ref_id(ref)
    if exemplars:  # each point links to a job's trace (the trace_id exemplar label)
        target = target.exemplar(True)
    return target.legend_format(legend) if legend else target


def timeseries_panel(
    title: str,
    targets: Iterable[tuple[str, str]],
    unit: str = "short",
    description: str = "",
    width: int = 12,
    links: Any = None,
    exemplars: bool = False,
) -> Any:
    _, _, _, timeseries, models = _sdk()
    panel = (
        timeseries.Panel()
        .title(title)
        .unit(unit)
        .height(8)
        .span(width)
        .datasource(models.DataSourceRef(type_val="prometheus", uid="${datasource}"))
    )
    if description:
        panel = panel.description(description)
    for index, (expr, legend) in enumerate(targets):
        panel = panel.with_target(query(expr, legend, chr(ord("A") + index), exemplars))
    if links:
        panel = panel.data_links(links)
    return panel


def stat_panel(
    title: str,
    expr: str,
    unit: str = "short",
    mappings: Any = None,
    width: int = 6,
    description: str = "",
) -> Any:
    _, _, stat, _, models = _sdk()
    panel = (
        stat.Panel()
        .title(title)
        .unit(unit)
        .height(5)
        .span(width)
        .datasource(models.DataSourceRef(type_val="prometheus", uid="${datasource}"))
        .with_target(query(expr))
    )
    if mappings:
        panel = panel.mappings(mappings)
    return panel.description(description) if description else panel


def base_dashboard(uid: str, title: str, description: str, extra_vars: Iterable[str] = ()) -> Any:
    dashboard, _, _, _, models = _sdk()
    ds = models.DataSourceRef(type_val="prometheus", uid="${datasource}")
    build_info = n(collector.BUILD_INFO)
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["jobsight"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .with_variable(
            dashboard.DatasourceVariable("datasource").label("Data source").type("prometheus")
        )
        .with_variable(_query_var("job", "Scrape job", f"label_values({build_info}, job)", ds))
        .with_variable(
            _query_var(
                "namespace",
                "Namespace",
                f'label_values({build_info}{{job=~"$job"}}, namespace)',
                ds,
            )
        )
    )
    completed = n(jobs.COMPLETED)
    choices = {
        "job_name": ("Job name", f"label_values({completed}{{{SEL}}}, job_name)"),
        "runner": ("Runner", f"label_values({completed}{{{SEL}}}, runner)"),
        "queue": (
            "Queue",
            f'label_values({{__name__=~"{n(pgqueue.DEPTH)}|{n(pgboss.JOBS)}", {SEL}}}, queue)',
        ),
    }
    for name in extra_vars:
        label, expr = choices[name]
        board = board.with_variable(_query_var(name, label, expr, ds))
    board = board.with_variable(
        dashboard.TextBoxVariable("temporal_ui")
        .label("Temporal UI")
        .default_value(TEMPORAL_UI_DEFAULT)
    )
    for other_uid, other_title in DASHBOARDS:
        if other_uid != uid:
            board = board.link(
                dashboard.DashboardLink(other_title)
                .type("link")
                .url(f"/d/{other_uid}")
                .keep_time(True)
                .include_vars(True)
            )
    return board


def _query_var(name: str, label: str, expr: str, ds: Any) -> Any:
    dashboard, _, _, _, _ = _sdk()
    return (
        dashboard.QueryVariable(name)
        .label(label)
        .query(expr)
        .datasource(ds)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .refresh(2)
        .sort(1)
    )


def temporal_links(label: str) -> list[Any]:
    dashboard, _, _, _, _ = _sdk()
    url = (
        "${temporal_ui}/namespaces/default/workflows?query="
        f"JobsightJobName%3D%22${{__field.labels.{label}}}%22"
    )
    return [
        dashboard.DashboardLink("Workflows of this job in the Temporal UI")
        .url(url)
        .target_blank(True)
    ]


def verdict_mappings() -> list[Any]:
    _, _, _, _, models = _sdk()
    colors = {
        "0": ("ok", "green"),
        "1": ("degraded", "orange"),
        "2": ("unknown", "gray"),
        "3": ("rollback", "red"),
    }
    return [
        models.ValueMap(
            {
                k: models.ValueMappingResult(text=t, color=c, index=int(k))
                for k, (t, c) in colors.items()
            }
        )
    ]


def verdict_expr() -> str:
    verdict = n(collector.VERDICT)
    return (
        f'max(({verdict}{{{SEL}, verdict="rollback"}} * 3) or '
        f'({verdict}{{{SEL}, verdict="unknown"}} * 2) or '
        f'({verdict}{{{SEL}, verdict="degraded"}} * 1) or ({verdict}{{{SEL}}} * 0))'
    )


def trigger_panel(spec: Any) -> Any:
    value, threshold = n(collector.TRIGGER_VALUE), n(collector.TRIGGER_THRESHOLD)
    targets = [
        (f'max({value}{{{SEL}, trigger="{spec.name}"}})', spec.name),
        (f'max({threshold}{{{SEL}, trigger="{spec.name}", level="degraded"}})', "degraded above"),
    ]
    if spec.rollback is not None:
        targets.append(
            (
                f'max({threshold}{{{SEL}, trigger="{spec.name}", level="rollback"}})',
                "rollback above",
            )
        )
    return timeseries_panel(
        spec.name.replace("_", " "),
        targets,
        UNITS[spec.unit],
        f"{spec.help}; lines: the configured thresholds.",
        width=8,
    )


def overview() -> Any:
    dashboard, _, _, _, _ = _sdk()
    completed, failed = n(jobs.COMPLETED), n(jobs.FAILED)
    duration = n(jobs.DURATION)
    board = base_dashboard(
        "jobsight-overview",
        "jobsight / Overview",
        "The rollback verdict, its triggers, throughput, latency and queues.",
        ("job_name", "runner", "queue"),
    )
    board = board.with_row(dashboard.Row("Verdict and triggers"))
    board = board.with_panel(
        stat_panel(
            "Verdict",
            verdict_expr(),
            mappings=verdict_mappings(),
            description="ok, degraded, unknown or rollback",
        )
    )
    board = board.with_panel(
        stat_panel(
            "Error ratio (5m)",
            error_ratio(completed, failed, "5m"),
            "percentunit",
        )
    )
    board = board.with_panel(stat_panel("Jobs completed / s", total_rate(completed, "5m"), "ops"))
    board = board.with_panel(stat_panel("Sidecars leading", f"sum({n(collector.LEADER)}{{{SEL}}})"))
    for spec in TRIGGERS:
        board = board.with_panel(trigger_panel(spec))
    board = board.with_row(dashboard.Row("Jobs"))
    board = board.with_panel(
        timeseries_panel(
            "Completed jobs / s",
            [
                (
                    f"max by (job_name, runner) (rate({completed}{{{JOB_SEL}}}[{RATE}]))",
                    "{{job_name}} ({{runner}})",
                )
            ],
            "ops",
            links=temporal_links("job_name"),
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Failed jobs / s",
            [
                (
                    f"max by (job_name, runner) (rate({failed}{{{JOB_SEL}}}[{RATE}]))",
                    "{{job_name}} ({{runner}})",
                )
            ],
            "ops",
            links=temporal_links("job_name"),
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Error ratio",
            [
                (
                    error_ratio(completed, failed, RATE),
                    "failed / finished",
                )
            ],
            "percentunit",
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Job run time p50 / p95 / p99",
            [
                (
                    quantile(q, duration),
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
            "s",
            "From the duration histogram; its exemplars link to each job's trace.",
            links=temporal_links("job_name"),
            exemplars=True,
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Wait time p95 by job name",
            [
                (
                    quantile(0.95, n(jobs.WAIT), "job_name"),
                    "{{job_name}}",
                )
            ],
            "s",
            "From the wait histogram; its exemplars link to each job's trace.",
            exemplars=True,
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Stuck jobs",
            [
                (
                    f"max by (job_name, runner) ({n(jobs.STUCK)}{{{JOB_SEL}}})",
                    "{{job_name}} ({{runner}})",
                )
            ],
            description="Active longer than JOBSIGHT_STUCK_AFTER.",
        )
    )
    board = board.with_row(dashboard.Row("Canary against stable (by worker version)"))
    version_jobs = n(jobs.VERSION_JOBS)
    board = board.with_panel(
        timeseries_panel(
            "Failure ratio by worker version",
            [
                (
                    f'max by (version) ({version_jobs}{{outcome="failed"}}) / '
                    f'max by (version) ({version_jobs}{{outcome="finished"}})',
                    "{{version}}",
                )
            ],
            "percentunit",
            "Over JOBSIGHT_CANARY_WINDOW. The canary analysis (/verdict?version=&baseline=) "
            "compares versions on the same job names in the same 30 s slices.",
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Runs above the job name's p95, by worker version",
            [
                (
                    f'max by (version) ({version_jobs}{{outcome="slow"}}) / '
                    f'max by (version) ({version_jobs}{{outcome="timed"}})',
                    "{{version}}",
                )
            ],
            "percentunit",
            "About 5% when a version runs like the others; more when it is slower.",
        )
    )
    board = board.with_row(dashboard.Row("Objectives per job name (JOBSIGHT_OBJECTIVES)"))
    objective = n(collector.OBJECTIVE)
    per = "job_name, runner"
    done = f"sum by (job_name) (max by ({per}) (rate({n(jobs.COMPLETED)}{{{JOB_SEL}}}[1h])))"
    bad = f"sum by (job_name) (max by ({per}) (rate({n(jobs.FAILED)}{{{JOB_SEL}}}[1h])))"
    board = board.with_panel(
        timeseries_panel(
            "Failure ratio (1 h) against each job name's budget",
            [
                (
                    f"({bad} / ({done} + {bad})) and on (job_name) "
                    f'max by (job_name) ({objective}{{{SEL}, objective="succeed"}})',
                    "{{job_name}}",
                ),
                (
                    f'1 - max by (job_name) ({objective}{{{SEL}, objective="succeed"}})',
                    "{{job_name}} budget",
                ),
            ],
            "percentunit",
            "The share of finished jobs that failed, for job names with a success objective, "
            "and the budget it allows (1 - the objective). The burn-rate alerts "
            "(JobsightObjectiveSucceedBurn*) fire when it is spent several times too fast.",
        )
    )
    wait = n(jobs.WAIT)
    marker = n(collector.OBJECTIVE_START_BUCKET)
    in_time = (
        f"sum by (job_name) (max by ({per}, le) (rate({wait}_bucket{{{JOB_SEL}}}[1h])) "
        f"* on (job_name, le) group_left () max by (job_name, le) ({marker}{{{SEL}}}))"
    )
    started = f"sum by (job_name) (max by ({per}) (rate({wait}_count{{{JOB_SEL}}}[1h])))"
    board = board.with_panel(
        timeseries_panel(
            "Jobs starting late (1 h) against each job name's budget",
            [
                (f"1 - ({in_time}) / {started}", "{{job_name}}"),
                (
                    f'1 - max by (job_name) ({objective}{{{SEL}, objective="start"}})',
                    "{{job_name}} budget",
                ),
            ],
            "percentunit",
            "The share of jobs that started later than their start objective's time "
            "(jobsight_objective_start_within_seconds), and the budget it allows.",
        )
    )
    board = board.with_row(dashboard.Row("Queues, workers, database"))
    board = board.with_panel(
        timeseries_panel(
            "Queue depth (ready) by backend and queue",
            [
                (f"max by (queue) ({n(pgqueue.READY)}{{{QUEUE_SEL}}})", "pgqueue {{queue}}"),
                (
                    f'max by (queue) ({n(pgboss.JOBS)}{{{QUEUE_SEL}, state="ready"}})',
                    "pg-boss {{queue}}",
                ),
                (
                    f"max by (task_queue) ({n(temporal.BACKLOG)}{{{SEL}}})",
                    "temporal {{task_queue}}",
                ),
            ],
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Oldest ready job age",
            [
                (f"max by (queue) ({n(pgqueue.OLDEST_READY)}{{{QUEUE_SEL}}})", "pgqueue {{queue}}"),
                (f"max by (queue) ({n(pgboss.OLDEST_READY)}{{{QUEUE_SEL}}})", "pg-boss {{queue}}"),
                (
                    f"max by (task_queue) ({n(temporal.BACKLOG_AGE)}{{{SEL}}})",
                    "temporal {{task_queue}}",
                ),
            ],
            "s",
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Workers alive and crashed",
            [
                (f"max({n(pgqueue.WORKERS)}{{{SEL}}})", "pgqueue workers alive"),
                (f"max({n(pgqueue.CRASHES)}{{{SEL}}})", "pgqueue crashes (recent window)"),
                (f"max({n(pgboss.INSTANCES)}{{{SEL}}})", "pg-boss instances alive"),
                (f"max({n(pgboss.CRASH_RESTARTS)}{{{SEL}}})", "pg-boss crash restarts"),
            ],
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Database connections in use / available",
            [
                (
                    f"sum(max by (state, application) ({n(postgres.CONNECTIONS)}{{{SEL}}}))"
                    f" / max({n(postgres.AVAILABLE)}{{{SEL}}})",
                    "in use / available",
                ),
            ],
            "percentunit",
        )
    )
    return board


def queues() -> Any:
    dashboard, _, _, _, _ = _sdk()
    board = base_dashboard(
        "jobsight-queues",
        "jobsight / Queues",
        "Per queue: pgqueue and pg-boss depth, age, expiry and failures.",
        ("queue",),
    )
    board = board.with_row(dashboard.Row("pgqueue"))
    board = board.with_panel(
        timeseries_panel(
            "pgqueue jobs by queue and state",
            [(f"max by (queue, state) ({n(pgqueue.DEPTH)}{{{QUEUE_SEL}}})", "{{queue}} {{state}}")],
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "pgqueue ready and oldest ready age",
            [
                (f"max by (queue) ({n(pgqueue.READY)}{{{QUEUE_SEL}}})", "{{queue}} ready"),
                (
                    f"max by (queue) ({n(pgqueue.OLDEST_READY)}{{{QUEUE_SEL}}})",
                    "{{queue}} oldest (s)",
                ),
            ],
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "pgqueue recent failures, dead letters, expired",
            [
                (f"max by (queue) ({n(pgqueue.RECENT_FAILED)}{{{QUEUE_SEL}}})", "{{queue}} failed"),
                (
                    f"max by (queue) ({n(pgqueue.RECENT_DEAD)}{{{QUEUE_SEL}}})",
                    "{{queue}} dead-lettered",
                ),
                (
                    f"max by (queue) ({n(pgqueue.EXPIRED)}{{{QUEUE_SEL}}})",
                    "{{queue}} active past expiry",
                ),
            ],
        )
    )
    board = board.with_row(dashboard.Row("pg-boss"))
    board = board.with_panel(
        timeseries_panel(
            "pg-boss jobs by queue and state",
            [(f"max by (queue, state) ({n(pgboss.JOBS)}{{{QUEUE_SEL}}})", "{{queue}} {{state}}")],
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "pg-boss completed and failed / s",
            [
                (
                    f"max by (queue) (rate({n(pgboss.COMPLETED)}{{{QUEUE_SEL}}}[{RATE}]))",
                    "{{queue}} completed",
                ),
                (
                    f"max by (queue) (rate({n(pgboss.FAILED)}{{{QUEUE_SEL}}}[{RATE}]))",
                    "{{queue}} failed",
                ),
            ],
            "ops",
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "pg-boss wait and run p95",
            [
                (f"max by (queue) ({n(pgboss.WAIT_P95)}{{{QUEUE_SEL}}})", "{{queue}} wait p95"),
                (f"max by (queue) ({n(pgboss.RUN_P95)}{{{QUEUE_SEL}}})", "{{queue}} run p95"),
            ],
            "s",
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "pg-boss oldest ready and active past expiry",
            [
                (
                    f"max by (queue) ({n(pgboss.OLDEST_READY)}{{{QUEUE_SEL}}})",
                    "{{queue}} oldest (s)",
                ),
                (f"max by (queue) ({n(pgboss.EXPIRED)}{{{QUEUE_SEL}}})", "{{queue}} past expiry"),
            ],
        )
    )
    return board


def temporal_dashboard() -> Any:
    dashboard, _, _, _, _ = _sdk()
    board = base_dashboard(
        "jobsight-temporal",
        "jobsight / Temporal",
        "Workflows by status, task-queue backlog and pollers.",
        ("job_name",),
    )
    board = board.with_row(dashboard.Row("Workflows"))
    board = board.with_panel(
        timeseries_panel(
            "Workflows by status",
            [(f"max by (status) ({n(temporal.WORKFLOWS)}{{{SEL}}})", "{{status}}")],
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Long-running and recently failed workflows",
            [
                (f"max({n(temporal.LONG_RUNNING)}{{{SEL}}})", "running too long"),
                (f"max by (status) ({n(temporal.RECENT_CLOSED)}{{{SEL}}})", "recent {{status}}"),
            ],
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Temporal jobs completed / s by job name",
            [
                (
                    f'max by (job_name) (rate({n(jobs.COMPLETED)}{{{SEL}, job_name=~"$job_name", '
                    f'runner="temporal"}}[{RATE}]))',
                    "{{job_name}}",
                )
            ],
            "ops",
            links=temporal_links("job_name"),
        )
    )
    board = board.with_row(dashboard.Row("Circuit breaker (runner processes)"))
    board = board.with_panel(
        timeseries_panel(
            "Runner processes by breaker state",
            [(f'max by (state) ({n(breakers.BREAKERS)}{{{SEL}, engine="temporal"}})', "{{state}}")],
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Jobs sent to pgqueue instead / s",
            [
                (
                    f'max(rate({n(breakers.FALLBACKS)}{{{SEL}, engine="temporal"}}[{RATE}]))',
                    "fallbacks",
                )
            ],
            "ops",
        )
    )
    board = board.with_row(dashboard.Row("Task queues"))
    board = board.with_panel(
        timeseries_panel(
            "Backlog", [(f"max by (task_queue) ({n(temporal.BACKLOG)}{{{SEL}}})", "{{task_queue}}")]
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Backlog age",
            [(f"max by (task_queue) ({n(temporal.BACKLOG_AGE)}{{{SEL}}})", "{{task_queue}}")],
            "s",
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Pollers",
            [
                (
                    f"max by (task_queue, task_type) ({n(temporal.POLLERS)}{{{SEL}}})",
                    "{{task_queue}} {{task_type}}",
                )
            ],
        )
    )
    return board


def sidecar() -> Any:
    board = base_dashboard(
        "jobsight-sidecar",
        "jobsight / Sidecar",
        "Is the sidecar itself healthy: sources, polls, leadership.",
    )
    board = board.with_panel(
        timeseries_panel(
            "Sources up", [(f"min by (source) ({n(collector.SOURCE_UP)}{{{SEL}}})", "{{source}}")]
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Poll duration",
            [(f"max by (source) ({n(collector.SOURCE_DURATION)}{{{SEL}}})", "{{source}}")],
            "s",
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Time since last successful poll",
            [
                (
                    f"time() - max by (source) ({n(collector.SOURCE_LAST_SUCCESS)}{{{SEL}}})",
                    "{{source}}",
                )
            ],
            "s",
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Leaders and followers",
            [
                (f"sum({n(collector.LEADER)}{{{SEL}}})", "leaders"),
                (f"count({n(collector.LEADER)}{{{SEL}}} == 0)", "followers"),
            ],
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Counting lag (commit horizon)", [(f"max({n(jobs.COUNTING_LAG)}{{{SEL}}})", "lag")], "s"
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Settings reloads",
            [
                (f"min({n(collector.RELOAD_OK)}{{{SEL}}})", "last reload successful"),
                (
                    f"time() - max({n(collector.RELOAD_SUCCESS_AT)}{{{SEL}}})",
                    "seconds since the last good load",
                ),
            ],
        )
    )
    board = board.with_panel(
        timeseries_panel(
            "Sidecar versions",
            [
                (
                    f"count by (version, group) ({n(collector.BUILD_INFO)}{{{SEL}}})",
                    "{{version}} ({{group}})",
                )
            ],
        )
    )
    return board


DASHBOARDS = (
    ("jobsight-overview", "jobsight / Overview"),
    ("jobsight-queues", "jobsight / Queues"),
    ("jobsight-temporal", "jobsight / Temporal"),
    ("jobsight-sidecar", "jobsight / Sidecar"),
)
BUILDERS = {
    "jobsight-overview": overview,
    "jobsight-queues": queues,
    "jobsight-temporal": temporal_dashboard,
    "jobsight-sidecar": sidecar,
}


def render_all() -> dict[str, str]:
    """file name -> dashboard JSON, deterministic."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    files = {}
    for uid, build in BUILDERS.items():
        model = json.loads(json.dumps(build().build(), cls=JSONEncoder))
        for variable in model.get("templating", {}).get("list", []):
            if variable.get("type") != "interval":  # the SDK adds interval-only fields to all
                for key in INTERVAL_ONLY:
                    variable.pop(key, None)
        files[f"{uid}.json"] = json.dumps(model, indent=2, sort_keys=True) + "\n"
    return files


def expressions(dashboard_json: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(panel title, its PromQL expressions) for every panel of a generated dashboard."""
    found = []
    for panel in dashboard_json.get("panels", []):
        exprs = [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
        if exprs:
            found.append((panel["title"], exprs))
    return found
