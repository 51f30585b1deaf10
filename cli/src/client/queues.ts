import type { QueueSettingsInput, QueueView } from '@drover/core';
import { DURATION_HELP, parseDuration, type Opts, type Parsed } from './args.js';
import { about, listCommand, type CommandDef, type Ctx, type Group } from './command.js';
import { UsageError } from './errors.js';
import { duration, table, type Cell } from './format.js';
import { seg } from './http.js';
import { isoOption } from './jobs.js';

const queuePath = (name: string): string => `/v1/queues/${seg(name)}`;

const rate = (r: QueueView['settings']['rateLimit']): string => (r ? `${r.max}/${duration(r.perMs)}` : '-');

/** Who takes the queue's jobs: the number of running runners that serve it, `none` when no live runner does. */
function runnersCell(q: QueueView): Cell {
  const consumers = q.consumers ?? [];
  const running = consumers.filter((c) => c.state === 'running').length;
  if (running > 0) return String(running);
  return { text: consumers.length > 0 ? 'draining' : 'none', style: 'yellow' };
}

/** The line under the table for each queue whose jobs wait for a runner. */
export function unservedNote(q: QueueView): string | undefined {
  if (!q.consumers || q.consumers.some((c) => c.state === 'running')) return undefined;
  return q.consumers.length > 0
    ? `queue ${q.name}: its runners are draining; its jobs wait until one is resumed`
    : `queue ${q.name}: no runner serves this queue; its jobs wait until a runner with it in RUNNER_QUEUES (or RUNNER_QUEUES=*) starts`;
}

function queueTable(items: QueueView[], color: boolean): string {
  if (items.length === 0) return 'no queues';
  const notes = items.map(unservedNote).filter((n): n is string => n !== undefined);
  return table(
    ['NAME', 'STATE', 'QUEUED', 'DELAYED', 'WAITING', 'RUNNING', 'HELD', 'CONCURRENCY', 'RATE', 'TIMEOUT', 'DEDUPE', 'RUNNERS'],
    items.map((q): Cell[] => [
      q.name,
      q.settings.paused ? { text: 'paused', style: 'yellow' } : 'active',
      String(q.counts.queued),
      String(q.counts.delayed),
      String(q.counts.waiting),
      String(q.counts.running),
      String(q.counts.parked),
      q.settings.concurrency === null ? '-' : String(q.settings.concurrency),
      rate(q.settings.rateLimit),
      q.settings.defaultTimeoutMs === null ? '-' : duration(q.settings.defaultTimeoutMs),
      q.settings.dedupe ? 'yes' : 'no',
      runnersCell(q),
    ]),
    color,
  ) + (notes.length > 0 ? `\n\n${notes.join('\n')}` : '');
}

/** `none` clears a setting (null in the API). */
const none = (v: string): boolean => v === 'none';

/** `10/1s`, `10/s`, `600/5m`: at most N starts per window. */
function parseRate(v: string): { max: number; perMs: number } {
  const m = /^(\d+)\/(.+)$/.exec(v.trim());
  const perMs = m ? parseDuration(/^\d/.test(m[2]!) ? m[2]! : `1${m[2]}`) : null;
  if (!m || perMs === null || perMs < 1 || Number(m[1]) < 1) throw new UsageError(`--rate takes N/duration such as 10/1s or 100/5m, or none; not "${v}"`);
  return { max: Number(m[1]), perMs };
}

/** The PUT body from the options given; settings not mentioned stay as they are. */
function settingsFrom(opts: Opts): QueueSettingsInput {
  const body: QueueSettingsInput = {};
  const concurrency = opts.str('concurrency');
  const rateText = opts.str('rate');
  const timeout = opts.str('timeout');
  if (concurrency !== undefined) body.concurrency = none(concurrency) ? null : opts.int('concurrency', 1, 100_000)!;
  if (rateText !== undefined) body.rateLimit = none(rateText) ? null : parseRate(rateText);
  if (timeout !== undefined) body.defaultTimeoutMs = none(timeout) ? null : opts.duration('timeout')!;
  if (opts.flag('dedupe') && opts.flag('no-dedupe')) throw new UsageError('give --dedupe or --no-dedupe, not both');
  if (opts.flag('dedupe')) body.dedupe = true;
  if (opts.flag('no-dedupe')) body.dedupe = false;
  if (Object.keys(body).length === 0) throw new UsageError('nothing to change: give --concurrency, --rate, --timeout or --dedupe/--no-dedupe');
  return body;
}

/** pause and resume: the same call but for the verb. */
function pauseOrResume(action: 'pause' | 'resume'): CommandDef {
  return about({
    arg: 'name',
    summary: action === 'pause' ? 'stop starting jobs of a queue (running ones finish)' : 'start jobs of a paused queue again',
    call: (ctx, name) => ctx.api().post<QueueView>(`${queuePath(name)}/${action}`),
    human: (q, ctx) => queueTable([q], ctx.color),
  });
}

