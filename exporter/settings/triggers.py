"""The trigger settings, made from the trigger specs (health/specs.py, where the defaults are
declared): JOBSIGHT_<TRIGGER>_DEGRADED / _ROLLBACK / _WINDOW / _MIN_SAMPLE / _HOLD, and the
per-job-name latency overrides; and the typed trigger configs they load into."""

from __future__ import annotations

from typing import Any

from jobsight.health import specs as trigger_specs
from jobsight.health.specs import TriggerConfig
from jobsight.settings import parsing as parse
from jobsight.settings.declare import Setting, SettingError

THRESHOLD_PARSERS = {
    "ratio": parse.ratio,
    "jobs": parse.count,
    "crashes": parse.count,
    "seconds": parse.parse_duration,
}


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
        parser = THRESHOLD_PARSERS[spec.unit]
        found.append(
            Setting(
                f"{spec.name}_degraded",
                f"{env}_DEGRADED",
                _shown(spec.degraded, spec.unit),
                parser,
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
                    parser,
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
                    parse.parse_duration,
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
                    parse.positive_int,
                    f"{spec.name}: finished jobs needed in the window before it judges (below: ok)",
                    group="triggers",
                )
            )
        found.append(
            Setting(
                f"{spec.name}_hold",
                f"{env}_HOLD",
                "",
                parse.duration_or_zero,
                f"{spec.name}: hold time (default JOBSIGHT_TRIGGER_HOLD)",
                group="triggers",
            )
        )
    found.append(
        Setting(
            "latency_p95_overrides",
            "JOBSIGHT_LATENCY_P95_OVERRIDES",
            "",
            parse.latency_overrides,
            "latency_p95 per job name: name=degraded[:rollback], e.g. import=10m:30m,batch=2m",
            group="triggers",
        )
    )
    return found


def trigger_configs(values: dict[str, Any], hold: float) -> dict[str, TriggerConfig]:
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
