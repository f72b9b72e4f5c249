-- The operator console (the sidecar's /jobs, /failures, /queues pages and its actions).
--   job_details_failed_idx    the failures page: the latest failed attempts (partial: failures only)
--   jobsight_sidecar.console_audit   every console action: who, what, which jobs, when, outcome
--   pgqueue.paused            job names whose jobs workers do not fetch (pause / resume)
-- The search's indexes on `jobs` are not here: every job writes them three times, which costs a
-- busy pgqueue a quarter of its throughput; `jobsight console-indexes` prints them for those who
-- search big tables (docs/console.md). On a job_details table with years of history, create
-- job_details_failed_idx first with CREATE INDEX CONCURRENTLY; this migration then builds nothing.

-- migrate:up
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
