import { isJobId, type ArchiveFilter, type JobRecord } from '@drover/core';
import type { ApiContext } from '../../context.js';
import { fromArchive, jobById, type ReadJob } from './read-through.js';

/** The label a task's Coyotes id is kept in (the client's `id`, or the first job's id once it was retried). */
export const TASK_ID_LABEL = 'coyotes.id';
/** A client's task id: it is used in paths, so letters, digits and a few marks (UUIDs, "myid", "order:42"). */
export const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;
/** Job statuses Coyotes calls failed. */
export const FAILED = ['failed', 'timed_out', 'lost'] as const;
/** Go's zero time: what Coyotes shows for a time that is not set. */
const NO_TIME = '0001-01-01T00:00:00Z';
/** How many of the newest jobs of each state a list or a lookup by client id reads, from Redis and from the archive. */
const WINDOW = 1000;
/** Failed tasks taken off the failed list (retried or deleted) that are remembered; the oldest are forgotten first. */
const DISMISSED_MAX = 100_000;

/** The Coyotes id of a job's task. */
export const taskIdOf = (job: JobRecord): string => job.labels[TASK_ID_LABEL] ?? job.id;

/** Coyotes' task document for a job. */
export function coyotesTask(job: JobRecord): Record<string, unknown> {
  const argv = job.argv ?? ['/bin/sh', '-c', job.command ?? ''];
  const failed = (FAILED as readonly string[]).includes(job.status);
  return {
    task_id: taskIdOf(job),
    task_name: job.labels['coyotes.task'] ?? argv.join(' '),
    command: { name: argv[0], args: [...argv.slice(1), ...job.args] },
    channel: job.queue,
    status: failed ? 'failed' : job.status === 'running' ? 'running' : 'queued',
    execute_at: job.runAt ?? NO_TIME,
    retry_count: Math.max(0, job.attempts - 1),
    failed_at: failed ? (job.finishedAt ?? NO_TIME) : NO_TIME,
  };
}

/** Tasks by their Coyotes id, as Coyotes lists failed and delayed tasks; for a repeated id the newest job wins. */
export function byTaskId(jobs: JobRecord[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const j of [...jobs].sort((a, b) => (a.id < b.id ? 1 : -1))) {
    const id = taskIdOf(j);
    if (!(id in out)) out[id] = coyotesTask(j);
  }
  return out;
}

/**
 * Coyotes' failed and delayed tasks over Drover's jobs. Failed tasks are jobs of a channel that ended failed, timed
 * out or lost, from Redis and (once retention let them go) the archive, less those taken off the list: retried (the
 * task goes on as a new job with the same task id) or deleted. Delayed tasks are delayed jobs; they are never archived.
 */
export class CoyotesTasks {
  private readonly dismissedKey: string;

  constructor(private readonly ctx: ApiContext) {
    this.dismissedKey = ctx.store.keys.name('coyotesDismissed');
  }

  /** The channel's failed tasks (the newest of each failed state), optionally only those with a client id. */
  async failed(channel: string, clientId?: string): Promise<ReadJob[]> {
    const { store, archive } = this.ctx;
    const ids: string[] = [];
    for (const s of FAILED) ids.push(...(await store.redis.zrevrange(store.keys.index(channel, s), 0, WINDOW - 1)));
    const jobs = new Map<string, ReadJob>((await store.getMany(ids)).map((j) => [j.id, j]));
    if (archive) {
      for (const status of FAILED) {
        const f: ArchiveFilter = { queue: channel, status, ...(clientId ? { label: { key: TASK_ID_LABEL, value: clientId } } : {}) };
        for (const j of await archive.list(f, undefined, WINDOW)) if (!jobs.has(j.id)) jobs.set(j.id, fromArchive(j));
      }
    }
    const found = [...jobs.values()].filter((j) => j.queue === channel && (FAILED as readonly string[]).includes(j.status) && (!clientId || taskIdOf(j) === clientId));
    const dismissed = await this.dismissed(found.map((j) => j.id));
    return found.filter((j) => !dismissed.has(j.id));
  }

  /** The failed task with this Coyotes id in the channel (its newest failed job), or null. */
  async failedOne(channel: string, taskId: string): Promise<ReadJob | null> {
    const direct = isJobId(taskId) ? await jobById(this.ctx, taskId) : null;
    if (direct && direct.queue === channel && taskIdOf(direct) === taskId && (FAILED as readonly string[]).includes(direct.status)) {
      if ((await this.dismissed([direct.id])).size === 0) return direct;
    }
    const named = await this.failed(channel, taskId);
    return named.sort((a, b) => (a.id < b.id ? 1 : -1))[0] ?? null;
  }

  /** Takes failed jobs off the failed list (their records stay, as history). */
  async dismiss(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const now = Date.now();
    const m = this.ctx.store.redis.multi();
    for (const id of ids) m.zadd(this.dismissedKey, now, id);
    await m.zremrangebyrank(this.dismissedKey, 0, -(DISMISSED_MAX + 1)).exec();
  }

  private async dismissed(ids: string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const scores = await this.ctx.store.redis.zmscore(this.dismissedKey, ...ids);
    return new Set(ids.filter((_, i) => scores[i] !== null));
  }

  /** Delayed jobs, the soonest first (up to the window). */
  async delayed(): Promise<JobRecord[]> {
    const { store } = this.ctx;
    const ids = await store.redis.zrange(store.keys.index(undefined, 'delayed'), 0, WINDOW - 1);
    return (await store.getMany(ids)).filter((j) => j.status === 'delayed');
  }

  /**
   * The task with this Coyotes id among delayed jobs (of the queues `visible` lets through: a client id may repeat in
   * queues a token cannot see), or else the job it names wherever it is now (so a caller can be told it is no longer
   * delayed), or null.
   */
  async delayedOne(taskId: string, visible: (queue: string) => boolean = () => true): Promise<ReadJob | null> {
    const found = isJobId(taskId) ? await jobById(this.ctx, taskId) : null;
    const direct = found && visible(found.queue) ? found : null;
    if (direct && taskIdOf(direct) === taskId && direct.status === 'delayed') return direct;
    const named = (await this.delayed()).filter((j) => taskIdOf(j) === taskId && visible(j.queue));
    if (named.length > 0) return named.sort((a, b) => (a.id < b.id ? 1 : -1))[0]!;
    return direct;
  }
}
