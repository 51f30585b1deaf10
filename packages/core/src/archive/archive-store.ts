import pg from 'pg';
import { DroverError } from '../errors.js';
import type { JobRecord, AttemptRecord } from '../model/job-record.js';
import type { LogEntry } from '../store/log-store.js';
import { migrate } from './migrate.js';
import { isStreamId } from '../store/keys.js';
import { idTimeBound } from '../ids.js';

export interface ArchiveFilter {
  queue?: string;
  status?: string;
  schedule?: string;
  exitCode?: number;
  label?: { key: string; value: string };
  /** Every one of these labels (AND). */
  labels?: { key: string; value: string }[];
  /** The runner that ran (or runs) the job's latest attempt. */
  runner?: string;
  name?: string;
  /** A substring of the job's command (its argv joined by spaces, for an argv job); case-sensitive. */
  command?: string;
  /** Created at or after / before (ISO times). */
  from?: string;
  to?: string;
}

/** The text a command filter looks in. */
export function commandText(j: Pick<JobRecord, 'command' | 'argv'>): string {
  return j.command ?? (j.argv ?? []).join(' ');
}

/** Whether a job record passes a filter (for jobs still in Redis, filtered in memory). */
export function passes(j: JobRecord, f: ArchiveFilter): boolean {
  if (f.queue && j.queue !== f.queue) return false;
  if (f.status && j.status !== f.status) return false;
  if (f.schedule && j.schedule !== f.schedule) return false;
  if (f.exitCode !== undefined && j.exitCode !== f.exitCode) return false;
  if (f.label && j.labels[f.label.key] !== f.label.value) return false;
  if (f.labels && !f.labels.every((l) => j.labels[l.key] === l.value)) return false;
  if (f.runner && j.runnerId !== f.runner) return false;
  if (f.name && j.name !== f.name) return false;
  if (f.command !== undefined && !commandText(j).includes(f.command)) return false;
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
          `INSERT INTO drover_job_output (prefix, job_id, ms, seq, stream, line, ts, attempt, partial)
           SELECT $1, $2, * FROM unnest($3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::timestamptz[], $8::int[], $9::boolean[]) ON CONFLICT DO NOTHING`,
          [
            this.prefix, job.id, ids.map((x) => x[0]), ids.map((x) => x[1]), output.map((l) => l.stream), output.map((l) => l.line), output.map((l) => l.ts),
            output.map((l) => l.attempt), output.map((l) => l.partial === true),
          ],
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
    return (await this.listScan(f, cursor, limit)).items;
  }

  /**
   * `list` with a bound on the work: with `scan`, only the newest `scan` rows below the cursor that the indexed filters
   * (queue, status, schedule, labels, creation times) select are looked at for the others (exit code, runner, name,
   * command).
   * `boundary` is then the last row looked at when there may be more below it (null: none), where the next page starts.
   */
  async listScan(f: ArchiveFilter, cursor: string | undefined, limit: number, scan?: number): Promise<{ items: ArchivedJob[]; boundary: string | null }> {
    const indexed = ['prefix = $1'];
    const rest: string[] = [];
    const args: unknown[] = [this.prefix];
    const add = (to: string[], sql: string, v: unknown): void => {
      args.push(v);
      to.push(sql.replace('?', `$${args.length}`));
    };
    if (f.queue) add(indexed, 'queue = ?', f.queue);
    if (f.status) add(indexed, 'status = ?', f.status);
    if (f.schedule) add(indexed, 'schedule = ?', f.schedule);
    const labels = [...(f.label ? [f.label] : []), ...(f.labels ?? [])];
    if (labels.length > 0) add(indexed, 'labels @> ?::jsonb', JSON.stringify(Object.fromEntries(labels.map((l) => [l.key, l.value]))));
    if (cursor) add(indexed, 'id < ?', cursor);
    // Ids sort by creation time: a time range is an id range, on the same indexes.
    if (f.from) {
      add(indexed, 'id >= ?', idTimeBound(Date.parse(f.from)));
      add(indexed, 'created_at >= ?', f.from);
    }
    if (f.to) {
      add(indexed, 'id < ?', idTimeBound(Date.parse(f.to)));
      add(indexed, 'created_at < ?', f.to);
    }
    if (f.exitCode !== undefined) add(rest, 'exit_code = ?', f.exitCode);
    if (f.runner) add(rest, `record->>'runnerId' = ?`, f.runner);
    if (f.name) add(rest, `record->>'name' = ?`, f.name);
    // The same text commandText looks in: the command, else the argv joined by spaces.
    if (f.command !== undefined) add(rest, `strpos(coalesce(record->>'command', (SELECT string_agg(a, ' ') FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(record->'argv') = 'array' THEN record->'argv' ELSE '[]'::jsonb END) a), ''), ?) > 0`, f.command);
    const where = (w: string[]): string => (w.length > 0 ? `WHERE ${w.join(' AND ')}` : '');
    if (scan === undefined || rest.length === 0) {
      args.push(limit);
      const r = await this.pool.query<{ record: ArchivedJob }>(
        `SELECT record FROM drover_jobs ${where([...indexed, ...rest])} ORDER BY id DESC LIMIT $${args.length}`,
        args,
      );
      return { items: r.rows.map((x) => x.record), boundary: null };
    }
    args.push(scan);
    const scanArg = args.length;
    args.push(limit);
    // The window of rows looked at, and the matching ones in it; the window's last id says where it stopped.
    const r = await this.pool.query<{ k: number; record: ArchivedJob | null; id: string | null; n: string | null }>(
      `WITH w AS (SELECT id, record, exit_code, created_at FROM drover_jobs ${where(indexed)} ORDER BY id DESC LIMIT $${scanArg})
       SELECT 0 AS k, NULL::jsonb AS record, min(id) AS id, count(*)::text AS n FROM w
       UNION ALL (SELECT 1, record, id, NULL FROM w ${where(rest)} ORDER BY id DESC LIMIT $${args.length})`,
      args,
    );
    const head = r.rows.find((x) => x.k === 0);
    const items = r.rows.filter((x) => x.k === 1).sort((a, b) => (a.id! < b.id! ? 1 : -1)).map((x) => x.record!);
    return { items, boundary: Number(head?.n ?? 0) >= scan ? (head?.id ?? null) : null };
  }

  /** Deletes archived jobs with their output; returns the ids it deleted. */
  async delete(ids: string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    const client = await this.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('DELETE FROM drover_job_output WHERE prefix = $1 AND job_id = ANY($2::text[])', [this.prefix, ids]);
      const r = await client.query<{ id: string }>('DELETE FROM drover_jobs WHERE prefix = $1 AND id = ANY($2::text[]) RETURNING id', [this.prefix, ids]);
      await client.query('COMMIT');
      return r.rows.map((x) => x.id);
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /**
   * Up to `limit` archived jobs of a queue in `status` that finished before `before`, newest id first below `cursor`:
   * one bounded step of a bulk clean (their ids, to be deleted with `delete`).
   */
  async finishedBefore(queue: string, status: string, before: string, cursor: string | undefined, limit: number): Promise<string[]> {
    const r = await this.pool.query<{ id: string }>(
      `SELECT id FROM drover_jobs WHERE prefix = $1 AND queue = $2 AND status = $3 AND finished_at < $4 AND ($5::text IS NULL OR id < $5)
       ORDER BY id DESC LIMIT $6`,
      [this.prefix, queue, status, before, cursor ?? null, limit],
    );
    return r.rows.map((x) => x.id);
  }

  async get(id: string): Promise<ArchivedJob | null> {
    const r = await this.pool.query<{ record: ArchivedJob }>('SELECT record FROM drover_jobs WHERE prefix = $1 AND id = $2', [this.prefix, id]);
    return r.rows[0]?.record ?? null;
  }

  /** Output after `cursor` (a stream id), oldest first, paged on the primary key. */
  async logs(id: string, cursor: string | undefined, limit: number): Promise<LogEntry[]> {
    if (cursor !== undefined && !isStreamId(cursor)) throw new DroverError('BAD_CURSOR', 'cursor is not one this API issued');
    const [ms = '0', seq = '-1'] = cursor ? cursor.split('-') : [];
    const r = await this.pool.query<{ ms: string; seq: string; stream: LogEntry['stream']; line: string; ts: Date; attempt: number; partial: boolean }>(
      `SELECT ms, seq, stream, line, ts, attempt, partial FROM drover_job_output
       WHERE prefix = $1 AND job_id = $2 AND (ms, seq) > ($3::bigint, $4::bigint) ORDER BY ms, seq LIMIT $5`,
      [this.prefix, id, ms, seq, limit],
    );
    return r.rows.map((x) => ({
      id: `${x.ms}-${x.seq}`, stream: x.stream, line: x.line, ts: x.ts.toISOString(), attempt: x.attempt, ...(x.partial ? { partial: true as const } : {}),
    }));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
