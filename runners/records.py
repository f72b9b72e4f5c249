"""The rows both engines write for a job: the column lists of `jobs` and `job_details`, and how
a pgqueue job's state mirrors into the job's status. One home, used by JobService (and through
it the Temporal engine) and by the pgqueue statements, so the two engines cannot drift apart."""

from __future__ import annotations

from jobsight.runners.status import JobStatus

# What a read of a job returns (JobRecord's fields, in order).
JOB_COLUMNS = """tenant, job_id, type, metadata, status::text AS status, created_at, updated_at,
    user_id, runner_type, external_id, external_run_id, run_at, started_at, finished_at,
    attempts, worker_version, progress, error"""

# What a new job's row is written with.
NEW_JOB_COLUMNS = (
    "tenant, job_id, type, metadata, status, user_id, runner_type, external_id, run_at, updated_at"
)

# An attempt's `job_details` row (one per attempt, on both engines): these columns, then the
# optional ones a writer has (error, worker_version, result, metadata).
ATTEMPT_STEP = "attempt"
ATTEMPT_COLUMNS = (
    "tenant, job_id, step_name, status, processed_at, retry_count, attempt, started_at, finished_at"
)

# pgqueue's job states and the job status each is mirrored as, in the same statement.
STATUS_OF_STATE: dict[str, JobStatus] = {
    "created": JobStatus.QUEUED,
    "retry": JobStatus.QUEUED,  # waiting for its next attempt
    "active": JobStatus.PROCESSING,
    "completed": JobStatus.COMPLETED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}
