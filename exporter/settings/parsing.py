"""Parsers of setting values: text (or YAML values) in, a typed value out, ValueError naming what
is expected otherwise. Pure."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from jobsight import dburl
from jobsight.health.state import VERDICT_STATES, State
from jobsight.runners.durations import parse_duration

__all__ = ["parse_duration"]  # re-exported: one parser of durations for every setting

if TYPE_CHECKING:
    from jobsight.health.objectives import Objective

SOURCE_NAMES = ("jobs", "pgqueue", "pgboss", "postgres", "temporal")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
INSTANCE = re.compile(r"^[A-Za-z0-9_.-]{1,63}$")


def positive_int(text: str) -> int:
    value = int(str(text).strip())
    if value < 1:
        raise ValueError("must be a whole number >= 1")
    return value


def port(text: str) -> int:
    value = int(str(text).strip())
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port, 0-65535 (0: any free port)")
    return value


def boolean(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def plain_text(text: str) -> str:
    return str(text).strip()


def identifier(text: str) -> str:
    value = str(text).strip()
    if not NAME.match(value):
        raise ValueError("must be a plain SQL identifier (letters, digits, _; at most 63)")
    return value


def instance_name(text: str) -> str:
    value = str(text).strip()
    if not INSTANCE.match(value):
        raise ValueError("must be 1-63 characters of letters, digits, '.', '_' or '-'")
    return value


def comma_list(text: str | list[str]) -> tuple[str, ...]:
    items = text if isinstance(text, list) else str(text).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def source_names(text: str | list[str]) -> tuple[str, ...]:
    chosen = comma_list(text)
    if chosen == ("auto",):
        return ("auto",)
    unknown = [name for name in chosen if name not in SOURCE_NAMES]
    if unknown:
        raise ValueError(f"unknown source {unknown[0]!r}; choose from {', '.join(SOURCE_NAMES)}")
    return chosen


def database_url(text: str) -> str:
    return dburl.check(str(text).strip(), setting="") if str(text).strip() else ""


def log_level(text: str) -> str:
    value = str(text).strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be debug, info, warning or error")
    return value


def duration_or_zero(text: str) -> float:
    return 0.0 if str(text).strip() in ("0", "0s") else parse_duration(text)


READINESS_CHOICES = ("never", State.ROLLBACK, State.DEGRADED)


def readiness(text: str) -> str:
    value = str(text).strip().lower()
    if value not in READINESS_CHOICES:
        raise ValueError("must be never, rollback or degraded")
    return value


def verdict_names(text: str | list[str]) -> tuple[str, ...]:
    chosen = comma_list(text)
    bad = [v for v in chosen if v not in VERDICT_STATES]
    if bad or not chosen:
        raise ValueError(f"must name verdicts among {', '.join(VERDICT_STATES)}")
    return chosen


def ratio(text: str) -> float:
    raw = str(text).strip()
    value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    if not 0 <= value <= 1:
        raise ValueError("must be a ratio between 0 and 1 (or a percentage such as 5%)")
    return value


def count(text: str) -> float:
    value = float(str(text).strip())
    if value < 0:
        raise ValueError("must be a number >= 0")
    return value


def latency_overrides(text: str | dict[str, str]) -> tuple[tuple[str, float, float | None], ...]:
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


def odds_margin(text: str) -> float:
    value = float(str(text).strip())
    if not 1.0 <= value <= 100.0:
        raise ValueError("must be an odds ratio from 1 (no margin) to 100")
    return value


def trace_url(text: str) -> str:
    """A trace backend's URL with `{trace_id}` where the trace's id goes (or empty: no links)."""
    value = str(text).strip()
    if value and (not value.startswith(("http://", "https://")) or value.count("{trace_id}") != 1):
        raise ValueError("must be an http(s) URL holding {trace_id} once, e.g. "
                         "https://grafana.example/explore?traceId={trace_id}")  # fmt: skip
    return value


def objectives(text: str | dict[str, str]) -> tuple[Objective, ...]:
    from jobsight.health.objectives import parse
    from jobsight.metric_spec import DURATION_BUCKETS

    return parse(text, DURATION_BUCKETS)
