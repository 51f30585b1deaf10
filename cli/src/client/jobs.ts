import type { JobRecord, JobSpecInput } from '@drover/core';
import type { Options, Parsed } from './args.js';
import { JSON_OPTION, about, show, type CommandDef, type Ctx } from './command.js';
import { UsageError } from './errors.js';
import { commandOf, duration, fields, relative, runTime, status, table, truncate, when, type Cell } from './format.js';
import { seg, type Api, type Query } from './http.js';
import { TRUNCATED_NOTE, followLogs, printLogs, writeLine } from './logs.js';
import { COMMAND_HELP, JOB_OPTIONS, NAME_OPTION, jobTemplate } from './spec.js';
import { outcome } from './outcome.js';

/** A submitted job as the API answers it: the record plus, for copies, all their ids. */
export type Submitted = JobRecord & { replicaJobs?: string[]; deduplicated?: boolean; warnings?: SubmitWarning[] };

/** What the API says stands in a new job's way (NO_RUNNER: no live runner serves its queue; NO_MATCHING_RUNNER: none satisfies its constraints). */
export interface SubmitWarning {
  code: string;
  message: string;
  queue: string;
}

/** The submission's warnings, on stderr. */
export function printWarnings(ctx: Ctx, job: Submitted): void {
  for (const w of job.warnings ?? []) ctx.err(`drover: warning: ${w.message}`);
}

export const jobPath = (id: string): string => `/v1/jobs/${seg(id)}`;

const exitOf = (j: JobRecord): string => (j.exitCode !== null ? String(j.exitCode) : (j.signal ?? '-'));

/** The columns of the jobs table (`jobs`, and `schedules runs`, whose unfired rows fill them their own way). */
export const JOB_COLUMNS = ['ID', 'STATUS', 'QUEUE', 'EXIT', 'CREATED', 'DURATION', 'COMMAND'];

/** One job's row of the jobs table. */
export function jobRow(j: JobRecord, now: number): Cell[] {
  return [j.id, status(j.status), j.queue, exitOf(j), relative(j.createdAt, now), runTime(j, now), truncate(commandOf(j), 60)];
}

/** The jobs table of `jobs`. */
export function jobTable(jobs: JobRecord[], color: boolean): string {
  if (jobs.length === 0) return 'no jobs';
  const now = Date.now();
  return table(JOB_COLUMNS, jobs.map((j) => jobRow(j, now)), color);
}

/** Options for one page of a list. */
export const LIMIT_OPTION: Options = { limit: { type: 'string', short: 'n', arg: 'n', desc: 'at most this many (1-1000, default 50)' } };

/** A page of a list: the items (what --json prints), and a note on stderr when there are more. */
export async function listPage<T>(ctx: Ctx, p: Parsed, path: string, query: Query, human: (items: T[]) => string): Promise<undefined> {
  const page = await ctx.api().get<{ items: T[]; nextCursor: string | null }>(path, { ...query, limit: p.opts.int('limit', 1, 1000) });
  show(ctx, p, page.items, human);
  if (page.nextCursor && !p.opts.flag('json')) ctx.err('drover: there are more; raise --limit (up to 1000) to see them');
  return undefined;
}

function statusView(j: JobRecord, color: boolean): string {
  const outcome = j.exitCode !== null ? ` (exit ${j.exitCode})` : j.signal ? ` (${j.signal})` : '';
  const label = Object.entries(j.labels).map(([k, v]) => `${k}=${v}`).join(', ');
  return fields(
    [
      ['id', j.id],
      ['status', { ...status(j.status), text: `${j.status}${outcome}` }],
      ['queue', j.queue],
      ['command', commandOf(j)],
      ['error', j.error],
      ['runner', j.runnerId ? `${j.runnerId}${j.pid ? ` (pid ${j.pid})` : ''}` : null],
      ['attempts', `${j.attempts} (retries allowed: ${j.retries})`],
      ['created', when(j.createdAt)],
      ['runs at', j.status === 'delayed' ? when(j.runAt) : null],
      ['started', j.startedAt ? when(j.startedAt) : null],
      ['finished', j.finishedAt ? when(j.finishedAt) : null],
      ['duration', j.startedAt ? runTime(j) : null],
      ['timeout', j.timeoutMs !== null ? duration(j.timeoutMs) : null],
      ['labels', label],
      ['env', j.envKeys.join(', ')],
      ['schedule', j.schedule],
      ['depends on', j.dependsOn.join(', ')],
      ['replica', j.replicas > 1 ? `${j.replica + 1} of ${j.replicas}` : null],
      ['output', `${j.outputBytes} bytes${j.truncated ? ' (truncated)' : ''}`],
    ],
    color,
  );
}

