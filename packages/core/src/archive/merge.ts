import type { JobRecord } from '../model/job-record.js';
import type { ArchivedJob } from './archive-store.js';

/**
 * One page, newest first, from a page of jobs still in Redis and a page from the archive, both taken below the same
 * cursor. `liveBoundary` is the last id Redis' side reached when it has more (null: it is exhausted); the page must
 * not go below it, or Redis jobs older than it would be skipped. A job in both is shown as Redis has it; archived
 * ones are shown without their attempt history, as lists show jobs.
 */
export function mergeNewestFirst(
  live: JobRecord[],
  liveBoundary: string | null,
  archived: ArchivedJob[],
  limit: number,
): { items: JobRecord[]; nextCursor: string | null } {
  const byId = new Map<string, JobRecord>();
  for (const j of archived) {
    const record: Partial<ArchivedJob> = { ...j };
    delete record.attemptHistory;
    byId.set(j.id, record as JobRecord);
  }
  for (const j of live) byId.set(j.id, j);
  let merged = [...byId.values()].sort((a, b) => (a.id < b.id ? 1 : -1));
  if (liveBoundary !== null) merged = merged.filter((j) => j.id >= liveBoundary);
  const items = merged.slice(0, limit);
  const last = items[items.length - 1]?.id ?? null;
  if (merged.length > limit) return { items, nextCursor: last };
  if (liveBoundary !== null) return { items, nextCursor: liveBoundary };
  return { items, nextCursor: archived.length > limit ? last : null };
}
