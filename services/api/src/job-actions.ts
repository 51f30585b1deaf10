import { isTerminal, type JobRecord, type ScheduleRecord } from '@drover/core';
import type { ApiContext } from './context.js';

/**
 * Stops jobs (queued ones never start, running ones get SIGTERM then SIGKILL from their runner). Returns which were
 * cancelled outright and which were running (flagged: their runner stops them). Ended and unknown ids are left alone.
 */
export async function stopJobs(ctx: ApiContext, ids: string[]): Promise<{ cancelled: string[]; flagged: string[] }> {
  return ctx.store.cancelMany([...new Set(ids)]);
}

/** How often untilEnded looks again. */
const ENDED_POLL_MS = 25;

/**
 * Waits until the jobs reached a final state, as routes that answer "stopped" do (a runner stops a running job within
 * the kill grace); gives up after the kill grace plus 5 s. Returns the ids still not ended then.
 */
export async function untilEnded(ctx: ApiContext, ids: string[]): Promise<string[]> {
  let left = ids;
  const deadline = Date.now() + ctx.killGraceMs + 5000;
  while (left.length > 0) {
    const now = await Promise.all(left.map((id) => ctx.store.outcome(id)));
    left = left.filter((_, i) => now[i] && !isTerminal(now[i].status));
    if (left.length === 0 || Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, ENDED_POLL_MS));
  }
  return left;
}

/** The ids stopJobs stopped, in order: what cancel and kill routes answer. */
export function stopped(r: { cancelled: string[]; flagged: string[] }): string[] {
  return [...r.cancelled, ...r.flagged].sort();
}

/** Up to `n` copies made from copy 0 `firstId`: they follow its id in its queue's index (ULIDs of one submission). */
async function followers(ctx: ApiContext, queue: string, firstId: string, n: number): Promise<JobRecord[]> {
  // Jobs of other API replicas made in the same millisecond may sort between them: read past them.
  const after = await ctx.store.redis.zrangebylex(ctx.store.keys.index(queue, undefined), `(${firstId}`, '+', 'LIMIT', 0, n + 100);
  return (await ctx.store.getMany(after)).filter((j) => j.replicaOf === firstId).slice(0, n);
}

/** A replicated job's copies, from copy 0. */
export async function copiesOf(ctx: ApiContext, first: JobRecord): Promise<JobRecord[]> {
  if (first.replicas <= 1) return [first];
  return [first, ...(await followers(ctx, first.queue, first.id, first.replicas - 1))];
}

/** Every copy of the job's group (the job alone when it has no replicas): found from copy 0, which any copy names. */
export async function groupOf(ctx: ApiContext, job: JobRecord): Promise<JobRecord[]> {
  if (job.replicas <= 1 || job.replicaOf === null) return [job];
  const first = job.replicaOf === job.id ? job : await ctx.store.get(job.replicaOf);
  if (first) return copiesOf(ctx, first);
  // Copy 0 gone (retention, a delete): the copies still in Redis.
  return followers(ctx, job.queue, job.replicaOf, job.replicas - 1);
}

/**
 * Every unfinished job of a schedule, without deleting it: the jobs of its runs (its copies and steps), and the jobs a
 * restart gave those runs' workflows (a restart's jobs are the workflow's, not the schedule's): of its latest 100 runs.
 */
export async function scheduleJobs(ctx: ApiContext, s: ScheduleRecord): Promise<string[]> {
  const ids = new Set(s.runningJobs);
  if (s.workflow) {
    const recent = await ctx.store.getMany((await ctx.schedules.runs(s.name, undefined, 100)).ids);
    const workflows = new Set(recent.map((j) => j.labels['drover.workflow']).filter((w): w is string => w !== undefined));
    for (const id of workflows) {
      const wf = await ctx.workflows.get(id);
      for (const job of wf ? Object.values(wf.jobs).flat() : []) ids.add(job);
    }
  }
  return [...ids];
}
