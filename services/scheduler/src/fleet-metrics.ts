import type { Redis } from 'ioredis';
import type { DroverMetrics, JobStore, QueueStore, RunnerRegistry, ScheduleStore } from '@drover/core';

/** Runs of a schedule read to find its latest finished one (runs still going are skipped). */
const RUNS_READ = 5;
/** Schedules looked at per scrape at most: the gauge stays cheap for a very large set (they are paged by name). */
const MAX_SCHEDULES = 2000;
const PAGE = 200;
const FAILED = new Set(['failed', 'timed_out', 'lost']);

/** Enabled schedules whose latest finished run failed, timed out or was lost. */
export async function countFailingSchedules(schedules: ScheduleStore, jobs: JobStore): Promise<number> {
  let failing = 0;
  let cursor: string | undefined;
  for (let seen = 0; seen < MAX_SCHEDULES; seen += PAGE) {
    const page = await schedules.list(cursor, PAGE);
    const enabled = page.items.filter((s) => s.enabled);
    const runs = await Promise.all(enabled.map((s) => schedules.runs(s.name, undefined, RUNS_READ)));
    const records = await jobs.getMany(runs.flatMap((r) => r.ids));
    const status = new Map(records.map((j) => [j.id, j.status]));
    for (const r of runs) {
      const latest = r.ids.map((id) => status.get(id)).find((st) => st !== undefined && st !== 'queued' && st !== 'running' && st !== 'delayed' && st !== 'waiting');
      if (latest !== undefined && FAILED.has(latest)) failing++;
    }
    if (page.nextCursor === null) break;
    cursor = page.nextCursor;
  }
  return failing;
}

/** How long the oldest queued job of each queue has waited (its `queuedAt`; ids are time-ordered, so the index's head). */
async function oldestQueued(jobs: JobStore, queues: string[], now = Date.now()): Promise<{ queue: string; seconds: number }[]> {
  if (queues.length === 0) return [];
  const heads = ((await queues.reduce((p, q) => p.zrange(jobs.keys.index(q, 'queued'), 0, 0), jobs.redis.pipeline()).exec()) ?? []).map((r) => (r[1] as string[] | undefined)?.[0]);
  const withHead = queues.map((queue, i) => ({ queue, head: heads[i] })).filter((x): x is { queue: string; head: string } => x.head !== undefined);
  if (withHead.length === 0) return [];
  const at = ((await withHead.reduce((p, x) => p.hget(jobs.keys.job(x.head), 'queuedAt'), jobs.redis.pipeline()).exec()) ?? []).map((r) => Number(r[1]));
  return withHead.flatMap((x, i) => (Number.isFinite(at[i]) && at[i]! > 0 ? [{ queue: x.queue, seconds: Math.max(0, now - at[i]!) / 1000 }] : []));
}

/**
 * The scheduler's share of the metrics (see FleetReader): queue names for the counters' zeros, live consumers and
 * the oldest queued job per queue, failing schedules, runners by state, the store connection. Read at scrape time.
 */
export function registerFleetMetrics(
  metrics: DroverMetrics,
  deps: { redis: Redis; queues: QueueStore; jobs: JobStore; schedules: ScheduleStore; runners: RunnerRegistry; serves: (runnerQueues: readonly string[], queue: string) => boolean },
): void {
  metrics.setFleetReader({
    queueNames: () => deps.queues.names(),
    consumers: async () => {
      const [names, runners] = await Promise.all([deps.queues.names(), deps.runners.list()]);
      const live = runners.filter((r) => r.state === 'running');
      return names.map((queue) => ({ queue, live: live.filter((r) => deps.serves(r.queues, queue)).length }));
    },
    oldestQueuedSeconds: async () => oldestQueued(deps.jobs, await deps.queues.names()),
    failingSchedules: () => countFailingSchedules(deps.schedules, deps.jobs),
    runnerStates: async () => {
      const counts = { running: 0, draining: 0, offline: 0 };
      for (const r of await deps.runners.list()) counts[r.state]++;
      return counts;
    },
    storeConnected: () => deps.redis.status === 'ready',
  });
}
