"""The Prometheus collector: renders the poller's latest state. A scrape reads memory only; it
never touches a database."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from jobsight.health.objectives import Objective
from jobsight.health.state import VERDICT_STATES, State
from jobsight.health.verdict import Verdict
from jobsight.metric_spec import MetricSpec, le_label, samples, single
from jobsight.sidecar.poller import SidecarState
from jobsight.sources.base import Source
from jobsight.sources.status import Condition, condition

SOURCE = ("source",)
BUILD_INFO = MetricSpec(
    "jobsight_build_info",
    "gauge",
    "Always 1; the sidecar's version and its group (JOBSIGHT_INSTANCE) as labels.",
    ("version", "group"),
)
LEADER = MetricSpec(
    "jobsight_leader",
    "gauge",
    "1 when this sidecar leads (polls the shared tables), 0 when it follows.",
)
SOURCE_UP = MetricSpec(
    "jobsight_source_up",
    "gauge",
    "1 when the source's numbers are current (its last poll succeeded, recently); while it is "
    "0 the source's gauges are not exported (its counters keep their values).",
    SOURCE,
)
SOURCE_CONDITION = MetricSpec(
    "jobsight_source_condition",
    "gauge",
    "1 for the source's condition (up, stale, down, unsupported, pending), 0 for the others: "
    "why jobsight_source_up is 0.",
    ("source", "condition"),
)
SOURCE_LAST_SUCCESS = MetricSpec(
    "jobsight_source_last_success_timestamp_seconds",
    "gauge",
    "When the source was last polled successfully (Unix time).",
    SOURCE,
)
SOURCE_DURATION = MetricSpec(
    "jobsight_source_poll_duration_seconds",
    "gauge",
    "How long the source's last poll took.",
    SOURCE,
)
STATE_READ_UP = MetricSpec(
    "jobsight_state_read_up",
    "gauge",
    "Followers: 1 when the leader's published state was last read successfully.",
)
RELOAD_OK = MetricSpec(
    "jobsight_config_last_reload_successful",
    "gauge",
    "1 when the last reload of the settings (SIGHUP, or a change of the JOBSIGHT_CONFIG file) "
    "was applied, 0 when it was refused and the previous settings stay in force.",
)
RELOAD_SUCCESS_AT = MetricSpec(
    "jobsight_config_last_reload_success_timestamp_seconds",
    "gauge",
    "When the settings were last loaded successfully (at start, or by a reload).",
)
SELF_METRICS = (
    BUILD_INFO,
    LEADER,
    SOURCE_UP,
    SOURCE_CONDITION,
    SOURCE_LAST_SUCCESS,
    SOURCE_DURATION,
    STATE_READ_UP,
    RELOAD_OK,
    RELOAD_SUCCESS_AT,
)
CUMULATIVE = ("counter", "histogram", "summary")  # kept while a source is not up

TRIGGER = ("trigger",)
TRIGGER_VALUE = MetricSpec(
    "jobsight_trigger_value",
    "gauge",
    "A rollback trigger's current value (ratio, jobs, crashes or seconds: see its unit).",
    TRIGGER,
)
TRIGGER_THRESHOLD = MetricSpec(
    "jobsight_trigger_threshold",
    "gauge",
    "A rollback trigger's configured threshold, by level (degraded, rollback).",
    ("trigger", "level"),
)
TRIGGER_STATE = MetricSpec(
    "jobsight_trigger_state",
    "gauge",
    "1 for a trigger's current state (ok, degraded, rollback, unknown, disabled), 0 for the rest.",
    ("trigger", "state"),
)
VERDICT = MetricSpec(
    "jobsight_verdict",
    "gauge",
    "1 for the current verdict (ok, inconclusive, degraded, rollback, unknown), 0 for the others.",
    ("verdict",),
)
TRIGGER_METRICS = (TRIGGER_VALUE, TRIGGER_THRESHOLD, TRIGGER_STATE, VERDICT)

OBJECTIVE = MetricSpec(
    "jobsight_objective",
    "gauge",
    "A job name's declared objective (JOBSIGHT_OBJECTIVES): the share of its finished jobs that "
    'must complete (objective="succeed") or of its jobs that must start within '
    'jobsight_objective_start_within_seconds (objective="start").',
    ("job_name", "objective"),
)
OBJECTIVE_START_WITHIN = MetricSpec(
    "jobsight_objective_start_within_seconds",
    "gauge",
    "The time within which a job name's start objective wants its jobs started.",
    ("job_name",),
)
OBJECTIVE_START_BUCKET = MetricSpec(
    "jobsight_objective_start_bucket",
    "gauge",
    "Always 1: the bucket (le) of jobsight_job_wait_seconds that a job name's start objective "
    "counts, for the burn-rate rules to select.",
    ("job_name", "le"),
)
OBJECTIVE_METRICS = (OBJECTIVE, OBJECTIVE_START_WITHIN, OBJECTIVE_START_BUCKET)
TRIGGER_STATES = tuple(State)


class SidecarCollector(Collector):
    def __init__(
        self,
        state: SidecarState,
        sources: dict[str, Source[Any]],
        version: str,
    ) -> None:
        self._state = state
        self._sources = sources
        self._version = version

    def collect(self) -> Iterator[Metric]:
        state = self._state
        settings = state.settings
        yield samples(BUILD_INFO, [((self._version, settings.instance), 1)])
        yield single(LEADER, 1 if state.leader else 0)
        now = time.time()
        conditions = {
            name: condition(view, settings.interval(name), now)
            for name, view in state.views.items()
        }
        yield samples(SOURCE_UP, (((n,), int(c == Condition.UP)) for n, c in conditions.items()))
        yield samples(
            SOURCE_CONDITION,
            (((n, each), int(c == each)) for n, c in conditions.items() for each in Condition),
        )
        statuses = [(name, view.status) for name, view in state.views.items() if view.status]
        yield samples(
            SOURCE_LAST_SUCCESS,
            (((n,), s.last_success) for n, s in statuses if s.last_success is not None),
        )
        yield samples(
            SOURCE_DURATION, (((n,), s.duration) for n, s in statuses if s.duration is not None)
        )
        yield single(STATE_READ_UP, None if state.leader else (1 if state.state_read.up else 0))
        for name, view in state.views.items():
            if view.snapshot is None:
                continue
            current = conditions[name] == Condition.UP
            for metric in self._sources[name].render(view.snapshot, settings):
                if current or metric.type in CUMULATIVE:  # a gauge is only served while current
                    yield metric
        yield from render_verdict(state.verdict(settings))
        yield from render_objectives(settings.objectives)
        yield single(RELOAD_OK, 1 if state.reload.successful else 0)
        yield single(RELOAD_SUCCESS_AT, state.reload.success_at)


def render_objectives(objectives: Iterable[Objective]) -> Iterator[Metric]:
    declared = list(objectives)
    ratios = [((o.job_name, "succeed"), o.succeed) for o in declared if o.succeed is not None]
    ratios += [((o.job_name, "start"), o.start) for o in declared if o.start is not None]
    starts = [o for o in declared if o.start_within is not None]
    yield samples(OBJECTIVE, ratios)
    yield samples(
        OBJECTIVE_START_WITHIN, (((o.job_name,), o.start_within) for o in starts if o.start_within)
    )
    yield samples(
        OBJECTIVE_START_BUCKET,
        (((o.job_name, le_label(o.start_within)), 1) for o in starts if o.start_within),
    )


def render_verdict(verdict: Verdict) -> Iterator[Metric]:
    triggers = verdict.triggers
    yield samples(TRIGGER_VALUE, (((t.name,), t.value) for t in triggers if t.value is not None))
    thresholds = [((t.name, "degraded"), t.degraded) for t in triggers]
    thresholds += [((t.name, "rollback"), t.rollback) for t in triggers if t.rollback is not None]
    yield samples(TRIGGER_THRESHOLD, thresholds)
    yield samples(
        TRIGGER_STATE,
        (((t.name, s), 1 if t.state == s else 0) for t in triggers for s in TRIGGER_STATES),
    )
    yield samples(VERDICT, (((s,), 1 if verdict.verdict == s else 0) for s in VERDICT_STATES))


def registry_for(collector: SidecarCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
