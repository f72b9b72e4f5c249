"""Every statement the pgqueue engine runs. Each is one round trip that changes the queue row and
its `jobs` row (and `job_details`) together, so the two tables can never disagree.

All values are bound parameters; the only identifiers are the fixed names below. The `jobs` and
`job_details` columns and the status each queue state is mirrored as come from runners/records.py.
"""

from jobsight.runners.records import (
    ATTEMPT_COLUMNS,
    ATTEMPT_STEP,
    NEW_JOB_COLUMNS,
    STATUS_OF_STATE,
)

QUEUED = STATUS_OF_STATE["created"]
RUNNING = STATUS_OF_STATE["active"]
COMPLETED = STATUS_OF_STATE["completed"]
FAILED = STATUS_OF_STATE["failed"]
RETRYING = STATUS_OF_STATE["retry"]
CANCELLED = STATUS_OF_STATE["cancelled"]

# Channels: a job name when waiting work appears; a job id when an active job is cancelled.
WAKE_CHANNEL = "jobsight_pgqueue"
CANCEL_CHANNEL = "jobsight_pgqueue_cancel"
# pg_advisory_xact_lock keys (fixed forever): one maintainer, one retention sweeper at a time.
MAINTENANCE_LOCK = 0x2F1D6B7A51C3E902
RETENTION_LOCK = 0x2F1D6B7A51C3E903

# Many jobs of one name: only ids and payloads vary per row, everything else is bound once.
# $1 ids, $2 payloads, $3 name, $4 tenant, $5 priority, $6 singleton key, $7 start_after (NULL:
# now), $8 max_attempts, $9 retry_delay_ms, $10 retry_backoff, $11 retry_delay_max_ms,
# $12 expire_ms, $13 dead_letter, $14 user_id, $15 retry_of, $16 schedule_id, $17 trace_context.
# With a singleton key, a row whose key is taken is skipped (and no `jobs` row written); without
# one no conflict is possible (fresh UUIDs), so the plain insert skips speculative insertion.
# The `wake` CTE is referenced in the final WHERE so that it runs: one NOTIFY when ready now.
_SEND_TEMPLATE = f"""
WITH queued AS (
  INSERT INTO pgqueue.job (id, name, tenant, data, priority, singleton_key, start_after,
                           max_attempts, retry_delay_ms, retry_backoff, retry_delay_max_ms,
                           expire_ms, dead_letter, retry_of, schedule_id, trace_context)
  SELECT id, $3, $4, data, $5, $6, coalesce($7::timestamptz, now()), $8, $9, $10, $11, $12, $13,
         $15, $16, $17
  FROM unnest($1::uuid[], $2::jsonb[]) AS t(id, data)
  {{conflict}}
  RETURNING id, data, start_after
), wake AS (
  SELECT count(pg_notify('{WAKE_CHANNEL}', $3)) AS n
  FROM (SELECT 1 FROM queued WHERE start_after <= now() LIMIT 1) ready
)
INSERT INTO jobs ({NEW_JOB_COLUMNS}, trace_context)
SELECT $4, q.id, $3, q.data, '{QUEUED}', $14, 'pgqueue', q.id::text, q.start_after, now(), $17
FROM queued q WHERE (SELECT n FROM wake) >= 0
{{returning}}
"""
# Without a singleton key every row is inserted: the command tag's count says so.
SEND = _SEND_TEMPLATE.format(conflict="", returning="")
SEND_SINGLETON = _SEND_TEMPLATE.format(
    conflict="ON CONFLICT DO NOTHING", returning="RETURNING job_id"
)

# The waiting job that holds a singleton key, if any: $1 name, $2 key.
SINGLETON_HOLDER = """
SELECT id FROM pgqueue.job WHERE name = $1 AND singleton_key = $2 AND state <= 'active'
"""

