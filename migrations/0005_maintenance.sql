-- Maintenance that cannot die unseen: a recurring schedule that cannot fire records why (and is
-- retried with a growing delay while the others fire), and each maintenance round stamps
-- pgqueue.maintenance, which the sidecar exports so that a maintainer that stopped is alerted on.

-- migrate:up
ALTER TABLE pgqueue.schedule
  ADD COLUMN last_error text,                       -- why the last firing failed (NULL: it fired)
  ADD COLUMN failures integer NOT NULL DEFAULT 0;   -- firings failed in a row

CREATE TABLE pgqueue.maintenance (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),  -- one row
  last_round_at timestamptz NOT NULL,               -- the last maintenance round that finished
  worker_id uuid                                    -- the worker that ran it
);

-- migrate:down
DROP TABLE IF EXISTS pgqueue.maintenance;
ALTER TABLE pgqueue.schedule DROP COLUMN IF EXISTS failures, DROP COLUMN IF EXISTS last_error;
