"""Canned snapshots for the pure tests of the triggers, the verdict and the readers: every source
up, with the rows a test asks for."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from jobsight.settings import SidecarSettings, load_settings
from jobsight.sources import jobs, pgboss, pgqueue, postgres, temporal
from jobsight.sources.finished import FinishedCursor
from jobsight.sources.pgboss_finished import CountTiming, QueueFinished, WindowCount
from jobsight.sources.status import SourceStatus, SourceView
from jobsight.sources.versions import StuckRow

NOW = 1_800_000_000.0
T0 = datetime(2026, 11, 23, tzinfo=UTC)
BASE = load_settings({"DATABASE_URL": "postgresql://u@h/d", "TEMPORAL_ADDRESS": "t:1"})
WINDOWS = (300.0, 600.0)  # the default triggers' windows (error rate and p95; stalled)


def up(snapshot: object) -> SourceView:
    return SourceView(snapshot, SourceStatus(True, NOW - 1, NOW - 1, 0.01))


def window_row(
    name: str,
    finished: int,
    failed: int,
    p95: float | None = 1.0,
    version: str | None = None,
    last: float | None = NOW - 10,
) -> jobs.WindowRow:
    return jobs.WindowRow(name, version, finished, failed, finished - failed, p95, last)


def views(
    rows: Iterable[jobs.WindowRow] = (),
    unfinished: Iterable[jobs.UnfinishedRow] = (),
    stuck: Iterable[StuckRow] = (),
    queue_rows: Iterable[pgqueue.QueueRow] = (),
    crashes: int = 0,
    boss_queues: Iterable[pgboss.BossQueueRow] = (),
    boss_finished: tuple[int, int] | None = None,  # pg-boss jobs finished, failed in each window
    backlog: int = 0,
    in_use: int = 10,
    max_connections: int = 100,
) -> dict[str, SourceView]:
    windows = [jobs.WindowStats(seconds, list(rows)) for seconds in WINDOWS]
    return {
        "jobs": up(
            jobs.JobsSnapshot(
                FinishedCursor(T0),
                unfinished=list(unfinished),
                windows=windows,
                stuck=list(stuck),
            )
        ),
        "pgqueue": up(pgqueue.PgQueueSnapshot(queues=list(queue_rows), worker_crashes=crashes)),
        "pgboss": up(
            pgboss.PgBossSnapshot(
                queues=list(boss_queues),
                counted=CountTiming(NOW, 0.01, True) if boss_finished else None,
                finished=[
                    QueueFinished(
                        "emails", windows=[WindowCount(w, *boss_finished) for w in WINDOWS]
                    )
                ]
                if boss_finished
                else [],
            )
        ),
        "postgres": up(
            postgres.PostgresSnapshot(
                [postgres.ConnectionRow("active", "app", in_use)], max_connections, 0
            )
        ),
        "temporal": up(
            temporal.TemporalSnapshot(task_queues=[temporal.TaskQueueRow("q", backlog)])
        ),
    }


FINISHED_AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PLAIN = SidecarSettings(database_url="postgresql://x@localhost/db")  # every default


def finished_rows(
    n: int,
    name: str = "generate-invoice",
    status: str = "completed",
    run_s: float = 0.2,
    runner: str = "pgqueue",
) -> list[jobs.FinishedRow]:
    """`n` jobs finished a millisecond apart from FINISHED_AT, as the jobs source reads them."""
    return [
        jobs.FinishedRow(
            f"00000000-0000-4000-8000-{i:012d}",
            name,
            runner,
            status,
            run_s,
            0.05,
            FINISHED_AT + timedelta(milliseconds=i),
        )
        for i in range(n)
    ]