# $1 name, $2 limit, $3 worker id, $4 worker version. Both updates find their rows through
# `= ANY(ARRAY(...))` index lookups: joined to `next` instead, the planner (told to expect LIMIT
# rows) hashes a scan of each whole table, which cost 48 against 28 us per job at 20,000 queued.
FETCH = f"""
WITH next AS (
  SELECT id FROM pgqueue.job
  WHERE name = $1 AND state < 'active' AND start_after <= now()
    AND NOT EXISTS (SELECT 1 FROM pgqueue.paused p WHERE p.name = $1)
  ORDER BY priority DESC, created_at, id
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), taken AS (
  UPDATE pgqueue.job j
  SET state = 'active', started_at = now(), heartbeat_at = now(), attempts = j.attempts + 1,
      worker_id = $3
  WHERE j.id = ANY(ARRAY(SELECT id FROM next))
  RETURNING j.id, j.tenant, j.data, j.attempts, j.expire_ms, j.started_at, j.schedule_id,
            j.retry_of, j.trace_context
), mirrored AS (
  UPDATE jobs
  SET status = '{RUNNING}', started_at = coalesce(jobs.started_at, t.started_at),
      attempts = t.attempts, worker_version = $4, updated_at = now()
  FROM taken t
  WHERE jobs.job_id = ANY(ARRAY(SELECT id FROM taken)) AND jobs.tenant = t.tenant
    AND jobs.job_id = t.id
)
SELECT id, tenant, data::text AS data, attempts, expire_ms,
       schedule_id IS NOT NULL OR retry_of IS NOT NULL AS linked, trace_context
FROM taken
"""

# A completed job leaves the queue: its row is deleted in the statement that marks its `jobs` row
# completed and adds its `job_details` row, which are its record from then on (kept as
# `completed` until retention, the row would repeat them; deleting it writes no new row version
# and no index entries: 13% more jobs/s in the drain benchmark). A row that records where its job
# came from (the schedule that fired it, the failed job it re-runs: `linked` in FETCH), which
# nothing else records, is kept as `completed` until retention instead (COMPLETE_LINKED).
# Failed and cancelled rows stay until retention too, for retry_job and the sidecar's
# recent-failure counts.
# Finish times are the attempt's start (database clock) plus the run time the worker measured on
# its monotonic clock, so durations are exact and immune to clock skew between hosts.
# $1 ids, $2 run times (ms), $3 attempt numbers, $4 worker id, $5 worker version. Only the
# attempt this worker ran and still owns: a late outcome never lands on a later attempt.
_COMPLETE_TEMPLATE = f"""
WITH input AS (
  SELECT * FROM unnest($1::uuid[], $2::float8[], $3::int[]) AS t(id, elapsed_ms, attempt)
), done AS (
  {{change}}
  WHERE j.id = i.id AND j.id = ANY($1::uuid[])  -- lets the planner use the primary key
    AND j.state = 'active' AND j.worker_id = $4 AND j.attempts = i.attempt
    AND (j.schedule_id IS NOT NULL OR j.retry_of IS NOT NULL) = {{linked}}
  RETURNING j.id, j.tenant, j.attempts, j.started_at,
            j.started_at + i.elapsed_ms * interval '1 millisecond' AS completed_at
), mirrored AS (
  UPDATE jobs SET status = '{COMPLETED}', finished_at = d.completed_at, updated_at = now()
  FROM done d WHERE jobs.tenant = d.tenant AND jobs.job_id = d.id
)
INSERT INTO job_details ({ATTEMPT_COLUMNS}, worker_version)
SELECT tenant, id, '{ATTEMPT_STEP}', '{COMPLETED}', now(), attempts - 1, attempts, started_at,
       completed_at, $5
FROM done
"""
COMPLETE = _COMPLETE_TEMPLATE.format(
    change="DELETE FROM pgqueue.job j USING input i", linked="false"
)
COMPLETE_LINKED = _COMPLETE_TEMPLATE.format(
    change="""UPDATE pgqueue.job j
  SET state = 'completed', heartbeat_at = NULL,
      completed_at = j.started_at + i.elapsed_ms * interval '1 millisecond'
  FROM input i""",
    linked="true",
)

