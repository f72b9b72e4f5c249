"""The sidecar's settings object: every setting declared once, as a field (settings/declare.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from jobsight.health.objectives import Objective
from jobsight.health.specs import TriggerConfig, default_configs
from jobsight.runners import defaults
from jobsight.settings import parsing as parse
from jobsight.settings.declare import DECLARATION, Setting, setting


@dataclass(frozen=True)
class SidecarSettings:
    database_url: str = setting(
        "DATABASE_URL",
        "",
        parse.database_url,
        "PostgreSQL URL of the database the jobs live in (required; also holds the leader lock "
        "and the published state)",
        secret=True,
        value="",
    )
    instance: str = setting(
        "JOBSIGHT_INSTANCE",
        "default",
        parse.instance_name,
        "name of the group of sidecars that share one leader and one published state",
    )
    host: str = setting(
        "JOBSIGHT_HOST",
        "0.0.0.0",
        parse.plain_text,
        "address the HTTP server listens on",
    )
    port: int = setting(
        "JOBSIGHT_PORT",
        "9465",
        parse.port,
        "port of /metrics, /livez, /readyz, /",
    )
    web_config_file: str = setting(
        "JOBSIGHT_WEB_CONFIG_FILE",
        "",
        parse.plain_text,
        "the Prometheus exporters' web configuration file (TLS, client certificates, basic "
        "auth users); also `serve --web.config.file` (docs/security.md)",
        value="",
    )
    max_connections: int = setting(
        "JOBSIGHT_MAX_CONNECTIONS",
        "256",
        parse.positive_int,
        "HTTP connections open at once (lowered to fit the file limit); when full, the one "
        "waiting longest for its request is closed to make room",
    )
    request_timeout: float = setting(
        "JOBSIGHT_REQUEST_TIMEOUT",
        "10s",
        parse.parse_duration,
        "a client has this long from a request's first byte to send its whole head (and the "
        "body of a POST), else the connection is closed",
    )
    sources: tuple[str, ...] = setting(
        "JOBSIGHT_SOURCES",
        "auto",
        parse.source_names,
        "sources to poll, comma-separated; auto = jobs,pgqueue,pgboss,postgres, plus temporal "
        "when TEMPORAL_ADDRESS or JOBSIGHT_TEMPORAL_HTTP_ADDRESS is set",
        value=("jobs", "pgqueue", "pgboss", "postgres"),
    )
    poll_interval: float = setting(
        "JOBSIGHT_POLL_INTERVAL",
        "15s",
        parse.parse_duration,
        "how often each source is polled (and followers read the leader's state)",
    )
    jobs_interval: float | None = setting(
        "JOBSIGHT_JOBS_INTERVAL",
        "",
        parse.parse_duration,
        "poll interval of the jobs source (default: JOBSIGHT_POLL_INTERVAL)",
    )
    pgqueue_interval: float | None = setting(
        "JOBSIGHT_PGQUEUE_INTERVAL",
        "",
        parse.parse_duration,
        "poll interval of the pgqueue source",
    )
    pgboss_interval: float | None = setting(
        "JOBSIGHT_PGBOSS_INTERVAL",
        "",
        parse.parse_duration,
        "poll interval of the pgboss source",
    )
    postgres_interval: float | None = setting(
        "JOBSIGHT_POSTGRES_INTERVAL",
        "",
        parse.parse_duration,
        "poll interval of the postgres source",
    )
    temporal_interval: float | None = setting(
        "JOBSIGHT_TEMPORAL_INTERVAL",
        "",
        parse.parse_duration,
        "poll interval of the temporal source",
    )
    poll_timeout: float = setting(
        "JOBSIGHT_POLL_TIMEOUT",
        "10s",
        parse.parse_duration,
        "a poll taking longer is abandoned and its source marked down",
    )
    statement_timeout: float = setting(
        "JOBSIGHT_STATEMENT_TIMEOUT",
        "5s",
        parse.parse_duration,
        "PostgreSQL statement_timeout of every query the sidecar runs",
    )
    canary_window: float = setting(
        "JOBSIGHT_CANARY_WINDOW",
        "1h",
        parse.parse_duration,
        "how far back the canary analysis (`?version=&baseline=`) compares a canary with its "
        "baseline: make it cover the rollout",
    )
    canary_alpha: float = setting(
        "JOBSIGHT_CANARY_ALPHA",
        "0.01",
        parse.ratio,
        "chance of ever failing a canary that is no worse than its baseline (within the "
        "margins), however often it is asked",
    )
    canary_failure_margin: float = setting(
        "JOBSIGHT_CANARY_FAILURE_MARGIN",
        "1.0",
        parse.odds_margin,
        "odds ratio of failing (canary to baseline) tolerated before the canary counts as worse",
    )
    canary_slow_margin: float = setting(
        "JOBSIGHT_CANARY_SLOW_MARGIN",
        "1.2",
        parse.odds_margin,
        "odds ratio of a run above the job name's p95 (canary to baseline) tolerated",
    )
    canary_min_jobs: int = setting(
        "JOBSIGHT_CANARY_MIN_JOBS",
        "50",
        parse.positive_int,
        "canary jobs compared with the baseline before the analysis can pass (below: inconclusive)",
    )
    stuck_after: float = setting(
        "JOBSIGHT_STUCK_AFTER",
        "1h",
        parse.parse_duration,
        "a job active longer than this counts as stuck",
    )
    recent_window: float = setting(
        "JOBSIGHT_RECENT_WINDOW",
        "1h",
        parse.parse_duration,
        "window of the 'recent' figures: worker crashes, recently failed workflows",
    )
    max_job_names: int = setting(
        "JOBSIGHT_MAX_JOB_NAMES",
        "100",
        parse.positive_int,
        "distinct job / queue names exported; later ones are summed under 'other'",
    )
    max_applications: int = setting(
        "JOBSIGHT_MAX_APPLICATIONS",
        "20",
        parse.positive_int,
        "distinct PostgreSQL application names exported; the rest under 'other'",
    )
    commit_lag: float = setting(
        "JOBSIGHT_COMMIT_LAG",
        "5s",
        parse.parse_duration,
        "finished jobs are counted once they are this old, so late commits are not missed",
    )
    max_commit_lag: float = setting(
        "JOBSIGHT_MAX_COMMIT_LAG",
        "5m",
        parse.parse_duration,
        "an open write transaction holds counting back at most this long",
    )
    max_finished_per_poll: int = setting(
        "JOBSIGHT_MAX_FINISHED_PER_POLL",
        "50000",
        parse.positive_int,
        "finished jobs read per poll; the rest follow at the next poll",
    )
    pgboss_schema: str = setting(
        "JOBSIGHT_PGBOSS_SCHEMA",
        "pgboss",
        parse.identifier,
        "schema of the pg-boss tables to watch",
    )
    pgboss_scan_share: float = setting(
        "JOBSIGHT_PGBOSS_SCAN_SHARE",
        "0.05",
        parse.ratio,
        "where pg-boss's job table lacks the indexes of later pg-boss 12 releases, the largest "
        "share of time spent scanning it to count finished and failed jobs; a longer scan makes "
        "those numbers refresh less often, never miss a job (docs/pgboss.md)",
    )
    temporal_address: str = setting(
        "TEMPORAL_ADDRESS",
        defaults.TEMPORAL_ADDRESS,
        parse.plain_text,
        "Temporal frontend host:port",
    )
    temporal_http_address: str = setting(
        "JOBSIGHT_TEMPORAL_HTTP_ADDRESS",
        "",
        parse.plain_text,
        "host:port of Temporal's HTTP API (Temporal 1.22 or later, the frontend's httpPort, "
        "7243 by default); set, the temporal source reads Temporal over it and the sidecar never "
        "loads the Temporal SDK (about 25 MB less memory); empty, it reads over gRPC at "
        "TEMPORAL_ADDRESS with the SDK (docs/sidecar.md)",
        value="",
    )
    temporal_namespace: str = setting(
        "TEMPORAL_NAMESPACE",
        defaults.TEMPORAL_NAMESPACE,
        parse.plain_text,
        "Temporal namespace",
    )
    temporal_task_queues: tuple[str, ...] = setting(
        "JOBSIGHT_TEMPORAL_TASK_QUEUES",
        defaults.TEMPORAL_TASK_QUEUE,
        parse.comma_list,
        "task queues whose workflows, backlog and pollers are watched (comma-separated)",
    )
    temporal_tls: bool = setting(
        "TEMPORAL_TLS",
        "false",
        parse.boolean,
        "connect to Temporal over TLS",
    )
    temporal_tls_ca: str = setting(
        "TEMPORAL_TLS_CA",
        "",
        parse.plain_text,
        "PEM file of the CA that signed Temporal's certificate (implies TLS; default: the "
        "system's trust store)",
        value="",
    )
    temporal_tls_cert: str = setting(
        "TEMPORAL_TLS_CERT",
        "",
        parse.plain_text,
        "PEM file of the client certificate for mutual TLS (with TEMPORAL_TLS_KEY)",
        value="",
    )
    temporal_tls_key: str = setting(
        "TEMPORAL_TLS_KEY",
        "",
        parse.plain_text,
        "PEM file of the client certificate's private key (with TEMPORAL_TLS_CERT)",
        value="",
    )
    temporal_tls_server_name: str = setting(
        "TEMPORAL_TLS_SERVER_NAME",
        "",
        parse.plain_text,
        "the name to verify on Temporal's certificate (default: the address's host)",
        value="",
    )
    temporal_api_key: str = setting(
        "TEMPORAL_API_KEY",
        "",
        parse.plain_text,
        "API key for Temporal Cloud (implies TLS)",
        secret=True,
        value="",
    )
    temporal_ui_url: str = setting(
        "TEMPORAL_UI_URL",
        "",
        parse.plain_text,
        "Temporal Web UI address, linked from the status page and dashboards",
        value="",
    )
    objectives: tuple[Objective, ...] = setting(
        "JOBSIGHT_OBJECTIVES",
        "",
        parse.objectives,
        "objectives per job name, e.g. 'generate-invoice: 99.5% succeed, 95% start within 30s; "
        "import: 99% succeed' (YAML: a mapping of job name to its objectives); exported as "
        "jobsight_objective, which the generated burn-rate alerts read",
        value=(),
    )
    console: bool = setting(
        "JOBSIGHT_CONSOLE",
        "true",
        parse.boolean,
        "serve the operator console's pages (/queues, /failures, /schedules, /jobs) beside the "
        "status page; they read the jobs tables on request, through a pool of their own",
    )
    console_query_timeout: float = setting(
        "JOBSIGHT_CONSOLE_QUERY_TIMEOUT",
        "3s",
        parse.parse_duration,
        "longest a console page's query may run; a longer one is cancelled and the page says "
        "to narrow the search",
    )
    console_payloads: bool = setting(
        "JOBSIGHT_CONSOLE_PAYLOADS",
        "false",
        parse.boolean,
        "show jobs' payloads on the console's job pages (they may hold personal data)",
    )
    console_actions_database_url: str = setting(
        "JOBSIGHT_CONSOLE_ACTIONS_DATABASE_URL",
        "",
        parse.database_url,
        "PostgreSQL URL of a role that may change jobs: set, the console's operators can retry, "
        "cancel, pause and resume (empty: actions off). Needs users (JOBSIGHT_WEB_CONFIG_FILE) "
        "and JOBSIGHT_CONSOLE_OPERATORS",
        secret=True,
        value="",
    )
    console_operators: tuple[str, ...] = setting(
        "JOBSIGHT_CONSOLE_OPERATORS",
        "",
        parse.comma_list,
        "users of the web configuration who may run the console's actions, comma-separated",
        value=(),
    )
    console_handlers: str = setting(
        "JOBSIGHT_CONSOLE_HANDLERS",
        "",
        parse.plain_text,
        "module:attribute of the application's HandlerRegistry (as `jobsight worker "
        "--handlers`): lets the console retry Temporal jobs with their handlers' settings",
        value="",
    )
    trace_url: str = setting(
        "JOBSIGHT_TRACE_URL",
        "",
        parse.trace_url,
        "trace backend URL with {trace_id}, linked from each job (a job's trace id is its job "
        "id's 32 hex digits); empty: no link",
        value="",
    )
    long_running_after: float = setting(
        "JOBSIGHT_TEMPORAL_LONG_RUNNING_AFTER",
        "1h",
        parse.parse_duration,
        "a workflow running longer than this counts as long-running",
    )
    traces: bool = setting(
        "JOBSIGHT_TRACES",
        "auto",
        parse.plain_text,
        "export a trace per finished job over OTLP/HTTP: auto (when "
        "OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT is set and OTEL_TRACES_EXPORTER is not none), true, "
        "false",
        value=False,
    )
    max_traces_per_poll: int = setting(
        "JOBSIGHT_MAX_TRACES_PER_POLL",
        "2000",
        parse.positive_int,
        "finished jobs turned into traces per poll; the rest follow at the next poll",
    )
    log_level: str = setting(
        "JOBSIGHT_LOG_LEVEL",
        "info",
        parse.log_level,
        "debug, info, warning, error",
    )
    readiness_fail_on: str = setting(
        "JOBSIGHT_READINESS_FAIL_ON",
        "never",
        parse.readiness,
        "make /readyz fail on a verdict: never (the default; see 'Readiness and rollback'), "
        "rollback, or degraded (degraded or worse)",
    )
    gate_halt_on: tuple[str, ...] = setting(
        "JOBSIGHT_GATE_HALT_ON",
        "rollback,unknown,inconclusive",
        parse.verdict_names,
        "verdicts on which the deployment gate (/gate) halts a rollout",
    )
    trigger_hold: float = setting(
        "JOBSIGHT_TRIGGER_HOLD",
        "30s",
        parse.duration_or_zero,
        "how long a trigger's new state must persist before it takes effect (no flapping)",
    )
    triggers: dict[str, TriggerConfig] = field(default_factory=default_configs)

    def interval(self, source: str) -> float:
        own = getattr(self, f"{source}_interval", None)  # traces: the general interval
        return own if own is not None else self.poll_interval

    @property
    def leader_check_interval(self) -> float:
        """How often leadership is checked: a dead leader is replaced within two of these."""
        return min(self.interval(name) for name in self.sources) if self.sources else 15.0


def declared_settings() -> tuple[Setting, ...]:
    """The settings declared as fields of SidecarSettings, in declaration order."""
    return tuple(
        Setting(f.name, *f.metadata[DECLARATION])
        for f in fields(SidecarSettings)
        if DECLARATION in f.metadata
    )