/** A new job as people see it: its id, one line per copy. */
export const idsOf = (j: Submitted): string => (j.replicaJobs ?? [j.id]).join('\n');

/** Prints a new job: its id(s), or the record with --json. */
export function printSubmitted(ctx: Ctx, p: Parsed, job: Submitted): undefined {
  if (job.deduplicated) ctx.err(`drover: an unfinished job with the same key exists; not submitted again`);
  printWarnings(ctx, job);
  return show(ctx, p, job, idsOf);
}

export const jobs: CommandDef = {
  usage: '[--status s] [--queue q] [--label k=v]... [--runner id] [--name n] [--command text] [--since time] [--until time] [--limit n] [--json]',
  summary: 'list and search jobs, newest first (filters combine)',
  options: {
    status: { type: 'string', short: 's', arg: 'status', desc: 'only jobs in this state (waiting, delayed, queued, running, succeeded, failed, timed_out, cancelled, lost, expired)' },
    queue: { type: 'string', short: 'q', arg: 'queue', desc: 'only jobs of this queue' },
    label: { type: 'string', short: 'l', arg: 'k=v', multiple: true, desc: 'only jobs with this label' },
    schedule: { type: 'string', arg: 'name', desc: 'only jobs this schedule fired' },
    runner: { type: 'string', arg: 'id', desc: 'only jobs whose latest attempt ran on this runner' },
    name: { type: 'string', arg: 'name', desc: 'only jobs of this name' },
    command: { type: 'string', arg: 'text', desc: 'only jobs whose command contains this text' },
    since: { type: 'string', arg: 'time', desc: 'only jobs created at or after this time (ISO 8601)' },
    until: { type: 'string', arg: 'time', desc: 'only jobs created before this time (ISO 8601)' },
    ...LIMIT_OPTION,
    ...JSON_OPTION,
  },
  async run(ctx, p) {
    const { opts } = p;
    const labels = opts.list('label');
    const bad = labels.find((l) => !l.includes('='));
    if (bad !== undefined) throw new UsageError(`--label takes k=v, not "${bad}"`);
    const query = {
      status: opts.str('status'), queue: opts.str('queue'), label: labels.length > 0 ? labels : undefined, schedule: opts.str('schedule'),
      runner: opts.str('runner'), name: opts.str('name'), command: opts.str('command'), createdAfter: isoOption(opts.str('since'), '--since'), createdBefore: isoOption(opts.str('until'), '--until'),
    };
    return listPage<JobRecord>(ctx, p, '/v1/jobs', query, (items) => jobTable(items, ctx.color));
  },
};

/** A time option as the API takes it (ISO 8601); a local time without an offset is read as local. */
export function isoOption(value: string | undefined, flag: string): string | undefined {
  if (value === undefined) return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw new UsageError(`${flag}: "${value}" is not a time (ISO 8601, e.g. 2030-05-01T09:00:00Z)`);
  return new Date(ms).toISOString();
}

export const statusCommand = about({
  arg: 'id',
  summary: "a job's state, exit code, times and attempts",
  call: (ctx, id) => ctx.api().get<JobRecord>(jobPath(id)),
  human: (j, ctx) => statusView(j, ctx.color),
});

