"""The dataclasses that cross the Temporal boundary (workflow input, activity inputs/outputs):
plain, JSON-friendly, and shared by the workflow, the activities and the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

WORKFLOW_NAME = "jobsight.job"
RUN_ACTIVITY = "jobsight.run_handler"
OPEN_ACTIVITY = "jobsight.open_job"
FINISH_ACTIVITY = "jobsight.finish_job"
CANCEL_SIGNAL = "cancel"
PROGRESS_SIGNAL = "progress"
STATUS_QUERY = "status"
PROGRESS_QUERY = "progress"
# The run activity's error when the job's row is gone: its producer withdrew it (the start
# failed or timed out and the job may run elsewhere); the workflow ends without writing.
WITHDRAWN_ERROR = "JobWithdrawn"

# Custom search attributes, registered at start when missing (all Keyword).
SEARCH_ATTRIBUTES = ("JobsightJobName", "JobsightTenant", "JobsightJobId")


@dataclass
class RetrySpec:
    max_attempts: int = 3
    backoff_coefficient: float = 2.0
    initial_interval_s: float = 1.0
    max_interval_s: float = 300.0


@dataclass
class JobInput:
    """The workflow's one input. `job_id` is empty for runs fired by a Temporal Schedule: their
    `jobs` row is opened by the workflow itself (one row per run)."""

    job_name: str
    tenant: str
    data: dict[str, Any]
    retry: RetrySpec = field(default_factory=RetrySpec)
    timeout_s: float | None = 900.0
    heartbeat_timeout_s: float = 30.0
    job_id: str = ""
    user_id: str = ""


@dataclass
class OpenInput:
    job_id: str
    job_name: str
    tenant: str
    data: dict[str, Any]
    user_id: str
    workflow_id: str
    run_id: str


@dataclass
class RunInput:
    job_id: str
    job_name: str
    tenant: str
    data: dict[str, Any]
    workflow_id: str
    run_id: str
    max_attempts: int = 0  # the retry policy's (0: unlimited, or a run from before it was sent)


@dataclass
class FinishInput:
    job_id: str
    status: str  # completed | failed | cancelled
    error: str | None = None
    attempts: int | None = None
