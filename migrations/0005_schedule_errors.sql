-- A recurring schedule that cannot fire (its payload or spec refused when due) records why, and
-- is retried with a growing delay, while every other schedule keeps firing.

-- migrate:up
ALTER TABLE pgqueue.schedule
  ADD COLUMN last_error text,                       -- why the last firing failed (NULL: it fired)
  ADD COLUMN failures integer NOT NULL DEFAULT 0;   -- firings failed in a row

-- migrate:down
ALTER TABLE pgqueue.schedule DROP COLUMN IF EXISTS failures, DROP COLUMN IF EXISTS last_error;