# A failed attempt: retry after the backoff delay while attempts remain, else fail for good and
# copy the payload to the dead-letter job name, if any. $1 ids, $2 errors, $3 run times (ms; NULL:
# finished now, for recovered jobs), $4 attempt numbers (the attempt that failed: a late outcome
# never lands on a later attempt), $5 worker id (NULL: any owner, for recovery), $6 version.
# delay = min(retry_delay_ms * retry_backoff ^ (attempts - 1), retry_delay_max_ms), as
# RetryPolicy.delay_after; the exponent is capped so that power() cannot overflow.
FAIL = f"""
WITH input AS (
  SELECT * FROM unnest($1::uuid[], $2::text[], $3::float8[], $4::int[])
    AS t(id, error, elapsed_ms, attempt)
), input_at AS (
  SELECT i.id, i.error, i.attempt,
         coalesce(j.started_at + i.elapsed_ms * interval '1 millisecond', now()) AS finished_at
  FROM input i JOIN pgqueue.job j ON j.id = i.id AND j.id = ANY($1::uuid[])
), failed AS (
  UPDATE pgqueue.job j
  SET state = CASE WHEN j.attempts < j.max_attempts THEN 'retry' ELSE 'failed' END
                ::pgqueue.job_state,
      start_after = CASE WHEN j.attempts < j.max_attempts
        THEN i.finished_at + least(j.retry_delay_ms * power(j.retry_backoff::float8,
                                   least(j.attempts - 1, 64)), j.retry_delay_max_ms)
                             * interval '1 millisecond'
        ELSE j.start_after END,
      completed_at = CASE WHEN j.attempts < j.max_attempts THEN NULL ELSE i.finished_at END,
      last_error = i.error, heartbeat_at = NULL
  FROM input_at i
  WHERE j.id = i.id AND j.id = ANY($1::uuid[]) AND j.state = 'active'
    AND j.attempts = i.attempt
    AND ($5::uuid IS NULL OR j.worker_id = $5)
  RETURNING j.id, j.tenant, j.name, j.data, j.state, j.attempts, j.started_at, j.completed_at,
            j.dead_letter, i.error, i.finished_at
), mirrored AS (
  UPDATE jobs
  SET status = CASE WHEN f.state = 'failed' THEN '{FAILED}' ELSE '{RETRYING}' END::job_status,
      finished_at = f.completed_at, error = f.error, updated_at = now()
  FROM failed f WHERE jobs.tenant = f.tenant AND jobs.job_id = f.id
), details AS (
  INSERT INTO job_details ({ATTEMPT_COLUMNS}, error, worker_version)
  SELECT tenant, id, '{ATTEMPT_STEP}', '{FAILED}', now(), attempts - 1, attempts, started_at,
         finished_at, error, $6
  FROM failed
), dead_letters AS MATERIALIZED (
  SELECT gen_random_uuid() AS new_id, f.id AS source_id, f.tenant, f.dead_letter, f.data
  FROM failed f WHERE f.state = 'failed' AND f.dead_letter IS NOT NULL
), dead AS (
  INSERT INTO pgqueue.job (id, name, tenant, data)
  SELECT new_id, dead_letter, tenant, data FROM dead_letters
), dead_rows AS (
  INSERT INTO jobs ({NEW_JOB_COLUMNS})
  SELECT d.tenant, d.new_id, d.dead_letter, d.data, '{QUEUED}', j.user_id, 'pgqueue',
         d.new_id::text, now(), now()
  FROM dead_letters d JOIN jobs j ON j.tenant = d.tenant AND j.job_id = d.source_id
  WHERE (SELECT count(pg_notify('{WAKE_CHANNEL}', dead_letter)) FROM dead_letters) >= 0
)
SELECT id, state::text AS state FROM failed
"""

# Stop-time hand-back of unfinished work: the attempt does not count. $1 ids, $2 worker id.
HAND_BACK = f"""
WITH back AS (
  UPDATE pgqueue.job j
  SET state = CASE WHEN j.attempts > 1 THEN 'retry' ELSE 'created' END::pgqueue.job_state,
      attempts = j.attempts - 1, start_after = now(), heartbeat_at = NULL, worker_id = NULL
  WHERE j.id = ANY($1::uuid[]) AND j.state = 'active' AND j.worker_id = $2
  RETURNING j.id, j.tenant, j.name, j.attempts
), mirrored AS (
  UPDATE jobs SET status = '{QUEUED}', attempts = b.attempts, updated_at = now()
  FROM back b WHERE jobs.tenant = b.tenant AND jobs.job_id = b.id
)
SELECT count(pg_notify('{WAKE_CHANNEL}', name)) FROM (SELECT DISTINCT name FROM back) n
"""

