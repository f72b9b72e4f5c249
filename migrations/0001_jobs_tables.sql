-- The seed-shaped `jobs` / `job_details` tables and the `job_status` enum.
-- An application that already has them keeps them and every row: each object is created only when
-- absent, and the ones this migration creates are marked (COMMENT 'jobsight:created') so that the
-- down part drops only what jobsight itself created, never a table it adopted.

-- migrate:up
DO $$
BEGIN
  IF to_regtype('job_status') IS NULL THEN
    CREATE TYPE job_status AS ENUM ('pending', 'processing', 'completed', 'failed', 'active', 'queued');
    COMMENT ON TYPE job_status IS 'jobsight:created';
  END IF;

  IF to_regclass('jobs') IS NULL THEN
    CREATE TABLE jobs (
      tenant UUID NOT NULL,
      job_id UUID DEFAULT gen_random_uuid() NOT NULL,
      type VARCHAR NOT NULL,
      metadata JSONB,
      status job_status NOT NULL,
      created_at TIMESTAMP DEFAULT NOW(),
      updated_at TIMESTAMP,
      user_id UUID NOT NULL,
      PRIMARY KEY (tenant, job_id)
    );
    COMMENT ON TABLE jobs IS 'jobsight:created';
  END IF;

  IF to_regclass('job_details') IS NULL THEN
    CREATE TABLE job_details (
      tenant UUID NOT NULL,
      detail_id UUID DEFAULT gen_random_uuid() NOT NULL,
      job_id UUID NOT NULL,
      step_name VARCHAR NOT NULL,
      status job_status NOT NULL,
      result JSONB,
      processed_at TIMESTAMP,
      retry_count INTEGER DEFAULT 0,
      metadata JSONB,
      PRIMARY KEY (tenant, detail_id),
      FOREIGN KEY (tenant, job_id) REFERENCES jobs (tenant, job_id)
    );
    COMMENT ON TABLE job_details IS 'jobsight:created';
  END IF;
END
$$;

-- migrate:down
DO $$
BEGIN
  IF to_regclass('job_details') IS NOT NULL
     AND obj_description('job_details'::regclass, 'pg_class') = 'jobsight:created' THEN
    DROP TABLE job_details;
  END IF;
  IF to_regclass('jobs') IS NOT NULL
     AND obj_description('jobs'::regclass, 'pg_class') = 'jobsight:created' THEN
    DROP TABLE jobs;
  END IF;
  IF to_regtype('job_status') IS NOT NULL
     AND obj_description('job_status'::regtype, 'pg_type') = 'jobsight:created' THEN
    DROP TYPE job_status;
  END IF;
END
$$;
