-- The operator console (the sidecar's /jobs, /failures, /queues pages and its actions).
--   jobs_created_idx          the jobs search, newest first, keyset-paginated
--   jobs_type_created_idx     the same, for one job name
--   jobs_open_created_idx, jobs_open_type_created_idx   the same over jobs not completed
--                             (failed, cancelled, waiting, running: a few percent of a history),
--                             so a status filter reads only its own rows
--   job_details_failed_idx    the failures page: the latest failed attempts (partial: failures only)
--   jobsight_sidecar.console_audit   every console action: who, what, which jobs, when, outcome
--   pgqueue.paused            job names whose jobs workers do not fetch (pause / resume)
-- On a jobs table with years of history, CREATE INDEX blocks writes to it while it builds: create
-- the five indexes first with CREATE INDEX CONCURRENTLY and the same names and definitions
-- (docs/console.md has the statements); this migration then finds them and builds nothing.

-- migrate:up
CREATE INDEX IF NOT EXISTS jobs_created_idx ON jobs (created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_type_created_idx ON jobs (type, created_at, job_id);
CREATE INDEX IF NOT EXISTS jobs_open_created_idx ON jobs (created_at, job_id)
  WHERE status <> 'completed';
CREATE INDEX IF NOT EXISTS jobs_open_type_created_idx ON jobs (type, created_at, job_id)
  WHERE status <> 'completed';
CREATE INDEX IF NOT EXISTS job_details_failed_idx ON job_details (finished_at)
  WHERE status = 'failed';

CREATE TABLE jobsight_sidecar.console_audit (
  id bigserial PRIMARY KEY,
  at timestamptz NOT NULL DEFAULT now(),
  operator text NOT NULL,
  action text NOT NULL,          -- retry, cancel, pause, resume
  target text NOT NULL,          -- a job id, a job name, or the search a bulk action selected
  jobs uuid[] NOT NULL DEFAULT '{}',
  outcome text NOT NULL DEFAULT 'started',  -- started, then done or failed
  detail text NOT NULL DEFAULT ''
);
CREATE INDEX console_audit_at_idx ON jobsight_sidecar.console_audit (at);

CREATE TABLE pgqueue.paused (
  name text PRIMARY KEY,
  paused_at timestamptz NOT NULL DEFAULT now(),
  paused_by text NOT NULL DEFAULT ''
);

-- migrate:down
DROP TABLE IF EXISTS pgqueue.paused;
DROP TABLE IF EXISTS jobsight_sidecar.console_audit;
DROP INDEX IF EXISTS job_details_failed_idx;
DROP INDEX IF EXISTS jobs_open_type_created_idx;
DROP INDEX IF EXISTS jobs_open_created_idx;
DROP INDEX IF EXISTS jobs_type_created_idx;
DROP INDEX IF EXISTS jobs_created_idx;
