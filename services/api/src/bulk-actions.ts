import { DroverError, idTimeBound, isJobId, newJobId, type Context, type JobSpec, type JobStatus, type NewJob } from '@drover/core';
import type { Principal } from './auth.js';
import type { ApiContext } from './context.js';
import { stopJobs } from './job-actions.js';
import { assertSubmittable, rerunSpec, submitJobs } from './routes/jobs.js';
import { MAX_AFFECTED_IDS, affected } from './schemas.js';

/** Jobs one bulk step reads from an index at a time. */
const STEP = 200;
/** Index entries a bulk retry looks at per request; the cursor then continues where it stopped. */
const RETRY_SCAN = 2000;

export interface RetryFilter {
  status: JobStatus;
  /** Only jobs that finished at or after this ISO time. */
  since?: string;
  cursor?: string;
  /** Most jobs run again by this request. */
  limit: number;
}

/**
 * Runs once more every job of the queue in `status` (and finished since `since`) that was not run again already, as
 * POST /v1/jobs/:id/retry does (one new job each, labelled drover.retryOf; a copy of a replicated job is one job), and
 * marks each as retried, so asking twice does not run a job twice. Bounded per request: it looks at RETRY_SCAN index
 * entries and runs at most `limit`, newest first; `nextCursor` continues below. Only jobs still in Redis are seen (the
 * archive keeps no specs); those the current policy refuses are counted in `skipped`.
 */
export async function retryMatching(ctx: ApiContext, queue: string, f: RetryFilter, principal: Principal | undefined, trace: Context | undefined) {
  if (f.cursor !== undefined && !isJobId(f.cursor)) throw new DroverError('BAD_CURSOR', 'cursor is not one this API issued');
  const since = f.since !== undefined ? Date.parse(f.since) : undefined;
  const ids: string[] = [];
  let skipped = 0;
  let looked = 0;
  let cursor = f.cursor;
  let more = true;
  while (more && looked < RETRY_SCAN && ids.length < f.limit) {
    const page = await ctx.store.list({ queue, status: f.status }, cursor, Math.min(STEP, f.limit - ids.length));
    looked += page.items.length;
    more = page.nextCursor !== null;
    cursor = page.items[page.items.length - 1]?.id ?? cursor;
    const matching = page.items.filter((j) => j.status === f.status && (since === undefined || (j.finishedAt !== null && Date.parse(j.finishedAt) >= since)));
    const done = await ctx.store.retried(matching.map((j) => j.id));
    const jobs: { of: string; job: NewJob }[] = [];
    for (const j of matching.filter((m) => !done.has(m.id))) {
      const spec = await ctx.store.spec(j.id);
      const again: JobSpec | null = spec ? { ...rerunSpec(j.id, spec) } : null;
      if (again) delete again.replicas;
      if (!again || !submittable(ctx, principal, again)) {
        skipped++;
        continue;
      }
      const job: NewJob = { id: newJobId(), spec: again };
      // Claimed first: a retry racing this one (another request, another API replica) skips what this one runs.
      if (await ctx.store.markRetried(j.id, job.id)) jobs.push({ of: j.id, job });
    }
    if (jobs.length === 0) continue;
    try {
      await submitJobs(ctx, jobs.map((x) => x.job), trace, principal);
    } catch (err) {
      await Promise.all(jobs.map((x) => ctx.store.unmarkRetried(x.of))).catch(() => undefined);
      throw err;
    }
    ids.push(...jobs.map((x) => x.of));
  }
  return { ...affected(ids), skipped, nextCursor: more ? (cursor ?? null) : null };
}

function submittable(ctx: ApiContext, principal: Principal | undefined, spec: JobSpec): boolean {
  try {
    assertSubmittable(ctx, principal, spec, '');
    return true;
  } catch (err) {
    if (err instanceof DroverError && err.status < 500) return false;
    throw err;
  }
}

/** Stops every running job of the queue (the kill path of a cancel), a step at a time; returns the ids it stopped. */
export async function cancelRunning(ctx: ApiContext, queue: string): Promise<string[]> {
  const ids: string[] = [];
  for (let cursor: string | undefined; ; ) {
    const page = await ctx.store.list({ queue, status: 'running' }, cursor, STEP);
    const r = await stopJobs(ctx, page.items.map((j) => j.id));
    ids.push(...r.flagged, ...r.cancelled);
    if (!page.nextCursor) return ids;
    cursor = page.nextCursor;
  }
}

/**
 * Deletes the queue's jobs in `status` that finished before `before` (epoch ms), in Redis and the archive, a bounded
 * step at a time (ids made after `before` are not even looked at: no job finished before it was made). Returns how
 * many it deleted and the first MAX_AFFECTED_IDS of their ids (the ids of one request's deletes are held to count them once).
 */
export async function deleteFinished(ctx: ApiContext, queue: string, status: JobStatus, before: number): Promise<{ count: number; ids: string[] }> {
  // An archived job still in Redis is deleted on both sides: counted once.
  const deleted = new Set<string>();
  const keep = (step: string[]): void => {
    for (const id of step) deleted.add(id);
  };
  for (let from: string | null = idTimeBound(before + 1); from !== null; ) {
    const step = await ctx.store.deleteFinishedBefore(queue, status, before, from, 500);
    keep(step.deleted);
    from = step.next;
  }
  if (ctx.archive) {
    const iso = new Date(before).toISOString();
    for (let cursor: string | undefined; ; ) {
      const page = await ctx.archive.finishedBefore(queue, status, iso, cursor, 500);
      keep(await ctx.archive.delete(page));
      if (page.length < 500) break;
      cursor = page[page.length - 1];
    }
  }
  return { count: deleted.size, ids: [...deleted].slice(0, MAX_AFFECTED_IDS) };
}
