"""The console's HTML: Jinja2 templates (package data), autoescaped, strict about undefined names,
with the helpers every page uses. `render` is pure: a template name and values in, HTML out."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from jobsight.console.charts import sparkline

if TYPE_CHECKING:
    import jinja2

# The pages in the navigation bar, in order: path, label.
NAV = (
    ("/", "Overview"),
    ("/queues", "Queues"),
    ("/failures", "Failures"),
    ("/schedules", "Schedules"),
    ("/jobs", "Jobs"),
    ("/audit", "Audit"),
)


def when(value: datetime | None, missing: str = "-") -> str:
    """A time to the second: UTC when it carries a zone, else as the database stored it."""
    if value is None:
        return missing
    if value.tzinfo is not None:
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return value.strftime("%Y-%m-%d %H:%M:%S")


def stamp(value: float | None) -> datetime | None:
    """A Unix time as a UTC datetime (for `when`)."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


@cache
def environment() -> jinja2.Environment:
    """Built on the first page asked for: a sidecar nobody browses never loads Jinja2 (some
    5 MB of its resident memory)."""
    import jinja2

    from jobsight.sidecar.pages import ago, fmt  # the status page's formats, one home

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("jobsight.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(fmt=fmt, ago=ago, spark=sparkline, nav=NAV, when=when, stamp=stamp)
    return env


def render(template: str, current: str = "", **values: Any) -> str:
    return environment().get_template(template).render(current=current, **values)
