"""The sidecar's settings: one table of every setting (its environment name, YAML key, default
and meaning), read from the environment and an optional YAML file, validated once into a typed,
frozen object. A bad value raises SettingError naming the setting and the value.

Precedence: environment, then the YAML file (JOBSIGHT_CONFIG), then the default. The README's
settings table is checked against SETTINGS by a test, so the two cannot drift.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from jobsight import dburl
from jobsight.health import specs as trigger_specs
from jobsight.health.specs import TriggerConfig
from jobsight.health.state import VERDICT_STATES

SOURCE_NAMES = ("jobs", "pgqueue", "pgboss", "postgres", "temporal")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_INSTANCE = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")


class SettingError(Exception):
    """A setting is missing or invalid; the message names it and the bad value."""


def parse_duration(text: str) -> float:
    """'15s', '500ms', '2m', '1h', '1d' or plain seconds -> seconds (> 0)."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError("must be a duration such as 500ms, 15s, 2m, 1h")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("must be greater than zero")
    return seconds


def _positive_int(text: str) -> int:
    value = int(str(text).strip())
    if value < 1:
        raise ValueError("must be a whole number >= 1")
    return value


def _port(text: str) -> int:
    value = int(str(text).strip())
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port, 0-65535 (0: any free port)")
    return value


