import pg from 'pg';
import { DroverError } from '../errors.js';
import type { JobRecord, AttemptRecord } from '../model/job-record.js';
import type { LogEntry } from '../store/log-store.js';
import { migrate } from './migrate.js';
import { isStreamId } from '../store/keys.js';

export interface ArchiveFilter {
  queue?: string;
  status?: string;
  schedule?: string;
  exitCode?: number;
  label?: { key: string; value: string };
  from?: string;
  to?: string;
}

/** Whether a job record passes a filter (for jobs still in Redis, filtered in memory). */
export function passes(j: JobRecord, f: ArchiveFilter): boolean {
  if (f.queue && j.queue !== f.queue) return false;
  if (f.status && j.status !== f.status) return false;
  if (f.schedule && j.schedule !== f.schedule) return false;
  if (f.exitCode !== undefined && j.exitCode !== f.exitCode) return false;
  if (f.label && j.labels[f.label.key] !== f.label.value) return false;
  if (f.from && Date.parse(j.createdAt) < Date.parse(f.from)) return false;
  if (f.to && Date.parse(j.createdAt) >= Date.parse(f.to)) return false;
  return true;
}

/** An archived job: the record as the API shows it, with its attempt history. */
export type ArchivedJob = JobRecord & { attemptHistory: AttemptRecord[] };

/** PostgreSQL side of the result backend: writes for the archiver, reads for the API's read-through. */
export class ArchiveStore {
  readonly pool: pg.Pool;

  constructor(
    url: string,
    private readonly prefix: string,
  ) {
    this.pool = new pg.Pool({ connectionString: url, max: 4 });
    this.pool.on('error', () => undefined); // idle client errors surface on the next query
  }

  /** Creates or upgrades the schema (at start). */
  migrate(): Promise<string[]> {
    return migrate(this.pool);
  }

  /** Writes jobs with their output in one transaction; a job already archived is left as it is (exactly once). */
  async write(jobs: { job: ArchivedJob; output: LogEntry[] }[]): Promise<void> {
    if (jobs.length === 0) return;
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      for (const { job, output } of jobs) {
        const inserted = await client.query(
          `INSERT INTO drover_jobs (prefix, id, queue, status, record, labels, schedule, exit_code, created_at, finished_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`,
          [this.prefix, job.id, job.queue, job.status, JSON.stringify(job), JSON.stringify(job.labels), job.schedule, job.exitCode, job.createdAt, job.finishedAt],
        );
        if (inserted.rowCount === 0 || output.length === 0) continue;
        const ids = output.map((l) => l.id.split('-'));
        await client.query(
          `INSERT INTO drover_job_output (prefix, job_id, ms, seq, stream, line, ts, attempt)
           SELECT $1, $2, * FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::timestamptz[], $8::int[]) ON CONFLICT DO NOTHING`,
          [this.prefix, job.id, ids.map((x) => x[0]), ids.map((x) => x[1]), output.map((l) => l.stream), output.map((l) => l.line), output.map((l) => l.ts), output.map((l) => l.attempt)],
        );
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /** Archived jobs matching the filter, newest first, before `cursor` (a job id): paged on the (prefix, ..., id) indexes. */
  async list(f: ArchiveFilter, cursor: string | undefined, limit: number): Promise<ArchivedJob[]> {
    const where = ['prefix = $1'];
    const args: unknown[] = [this.prefix];
    const add = (sql: string, v: unknown): void => {
      args.push(v);
      where.push(sql.replace('?', `$${args.length}`));
    };
    if (f.queue) add('queue = ?', f.queue);
    if (f.status) add('status = ?', f.status);
    if (f.schedule) add('schedule = ?', f.schedule);
    if (f.exitCode !== undefined) add('exit_code = ?', f.exitCode);
    if (f.label) add('labels @> ?::jsonb', JSON.stringify({ [f.label.key]: f.label.value }));
    if (f.from) add('created_at >= ?', f.from);
    if (f.to) add('created_at < ?', f.to);
    if (cursor) add('id < ?', cursor);
    args.push(limit);
    const r = await this.pool.query<{ record: ArchivedJob }>(
      `SELECT record FROM drover_jobs WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT $${args.length}`,
      args,
    );
    return r.rows.map((x) => x.record);
  }

  async get(id: string): Promise<ArchivedJob | null> {
    const r = await this.pool.query<{ record: ArchivedJob }>('SELECT record FROM drover_jobs WHERE prefix = $1 AND id = $2', [this.prefix, id]);
    return r.rows[0]?.record ?? null;
  }

  /** Output after `cursor` (a stream id), oldest first, paged on the primary key. */
  async logs(id: string, cursor: string | undefined, limit: number): Promise<LogEntry[]> {
    if (cursor !== undefined && !isStreamId(cursor)) throw new DroverError('BAD_CURSOR', 'cursor is not one this API issued');
    const [ms = '0', seq = '-1'] = cursor ? cursor.split('-') : [];
    const r = await this.pool.query<{ ms: string; seq: string; stream: LogEntry['stream']; line: string; ts: Date; attempt: number }>(
      `SELECT ms, seq, stream, line, ts, attempt FROM drover_job_output
       WHERE prefix = $1 AND job_id = $2 AND (ms, seq) > ($3::bigint, $4::bigint) ORDER BY ms, seq LIMIT $5`,
      [this.prefix, id, ms, seq, limit],
    );
    return r.rows.map((x) => ({ id: `${x.ms}-${x.seq}`, stream: x.stream, line: x.line, ts: x.ts.toISOString(), attempt: x.attempt }));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
