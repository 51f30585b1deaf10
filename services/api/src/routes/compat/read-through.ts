import { isJobId, type ArchivedJob, type JobRecord, type LogEntry } from '@drover/core';
import type { ApiContext } from '../../context.js';

/** A job record as the adapters read it: from Redis, or from the archive once retention let it go there. */
export type ReadJob = JobRecord & { archived?: true };

/** An archived job as a record (without its attempt history, as lists show jobs), marked archived. */
export function fromArchive(job: ArchivedJob): ReadJob {
  const record: Partial<ArchivedJob> & { archived?: true } = { ...job, archived: true };
  delete record.attemptHistory;
  return record as ReadJob;
}

/** Jobs by id in the order asked, from Redis or (for those Redis no longer holds) the archive; unknown ids are left out. */
export async function jobsById(ctx: ApiContext, ids: readonly string[]): Promise<ReadJob[]> {
  const wanted = ids.filter(isJobId);
  const live = new Map<string, ReadJob>((await ctx.store.getMany(wanted)).map((j) => [j.id, j]));
  if (ctx.archive) {
    for (const id of wanted.filter((x) => !live.has(x))) {
      const archived = await ctx.archive.get(id);
      if (archived) live.set(id, fromArchive(archived));
    }
  }
  return wanted.flatMap((id) => (live.has(id) ? [live.get(id)!] : []));
}

/** One job, wherever it is, or null. */
export async function jobById(ctx: ApiContext, id: string): Promise<ReadJob | null> {
  return (await jobsById(ctx, [id]))[0] ?? null;
}

/** The first `limit` output lines of a job, from Redis or from the archive. */
export async function outputOf(ctx: ApiContext, job: ReadJob, limit: number): Promise<LogEntry[]> {
  if (job.archived && ctx.archive) return ctx.archive.logs(job.id, undefined, limit);
  return (await ctx.logs.read(job.id, undefined, limit)).items;
}
