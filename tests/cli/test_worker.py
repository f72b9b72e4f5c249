"""`jobsight worker` builds its runner through the runner factory: the engine's own defaults,
the environment's Temporal settings, and only the flags given on top."""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import timedelta

import pytest

from jobsight.cli import build_parser
from jobsight.cli.worker import build_worker_runner
from jobsight.runners import HandlerRegistry, defaults
from jobsight.runners.pgqueue import PgQueueJobRunner, PgQueueSettings
from jobsight.runners.temporal import TemporalJobRunner, TemporalSettings
from jobsight.settings import SettingError

URL = "postgresql://u@127.0.0.1:1/x"


def worker_args(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["worker", "--handlers", "m:r", *flags])


def test_no_flags_keep_the_engine_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_JOB_TASK_QUEUE"):
        monkeypatch.delenv(name, raising=False)
    runner = build_worker_runner(worker_args(), URL, HandlerRegistry())
    assert isinstance(runner, PgQueueJobRunner)
    assert runner.settings == PgQueueSettings(worker_version=runner.settings.worker_version)
    temporal = build_worker_runner(worker_args("--runner", "temporal"), URL, HandlerRegistry())
    assert isinstance(temporal, TemporalJobRunner)
    assert temporal.settings.max_concurrent_activities == defaults.MAX_CONCURRENT_ACTIVITIES
    assert temporal.settings.address == TemporalSettings().address == defaults.TEMPORAL_ADDRESS


def test_flags_and_environment_are_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.internal:7233")
    monkeypatch.setenv("TEMPORAL_JOB_TASK_QUEUE", "from-env")
    flags = ("--concurrency", "3", "--batch-size", "7", "--shutdown-grace", "2.5")
    pgqueue = build_worker_runner(worker_args(*flags), URL, HandlerRegistry())
    assert isinstance(pgqueue, PgQueueJobRunner)
    settings = pgqueue.settings
    assert (settings.concurrency, settings.batch_size) == (3, 7)
    assert settings.shutdown_grace == timedelta(seconds=2.5)
    args = worker_args("--runner", "temporal", "--task-queue", "flag", "--concurrency", "4")
    temporal = build_worker_runner(args, URL, HandlerRegistry())
    assert isinstance(temporal, TemporalJobRunner)
    chosen = temporal.settings
    assert (chosen.address, chosen.task_queue, chosen.max_concurrent_activities) == (
        "temporal.internal:7233",
        "flag",
        4,
    )


def test_a_pgqueue_only_flag_on_temporal_is_refused() -> None:
    args = worker_args("--runner", "temporal", "--batch-size", "5")
    with pytest.raises(SettingError, match="--batch-size: applies to --runner pgqueue only"):
        build_worker_runner(args, URL, HandlerRegistry())


def test_the_worker_command_loads_nothing_of_the_sidecar() -> None:
    """A worker process stays small (the benchmark's worker RSS target): the command line loads
    no HTTP server, metrics or tracing library, and no sidecar module."""
    code = (
        "import sys, jobsight.cli, jobsight.cli.worker, jobsight.runners.pgqueue\n"
        "heavy = ('aiohttp', 'prometheus_client', 'opentelemetry', 'temporalio', 'yaml',"
        " 'jobsight.sidecar', 'jobsight.sources', 'jobsight.health.verdict')\n"
        "print(' '.join(sorted({m for m in sys.modules if m.startswith(heavy)})))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
