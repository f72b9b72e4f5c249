"""The generic job workflow: runs any registered handler as an activity with that handler's
retry policy and timeouts, mirrors the outcome into the `jobs` row, and answers status and
progress queries. Deterministic: activities are called by name, no I/O here."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError

with workflow.unsafe.imports_passed_through():
    from jobsight.runners.temporal import types as t

# Writing the jobs row must outlast a database blip: retried without limit, a few seconds apart.
ROW_WRITE_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200),
                              maximum_interval=timedelta(seconds=5))  # fmt: skip
ROW_WRITE_TIMEOUT = timedelta(seconds=30)
# Runs started before this change wrote every finish in a second activity; replays keep that.
FINISHED_BY_RUN_PATCH = "jobsight-finished-by-run-activity"


@workflow.defn(name=t.WORKFLOW_NAME)
class JobWorkflow:
    def __init__(self) -> None:
        self._status = "queued"
        self._progress: float | None = None
        self._run: asyncio.Task[None] | None = None

    @workflow.run
    async def run(self, job: t.JobInput) -> None:
        info = workflow.info()
        job_id = job.job_id or str(workflow.uuid4())
        if not job.job_id:  # fired by a Schedule: this run opens its own jobs row
            await workflow.execute_activity(
                t.OPEN_ACTIVITY,
                t.OpenInput(job_id, job.job_name, job.tenant, job.data, job.user_id,
                            info.workflow_id, info.run_id),
                start_to_close_timeout=ROW_WRITE_TIMEOUT, retry_policy=ROW_WRITE_RETRY,
            )  # fmt: skip
        status, error = await self._run_handler(job, job_id, info.workflow_id, info.run_id)
        self._status = status
        if status == "withdrawn":  # no row to write: the job was scheduled elsewhere, or dropped
            raise ApplicationError(error or "job withdrawn", type=t.WITHDRAWN_ERROR,
                                   non_retryable=True)  # fmt: skip
        # A completed run activity has finished the job's row itself, when the handler ended;
        # other outcomes may not be written yet (a timeout the server enforced, a cancel).
        if status != "completed" or not workflow.patched(FINISHED_BY_RUN_PATCH):
            await workflow.execute_activity(
                t.FINISH_ACTIVITY,
                t.FinishInput(job_id, status, error),
                start_to_close_timeout=ROW_WRITE_TIMEOUT,
                retry_policy=ROW_WRITE_RETRY,
            )
        if status == "cancelled":
            raise CancelledError("job cancelled")
        if status == "failed":
            raise ApplicationError(error or "job failed", non_retryable=True)

    async def _run_handler(
        self, job: t.JobInput, job_id: str, workflow_id: str, run_id: str
    ) -> tuple[str, str | None]:
        self._status = "processing"
        retry = RetryPolicy(
            initial_interval=timedelta(seconds=job.retry.initial_interval_s),
            backoff_coefficient=job.retry.backoff_coefficient,
            maximum_interval=timedelta(seconds=job.retry.max_interval_s),
            maximum_attempts=job.retry.max_attempts,
        )
        # The activity enforces the handler's timeout itself (and records it); the server-side
        # start-to-close timeout is a backstop a little later.
        backstop = timedelta(seconds=job.timeout_s + 30) if job.timeout_s else None
        self._run = asyncio.ensure_future(
            workflow.execute_activity(
                t.RUN_ACTIVITY,
                t.RunInput(
                    job_id,
                    job.job_name,
                    job.tenant,
                    job.data,
                    workflow_id,
                    run_id,
                    job.retry.max_attempts,
                ),
                start_to_close_timeout=backstop,
                schedule_to_close_timeout=None if backstop else timedelta(days=365),
                heartbeat_timeout=timedelta(seconds=job.heartbeat_timeout_s),
                retry_policy=retry,
                cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        )
        try:
            await self._run
        except ActivityError as err:
            if isinstance(err.cause, CancelledError):
                return "cancelled", None
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == t.WITHDRAWN_ERROR:
                return "withdrawn", cause.message
            message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
            return "failed", message
        except asyncio.CancelledError:  # the workflow itself was cancelled (cancel_job)
            return "cancelled", None
        return "completed", None

    @workflow.signal(name=t.CANCEL_SIGNAL)
    def cancel(self) -> None:
        if self._run is not None and not self._run.done():
            self._run.cancel()

    @workflow.signal(name=t.PROGRESS_SIGNAL)
    def report_progress(self, fraction: float) -> None:
        self._progress = fraction

    @workflow.query(name=t.STATUS_QUERY)
    def status(self) -> str:
        return self._status

    @workflow.query(name=t.PROGRESS_QUERY)
    def progress(self) -> float | None:
        return self._progress