def _bool(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _text(text: str) -> str:
    return str(text).strip()


def _identifier(text: str) -> str:
    value = str(text).strip()
    if not _NAME.match(value):
        raise ValueError("must be a plain SQL identifier (letters, digits, _; at most 63)")
    return value


def _instance(text: str) -> str:
    value = str(text).strip()
    if not _INSTANCE.match(value):
        raise ValueError("must be 1-63 characters of letters, digits, '.', '_' or '-'")
    return value


def _list(text: str | list[str]) -> tuple[str, ...]:
    items = text if isinstance(text, list) else str(text).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def _sources(text: str | list[str]) -> tuple[str, ...]:
    chosen = _list(text)
    if chosen == ("auto",):
        return ("auto",)
    unknown = [name for name in chosen if name not in SOURCE_NAMES]
    if unknown:
        raise ValueError(f"unknown source {unknown[0]!r}; choose from {', '.join(SOURCE_NAMES)}")
    return chosen


def _database_url(text: str) -> str:
    return dburl.check(str(text).strip()) if str(text).strip() else ""


def _log_level(text: str) -> str:
    value = str(text).strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be debug, info, warning or error")
    return value


def _duration_or_zero(text: str) -> float:
    return 0.0 if str(text).strip() in ("0", "0s") else parse_duration(text)


def _readiness(text: str) -> str:
    value = str(text).strip().lower()
    if value not in ("never", "rollback", "degraded"):
        raise ValueError("must be never, rollback or degraded")
    return value


def _verdicts(text: str | list[str]) -> tuple[str, ...]:
    chosen = _list(text)
    bad = [v for v in chosen if v not in VERDICT_STATES]
    if bad or not chosen:
        raise ValueError(f"must name verdicts among {', '.join(VERDICT_STATES)}")
    return chosen


def _ratio(text: str) -> float:
    raw = str(text).strip()
    value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    if not 0 <= value <= 1:
        raise ValueError("must be a ratio between 0 and 1 (or a percentage such as 5%)")
    return value


def _count(text: str) -> float:
    value = float(str(text).strip())
    if value < 0:
        raise ValueError("must be a number >= 0")
    return value


def _overrides(text: str | dict[str, str]) -> tuple[tuple[str, float, float | None], ...]:
    """'import=10m:30m,batch=2m' (YAML: a mapping name: "10m:30m") -> per-name thresholds."""
    items = (
        list(text.items())
        if isinstance(text, dict)
        else [part.split("=", 1) for part in str(text).split(",") if part.strip()]
    )
    result = []
    for item in items:
        if len(item) != 2 or not str(item[0]).strip():
            raise ValueError("must be name=degraded[:rollback], comma-separated")
        name, spec = str(item[0]).strip(), str(item[1]).strip()
        degraded, _, rollback = spec.partition(":")
        result.append(
            (name, parse_duration(degraded), parse_duration(rollback) if rollback else None)
        )
    return tuple(result)


_THRESHOLD_PARSERS = {"ratio": _ratio, "jobs": _count, "crashes": _count, "seconds": parse_duration}


def _plain(value: float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


def _shown(value: float | None, unit: str) -> str:
    return f"{_plain(value)}s" if unit == "seconds" else _plain(value)


def trigger_settings() -> list[Setting]:
    """JOBSIGHT_<TRIGGER>_DEGRADED / _ROLLBACK / _WINDOW / _MIN_SAMPLE / _HOLD for every trigger,
    defaults from jobsight.health.specs."""
    found = []
    for spec in trigger_specs.TRIGGERS:
        env = f"JOBSIGHT_{spec.name.upper()}"
        parse = _THRESHOLD_PARSERS[spec.unit]
        found.append(
            Setting(
                f"{spec.name}_degraded",
                f"{env}_DEGRADED",
                _shown(spec.degraded, spec.unit),
                parse,
                f"{spec.name}: degraded above this ({spec.help})",
                group="triggers",
            )
        )
        if spec.rollback is not None:
            word = "at or above" if spec.rollback_inclusive else "above"
            found.append(
                Setting(
                    f"{spec.name}_rollback",
                    f"{env}_ROLLBACK",
                    _shown(spec.rollback, spec.unit),
                    parse,
                    f"{spec.name}: rollback {word} this",
                    group="triggers",
                )
            )
        if spec.window is not None:
            found.append(
                Setting(
                    f"{spec.name}_window",
                    f"{env}_WINDOW",
                    f"{_plain(spec.window)}s",
                    parse_duration,
                    f"{spec.name}: the window it looks back over",
                    group="triggers",
                )
            )
        if spec.min_sample is not None:
            found.append(
                Setting(
                    f"{spec.name}_min_sample",
                    f"{env}_MIN_SAMPLE",
                    str(spec.min_sample),
                    _positive_int,
                    f"{spec.name}: finished jobs needed in the window before it judges (below: ok)",
                    group="triggers",
                )
            )
        found.append(
            Setting(
                f"{spec.name}_hold",
                f"{env}_HOLD",
                "",
                _duration_or_zero,
                f"{spec.name}: hold time (default JOBSIGHT_TRIGGER_HOLD)",
                group="triggers",
            )
        )
    found.append(
        Setting(
            "latency_p95_overrides",
            "JOBSIGHT_LATENCY_P95_OVERRIDES",
            "",
            _overrides,
            "latency_p95 per job name: name=degraded[:rollback], e.g. import=10m:30m,batch=2m",
            group="triggers",
        )
    )
    return found


@dataclass(frozen=True)
class Setting:
    field: str  # attribute of SidecarSettings, and the key in the YAML file
    env: str
    default: str
    parse: Callable[[Any], Any]
    help: str
    secret: bool = False
    group: str = ""  # "triggers": collected into SidecarSettings.triggers


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database_url",
        "DATABASE_URL",
        "",
        _database_url,
        "PostgreSQL URL of the database the jobs live in (required; also holds the "
        "leader lock and the published state)",
        secret=True,
    ),
    Setting(
        "instance",
        "JOBSIGHT_INSTANCE",
        "default",
        _instance,
        "name of the group of sidecars that share one leader and one published state",
    ),
    Setting("host", "JOBSIGHT_HOST", "0.0.0.0", _text, "address the HTTP server listens on"),
    Setting("port", "JOBSIGHT_PORT", "9465", _port, "port of /metrics, /livez, /readyz, /"),
    Setting(
        "sources",
        "JOBSIGHT_SOURCES",
        "auto",
        _sources,
        "sources to poll, comma-separated; auto = jobs,pgqueue,pgboss,postgres, plus "
        "temporal when TEMPORAL_ADDRESS is set",
    ),
    Setting(
        "poll_interval",
        "JOBSIGHT_POLL_INTERVAL",
        "15s",
        parse_duration,
        "how often each source is polled (and followers read the leader's state)",
    ),
    Setting(
        "jobs_interval",
        "JOBSIGHT_JOBS_INTERVAL",
        "",
        parse_duration,
        "poll interval of the jobs source (default: JOBSIGHT_POLL_INTERVAL)",
    ),
    Setting(
        "pgqueue_interval",
        "JOBSIGHT_PGQUEUE_INTERVAL",
        "",
        parse_duration,
        "poll interval of the pgqueue source",
    ),
    Setting(
        "pgboss_interval",
        "JOBSIGHT_PGBOSS_INTERVAL",
        "",
        parse_duration,
        "poll interval of the pgboss source",
    ),
    Setting(
        "postgres_interval",
        "JOBSIGHT_POSTGRES_INTERVAL",
        "",
        parse_duration,
        "poll interval of the postgres source",
    ),
    Setting(
        "temporal_interval",
        "JOBSIGHT_TEMPORAL_INTERVAL",
        "",
        parse_duration,
        "poll interval of the temporal source",
    ),
    Setting(
        "poll_timeout",
        "JOBSIGHT_POLL_TIMEOUT",
        "10s",
        parse_duration,
        "a poll taking longer is abandoned and its source marked down",
    ),
    Setting(
        "statement_timeout",
        "JOBSIGHT_STATEMENT_TIMEOUT",
        "5s",
        parse_duration,
        "PostgreSQL statement_timeout of every query the sidecar runs",
    ),
    Setting(
        "stuck_after",
        "JOBSIGHT_STUCK_AFTER",
        "1h",
        parse_duration,
        "a job active longer than this counts as stuck",
    ),
    Setting(
        "recent_window",
        "JOBSIGHT_RECENT_WINDOW",
        "1h",
        parse_duration,
        "window of the 'recent' figures: worker crashes, recently failed workflows",
    ),
    Setting(
        "max_job_names",
        "JOBSIGHT_MAX_JOB_NAMES",
        "100",
        _positive_int,
        "distinct job / queue names exported; later ones are summed under 'other'",
    ),
    Setting(
        "max_applications",
        "JOBSIGHT_MAX_APPLICATIONS",
        "20",
        _positive_int,
        "distinct PostgreSQL application names exported; the rest under 'other'",
    ),
    Setting(
        "commit_lag",
        "JOBSIGHT_COMMIT_LAG",
        "5s",
        parse_duration,
        "finished jobs are counted once they are this old, so late commits are not missed",
    ),
    Setting(
        "max_commit_lag",
        "JOBSIGHT_MAX_COMMIT_LAG",
        "5m",
        parse_duration,
        "an open write transaction holds counting back at most this long",
    ),
    Setting(
        "max_finished_per_poll",
        "JOBSIGHT_MAX_FINISHED_PER_POLL",
        "50000",
        _positive_int,
        "finished jobs read per poll; the rest follow at the next poll",
    ),
    Setting(
        "pgboss_schema",
        "JOBSIGHT_PGBOSS_SCHEMA",
        "pgboss",
        _identifier,
        "schema of the pg-boss tables to watch",
    ),
    Setting(
        "temporal_address",
        "TEMPORAL_ADDRESS",
        "localhost:7233",
        _text,
        "Temporal frontend host:port",
    ),
    Setting("temporal_namespace", "TEMPORAL_NAMESPACE", "default", _text, "Temporal namespace"),
    Setting(
        "temporal_task_queues",
        "JOBSIGHT_TEMPORAL_TASK_QUEUES",
        "jobsight-jobs",
        _list,
        "task queues whose workflows, backlog and pollers are watched (comma-separated)",
    ),
    Setting("temporal_tls", "TEMPORAL_TLS", "false", _bool, "connect to Temporal over TLS"),
    Setting(
        "temporal_api_key",
        "TEMPORAL_API_KEY",
        "",
        _text,
        "API key for Temporal Cloud (implies TLS)",
        secret=True,
    ),
    Setting(
        "temporal_ui_url",
        "TEMPORAL_UI_URL",
        "",
        _text,
        "Temporal Web UI address, linked from the status page and dashboards",
    ),
    Setting(
        "long_running_after",
        "JOBSIGHT_TEMPORAL_LONG_RUNNING_AFTER",
        "1h",
        parse_duration,
        "a workflow running longer than this counts as long-running",
    ),
    Setting(
        "traces",
        "JOBSIGHT_TRACES",
        "auto",
        _text,
        "export a trace per finished job over OTLP/HTTP: auto (when OTEL_EXPORTER_OTLP_"
        "[TRACES_]ENDPOINT is set and OTEL_TRACES_EXPORTER is not none), true, false",
    ),
    Setting(
        "max_traces_per_poll",
        "JOBSIGHT_MAX_TRACES_PER_POLL",
        "2000",
        _positive_int,
        "finished jobs turned into traces per poll; the rest follow at the next poll",
    ),
    Setting("log_level", "JOBSIGHT_LOG_LEVEL", "info", _log_level, "debug, info, warning, error"),
    Setting(
        "readiness_fail_on",
        "JOBSIGHT_READINESS_FAIL_ON",
        "never",
        _readiness,
        "make /readyz fail on a verdict: never (the default; see 'Readiness and rollback'), "
        "rollback, or degraded (degraded or worse)",
    ),
    Setting(
        "gate_halt_on",
        "JOBSIGHT_GATE_HALT_ON",
        "rollback,unknown",
        _verdicts,
        "verdicts on which the deployment gate (/gate) halts a rollout",
    ),
    Setting(
        "trigger_hold",
        "JOBSIGHT_TRIGGER_HOLD",
        "30s",
        _duration_or_zero,
        "how long a trigger's new state must persist before it takes effect (no flapping)",
    ),
    *trigger_settings(),
)


