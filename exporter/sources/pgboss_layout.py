"""Where a pg-boss release keeps its jobs, named as pg-boss 10 and later name them.

pg-boss 10 and later (schema 24 on) write snake_case columns (`started_on`, `completed_on`) and
keep a `queue` table. pg-boss 7.4 to 9 (schema 20) wrote their columns unquoted in camel case,
so PostgreSQL folded them to `startedon`, `completedon`, `startafter`, `expirein`; they have no
queue table; their internal work (maintenance, cron, the `__state__completed__` notices of
onComplete) is jobs in the same table; and a job whose retries ran out on its expiry ends as
`expired`, which is a failure. The legacy layout is read through a subquery that renames the
columns, counts `expired` as `failed` and leaves the internal jobs out: PostgreSQL flattens it,
so the queries built on it plan as over the table itself.

Which layout is decided by the columns present, never by trusting the version number alone.
Every name here is a validated identifier or this module's text."""

from __future__ import annotations

from dataclasses import dataclass

LEGACY_SCHEMA = 20  # pg-boss 7.4 to 9.x
OLDEST_MODERN = 24  # pg-boss 10.1.5 (10.0 to 10.1.1 wrote 21 to 23: not read)
LEGACY_JOB_COLUMNS = frozenset({"name", "state", "startafter", "startedon", "completedon"})
MODERN_JOB_COLUMNS = frozenset({"name", "state", "start_after", "started_on", "completed_on"})
INTERNAL_PREFIXES = ("__pgboss__", "__state__")  # pg-boss 9's own jobs, not an application's
NO_QUEUES = "(SELECT NULL::text AS name WHERE false)"


def quoted(schema: str) -> str:
    """The pg-boss schema in SQL: a plain identifier validated by the settings, quoted."""
    return '"' + schema + '"'


class LayoutError(ValueError):
    """The schema is of a version this source does not read, or lacks the columns it needs."""


@dataclass(frozen=True)
class BossLayout:
    """SQL relations to read from: `job` and `archive` (None: no archive to read) with the
    columns name, state, start_after, started_on, completed_on, expire_in (or expire_seconds),
    archive also archived_on; `queue` with a `name` column (empty where pg-boss has none)."""

    job: str
    archive: str | None
    queue: str
    legacy: bool = False


def _legacy_jobs(schema: str, table: str, archived: bool) -> str:
    state = f"CASE WHEN state = 'expired' THEN 'failed'::{quoted(schema)}.job_state ELSE state END"
    internal = " AND ".join(f"NOT starts_with(name, '{p}')" for p in INTERNAL_PREFIXES)
    extra = ", archivedon AS archived_on" if archived else ""
    renamed = (
        "startafter AS start_after, startedon AS started_on, completedon AS completed_on, "
        f"expirein AS expire_in{extra}"
    )
    source = f"{quoted(schema)}.{table}"
    return f"(SELECT id, name, {state} AS state, {renamed} FROM {source} WHERE {internal})"  # noqa: S608


def layout(schema: str, version: int | None, columns: dict[str, set[str]]) -> BossLayout:
    """The layout of the pg-boss schema `schema` at `version`, given its tables' columns."""
    job = columns.get("job", set())
    archive = columns.get("archive", set())
    if version == LEGACY_SCHEMA and LEGACY_JOB_COLUMNS <= job:
        return BossLayout(
            _legacy_jobs(schema, "job", archived=False),
            _legacy_jobs(schema, "archive", archived=True) if "archivedon" in archive else None,
            NO_QUEUES,
            legacy=True,
        )
    if version is not None and version >= OLDEST_MODERN and MODERN_JOB_COLUMNS <= job:
        return BossLayout(
            f"{quoted(schema)}.job",
            f"{quoted(schema)}.archive" if "archived_on" in archive else None,
            f"{quoted(schema)}.queue" if "queue" in columns else NO_QUEUES,
        )
    wanted = LEGACY_JOB_COLUMNS if version == LEGACY_SCHEMA else MODERN_JOB_COLUMNS
    missing = f"; its job table lacks {sorted(wanted - job)}" if wanted - job else ""
    raise LayoutError(
        f"pg-boss schema version {version} in {schema!r} is not read: jobsight reads schema "
        f"{LEGACY_SCHEMA} (pg-boss 7.4 to 9) and {OLDEST_MODERN} or later (pg-boss 10.1.5 on)"
        f"{missing}"
    )
