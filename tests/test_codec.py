"""The snapshot codec: every snapshot type survives the trip to JSON and back."""

from __future__ import annotations

from jobsight import codec
from jobsight.sources import jobs, pgboss, pgqueue, postgres, temporal
from jobsight.sources.pgboss_finished import CountTiming, QueueFinished, WindowCount
from tests.support.canned import FINISHED_AT as T0
from tests.support.canned import finished_rows as finished


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
            [pgboss.BossQueueRow("q", 1, failed=None)],
            [pgboss.BossTotals("q", 1, 2)],
            cursor=T0,
            counted=CountTiming(1.5, 0.25, False),
            finished=[QueueFinished("q", 1, 2, 3, 4.5, 0.5, 6, [WindowCount(300.0, 7, 1)])],
        ),
        temporal.TemporalSnapshot({"running": 1}, [temporal.TaskQueueRow("q")]),
        postgres.PostgresSnapshot([postgres.ConnectionRow("idle", "a", 1)], 10, 3),
    ]
    for snap in snaps:
        assert codec.loads(type(snap), codec.dumps(snap)) == snap
