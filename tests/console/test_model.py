"""The console's pure parts: filters and cursors from URLs, the search's SQL, the overview's and
the failure groups' arithmetic, the charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest

from jobsight.console import model, queries
from jobsight.console.charts import sparkline
from jobsight.console.filters import Cursor, FilterError, JobFilter, parse_cursor, parse_filter

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_filter_round_trips_through_its_url() -> None:
    tenant = uuid4()
    where = parse_filter(
        {"name": " send-email ", "status": "failed", "tenant": str(tenant), "since": "1h",
         "until": "2026-11-30T11:30", "runner": "temporal"}, NOW,
    )  # fmt: skip
    assert where.name == "send-email" and where.statuses == ("failed",)
    assert where.since == NOW - timedelta(hours=1)
    assert where.until == datetime(2026, 11, 30, 11, 30, tzinfo=UTC)  # no zone: UTC
    assert parse_filter(where.query(), NOW) == where


@pytest.mark.parametrize(
    ("params", "named"),
    [({"status": "sleeping"}, "status"), ({"tenant": "42"}, "tenant"), ({"job_id": "x"}, "job_id"),
     ({"since": "last week"}, "since"), ({"runner": "cron"}, "runner"),
     ({"name": "a" * 201}, "name"), ({"version": "v\x001"}, "version")],
)  # fmt: skip
def test_bad_parameters_are_named(params: dict[str, str], named: str) -> None:
    with pytest.raises(FilterError, match=rf"^{named}:"):
        parse_filter(params, NOW)


def test_cursors_round_trip_and_forgeries_are_refused() -> None:
    cursor = Cursor(datetime(2026, 11, 30, 11, 59, 59, 123456), UUID(int=7))
    assert parse_cursor({"after": cursor.encode()}) == cursor
    for forged in ("%%%", "bm90IGEgY3Vyc29y", cursor.encode()[:-3]):
        with pytest.raises(FilterError, match=r"^after:"):
            parse_cursor({"after": forged})


def test_search_sql_takes_every_value_as_a_parameter() -> None:
    hostile = "x'); DROP TABLE jobs; --"
    sql, args = queries.search_sql(
        JobFilter(name=hostile, version=hostile, status="waiting"),
        Cursor(NOW.replace(tzinfo=None), UUID(int=1)),
        51,
    )
    assert hostile not in sql and args.count(hostile) == 2
    assert "status IN ('pending', 'queued')" in sql  # constants of the module, not input
    assert sql.endswith(f"LIMIT ${len(args)}") and args[-1] == 51


def test_overview_buckets_land_oldest_first() -> None:
    now = NOW.timestamp()
    newest = int(now // queries.BUCKET_S)
    rows = [
        queries.BucketRow("a", None, None, None, False, 30, 3, 2.0, 0.5),
        queries.BucketRow("a", None, None, newest, False, 20, 2, 1.0, 0.1),
        queries.BucketRow("a", None, None, newest - 11, False, 10, 1, 3.0, 0.2),
        queries.BucketRow("a", None, None, newest - 12, False, 99, 9, 9.0, 9.0),  # out of the hour
        queries.BucketRow("a", "pgqueue", "v1", None, True, 30, 3, None, None),
    ]
    [hour] = model.job_name_hours(rows, now)
    assert (hour.finished, hour.failed, hour.failure_rate) == (30, 3, 0.1)
    assert hour.finished_series[-1] == 20 and hour.finished_series[0] == 10
    assert hour.failure_series[-1] == 0.1 and hour.failure_series[5] is None
    assert [(r.runner, r.version) for r in hour.releases] == [("pgqueue", "v1")]


def test_failures_group_by_fingerprint_largest_first() -> None:
    tenant = uuid4()
    attempts = [
        queries.FailedAttempt(
            tenant, uuid4(), "charge", "v2", f"card {n} declined", NOW - timedelta(minutes=n)
        )
        for n in range(5)
    ]
    attempts.append(
        queries.FailedAttempt(tenant, uuid4(), "mail", "v1", "smtp down", NOW - timedelta(hours=2))
    )
    groups = model.failure_groups(attempts, NOW.timestamp(), 86400)
    assert [(g.fingerprint, g.count) for g in groups] == [
        ("card <n> declined", 5),
        ("smtp down", 1),
    ]
    first = groups[0]
    assert first.last == NOW and first.first == NOW - timedelta(minutes=4)
    assert first.example == "card 0 declined" and first.series[-1] == 5
    assert groups[1].series[-3] == 1  # two hours ago, hourly buckets
    assert len({g.key for g in groups}) == 2


def test_sparkline_draws_gaps_and_escapes_its_label() -> None:
    svg = str(sparkline([1.0, 2.0, None, 4.0], "<b>x</b>"))
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1
    assert "<b>" not in svg and "&lt;b&gt;x&lt;/b&gt;" in svg
    assert 'points="0.0,' in str(sparkline([0.0, 0.0], "flat"))  # all zero: a flat line


def test_pg_boss_warnings_and_held_keys_reach_the_queues_page() -> None:
    from jobsight.console.templating import render
    from jobsight.sources import pgboss
    from jobsight.sources.pgboss_records import BlockedKeys, BossRecords, QueueStats
    from tests.support.canned import up

    snap = pgboss.PgBossSnapshot(
        queues=[pgboss.BossQueueRow("ledger", ready=4)],
        records=BossRecords(
            [BlockedKeys("ledger", 1, 3)], {"queue_backlog": 2}, [QueueStats("ledger", 990.0, 0.5)]
        ),
    )
    views = {"pgboss": up(snap)}
    lines, window = model.queue_lines(views, now=1000.0)
    page = render("queues.html", "/queues", error="", lines=lines, window=window, paused=set(),
                  boss_warnings=model.boss_warnings(views), can_act=False, token="")  # fmt: skip
    assert "1 keys held by failed jobs, 3 jobs behind them" in page
    assert 'id="boss-warnings"' in page and "<b>queue_backlog</b> 2" in page
    assert "pg-boss stored statistics 10 s ago: 0.50 jobs created/s" in page
