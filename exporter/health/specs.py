"""The rollback triggers: what each measures, its defaults (DESIGN.md, from seed 001) and which
sources can speak to it. The one place thresholds are declared; jobsight.settings turns these into
JOBSIGHT_<TRIGGER>_* settings, and the metrics, the verdict and the generated alert rules read
the configured values from here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TriggerSpec:
    name: str
    unit: str  # ratio, jobs, crashes, seconds
    help: str
    sources: tuple[str, ...]  # which sources' data it draws on
    degraded: float
    rollback: float | None  # None: the trigger only degrades
    rollback_inclusive: bool = False  # rollback at >= instead of >
    window: float | None = None  # seconds, for windowed triggers
    min_sample: int | None = None  # finished jobs a rate needs before it judges


TRIGGERS: tuple[TriggerSpec, ...] = (
    TriggerSpec(
        "error_rate",
        "ratio",
        "failed / finished jobs over the window",
        ("jobs", "pgboss"),
        0.01,
        0.05,
        window=300.0,
        min_sample=20,
    ),
    TriggerSpec(
        "queue_depth",
        "jobs",
        "jobs ready to run and waiting",
        ("pgqueue", "pgboss", "temporal"),
        1000,
        5000,
    ),
    TriggerSpec(
        "worker_crashes",
        "crashes",
        "worker crashes in the recent window (1 h)",
        ("pgqueue", "pgboss"),
        0,
        10,
    ),
    TriggerSpec(
        "db_connections",
        "ratio",
        "connections in use / connections available",
        ("postgres",),
        0.80,
        0.95,
        rollback_inclusive=True,
    ),
    TriggerSpec(
        "latency_p95",
        "seconds",
        "p95 job run time over the window (worst job name)",
        ("jobs", "pgboss"),
        30.0,
        120.0,
        window=300.0,
        min_sample=5,
    ),
    TriggerSpec(
        "stuck_jobs",
        "jobs",
        "jobs active longer than JOBSIGHT_STUCK_AFTER",
        ("jobs", "pgboss"),
        0,
        None,
    ),
    TriggerSpec(
        "stalled",
        "seconds",
        "seconds without a completion while work is ready (0 while completing)",
        ("jobs", "pgqueue", "pgboss", "temporal"),
        300.0,
        None,
        window=300.0,
    ),
    TriggerSpec(
        "schedule_missed",
        "seconds",
        "how long the most overdue recurring job is past its due time without firing",
        ("pgqueue", "pgboss", "temporal"),
        300.0,
        None,
    ),
)
BY_NAME = {spec.name: spec for spec in TRIGGERS}
# Triggers that can be judged on one worker version's own jobs (?version=).
VERSION_AWARE = ("error_rate", "latency_p95", "stuck_jobs")


@dataclass(frozen=True)
class TriggerConfig:
    """A trigger's configured thresholds (validated by settings.py)."""

    degraded: float
    rollback: float | None
    window: float | None
    min_sample: int | None
    hold: float
    overrides: tuple[tuple[str, float, float | None], ...] = ()  # latency: per job name

    def threshold_for(self, job_name: str) -> tuple[float, float | None]:
        for name, degraded, rollback in self.overrides:
            if name == job_name:
                return degraded, rollback
        return self.degraded, self.rollback


def default_configs(hold: float = 30.0) -> dict[str, TriggerConfig]:
    return {
        s.name: TriggerConfig(s.degraded, s.rollback, s.window, s.min_sample, hold)
        for s in TRIGGERS
    }
