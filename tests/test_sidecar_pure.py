"""The sidecar's pure parts, fed canned rows: rows -> snapshot -> metrics for every source, the
label cap, the snapshot codec, metric naming rules and the settings' validation. No I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics
from prometheus_client.parser import text_string_to_metric_families

from jobsight import codec
from jobsight.generators.generate import generate
from jobsight.generators.metrics_doc import all_metrics
from jobsight.health.triggers import Health
from jobsight.labels import OTHER, LabelCap
from jobsight.metric_spec import MetricSpec
from jobsight.settings import SETTINGS, SettingError, SidecarSettings, load_settings
from jobsight.sidecar.collector import SidecarCollector, registry_for
from jobsight.sidecar.poller import SidecarState
from jobsight.sources import jobs, pgboss, pgqueue, postgres, temporal
from jobsight.sources.status import SourceStatus, SourceView

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent
SETTINGS_OBJ = SidecarSettings(database_url="postgresql://x@localhost/db")


def finished(
    n: int,
    name: str = "generate-invoice",
    status: str = "completed",
    run_s: float = 0.2,
    runner: str = "pgqueue",
) -> list[jobs.FinishedRow]:
    return [
        jobs.FinishedRow(
            f"00000000-0000-4000-8000-{i:012d}",
            name,
            runner,
            status,
            run_s,
            0.05,
            T0 + timedelta(milliseconds=i),
        )
        for i in range(n)
    ]


def render(source, snapshot) -> dict[str, dict[tuple, float]]:  # type: ignore[no-untyped-def]
    """metric sample name -> {sorted label items: value}."""
    out: dict[str, dict[tuple, float]] = {}
    for family in source.render(snapshot, SETTINGS_OBJ):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_jobs_counters_grow_by_newly_finished_rows_only():
    first = jobs.build_snapshot(None, finished(3) + finished(2, status="failed"), [], T0, T0, 10)
    key = (("job_name", "generate-invoice"), ("runner", "pgqueue"))
    metrics = render(jobs.SOURCE, first)
    assert metrics["jobsight_jobs_completed_total"][key] == 3
    assert metrics["jobsight_jobs_failed_total"][key] == 2
    assert metrics["jobsight_job_duration_seconds_count"][key] == 5
    assert (
        metrics["jobsight_job_duration_seconds_bucket"][tuple(sorted((*key, ("le", "0.25"))))] == 5
    )
    assert (
        metrics["jobsight_job_duration_seconds_bucket"][tuple(sorted((*key, ("le", "0.1"))))] == 0
    )
    second = jobs.build_snapshot(first, finished(1, run_s=40.0), [], T0, T0, 10)
    again = render(jobs.SOURCE, second)
    assert again["jobsight_jobs_completed_total"][key] == 4
    assert again["jobsight_job_duration_seconds_bucket"][tuple(sorted((*key, ("le", "30.0"))))] == 5
    assert again["jobsight_job_duration_seconds_bucket"][tuple(sorted((*key, ("le", "60.0"))))] == 6
    # the previous snapshot is left as it was (a poll that is not stored is not counted)
    assert render(jobs.SOURCE, first)["jobsight_jobs_completed_total"][key] == 3
    assert second.cursor.job_id == finished(1)[0].job_id


def test_jobs_cursor_stays_when_nothing_finished_and_starts_at_the_horizon():
    first = jobs.build_snapshot(None, [], [], T0, T0 + timedelta(seconds=5), 10)
    assert first.cursor == jobs.FinishedCursor(T0, jobs.ZERO_UUID)
    assert first.counting_lag == 5.0
    rows = finished(2)
    second = jobs.build_snapshot(first, rows, [], T0, T0, 10)
    assert second.cursor == jobs.FinishedCursor(rows[-1].finished_at, rows[-1].job_id)
    third = jobs.build_snapshot(second, [], [], T0 + timedelta(seconds=9), T0, 10)
    assert third.cursor == second.cursor


def test_histograms_carry_the_job_trace_id_as_exemplar():
    snap = jobs.build_snapshot(None, finished(1, run_s=3.0), [], T0, T0, 10)
    state = SidecarState(views={"jobs": SourceView(snap, SourceStatus(True, 1.0))}, leader=True)
    registry = registry_for(
        SidecarCollector(state, {"jobs": jobs.SOURCE}, SETTINGS_OBJ, "9", Health(SETTINGS_OBJ))
    )
    text = openmetrics(registry).decode()
    line = next(
        x
        for x in text.splitlines()
        if x.startswith("jobsight_job_duration_seconds_bucket") and 'le="5.0"' in x
    )
    assert '# {trace_id="00000000000040008000000000000000"} 3.0' in line


def test_label_cap_folds_unexpected_job_names_into_other():
    rows = [jobs.UnfinishedRow(f"name-{i}", "pgqueue", "queued", 1) for i in range(5)]
    snap = jobs.build_snapshot(None, finished(1, name="name-9"), rows, T0, T0, 3)
    names = {r.job_name for r in snap.unfinished}
    assert names == {"name-0", "name-1", OTHER}  # name-9 took the first place (counted first)
    assert sum(r.count for r in snap.unfinished) == 5
    assert snap.job_names == ["name-9", "name-0", "name-1"]
    cap = LabelCap(1, ["a"])
    assert (cap("a"), cap("b"), cap(""), cap("x" * 500)) == ("a", OTHER, OTHER, OTHER)
    assert LabelCap(2)("") == "unknown"


def test_jobs_stuck_and_oldest_active_by_series():
    rows = [
        jobs.UnfinishedRow("import", "temporal", "processing", 4, 2, 7200.0),
        jobs.UnfinishedRow("import", "temporal", "active", 1, 1, 9000.0),
        jobs.UnfinishedRow("import", "temporal", "queued", 10),
    ]
    metrics = render(jobs.SOURCE, jobs.build_snapshot(None, [], rows, T0, T0, 10))
    key = (("job_name", "import"), ("runner", "temporal"))
    assert metrics["jobsight_jobs_stuck"][key] == 3
    assert metrics["jobsight_job_oldest_active_age_seconds"][key] == 9000.0
    assert metrics["jobsight_jobs"][tuple(sorted((*key, ("status", "queued"))))] == 10


def test_pgqueue_rows_to_metrics():
    snap = pgqueue.build_snapshot(
        [
            pgqueue.QueueRow("a", "created", 5, 3, 12.0),
            pgqueue.QueueRow("a", "retry", 2, 2, 30.0),
            pgqueue.QueueRow("a", "active", 4, 0, None, 1),
        ],
        [pgqueue.RecentRow("a", 3, 1)],
        alive=2,
        crashes=1,
        cap=10,
    )
    metrics = render(pgqueue.SOURCE, snap)
    assert metrics["jobsight_pgqueue_ready_jobs"][(("queue", "a"),)] == 5
    assert metrics["jobsight_pgqueue_oldest_ready_age_seconds"][(("queue", "a"),)] == 30.0
    assert metrics["jobsight_pgqueue_expired_active_jobs"][(("queue", "a"),)] == 1
    assert metrics["jobsight_pgqueue_jobs"][(("queue", "a"), ("state", "retry"))] == 2
    assert metrics["jobsight_pgqueue_recent_dead_lettered_jobs"][(("queue", "a"),)] == 1
    assert metrics["jobsight_pgqueue_workers_alive"][()] == 2
    assert metrics["jobsight_pgqueue_worker_crashes_recent"][()] == 1
    empty = render(pgqueue.SOURCE, pgqueue.PgQueueSnapshot(present=False))
    assert "jobsight_pgqueue_workers_alive" not in empty


def test_pgqueue_queues_in_use_report_zero_recent_failures():
    snap = pgqueue.build_snapshot(
        [pgqueue.QueueRow("waiting", "created", 1)],
        [pgqueue.RecentRow("failing", 2, 0)],
        alive=1,
        crashes=0,
        cap=10,
        served=["served", "failing"],
    )
    failed = render(pgqueue.SOURCE, snap)["jobsight_pgqueue_recent_failed_jobs"]
    assert failed == {
        (("queue", "failing"),): 2,
        (("queue", "served"),): 0,
        (("queue", "waiting"),): 0,
    }


def test_pgboss_percentile_matches_pg_boss_bins():
    assert pgboss.percentile(None, 95) is None and pgboss.percentile([0, 0], 95) is None
    assert pgboss.percentile([5, 0, 0], 95) == pgboss.LATENCY_MIN_SECONDS
    bins = [0] * 46
    bins[10] = 100  # slot 10: [0.01 * sqrt2^9, 0.01 * sqrt2^10)
    p95 = pgboss.percentile(bins, 95)
    assert 0.01 * 2**4.5 <= p95 <= 0.01 * 2**5
    bins[45] = 1000
    assert pgboss.percentile(bins, 99) == pytest.approx(0.01 * 2**22)


def test_pgboss_deltas_add_each_monitor_window_once():
    stamp = T0
    first = pgboss.add_deltas(
        [],
        [{"queue": "q", "completed_delta": 9, "failed_delta": 1, "delta_on": stamp}],
        first_poll=True,
    )
    assert (first[0].completed, first[0].failed) == (0, 0)  # the baseline window
    same = pgboss.add_deltas(
        first,
        [{"queue": "q", "completed_delta": 9, "failed_delta": 1, "delta_on": stamp}],
        first_poll=False,
    )
    assert (same[0].completed, same[0].failed) == (0, 0)
    later = pgboss.add_deltas(
        same,
        [
            {
                "queue": "q",
                "completed_delta": 4,
                "failed_delta": 2,
                "delta_on": stamp + timedelta(seconds=60),
            },
            {"queue": "new", "completed_delta": 5, "failed_delta": 0, "delta_on": stamp},
        ],
        first_poll=False,
    )
    assert [(t.queue, t.completed, t.failed) for t in later] == [("new", 5, 0), ("q", 4, 2)]
    assert (first[0].completed, same[0].completed) == (0, 0)  # inputs untouched


def test_pgboss_cached_counters_to_snapshot():
    row = {
        "queue": "emails",
        "deferred_count": 2,
        "queued_count": 7,
        "ready_count": 5,
        "blocked_count": 0,
        "active_count": 3,
        "failed_count": 1,
        "ready_oldest_seconds": 40,
        "completed_delta": 0,
        "failed_delta": 0,
        "delta_on": None,
        "wait_bins": None,
        "run_bins": [1, 0],
    }
    snap = pgboss.from_cached(
        [row], {"emails": (1, 0)}, {"alive": 2, "crash_restarts": 3}, 46, None, 10
    )
    (queue,) = snap.queues
    assert (queue.ready, queue.deferred, queue.active, queue.failed, queue.queued) == (
        5,
        2,
        3,
        1,
        7,
    )
    metrics = render(pgboss.SOURCE, snap)
    assert metrics["jobsight_pgboss_expired_active_jobs"][(("queue", "emails"),)] == 1
    assert metrics["jobsight_pgboss_crash_restarts"][()] == 3
    assert metrics["jobsight_pgboss_run_p95_seconds"][(("queue", "emails"),)] == 0.01
    assert metrics["jobsight_pgboss_schema_version"][()] == 46
    many = pgboss.PgBossSnapshot(totals=[pgboss.BossTotals(f"q{i}", 1, 1) for i in range(5)])
    capped = pgboss.SOURCE.render(many, SidecarSettings(database_url="x", max_job_names=2))
    counters = next(f for f in capped if f.name == "jobsight_pgboss_jobs_completed")
    assert {s.labels["queue"]: s.value for s in counters.samples if s.name.endswith("_total")} == {
        "q0": 1,
        "q1": 1,
        OTHER: 3,
    }


def test_temporal_labels_and_scope():
    assert [temporal.status_label(s) for s in ("Running", "TimedOut", "ContinuedAsNew")] == [
        "running",
        "timed_out",
        "continued_as_new",
    ]
    assert temporal.scope_query(["a", "b-c"]) == 'TaskQueue IN ("a", "b-c")'
    with pytest.raises(temporal.TemporalSourceError):
        temporal.scope_query(['x" OR 1=1'])
    snap = temporal.TemporalSnapshot(
        {"running": 3}, [temporal.TaskQueueRow("q", 4, 2.5, 1, 2)], 1, {"failed": 2}
    )
    metrics = render(temporal.SOURCE, snap)
    assert (
        metrics["jobsight_temporal_task_queue_pollers"][
            (("task_queue", "q"), ("task_type", "activity"))
        ]
        == 2
    )
    assert metrics["jobsight_temporal_recent_closed_workflows"][(("status", "failed"),)] == 2


def test_postgres_connections_against_available_slots():
    rows = [
        postgres.ConnectionRow("idle", "app", 5),
        postgres.ConnectionRow("active", "", 1),
        postgres.ConnectionRow("active", "rare", 1),
    ]
    snap = postgres.build_snapshot(rows, 100, 3, cap=2)
    assert (snap.available, snap.in_use) == (97, 7)
    metrics = render(postgres.SOURCE, snap)
    assert (
        metrics["jobsight_postgres_connections"][(("application", "app"), ("state", "idle"))] == 5
    )
    assert (
        metrics["jobsight_postgres_connections"][(("application", OTHER), ("state", "active"))] == 1
    )


def test_codec_round_trips_every_snapshot_type():
    snaps = [
        jobs.build_snapshot(
            None, finished(2), [jobs.UnfinishedRow("a", "b", "queued", 1)], T0, T0, 10
        ),
        pgqueue.build_snapshot([pgqueue.QueueRow("a", "created", 1)], [], 1, 0, 10),
        pgboss.PgBossSnapshot(
            True,
            24,
            "live",
            [pgboss.BossQueueRow("q", 1)],
            [pgboss.BossTotals("q", 1, 2, T0.isoformat())],
        ),
        temporal.TemporalSnapshot({"running": 1}, [temporal.TaskQueueRow("q")]),
        postgres.PostgresSnapshot([postgres.ConnectionRow("idle", "a", 1)], 10, 3),
    ]
    for snap in snaps:
        assert codec.loads(type(snap), codec.dumps(snap)) == snap


def test_metric_names_follow_the_conventions():
    specs = all_metrics()
    names = [spec.name for spec in specs]
    assert len(names) == len(set(names))
    for spec in specs:
        assert (
            "tenant" not in spec.labels
            and "job_id" not in spec.labels
            and "type" not in (spec.labels)
        )
    with pytest.raises(ValueError):
        MetricSpec("jobsight_x", "counter", "no _total")
    with pytest.raises(ValueError):
        MetricSpec("jobsight_x_total", "gauge", "_total on a gauge")
    with pytest.raises(ValueError):
        MetricSpec("x", "gauge", "no prefix")


def test_generated_files_are_fresh():
    assert generate(ROOT, check=True) == [], "run `make generate` and commit the result"


def test_settings_defaults_env_and_yaml(tmp_path: Path):
    settings = load_settings({"DATABASE_URL": "postgresql://u@h/db"})
    assert settings.sources == ("jobs", "pgqueue", "pgboss", "postgres")
    assert settings.interval("jobs") == 15.0 and not settings.traces
    config = tmp_path / "jobsight.yaml"
    config.write_text("poll_interval: 2s\nsources: [jobs, temporal]\njobs_interval: 500ms\n")
    env = {
        "DATABASE_URL": "postgresql://u@h/db",
        "JOBSIGHT_POLL_INTERVAL": "3s",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
    }
    settings = load_settings(env, str(config))
    assert settings.poll_interval == 3.0  # environment over the file
    assert settings.interval("jobs") == 0.5 and settings.interval("temporal") == 3.0
    assert settings.sources == ("jobs", "temporal") and settings.traces
    assert load_settings({**env, "TEMPORAL_ADDRESS": "t:7233"}).sources[-1] == "temporal"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DATABASE_URL: not set"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL: must be a postgresql:// URL"),
        ({"JOBSIGHT_POLL_INTERVAL": "soon"}, "JOBSIGHT_POLL_INTERVAL: must be a duration"),
        ({"JOBSIGHT_POLL_INTERVAL": "0s"}, "JOBSIGHT_POLL_INTERVAL: must be greater than zero"),
        ({"JOBSIGHT_SOURCES": "jobs,redis"}, "JOBSIGHT_SOURCES: unknown source 'redis'"),
        ({"JOBSIGHT_PORT": "70000"}, "JOBSIGHT_PORT: must be a TCP port"),
        ({"JOBSIGHT_PGBOSS_SCHEMA": "pgboss; drop"}, "JOBSIGHT_PGBOSS_SCHEMA: must be a plain SQL"),
        ({"JOBSIGHT_MAX_JOB_NAMES": "0"}, "JOBSIGHT_MAX_JOB_NAMES: must be a whole number >= 1"),
        ({"JOBSIGHT_TRACES": "maybe"}, "JOBSIGHT_TRACES: must be auto, true or false"),
        ({"JOBSIGHT_COMMIT_LAG": "10m"}, "JOBSIGHT_COMMIT_LAG: must not exceed"),
    ],
)
def test_bad_settings_name_the_setting(env: dict[str, str], message: str):
    base = {} if "DATABASE_URL" in env or not env else {"DATABASE_URL": "postgresql://u@h/d"}
    with pytest.raises(SettingError, match=message.replace("(", r"\(")):
        load_settings({**base, **env})


def test_bad_yaml_file_names_the_key(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("pol_interval: 2s\n")
    with pytest.raises(SettingError, match="unknown setting 'pol_interval'"):
        load_settings({"DATABASE_URL": "postgresql://u@h/d"}, str(config))
    config.write_text("- a list\n")
    with pytest.raises(SettingError, match="must hold a mapping"):
        load_settings({"DATABASE_URL": "postgresql://u@h/d"}, str(config))
    with pytest.raises(SettingError, match="cannot read"):
        load_settings({"DATABASE_URL": "postgresql://u@h/d"}, str(tmp_path / "missing.yaml"))


def test_secrets_never_appear_in_setting_errors():
    with pytest.raises(SettingError) as caught:
        load_settings({"DATABASE_URL": "mysql://user:hunter2@h/db"})
    assert "hunter2" not in str(caught.value)


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in readme]
    assert missing == []


def test_prometheus_text_output_parses():
    snap = jobs.build_snapshot(None, finished(2), [], T0, T0, 10)
    state = SidecarState(
        views={"jobs": SourceView(snap, SourceStatus(True, 1.0, 1.0, 0.1))}, leader=True
    )
    from prometheus_client.exposition import generate_latest

    text = generate_latest(
        registry_for(
            SidecarCollector(state, {"jobs": jobs.SOURCE}, SETTINGS_OBJ, "9", Health(SETTINGS_OBJ))
        )
    ).decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"jobsight_leader", "jobsight_source_up", "jobsight_jobs_completed"} <= names
