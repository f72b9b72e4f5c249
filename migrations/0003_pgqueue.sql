-- The pgqueue engine's own schema: the job queue (pg-boss-like states), recurring schedules, and
-- the worker registry. A queue job and its `jobs` row share one UUID; the engine changes both in
-- one statement, so the two never disagree.
--
-- States are ordered so that `state < 'active'` means "waiting" (created, retry) and
-- `state > 'active'` means "finished" (completed, cancelled, failed).

-- migrate:up
CREATE SCHEMA IF NOT EXISTS pgqueue;

CREATE TYPE pgqueue.job_state AS ENUM
  ('created', 'retry', 'active', 'completed', 'cancelled', 'failed');

CREATE TABLE pgqueue.job (
  id uuid PRIMARY KEY,
  name text NOT NULL,
  tenant uuid NOT NULL,
  data jsonb NOT NULL DEFAULT '{}',
  state pgqueue.job_state NOT NULL DEFAULT 'created',
  priority smallint NOT NULL DEFAULT 0,
  singleton_key text,
  start_after timestamptz NOT NULL DEFAULT now(),
  created_at timestamptz NOT NULL DEFAULT now(),
  started_at timestamptz,            -- start of the current (or last) attempt
  completed_at timestamptz,          -- when it reached a final state
  heartbeat_at timestamptz,
  attempts integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
  retry_delay_ms integer NOT NULL DEFAULT 1000,
  retry_backoff real NOT NULL DEFAULT 2,
  retry_delay_max_ms integer NOT NULL DEFAULT 300000,
  expire_ms integer,                 -- attempt timeout; NULL: none
  dead_letter text,                  -- job name that gets a copy after the last failed attempt
  worker_id uuid,
  last_error text,
  retry_of uuid,                     -- a failed job this one re-runs
  schedule_id uuid                   -- the recurring schedule that fired it
);

-- Fetch: highest priority first, then oldest, over waiting jobs only.
CREATE INDEX job_fetch_idx ON pgqueue.job (name, priority DESC, created_at, id)
  WHERE state < 'active';
-- At most one waiting or active job per (name, singleton key).
CREATE UNIQUE INDEX job_singleton_idx ON pgqueue.job (name, singleton_key)
  WHERE state <= 'active' AND singleton_key IS NOT NULL;
-- Expiry, heartbeat and ownership checks look at active jobs only.
CREATE INDEX job_active_idx ON pgqueue.job (worker_id, heartbeat_at) WHERE state = 'active';
-- Retention removes finished jobs oldest first.
CREATE INDEX job_finished_idx ON pgqueue.job (completed_at) WHERE state > 'active';

CREATE TABLE pgqueue.schedule (
  id uuid PRIMARY KEY,
  name text NOT NULL,
  tenant uuid NOT NULL,
  user_id uuid NOT NULL,
  data jsonb NOT NULL DEFAULT '{}',
  spec text NOT NULL,                -- cron expression or interval ("24 hours")
  next_run_at timestamptz NOT NULL,
  last_run_at timestamptz,
  enabled boolean NOT NULL DEFAULT true,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedule_due_idx ON pgqueue.schedule (next_run_at) WHERE enabled;

CREATE TABLE pgqueue.worker (
  id uuid PRIMARY KEY,
  host text NOT NULL,
  pid integer NOT NULL,
  version text,
  queues text[] NOT NULL DEFAULT '{}',
  state text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'stopped', 'crashed')),
  started_at timestamptz NOT NULL DEFAULT now(),
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  stopped_at timestamptz                -- clean stop, or when the crash was noticed
);
CREATE INDEX worker_running_idx ON pgqueue.worker (heartbeat_at) WHERE state = 'running';
CREATE INDEX worker_stopped_idx ON pgqueue.worker (stopped_at) WHERE state <> 'running';

-- migrate:down
DROP TABLE IF EXISTS pgqueue.worker;
DROP TABLE IF EXISTS pgqueue.schedule;
DROP TABLE IF EXISTS pgqueue.job;
DROP TYPE IF EXISTS pgqueue.job_state;
DROP SCHEMA IF EXISTS pgqueue;