@dataclass(frozen=True)
class SidecarSettings:
    database_url: str = ""
    instance: str = "default"
    host: str = "0.0.0.0"
    port: int = 9465
    sources: tuple[str, ...] = ("jobs", "pgqueue", "pgboss", "postgres")
    poll_interval: float = 15.0
    jobs_interval: float | None = None
    pgqueue_interval: float | None = None
    pgboss_interval: float | None = None
    postgres_interval: float | None = None
    temporal_interval: float | None = None
    poll_timeout: float = 10.0
    statement_timeout: float = 5.0
    stuck_after: float = 3600.0
    recent_window: float = 3600.0
    max_job_names: int = 100
    max_applications: int = 20
    commit_lag: float = 5.0
    max_commit_lag: float = 300.0
    max_finished_per_poll: int = 50000
    pgboss_schema: str = "pgboss"
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queues: tuple[str, ...] = ("jobsight-jobs",)
    temporal_tls: bool = False
    temporal_api_key: str = ""
    temporal_ui_url: str = ""
    long_running_after: float = 3600.0
    traces: bool = False
    max_traces_per_poll: int = 2000
    log_level: str = "INFO"
    readiness_fail_on: str = "never"
    gate_halt_on: tuple[str, ...] = ("rollback", "unknown")
    trigger_hold: float = 30.0
    triggers: dict[str, TriggerConfig] = field(default_factory=trigger_specs.default_configs)

    def interval(self, source: str) -> float:
        own = getattr(self, f"{source}_interval", None)  # traces: the general interval
        return own if own is not None else self.poll_interval

    @property
    def leader_check_interval(self) -> float:
        """How often leadership is checked: a dead leader is replaced within two of these."""
        return min(self.interval(name) for name in self.sources) if self.sources else 15.0


