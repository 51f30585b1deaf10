import type { JobRecord, ScheduleInput, ScheduleRecord, UnfiredRunItem } from '@drover/core';
import type { Parsed } from './args.js';
import { JSON_OPTION, about, show, type CommandDef, type Ctx, type Group } from './command.js';
import { UsageError } from './errors.js';
import { commandOf, duration, fields, paint, relative, status, statusStyle, table, truncate, when, zoned, type Cell } from './format.js';
import { seg } from './http.js';
import { JOB_COLUMNS, LIMIT_OPTION, idsOf, jobRow, listPage } from './jobs.js';
import { COMMAND_HELP, JOB_OPTIONS, envOf, jobTemplate } from './spec.js';

const OVERLAP = ['allow', 'skip', 'replace'] as const;
const MISFIRE = ['skip', 'run-once'] as const;

const schedulePath = (name: string): string => `/v1/schedules/${seg(name)}`;

const whatRuns = (s: ScheduleRecord): string => (s.workflow ? `(workflow, ${s.workflow.steps.length} steps)` : s.job ? commandOf(s.job) : '-');
const state = (s: ScheduleRecord): Cell => (s.enabled ? { text: 'enabled', style: 'green' } : { text: 'disabled', style: 'grey' });
const lastRun = (s: ScheduleRecord): Cell => ({ text: s.lastRunAt ? `${s.lastState ?? '?'} ${relative(s.lastRunAt)}` : '-', style: statusStyle(s.lastState) });
const nextRun = (s: ScheduleRecord): string => (s.enabled ? `next run ${when(s.nextRunAt)}` : 'disabled');

function scheduleTable(items: ScheduleRecord[], color: boolean): string {
  if (items.length === 0) return 'no schedules';
  return table(
    ['NAME', 'STATE', 'CRON', 'TZ', 'NEXT', 'LAST', 'COMMAND'],
    items.map((s) => [s.name, state(s), s.cron, s.timezone, s.enabled ? relative(s.nextRunAt) : '-', lastRun(s), truncate(whatRuns(s), 50)]),
    color,
  );
}

function scheduleView(s: ScheduleRecord & { upcoming?: string[] }, color: boolean): string {
  const view = fields(
    [
      ['name', s.name],
      ['state', state(s)],
      ['cron', `${s.cron} (${s.timezone})`],
      ['command', whatRuns(s)],
      ['queue', s.job?.queue],
      ['overlap', s.overlap],
      ['misfire', s.misfire],
      ['description', s.description],
      ['next run', s.enabled ? when(s.nextRunAt) : null],
      ['last run', s.lastRunAt ? lastRun(s) : null],
      ['last job', s.lastJobId],
      ['last took', s.lastDurationMs !== null ? duration(s.lastDurationMs) : null],
      ['failures in a row', s.consecutiveFailures > 0 ? String(s.consecutiveFailures) : null],
      ['running', s.runningJobs.join(', ')],
    ],
    color,
  );
  const upcoming = s.enabled && s.upcoming?.length ? `\nupcoming:\n${s.upcoming.map((t) => `  ${zoned(t, s.timezone)} ${s.timezone}`).join('\n')}` : '';
  return `${view}${upcoming}`;
}

