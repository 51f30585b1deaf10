-- A piece of output no newline followed (the output's unterminated last bytes, or a piece of an over-long line):
-- kept, so an archived job's output reads back byte for byte as it was stored in Redis.
ALTER TABLE drover_job_output ADD COLUMN partial boolean NOT NULL DEFAULT false;