def load_settings(environ: Mapping[str, str], config_path: str | None = None) -> SidecarSettings:
    """Environment over the YAML file over defaults; raises SettingError on the first bad one."""
    path = config_path or environ.get("JOBSIGHT_CONFIG", "")
    from_file = _read_yaml(path) if path else {}
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        raw: Any = environ.get(setting.env)
        where = setting.env
        if raw is None and setting.field in from_file:
            raw, where = from_file[setting.field], f"{path}: {setting.field}"
        if raw is None or (isinstance(raw, str) and raw == "" and setting.default == ""):
            raw, where = setting.default, setting.env
            if raw == "":
                continue
        try:
            values[setting.field] = setting.parse(raw)
        except (ValueError, TypeError) as exc:
            shown = "***" if setting.secret else repr(raw)[:80]
            raise SettingError(f"{where}: {exc} (got {shown})") from None
    values["sources"] = _resolve_sources(values["sources"], environ, from_file)
    values["traces"] = _resolve_traces(values["traces"], environ)
    grouped = {st.field for st in SETTINGS if st.group == "triggers"}
    trigger_values = {k: values.pop(k) for k in list(values) if k in grouped}
    values["triggers"] = _trigger_configs(trigger_values, values.get("trigger_hold", 30.0))
    settings = SidecarSettings(**values)
    _check_together(settings)
    return settings