/** Every schedule, all pages: there are few, and a table cut at 50 would hide some. */
async function allSchedules(ctx: Ctx): Promise<ScheduleRecord[]> {
  const items: ScheduleRecord[] = [];
  let cursor: string | undefined;
  do {
    const page = await ctx.api().get<{ items: ScheduleRecord[]; nextCursor: string | null }>('/v1/schedules', { cursor, limit: 1000 });
    items.push(...page.items);
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return items;
}

const add: CommandDef = {
  usage: "<name> --cron '<expr>' [--tz zone] [options] [--] <command...>",
  summary: 'create a cron schedule that runs a command',
  help: `${COMMAND_HELP}

cron: 5 fields (minute hour day month weekday), 6 with seconds first, or a macro such as @hourly;
check one with: drover cron '<expr>' [--tz zone]`,
  args: ['name'],
  command: true,
  options: {
    cron: { type: 'string', short: 'c', arg: 'expr', desc: 'when to fire (required)' },
    tz: { type: 'string', arg: 'zone', desc: 'IANA time zone the expression is read in (default UTC)' },
    overlap: { type: 'string', arg: OVERLAP.join('|'), desc: 'while a run is still going: start another, skip this fire, or cancel the running one (default allow)' },
    misfire: { type: 'string', arg: MISFIRE.join('|'), desc: 'fire times missed while no scheduler ran: none, or one run (default run-once)' },
    description: { type: 'string', arg: 'text', desc: 'what the schedule is for' },
    disabled: { type: 'boolean', desc: 'create it disabled' },
    ...JOB_OPTIONS,
    ...JSON_OPTION,
  },
  async run(ctx, p) {
    const { opts } = p;
    const cron = opts.str('cron');
    if (cron === undefined) throw new UsageError("--cron '<expr>' is required");
    const body: ScheduleInput = { name: p.args[0]!, cron, job: jobTemplate(p, ctx.env) };
    const timezone = opts.str('tz');
    const overlap = opts.choice('overlap', OVERLAP);
    const misfire = opts.choice('misfire', MISFIRE);
    const description = opts.str('description');
    if (timezone !== undefined) body.timezone = timezone;
    if (overlap !== undefined) body.overlap = overlap;
    if (misfire !== undefined) body.misfire = misfire;
    if (description !== undefined) body.description = description;
    if (opts.flag('disabled')) body.enabled = false;
    const created = await ctx.api().post<ScheduleRecord>('/v1/schedules', body);
    return show(ctx, p, created, (s) => `created schedule ${s.name}: ${nextRun(s)}`);
  },
};

/** enable and disable: the same call but for the verb. */
function toggle(action: 'enable' | 'disable'): CommandDef {
  return about({
    arg: 'name',
    summary: action === 'enable' ? 'let a schedule fire again' : 'stop a schedule firing (it is kept)',
    call: (ctx, name) => ctx.api().post<ScheduleRecord>(`${schedulePath(name)}/${action}`),
    human: (r) => `schedule ${r.name} ${action}d${r.enabled ? `: ${nextRun(r)}` : ''}`,
  });
}

export const schedules: Group = {
  summary: 'cron schedules',
  commands: {
    add,
    ls: {
      usage: '[--json]',
      summary: 'list schedules',
      options: JSON_OPTION,
      async run(ctx, p) {
        return show(ctx, p, await allSchedules(ctx), (items) => scheduleTable(items, ctx.color));
      },
    },
    show: about({
      arg: 'name',
      summary: 'a schedule with its last run and next fire times',
      call: (ctx, name) => ctx.api().get<ScheduleRecord>(schedulePath(name)),
      human: (s, ctx) => scheduleView(s, ctx.color),
    }),
    rm: about({
      arg: 'name',
      usage: '<name> [--kill] [--json]',
      summary: 'delete a schedule (--kill also cancels its unfinished jobs)',
      options: { kill: { type: 'boolean', desc: "also cancel the schedule's unfinished jobs" } },
      call: (ctx, name, p) => ctx.api().delete<{ deleted: string; interrupted: string[] }>(schedulePath(name), { kill: p.opts.flag('kill') ? 1 : undefined }),
      human: (d) => `deleted schedule ${d.deleted}${d.interrupted.length ? `; cancelled ${d.interrupted.join(', ')}` : ''}`,
    }),
    kill: about({
      arg: 'name',
      summary: "stop a schedule's unfinished jobs (running ones get SIGTERM, then SIGKILL); the schedule stays",
      call: (ctx, name) => ctx.api().post<{ schedule: string; interrupted: string[] }>(`${schedulePath(name)}/kill`),
      human: (d) => (d.interrupted.length ? `cancelled ${d.interrupted.join(', ')}` : `schedule ${d.schedule} had no unfinished jobs`),
    }),
    enable: toggle('enable'),
    disable: toggle('disable'),
    trigger: about({
      arg: 'name',
      usage: '<name> [--delay duration] [-e K=V]... [--arg a]... [--ignore-deps] [--json]',
      summary: "run a schedule's job now (prints the job id); options change this run only",
      options: {
        delay: { type: 'string', arg: 'duration', desc: 'start it this long from now' },
        env: { type: 'string', short: 'e', multiple: true, arg: 'K=V', desc: 'environment variable for this run (every step of a workflow)' },
        arg: { type: 'string', multiple: true, arg: 'a', desc: 'arguments for this run instead of the schedule\'s' },
        'ignore-deps': { type: 'boolean', desc: 'start without waiting for its dependsOn (a workflow: every step at once)' },
      },
      call: (ctx, name, p) => {
        const delayMs = p.opts.duration('delay');
        const env = envOf(p.opts.list('env'), process.env);
        const args = p.opts.list('arg');
        const body = {
          ...(delayMs !== undefined ? { delayMs } : {}),
          ...(env ? { env } : {}),
          ...(args.length > 0 ? { args } : {}),
          ...(p.opts.flag('ignore-deps') ? { ignoreDependencies: true } : {}),
        };
        return ctx.api().post<JobRecord>(`${schedulePath(name)}/trigger`, body);
      },
      human: idsOf,
    }),
    runs: {
      usage: '<name> [--limit n] [--json]',
      summary: "a schedule's runs, newest first: the jobs it fired and the fire times that made none (skipped, misfired)",
      args: ['name'],
      options: { ...LIMIT_OPTION, ...JSON_OPTION },
      async run(ctx, p) {
        return listPage<JobRecord | UnfiredRunItem>(ctx, p, `${schedulePath(p.args[0]!)}/runs`, {}, (items) => runsTable(items, ctx.color));
      },
    },
  },
};

function previewLines(r: { timezone: string; next: string[]; offsets?: string[] }, color: boolean): string {
  if (r.next.length === 0) return 'it never fires again';
  // The UTC offset of each fire time shows a DST change between them.
  return r.next.map((t, i) => `${zoned(t, r.timezone)} ${r.timezone} (UTC${r.offsets?.[i] ?? ''})  ${paint(relative(t), 'grey', color)}`).join('\n');
}

export const cron: CommandDef = {
  usage: "'<expr>' [--tz zone] [--count n] [--from time] [--json]",
  summary: 'the next fire times of a cron expression (checks it)',
  args: ['expr'],
  options: {
    tz: { type: 'string', arg: 'zone', desc: 'IANA time zone (default UTC); times are shown in it' },
    count: { type: 'string', short: 'n', arg: 'n', desc: 'how many fire times (1-50, default 5)' },
    from: { type: 'string', arg: 'time', desc: 'fire times after this ISO 8601 time (default now), e.g. 2026-10-24T00:00:00Z' },
    ...JSON_OPTION,
  },
  async run(ctx, p: Parsed) {
    const query = { cron: p.args[0]!, timezone: p.opts.str('tz'), count: p.opts.int('count', 1, 50), from: p.opts.str('from') };
    const r = await ctx.api().get<{ cron: string; timezone: string; next: string[]; offsets?: string[] }>('/v1/cron/preview', query);
    return show(ctx, p, r, (v) => previewLines(v, ctx.color));
  },
};

/** One table of a schedule's runs: jobs as `drover jobs` shows them, and fire times that made no job (no id). */
function runsTable(items: (JobRecord | UnfiredRunItem)[], color: boolean): string {
  if (items.length === 0) return 'no runs';
  const now = Date.now();
  const rows = items.map((r): Cell[] => {
    if (!('kind' in r)) return jobRow(r, now);
    const why = r.state === 'misfired' ? `no scheduler ran: ${r.missed ?? 1} fire time(s) missed${r.fired ? ', one job fired' : ''}` : `overlap skip: ${(r.runningJobs ?? []).join(' ')} still running`;
    return ['-', status(r.state), '-', '-', relative(r.scheduledFor, now), '-', why];
  });
  return table(JOB_COLUMNS, rows, color);
}
