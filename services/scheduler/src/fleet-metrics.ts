import { RunnerRegistry, type DroverMetrics, type JobStore, type QueueStore, type ScheduleStore } from '@drover/core';

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

/**
 * The scheduler's share of the metrics: queue names (the per-queue counters start at 0), live consumers per queue,
 * failing schedules. Read at scrape time, so they cost nothing between scrapes.
 */
export function registerFleetMetrics(
  metrics: DroverMetrics,
  deps: { queues: QueueStore; jobs: JobStore; schedules: ScheduleStore; runners: RunnerRegistry; serves: (runnerQueues: readonly string[], queue: string) => boolean },
): void {
  metrics.setQueueLister(() => deps.queues.names());
  metrics.setFailingSchedulesReader(() => countFailingSchedules(deps.schedules, deps.jobs));
  metrics.setConsumerReader(async () => {
    const [names, runners] = await Promise.all([deps.queues.names(), deps.runners.list()]);
    const live = runners.filter((r) => r.state === 'running');
    return names.map((queue) => ({ queue, live: live.filter((r) => deps.serves(r.queues, queue)).length }));
  });
}
