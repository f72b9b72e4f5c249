-- An outage every worker saw is not a crash. Each maintenance round notes since when the
-- maintainers have reached the database without a gap (a gap of more than half the heartbeat
-- timeout restarts it); a worker's or a job's silent heartbeat counts only from that moment, so a
-- failover longer than the heartbeat timeout marks no live worker crashed and fails no live job.

-- migrate:up
ALTER TABLE pgqueue.maintenance
  ADD COLUMN available_since timestamptz;  -- maintenance rounds have run without a gap since then

-- migrate:down
ALTER TABLE pgqueue.maintenance DROP COLUMN IF EXISTS available_since;
