-- The circuit breaker of each runner process's Temporal engine (runners/breaker.py): one row per
-- engine and process, written by that process when its breaker changes state or sends a job to
-- pgqueue instead, and refreshed every 15 s while it runs; the sidecar exports the live rows'
-- states and the fallbacks counted on all rows. A row not refreshed for 45 s is a gone process.

-- migrate:up
CREATE TABLE IF NOT EXISTS runner_breakers (
  engine text NOT NULL,
  process text NOT NULL,  -- host/pid/random of the runner process
  state text NOT NULL CHECK (state IN ('closed', 'open', 'half_open')),
  since timestamptz NOT NULL,  -- when the breaker entered this state
  reason text NOT NULL DEFAULT '',  -- why it did
  fallbacks bigint NOT NULL DEFAULT 0 CHECK (fallbacks >= 0),  -- jobs sent to pgqueue instead
  seen_at timestamptz NOT NULL DEFAULT now(),  -- the process's last refresh
  PRIMARY KEY (engine, process)
);

-- migrate:down
DROP TABLE IF EXISTS runner_breakers;
