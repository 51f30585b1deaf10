-- The durable result backend: finished jobs, their attempts and output, kept after Redis lets them go.
CREATE TABLE drover_jobs (
  prefix      text        NOT NULL,
  id          text        NOT NULL,
  queue       text        NOT NULL,
  status      text        NOT NULL,
  -- The job as GET /v1/jobs/:id answers it (attemptHistory included), so read-through returns the same JSON.
  record      jsonb       NOT NULL,
  labels      jsonb       NOT NULL DEFAULT '{}',
  schedule    text,
  exit_code   integer,
  created_at  timestamptz NOT NULL,
  finished_at timestamptz,
  archived_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (prefix, id)
);
CREATE INDEX drover_jobs_queue ON drover_jobs (prefix, queue, id DESC);
CREATE INDEX drover_jobs_status ON drover_jobs (prefix, status, id DESC);
CREATE INDEX drover_jobs_schedule ON drover_jobs (prefix, schedule, id DESC) WHERE schedule IS NOT NULL;
CREATE INDEX drover_jobs_labels ON drover_jobs USING gin (labels);

CREATE TABLE drover_job_output (
  prefix  text        NOT NULL,
  job_id  text        NOT NULL,
  -- The Redis stream id, split so that (ms, seq) orders lines and pages them on the primary key.
  ms      bigint      NOT NULL,
  seq     bigint      NOT NULL,
  stream  text        NOT NULL,
  line    text        NOT NULL,
  ts      timestamptz NOT NULL,
  attempt integer     NOT NULL,
  PRIMARY KEY (prefix, job_id, ms, seq)
);