# $1 job id. Waiting or active jobs only; an active job's worker is told over CANCEL_CHANNEL.
CANCEL = f"""
WITH target AS (
  SELECT id, state AS old_state FROM pgqueue.job
  WHERE id = $1 AND state <= 'active' FOR UPDATE
), cancelled AS (
  UPDATE pgqueue.job j SET state = 'cancelled', completed_at = now(), heartbeat_at = NULL
  FROM target t WHERE j.id = t.id
  RETURNING j.id, j.tenant, j.attempts, j.started_at, t.old_state
), mirrored AS (
  UPDATE jobs SET status = '{CANCELLED}', finished_at = now(), updated_at = now()
  FROM cancelled c WHERE jobs.tenant = c.tenant AND jobs.job_id = c.id
), details AS (
  INSERT INTO job_details ({ATTEMPT_COLUMNS}, error)
  SELECT tenant, id, '{ATTEMPT_STEP}', '{CANCELLED}', now(), attempts - 1, attempts, started_at,
         now(), 'cancelled while running'
  FROM cancelled WHERE old_state = 'active'
)
SELECT id, old_state::text AS old_state,
       (SELECT count(pg_notify('{CANCEL_CHANNEL}', id::text)) FROM cancelled
        WHERE old_state = 'active') AS notified
FROM cancelled
"""

# $1 job id: its state now (a cancel notification is checked against it).
JOB_STATE = "SELECT state::text FROM pgqueue.job WHERE id = $1"

# $1 job id: the failed job's name, tenant, data and owner, to schedule a fresh run.
FAILED_JOB = """
SELECT j.name, j.tenant, j.data::text AS data, r.user_id, j.max_attempts, j.retry_delay_ms,
       j.retry_backoff, j.retry_delay_max_ms, j.expire_ms, j.dead_letter
FROM pgqueue.job j JOIN jobs r ON r.tenant = j.tenant AND r.job_id = j.id
WHERE j.id = $1 AND j.state = 'failed'
"""

# --- workers ------------------------------------------------------------------------------------

REGISTER_WORKER = """
INSERT INTO pgqueue.worker (id, host, pid, version, queues) VALUES ($1, $2, $3, $4, $5)
"""

# $1 worker id, $2 renew-after (seconds). Returns the ids of the active jobs this worker still
# owns; none (and WORKER_RUNNING false) means the worker was declared crashed meanwhile.
# The worker's row is renewed every time; a job's row only once its heartbeat is older than $2
# (settings.job_renew_after: half the heartbeat timeout less one interval), so a job shorter than
# that is never rewritten by a heartbeat, a long one every few intervals, and the rows a completion
# is writing are not waited on (an UPDATE locks only the rows its predicate matches).
HEARTBEAT = """
WITH me AS (
  UPDATE pgqueue.worker SET heartbeat_at = now() WHERE id = $1 AND state = 'running'
  RETURNING id
), renewed AS (
  UPDATE pgqueue.job SET heartbeat_at = now()
  WHERE worker_id = $1 AND state = 'active' AND EXISTS (SELECT 1 FROM me)
    AND heartbeat_at < now() - $2::float8 * interval '1 second'
)
SELECT id FROM pgqueue.job
WHERE worker_id = $1 AND state = 'active' AND EXISTS (SELECT 1 FROM me)
"""

WORKER_RUNNING = "SELECT state = 'running' FROM pgqueue.worker WHERE id = $1"

JOB_HEARTBEAT = """
UPDATE pgqueue.job SET heartbeat_at = now() WHERE id = $1 AND state = 'active' AND worker_id = $2
"""

STOP_WORKER = """
UPDATE pgqueue.worker SET state = 'stopped', stopped_at = now()
WHERE id = $1 AND state = 'running'
"""

# --- maintenance ----------------------------------------------------------------------------------

TRY_LOCK = "SELECT pg_try_advisory_xact_lock($1)"

# A maintenance round starts (under the maintenance lock): $1 worker id (NULL: not a worker),
# $2 the longest gap (seconds) between rounds that still counts as "the database was reachable
# all along". Returns since when it has been: a silent heartbeat only counts from then, so an
# outage every worker saw is not taken for crashes. Rolled back with the round if it fails.
ROUND_STARTED = """
INSERT INTO pgqueue.maintenance AS m (singleton, last_round_at, available_since, worker_id)
VALUES (true, now(), now(), $1)
ON CONFLICT (singleton) DO UPDATE
SET available_since = CASE
      WHEN m.available_since IS NULL
           OR m.last_round_at < now() - $2::float8 * interval '1 second' THEN now()
      ELSE m.available_since END,
    last_round_at = now(), worker_id = $1
RETURNING available_since
"""