def _trigger_configs(values: dict[str, Any], hold: float) -> dict[str, TriggerConfig]:
    configs = {}
    for spec in trigger_specs.TRIGGERS:
        degraded = values.get(f"{spec.name}_degraded", spec.degraded)
        rollback = values.get(f"{spec.name}_rollback", spec.rollback)
        if rollback is not None and rollback < degraded:
            raise SettingError(
                f"JOBSIGHT_{spec.name.upper()}_ROLLBACK: must not be below "
                f"JOBSIGHT_{spec.name.upper()}_DEGRADED ({degraded})"
            )
        overrides = values.get("latency_p95_overrides", ()) if spec.name == "latency_p95" else ()
        configs[spec.name] = TriggerConfig(
            degraded,
            rollback,
            values.get(f"{spec.name}_window", spec.window),
            values.get(f"{spec.name}_min_sample", spec.min_sample),
            values.get(f"{spec.name}_hold", hold),
            overrides,
        )
    return configs


def _read_yaml(path: str) -> dict[str, Any]:
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise SettingError(f"JOBSIGHT_CONFIG: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SettingError(f"JOBSIGHT_CONFIG: {path} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise SettingError(f"JOBSIGHT_CONFIG: {path} must hold a mapping of settings")
    known = {setting.field for setting in SETTINGS}
    for key in loaded:
        if key not in known:
            raise SettingError(f"{path}: unknown setting {key!r}")
    return {key: value for key, value in loaded.items() if value is not None}


def _resolve_sources(
    chosen: tuple[str, ...], environ: Mapping[str, str], from_file: Mapping[str, Any]
) -> tuple[str, ...]:
    if chosen != ("auto",):
        return chosen
    with_temporal = "TEMPORAL_ADDRESS" in environ or "temporal_address" in from_file
    return ("jobs", "pgqueue", "pgboss", "postgres") + (("temporal",) if with_temporal else ())


def _resolve_traces(choice: str, environ: Mapping[str, str]) -> bool:
    lowered = choice.lower()
    if lowered == "auto":
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return bool(endpoint) and environ.get("OTEL_TRACES_EXPORTER", "otlp") != "none"
    try:
        return _bool(lowered)
    except ValueError:
        raise SettingError(
            f"JOBSIGHT_TRACES: must be auto, true or false (got {choice!r})"
        ) from None


def _check_together(settings: SidecarSettings) -> None:
    if not settings.sources:
        raise SettingError("JOBSIGHT_SOURCES: choose at least one source")
    if not settings.database_url:
        raise SettingError("DATABASE_URL: not set (the sidecar's sources, leader and state)")
    host, _, port = settings.temporal_address.rpartition(":")
    if "temporal" in settings.sources and (not host or not port.isdigit()):
        raise SettingError(
            f"TEMPORAL_ADDRESS: must be host:port (got {settings.temporal_address!r})"
        )
    if settings.commit_lag > settings.max_commit_lag:
        raise SettingError("JOBSIGHT_COMMIT_LAG: must not exceed JOBSIGHT_MAX_COMMIT_LAG")


def settings_fields() -> set[str]:
    return {f.name for f in fields(SidecarSettings)}
