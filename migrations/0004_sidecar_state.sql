-- The sidecar's own state, the only tables it writes (everything else it only reads).
--   source_state  the leader's latest snapshot and status of each source, which followers serve
--                 and the next leader resumes from (counters' totals and cursors live in it)
--   leader        who leads each group of sidecars (JOBSIGHT_INSTANCE), for status pages
-- Grants for a read-only sidecar role are in the README ("Database access").

-- migrate:up
CREATE SCHEMA IF NOT EXISTS jobsight_sidecar;

CREATE TABLE jobsight_sidecar.source_state (
  instance text NOT NULL,
  source text NOT NULL,
  snapshot jsonb,                 -- the last good snapshot; NULL before the first success
  status jsonb NOT NULL,          -- up, last success, last error, poll duration
  leader text NOT NULL,           -- the sidecar that wrote it
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (instance, source)
);

CREATE TABLE jobsight_sidecar.leader (
  instance text PRIMARY KEY,
  holder text NOT NULL,
  host text NOT NULL,
  pid integer NOT NULL,
  version text NOT NULL,
  since timestamptz NOT NULL,
  heartbeat_at timestamptz NOT NULL
);

-- migrate:down
DROP TABLE IF EXISTS jobsight_sidecar.leader;
DROP TABLE IF EXISTS jobsight_sidecar.source_state;
DROP SCHEMA IF EXISTS jobsight_sidecar;