/** What a bulk action answers: how many jobs and which (capped). */
interface Affected {
  count: number;
  ids: string[];
  idsTruncated: boolean;
  nextCursor?: string | null;
}

const affectedText = (verb: string) => (r: Affected): string =>
  [`${verb} ${r.count} job${r.count === 1 ? '' : 's'}`, ...r.ids, ...(r.idsTruncated ? [`(and ${r.count - r.ids.length} more)`] : [])].join('\n');

/** `queues retry`: every page of the retry, until the API says there is no more. */
async function retryAll(ctx: Ctx, name: string, p: Parsed): Promise<Affected> {
  const since = isoOption(p.opts.str('since'), '--since');
  const total: Affected = { count: 0, ids: [], idsTruncated: false };
  for (let cursor: string | undefined; ; ) {
    const page = await ctx.api().post<Affected>(`${queuePath(name)}/retry`, { status: p.opts.str('status') ?? 'failed', ...(since ? { since } : {}), ...(cursor ? { cursor } : {}) });
    total.count += page.count;
    total.ids.push(...page.ids);
    total.idsTruncated ||= page.idsTruncated;
    if (!page.nextCursor) return total;
    cursor = page.nextCursor;
  }
}

export const queues: Group = {
  summary: 'queues: settings that hold across all runners, pause and resume',
  commands: {
    ls: listCommand<QueueView>('queues with their settings, job counts and runners (HELD: queued but held back by the settings; RUNNERS: running runners that serve it)', '/v1/queues', (items, ctx) => queueTable(items, ctx.color)),
    set: about({
      arg: 'name',
      usage: '<name> [--concurrency n|none] [--rate n/duration|none] [--timeout duration|none] [--dedupe|--no-dedupe] [--json]',
      summary: "change a queue's settings (creates the queue); none clears a setting",
      help: `Settings hold across all runners; those not given stay as they are. ${DURATION_HELP}.`,
      options: {
        concurrency: { type: 'string', arg: 'n|none', desc: 'most jobs of the queue running at once, across all runners' },
        rate: { type: 'string', arg: 'n/duration|none', desc: 'at most n job starts per window, e.g. 10/1s' },
        timeout: { type: 'string', arg: 'duration|none', desc: 'timeout for jobs that set none' },
        dedupe: { type: 'boolean', desc: 'do not queue a command already queued or running in this queue' },
        'no-dedupe': { type: 'boolean', desc: 'queue duplicates again' },
      },
      call: (ctx, name, p) => ctx.api().put<QueueView>(queuePath(name), settingsFrom(p.opts)),
      human: (q, ctx) => queueTable([q], ctx.color),
    }),
    pause: pauseOrResume('pause'),
    resume: pauseOrResume('resume'),
    retry: about({
      arg: 'name',
      usage: '<name> [--status failed|timed_out|lost|cancelled] [--since time] [--json]',
      summary: 'run once more every failed job of a queue (or of another finished state); a job already run again is not',
      options: {
        status: { type: 'string', short: 's', arg: 'status', desc: 'the state of the jobs to run again (default failed)' },
        since: { type: 'string', arg: 'time', desc: 'only jobs that finished at or after this time (ISO 8601)' },
      },
      call: retryAll,
      human: affectedText('retried'),
    }),
    cancel: about({
      arg: 'name',
      usage: '<name> [--status waiting|queued|delayed|running] [--json]',
      summary: 'cancel the jobs of a queue that have not started (default), or stop its running ones (--status running)',
      options: { status: { type: 'string', short: 's', arg: 'status', desc: 'waiting (all not started), queued, delayed or running' } },
      call: (ctx, name, p) => {
        const status = p.opts.str('status') ?? 'waiting';
        if (!['waiting', 'queued', 'delayed', 'running'].includes(status)) throw new UsageError(`--status: cancel takes waiting, queued, delayed or running, not "${status}"`);
        return ctx.api().delete<Affected>(`${queuePath(name)}/jobs`, { status });
      },
      human: affectedText('cancelled'),
    }),
    clean: about({
      arg: 'name',
      usage: '<name> --status succeeded|failed|timed_out|cancelled|lost [--before time] [--json]',
      summary: "delete the records of a queue's finished jobs (output included) that finished before a time (default now)",
      options: {
        status: { type: 'string', short: 's', arg: 'status', desc: 'the finished state whose jobs to delete' },
        before: { type: 'string', arg: 'time', desc: 'only jobs that finished before this time (ISO 8601)' },
      },
      call: (ctx, name, p) => {
        const status = p.opts.str('status');
        if (status === undefined) throw new UsageError('--status is required: succeeded, failed, timed_out, cancelled or lost');
        return ctx.api().delete<Affected>(`${queuePath(name)}/jobs`, { status, before: isoOption(p.opts.str('before'), '--before') });
      },
      human: affectedText('deleted'),
    }),
  },
};
