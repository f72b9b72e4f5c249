"""Loading: environment over the YAML file (JOBSIGHT_CONFIG) over the declared defaults, validated
once into a frozen SidecarSettings. A bad value raises SettingError naming the setting and the
value (never a secret's)."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

from jobsight.settings import parsing as parse
from jobsight.settings.declare import Setting, SettingError
from jobsight.settings.sidecar import SidecarSettings, declared_settings
from jobsight.settings.triggers import trigger_configs, trigger_settings

SETTINGS: tuple[Setting, ...] = (*declared_settings(), *trigger_settings())
# JOBSIGHT_* variables read outside the sidecar's settings: the config file's path, the local
# stack (devstack/postgres.py, devstack/localstack.py) and the runners (runners/defaults.py).
OTHER_ENV_NAMES = ("JOBSIGHT_CONFIG", "JOBSIGHT_LOCAL_PG", "JOBSIGHT_PG_BINDIR",
                   "JOBSIGHT_WORKER_VERSION")  # fmt: skip


def check_env_names(environ: Mapping[str, str]) -> None:
    """Refuses a JOBSIGHT_* variable nobody reads (a typo would otherwise be ignored silently),
    naming the closest known one."""
    known = {setting.env for setting in SETTINGS} | set(OTHER_ENV_NAMES)
    for name in sorted(environ):
        if name.startswith("JOBSIGHT_") and name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise SettingError(f"{name}: not a jobsight setting{hint}")


def load_settings(environ: Mapping[str, str], config_path: str | None = None) -> SidecarSettings:
    """Environment over the YAML file over defaults; raises SettingError on the first bad one."""
    check_env_names(environ)
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
            shown = "" if setting.secret else f" (got {repr(raw)[:80]})"  # a secret's parser
            raise SettingError(f"{where}: {exc}{shown}") from None  # shows it redacted, if at all
    values["sources"] = _resolve_sources(values["sources"], environ, from_file)
    values["traces"] = _resolve_traces(values["traces"], environ)
    grouped = {st.field for st in SETTINGS if st.group == "triggers"}
    trigger_values = {k: values.pop(k) for k in list(values) if k in grouped}
    values["triggers"] = trigger_configs(trigger_values, values.get("trigger_hold", 30.0))
    settings = SidecarSettings(**values)
    _check_together(settings)
    return settings


def read_yaml_file(path: str, setting: str) -> Any:
    """A YAML file's document; a file that cannot be read, or is not YAML, is one SettingError
    line naming the setting, the file and (for YAML) the line and column."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise SettingError(f"{setting}: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise SettingError(f"{setting}: {path}{where}: {problem}") from None


def _read_yaml(path: str) -> dict[str, Any]:
    loaded = read_yaml_file(path, "JOBSIGHT_CONFIG")
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
    named = ("TEMPORAL_ADDRESS", "JOBSIGHT_TEMPORAL_HTTP_ADDRESS")
    with_temporal = any(name in environ for name in named) or any(
        name in from_file for name in ("temporal_address", "temporal_http_address")
    )
    return ("jobs", "pgqueue", "pgboss", "postgres") + (("temporal",) if with_temporal else ())


def _resolve_traces(choice: str, environ: Mapping[str, str]) -> bool:
    lowered = choice.lower()
    if lowered == "auto":
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get(
            "OTEL_EXPORTER_OTLP_ENDPOINT"
        )
        return bool(endpoint) and environ.get("OTEL_TRACES_EXPORTER", "otlp") != "none"
    try:
        return parse.boolean(lowered)
    except ValueError:
        raise SettingError(
            f"JOBSIGHT_TRACES: must be auto, true or false (got {choice!r})"
        ) from None


def _check_together(settings: SidecarSettings) -> None:
    if not settings.sources:
        raise SettingError("JOBSIGHT_SOURCES: choose at least one source")
    if not settings.database_url:
        raise SettingError("DATABASE_URL: not set (the sidecar's sources, leader and state)")
    if "temporal" in settings.sources:
        if settings.temporal_http_address:
            _check_address("JOBSIGHT_TEMPORAL_HTTP_ADDRESS", settings.temporal_http_address)
            slashed = [q for q in settings.temporal_task_queues if "/" in q]
            if slashed:
                raise SettingError(
                    f"JOBSIGHT_TEMPORAL_TASK_QUEUES: {slashed[0]!r} has a '/', which Temporal's "
                    "HTTP API cannot address; read it over gRPC (TEMPORAL_ADDRESS, without "
                    "JOBSIGHT_TEMPORAL_HTTP_ADDRESS)"
                )
        else:
            _check_address("TEMPORAL_ADDRESS", settings.temporal_address)
    if settings.commit_lag > settings.max_commit_lag:
        raise SettingError("JOBSIGHT_COMMIT_LAG: must not exceed JOBSIGHT_MAX_COMMIT_LAG")
    if settings.pgboss_scan_share <= 0:
        raise SettingError("JOBSIGHT_PGBOSS_SCAN_SHARE: must be above 0 (0 would never count)")


def _check_address(name: str, address: str) -> None:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "/" in address:
        raise SettingError(f"{name}: must be host:port (got {address!r})")


def settings_fields() -> set[str]:
    return {f.name for f in fields(SidecarSettings)}
