import { idTimeBound, type JobRecord, type UnfiredRun, type UnfiredRunItem } from '@drover/core';

/** A page of a schedule's runs: its jobs and the fire times that made none, newest first. */
export interface RunsPage {
  items: (JobRecord | UnfiredRunItem)[];
  nextCursor: string | null;
}

/**
 * Places the fire times that made no job (skipped, misfired) among a page of the schedule's jobs, by fire time:
 * each lands on the page whose job ids span its time (ids are ULIDs, so an id orders with a time), so paging through
 * every page lists each one once. `limit` counts jobs; a page holds the unfired times between them besides.
 */
export function withUnfiredRuns(page: { items: JobRecord[]; nextCursor: string | null }, cursor: string | undefined, unfired: UnfiredRun[]): RunsPage {
  const keyed = unfired
    .map((u) => ({ key: idTimeBound(Date.parse(u.scheduledFor)), item: { ...u, kind: 'unfired' as const, status: u.state } }))
    .filter(({ key }) => (cursor === undefined || key < cursor) && (page.nextCursor === null || key > page.nextCursor))
    .sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0));
  const items: RunsPage['items'] = [];
  let u = 0;
  for (const job of page.items) {
    while (u < keyed.length && keyed[u]!.key > job.id) items.push(keyed[u++]!.item);
    items.push(job);
  }
  while (u < keyed.length) items.push(keyed[u++]!.item);
  return { items, nextCursor: page.nextCursor };
}
