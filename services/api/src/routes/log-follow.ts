import { isTerminal, type ArchivedJob, type ArchiveStore, type JobRecord, type LogEntry } from '@drover/core';
import type { FastifyReply } from 'fastify';
import type { ApiContext } from '../context.js';
import { callerKey } from '../request-guard.js';

const POLL_MS = 100;
const PAGE = 1000;

type Sse = NonNullable<FastifyReply['sse']>;
type Outcome = Pick<JobRecord, 'status' | 'exitCode' | 'signal' | 'error' | 'truncated'>;

/** The `end` event's data: how the job ended (status null: the job is gone, archive included). */
const endOf = (job: Outcome | null): Record<string, unknown> => ({
  status: job?.status ?? null, exitCode: job?.exitCode ?? null, signal: job?.signal ?? null, error: job?.error ?? null, truncated: job?.truncated ?? false,
});

/** An archived job: what is left of its output after `cursor`, then its end as recorded. */
async function followArchived(archive: ArchiveStore, sse: Sse, job: ArchivedJob, cursor: string | undefined): Promise<void> {
  for (let last = cursor; sse.isConnected; ) {
    const items = await archive.logs(job.id, last, PAGE);
    for (const line of items) await sse.send({ id: line.id, event: 'line', data: line satisfies LogEntry });
    if (items.length < PAGE) break;
    last = items[items.length - 1]!.id;
  }
  if (sse.isConnected) await sse.send({ event: 'end', data: endOf(job) });
}

/**
 * `GET /v1/jobs/:id/logs?follow=1` as SSE: every line from the cursor on (`line` events, id = the log cursor, so
 * Last-Event-ID resumes), then one `end` event with the job's final status once it ended and all was sent.
 * New lines are polled every 100 ms; an event for the job (it ended) wakes the loop at once.
 */
export async function followLogs(ctx: ApiContext, reply: FastifyReply, jobId: string, cursor: string | undefined): Promise<void> {
  await ctx.streams.open(callerKey(reply.request), reply);
  const sse = reply.sse;
  let wake: (() => void) | undefined;
  let closed = false;
  const unsubscribe = await ctx.hub.subscribe({
    event: (e) => {
      if (e.jobId === jobId) wake?.();
    },
    end: () => {
      closed = true;
      wake?.();
      sse.close();
    },
  });
  sse.onClose(() => {
    closed = true;
    unsubscribe();
    wake?.();
  });
  sse.keepAlive();
  sse.sendHeaders();
  let last = cursor;
  while (!closed && sse.isConnected) {
    // Read the status first: lines written before the job ended are then all in the page that follows. Only the
    // few fields the end event needs: this runs every POLL_MS per follower, and a record carries its whole spec.
    const job = await ctx.store.outcome(jobId);
    if (!job && ctx.archive) {
      // Gone from Redis: archived (before or while it was followed); its stored output and real end are there.
      const archived = await ctx.archive.get(jobId);
      if (archived) {
        await followArchived(ctx.archive, sse, archived, last);
        break;
      }
    }
    const page = await ctx.logs.read(jobId, last, PAGE);
    for (const line of page.items) await sse.send({ id: line.id, event: 'line', data: line satisfies LogEntry });
    last = page.last ?? last;
    if (page.items.length === PAGE) continue;
    if (!job || isTerminal(job.status)) {
      // The outcome too, so a client following a job needs no second request to learn how it ended.
      await sse.send({ event: 'end', data: endOf(job) });
      break;
    }
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, POLL_MS);
    });
    wake = undefined;
  }
  unsubscribe();
  sse.close();
}
