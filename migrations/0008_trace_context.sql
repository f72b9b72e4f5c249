-- One trace from the request to the job: a job scheduled inside an OpenTelemetry span keeps the
-- span's W3C trace context (its `traceparent`), and the job's spans continue that trace (the
-- pgqueue worker, the Temporal workflow and activity, the sidecar's spans of the finished job).
-- NULL for a job scheduled outside a span: its trace id is its job id, as before. Nullable
-- without a default: a catalogue-only change on a large table.

-- migrate:up
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS trace_context text;
ALTER TABLE pgqueue.job ADD COLUMN IF NOT EXISTS trace_context text;

-- migrate:down
ALTER TABLE pgqueue.job DROP COLUMN IF EXISTS trace_context;
ALTER TABLE jobs DROP COLUMN IF EXISTS trace_context;