# $1 heartbeat timeout (seconds), $2 since when the database has been reachable.
MARK_CRASHED = """
UPDATE pgqueue.worker SET state = 'crashed', stopped_at = now()
WHERE state = 'running'
  AND greatest(heartbeat_at, $2::timestamptz) < now() - $1::float8 * interval '1 second'
RETURNING id, host, pid, version
"""

# Active jobs past their timeout, or whose heartbeat stopped while the database was reachable.
# $1 heartbeat timeout (seconds), which is also the grace past a job's timeout: the owning worker
# times its jobs out itself, so this is the backstop for a hung or vanished worker, not a race
# with it. $2 since when the database has been reachable (see ROUND_STARTED).
LOST_JOBS = """
SELECT id, attempts,
       CASE WHEN greatest(heartbeat_at, $2::timestamptz) >= now() - $1::float8 * interval '1 second'
            THEN 'expired: no result within ' || expire_ms || ' ms'
            ELSE 'lost: no heartbeat for ' || $1::float8 || ' s (worker gone?)' END AS reason
FROM pgqueue.job
WHERE state = 'active'
  AND ((expire_ms IS NOT NULL AND started_at + expire_ms * interval '1 millisecond'
                                  + $1::float8 * interval '1 second' < now())
       OR greatest(heartbeat_at, $2::timestamptz) < now() - $1::float8 * interval '1 second')
FOR UPDATE SKIP LOCKED
"""

DUE_SCHEDULES = """
SELECT id, name, tenant, user_id, data::text AS data, spec, next_run_at FROM pgqueue.schedule
WHERE enabled AND next_run_at <= now()
ORDER BY next_run_at
LIMIT $1
FOR UPDATE SKIP LOCKED
"""

ADVANCE_SCHEDULE = """
UPDATE pgqueue.schedule SET last_run_at = $2, next_run_at = $3, last_error = NULL, failures = 0
WHERE id = $1
"""

# A firing that failed: $1 id, $2 error; tried again after $3 seconds, doubling with each
# failure in a row, at most $4.
SCHEDULE_FAILED = """
UPDATE pgqueue.schedule
SET last_error = $2, failures = failures + 1,
    next_run_at = now() + least($3 * power(2, least(failures, 30)), $4) * interval '1 second'
WHERE id = $1
"""

# What a payload becomes once stored as jsonb (numbers are written out in full): $1 JSON text.
STORED_SIZE = "SELECT octet_length($1::jsonb::text)"

INSERT_SCHEDULE = """
INSERT INTO pgqueue.schedule (id, name, tenant, user_id, data, spec, next_run_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)
"""

# $1 age (seconds), $2 batch size. Finished queue rows (failed, cancelled, and completed ones kept
# for their schedule or retry link); `jobs` keeps the history.
PURGE_FINISHED = """
DELETE FROM pgqueue.job WHERE id IN (
  SELECT id FROM pgqueue.job
  WHERE state > 'active' AND completed_at < now() - $1::float8 * interval '1 second'
  ORDER BY completed_at
  LIMIT $2
  FOR UPDATE SKIP LOCKED)
"""

PURGE_WORKERS = """
DELETE FROM pgqueue.worker
WHERE state <> 'running' AND stopped_at < now() - $1::float8 * interval '1 second'
"""

# $1 job name, $2 who. Workers stop fetching the name's jobs (running ones finish); idempotent.
PAUSE = """
INSERT INTO pgqueue.paused (name, paused_by) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING
"""

# $1 job name. Workers fetch the name's jobs again, woken at once.
RESUME = f"""
WITH resumed AS (DELETE FROM pgqueue.paused WHERE name = $1 RETURNING name)
SELECT count(pg_notify('{WAKE_CHANNEL}', name)) FROM resumed
"""

PAUSED = "SELECT name, paused_at, paused_by FROM pgqueue.paused ORDER BY name"
