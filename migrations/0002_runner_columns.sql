-- Runner metadata (seed 000, section 5.5) and what monitoring needs, all nullable or defaulted so
-- that adding them to a large existing table is a catalogue-only change. The partial indexes keep
-- the sidecar's queries proportional to live work, not to history:
--   jobs_unfinished_idx    "jobs not yet finished" (by status, name, runner; stuck-job scan)
--   jobs_finished_at_idx   "jobs finished since T"
--   jobs_external_id_idx  lookups by an engine's id; a pgqueue job's external id is its job id,
--                         found by jobs_job_id_idx, so its rows stay out (a cheaper enqueue)
-- Status 'active' is the seed's synonym of 'processing'; 'pending' and 'queued' both wait.

-- migrate:up
ALTER TYPE job_status ADD VALUE IF NOT EXISTS 'cancelled';

ALTER TABLE jobs
  ADD COLUMN IF NOT EXISTS runner_type VARCHAR NOT NULL DEFAULT 'pgqueue',
  ADD COLUMN IF NOT EXISTS external_id VARCHAR,
  ADD COLUMN IF NOT EXISTS external_run_id VARCHAR,
  ADD COLUMN IF NOT EXISTS run_at TIMESTAMPTZ,
  ADD COLUMN IF NOT EXISTS started_at TIMESTAMPTZ,
  ADD COLUMN IF NOT EXISTS finished_at TIMESTAMPTZ,
  ADD COLUMN IF NOT EXISTS attempts INTEGER DEFAULT 0,
  ADD COLUMN IF NOT EXISTS worker_version VARCHAR,
  ADD COLUMN IF NOT EXISTS progress REAL,
  ADD COLUMN IF NOT EXISTS error TEXT;

ALTER TABLE job_details
  ADD COLUMN IF NOT EXISTS attempt INTEGER,
  ADD COLUMN IF NOT EXISTS started_at TIMESTAMPTZ,
  ADD COLUMN IF NOT EXISTS finished_at TIMESTAMPTZ,
  ADD COLUMN IF NOT EXISTS error TEXT,
  ADD COLUMN IF NOT EXISTS worker_version VARCHAR;

CREATE INDEX IF NOT EXISTS jobs_job_id_idx ON jobs (job_id);
CREATE INDEX IF NOT EXISTS jobs_external_id_idx ON jobs (external_id)
  WHERE external_id IS NOT NULL AND runner_type <> 'pgqueue';
CREATE INDEX IF NOT EXISTS jobs_unfinished_idx ON jobs (status, type, runner_type, started_at)
  WHERE status IN ('pending', 'queued', 'processing', 'active');
CREATE INDEX IF NOT EXISTS jobs_finished_at_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS job_details_job_idx ON job_details (tenant, job_id);

-- migrate:down
DROP INDEX IF EXISTS job_details_job_idx;
DROP INDEX IF EXISTS jobs_finished_at_idx;
DROP INDEX IF EXISTS jobs_unfinished_idx;
DROP INDEX IF EXISTS jobs_external_id_idx;
DROP INDEX IF EXISTS jobs_job_id_idx;

ALTER TABLE job_details
  DROP COLUMN IF EXISTS worker_version,
  DROP COLUMN IF EXISTS error,
  DROP COLUMN IF EXISTS finished_at,
  DROP COLUMN IF EXISTS started_at,
  DROP COLUMN IF EXISTS attempt;

ALTER TABLE jobs
  DROP COLUMN IF EXISTS error,
  DROP COLUMN IF EXISTS progress,
  DROP COLUMN IF EXISTS worker_version,
  DROP COLUMN IF EXISTS attempts,
  DROP COLUMN IF EXISTS finished_at,
  DROP COLUMN IF EXISTS started_at,
  DROP COLUMN IF EXISTS run_at,
  DROP COLUMN IF EXISTS external_run_id,
  DROP COLUMN IF EXISTS external_id,
  DROP COLUMN IF EXISTS runner_type;

-- Postgres cannot drop an enum value: rebuild the type without 'cancelled'. Refuse (and lose
-- nothing) while any row still uses it.
DO $$
DECLARE
  n bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_enum e WHERE e.enumtypid = 'job_status'::regtype
                 AND e.enumlabel = 'cancelled') THEN
    RETURN;
  END IF;
  SELECT (SELECT count(*) FROM jobs WHERE status::text = 'cancelled')
       + (SELECT count(*) FROM job_details WHERE status::text = 'cancelled') INTO n;
  IF n > 0 THEN
    RAISE EXCEPTION 'cannot remove job status ''cancelled'': % rows use it; change them first', n;
  END IF;
  ALTER TYPE job_status RENAME TO job_status_before_down;
  EXECUTE format('CREATE TYPE job_status AS ENUM (%s)', (
    SELECT string_agg(quote_literal(enumlabel), ', ' ORDER BY enumsortorder)
    FROM pg_enum WHERE enumtypid = 'job_status_before_down'::regtype AND enumlabel <> 'cancelled'));
  EXECUTE format('COMMENT ON TYPE job_status IS %L',
                 obj_description('job_status_before_down'::regtype, 'pg_type'));
  ALTER TABLE jobs ALTER COLUMN status TYPE job_status USING status::text::job_status;
  ALTER TABLE job_details ALTER COLUMN status TYPE job_status USING status::text::job_status;
  DROP TYPE job_status_before_down;
END
$$;
