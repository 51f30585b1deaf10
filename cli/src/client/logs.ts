import type { LogEntry } from '@drover/core';
import type { Ctx } from './command.js';
import { ApiError, CliError } from './errors.js';
import { seg, type Api } from './http.js';
import { readSse } from './sse.js';

export type LogLine = LogEntry;

interface LogPage {
  items: LogLine[];
  nextCursor: string | null;
  done: boolean;
  truncated: boolean;
}

export const TRUNCATED_NOTE = "drover: the job's output was cut at the runner's limit (RUNNER_OUTPUT_CAP)";

/** What the follow stream's `end` event says: how the job ended (status null: the job is gone). */
export interface LogEnd {
  status: string | null;
  exitCode: number | null;
  signal: string | null;
  error: string | null;
  truncated: boolean;
}

/**
 * A job's stdout to our stdout, its stderr to our stderr, as the job wrote them (a piece that no newline followed
 * gets none); Drover's own notes (stream `system`) to stderr, marked, on a line of their own.
 */
export function writeLine(ctx: Ctx, l: LogLine): void {
  if (l.stream === 'system') ctx.err(`[drover] ${l.line}`);
  else ctx.write(l.stream, l.partial ? l.line : `${l.line}\n`);
}

/** Prints the lines stored so far, page by page. */
export async function printLogs(ctx: Ctx, api: Api, id: string): Promise<LogPage> {
  let cursor: string | undefined;
  for (;;) {
    const page = await api.get<LogPage>(`/v1/jobs/${seg(id)}/logs`, { cursor, limit: 1000 });
    for (const l of page.items) writeLine(ctx, l);
    if (page.nextCursor === null || page.items.length === 0) return page;
    cursor = page.nextCursor;
  }
}

const RECONNECTS = 5;
const RECONNECT_MS = 500;

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });

/**
 * Streams a job's output live (GET /v1/jobs/:id/logs?follow=1 as SSE) until its `end` event. A dropped stream (API
 * restart, proxy timeout) is reopened from the last line seen, via Last-Event-ID, so no line is lost or repeated.
 */
export async function followLogs(api: Api, id: string, write: (l: LogLine) => void, signal: AbortSignal): Promise<LogEnd> {
  let last: string | undefined;
  let failures = 0;
  let connected = false;
  for (;;) {
    let lastError: Error | undefined;
    try {
      const body = await api.events(`/v1/jobs/${seg(id)}/logs`, { follow: 1 }, last, signal);
      connected = true;
      for await (const ev of readSse(body)) {
        failures = 0;
        if (ev.event === 'line') {
          const l = JSON.parse(ev.data) as LogLine;
          write(l);
          last = ev.id ?? l.id;
        } else if (ev.event === 'end') {
          return JSON.parse(ev.data) as LogEnd;
        }
      }
    } catch (err) {
      // Client errors (404, 403) do not heal by retrying; nor does anything before the first connection.
      if (signal.aborted || !connected || (err instanceof ApiError && err.status < 500)) throw err;
      lastError = err as Error;
    }
    if (++failures > RECONNECTS) throw lastError ?? new CliError(`the log stream of job ${id} keeps closing before the job ended`);
    await sleep(RECONNECT_MS * failures, signal);
    if (signal.aborted) throw new CliError('interrupted');
  }
}
