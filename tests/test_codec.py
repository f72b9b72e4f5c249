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


def test_the_fast_paths_write_what_the_general_rules_say() -> None:
    """Exact types take fast paths; subclasses, enums, datetimes and odd keys the general ones."""
    import dataclasses
    from datetime import UTC, datetime
    from enum import StrEnum

    class Colour(StrEnum):
        RED = "red"

    class Tagged(list[int]):
        pass

    @dataclasses.dataclass
    class Inner:
        at: datetime
        colour: Colour

    @dataclasses.dataclass
    class Outer:
        inner: list[Inner]
        pair: tuple[int, float]
        plain: list[float]
        keyed: dict[float, bool]
        tagged: list[int]
        nothing: None = None

    stamp = datetime(2026, 11, 30, 9, 0, 0, 123, tzinfo=UTC)
    value = Outer([Inner(stamp, Colour.RED)], (1, 2.5), [0.5, 1.0], {300.0: True}, Tagged([7]))
    assert codec.dumps(value) == (
        '{"inner":[{"at":"2026-11-30T09:00:00.000123+00:00","colour":"red"}],"pair":[1,2.5],'
        '"plain":[0.5,1.0],"keyed":{"300.0":true},"tagged":[7],"nothing":null}'
    )
