import { Readable } from 'node:stream';
import type { AttemptRecord, JobRecord, LogEntry } from '@drover/core';
import type { FastifyReply } from 'fastify';

const PAGE = 1000;

/** Reads the stored output after a cursor (Redis, or the archive for a job Redis let go). */
export type LogPager = (cursor: string | undefined, limit: number) => Promise<LogEntry[]>;

/** `--- attempt 2 of 3: failed (exit 1) ---`: the line that opens each attempt's output, as the dashboard heads it. */
export function attemptSeparator(attempt: number, job: Pick<JobRecord, 'attempts' | 'status'>, history: readonly AttemptRecord[]): string {
  const a = history.find((h) => h.attempt === attempt);
  const status = a?.status ?? (attempt === job.attempts ? job.status : 'running');
  const exit = a ? (a.exitCode !== null ? ` (exit ${a.exitCode})` : a.signal ? ` (signal ${a.signal})` : '') : '';
  return `--- attempt ${attempt}${job.attempts > 1 ? ` of ${job.attempts}` : ''}: ${status}${exit} ---\n`;
}

/**
 * A job's output as text, page by page (never the whole log in memory): stdout and stderr as the job wrote them,
 * in the order they were read, each attempt opened by a separator line. A piece no newline followed gets none,
 * except before a separator, which starts a line of its own. Drover's own notes (stream `system`) are left out.
 */
export async function* logText(read: LogPager, job: Pick<JobRecord, 'attempts' | 'status'>, history: readonly AttemptRecord[]): AsyncGenerator<string> {
  let cursor: string | undefined;
  let attempt = 0;
  let openLine = false;
  for (;;) {
    const items = await read(cursor, PAGE);
    let chunk = '';
    for (const l of items) {
      if (l.attempt !== attempt) {
        attempt = l.attempt;
        chunk += (openLine ? '\n' : '') + attemptSeparator(attempt, job, history);
        openLine = false;
      }
      if (l.stream === 'system') continue;
      chunk += l.partial ? l.line : `${l.line}\n`;
      openLine = l.partial === true;
    }
    if (chunk) yield chunk;
    if (items.length < PAGE) return;
    cursor = items[items.length - 1]!.id;
  }
}

/** Sends the text download: streamed, `text/plain`, named after the job. */
export function sendLogText(reply: FastifyReply, jobId: string, text: AsyncGenerator<string>): FastifyReply {
  return reply
    .type('text/plain; charset=utf-8')
    .header('content-disposition', `attachment; filename="${jobId}.log"`)
    .send(Readable.from(text, { objectMode: false }));
}