export const logs: CommandDef = {
  usage: '[-f|--follow] <id>',
  summary: "a job's output (stdout to stdout, stderr to stderr); -f follows it until the job ends and exits as drover run does",
  args: ['id'],
  options: { follow: { type: 'boolean', short: 'f', desc: 'keep printing new lines until the job ends' } },
  async run(ctx, p) {
    const api = ctx.api();
    const id = p.args[0]!;
    if (!p.opts.flag('follow')) {
      if ((await printLogs(ctx, api, id)).truncated) ctx.err(TRUNCATED_NOTE);
      return undefined;
    }
    const end = await followLogs(api, id, (l) => writeLine(ctx, l), new AbortController().signal);
    if (end.truncated) ctx.err(TRUNCATED_NOTE);
    // Ends as `drover run` does: with the job's outcome (its exit code when it failed), archived job or live.
    const job = end.status === null ? await api.get<JobRecord>(jobPath(id)) : ({ id, timeoutMs: null, ...end } as unknown as JobRecord);
    const { code, message } = outcome(job);
    if (message) ctx.err(`drover: ${message}`);
    return code;
  },
};

/** POST /v1/jobs/:id/cancel?group=1: what became of the copies. */
interface GroupCancelled {
  group: string;
  cancelled: string[];
  stopping: string[];
}

export const cancel = about<JobRecord | GroupCancelled>({
  arg: 'id',
  usage: '<id> [--group] [--json]',
  summary: 'cancel a job: a waiting one never runs, a running one is stopped (SIGTERM, then SIGKILL); --group: every copy of its replicas',
  options: { group: { type: 'boolean', desc: 'cancel every copy of the job (replicas), whichever copy the id names' } },
  call: (ctx, id, p) => ctx.api().post<JobRecord | GroupCancelled>(`${jobPath(id)}/cancel`, {}, p.opts.flag('group') ? { group: 1 } : undefined),
  human: (r) => {
    if ('stopping' in r) return [...r.cancelled.map((c) => `${c} cancelled`), ...r.stopping.map((c) => `${c}: cancel requested, still stopping`)].join('\n') || 'nothing to cancel';
    return r.status === 'cancelled' ? `${r.id} cancelled` : `${r.id}: cancel requested, still ${r.status}`;
  },
});

export const retry = about({
  arg: 'id',
  summary: 'run a finished job again as a new job (prints the new id)',
  call: (ctx, id) => ctx.api().post<Submitted>(`${jobPath(id)}/retry`),
  human: idsOf,
});

export const promote = about<JobRecord>({
  arg: 'id',
  summary: 'start a delayed job now (a later start, or a retry waiting out its backoff)',
  call: (ctx, id) => ctx.api().post<JobRecord>(`${jobPath(id)}/promote`),
  human: (r) => `${r.id} ${r.status}`,
});

/** POST /v1/jobs (run and submit). */
export function submitJob(api: Api, body: JobSpecInput): Promise<Submitted> {
  return api.post<Submitted>('/v1/jobs', body);
}

export const submit: CommandDef = {
  usage: '[options] [--] <command...>',
  summary: 'submit a job without waiting (prints its id)',
  help: COMMAND_HELP,
  command: true,
  options: {
    ...JOB_OPTIONS,
    delay: { type: 'string', arg: 'duration', desc: 'start this long from now' },
    at: { type: 'string', arg: 'time', desc: 'start at this time (ISO 8601, e.g. 2030-05-01T09:00:00+02:00; without an offset: local time)' },
    replicas: { type: 'string', arg: 'n', desc: 'run this many copies (prints one id per copy)' },
    ...NAME_OPTION,
    ...JSON_OPTION,
  },
  async run(ctx, p) {
    const { opts } = p;
    const body: JobSpecInput = jobTemplate(p, ctx.env);
    const delayMs = opts.duration('delay', 0);
    const at = opts.str('at');
    const replicas = opts.int('replicas', 1, 64);
    if (delayMs !== undefined && at !== undefined) throw new UsageError('give --delay or --at, not both');
    if (delayMs !== undefined) body.delayMs = delayMs;
    if (at !== undefined) {
      const ms = Date.parse(at);
      if (Number.isNaN(ms)) throw new UsageError(`--at: "${at}" is not a time (ISO 8601, e.g. 2030-05-01T09:00:00Z)`);
      body.runAt = new Date(ms).toISOString();
    }
    if (replicas !== undefined) body.replicas = replicas;
    return printSubmitted(ctx, p, await submitJob(ctx.api(), body));
  },
};
