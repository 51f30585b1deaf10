import { constants } from 'node:os';
import type { JobRecord, JobSpecInput } from '@drover/core';
import type { CommandDef, Ctx } from './command.js';
import { UsageError } from './errors.js';
import { duration } from './format.js';
import type { Api } from './http.js';
import { jobPath, printSubmitted, submitJob } from './jobs.js';
import { TRUNCATED_NOTE, followLogs, writeLine, type LogEnd, type LogLine } from './logs.js';
import { COMMAND_HELP, JOB_OPTIONS, NAME_OPTION, jobTemplate } from './spec.js';

/** Exit codes for endings without the command's own code, as timeout(1) and shells use them. */
export const EXIT_TIMED_OUT = 124;
export const EXIT_CANCELLED = 130;

/** The exit code `drover run` ends with for a finished job, and what to say on stderr, if anything. */
export function outcome(job: JobRecord): { code: number; message?: string } {
  const id = `job ${job.id}`;
  const why = job.error ? `: ${job.error}` : '';
  switch (job.status) {
    case 'succeeded':
      return { code: 0 };
    case 'failed': {
      // The command's own code, quietly: as if it had run here.
      if (job.exitCode !== null && job.exitCode >= 0 && job.exitCode <= 255) return { code: job.exitCode };
      const signal = job.signal ? constants.signals[job.signal as keyof typeof constants.signals] : undefined;
      if (signal !== undefined) return { code: 128 + signal, message: `${id} was killed by ${job.signal}` };
      return { code: 1, message: `${id} failed${why}` };
    }
    case 'timed_out':
      return { code: EXIT_TIMED_OUT, message: `${id} timed out${job.timeoutMs !== null ? ` after ${duration(job.timeoutMs)}` : ''}` };
    case 'cancelled':
      return { code: EXIT_CANCELLED, message: `${id} was cancelled` };
    case 'lost':
      return { code: 1, message: `${id} was lost (its runner stopped answering)${why}` };
    default:
      return { code: 1, message: `${id} is still ${job.status}` };
  }
}

const PENDING = ['waiting', 'delayed', 'queued'];
const PROGRESS_MS = 1000;

/** "queued, waiting for a runner… 3s" on stderr, redrawn each second, while the job has not started (terminals only). */
function showProgress(ctx: Ctx, api: Api, job: JobRecord): () => void {
  if (!ctx.errTTY || !PENDING.includes(job.status)) return () => undefined;
  const since = Date.now();
  let current = job;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  // Whole seconds: a progress line that changes every redraw in its decimals is noise.
  const secs = (ms: number): string => (ms < 60_000 ? `${Math.floor(Math.max(0, ms) / 1000)}s` : duration(ms));
  const draw = (): void => {
    const waited = secs(Date.now() - since);
    const text =
      current.status === 'delayed' && current.runAt ? `delayed, starts in ${secs(Date.parse(current.runAt) - Date.now())}…`
      : current.status === 'waiting' ? `waiting for its dependencies… ${waited}`
      : `queued, waiting for a runner… ${waited}`;
    process.stderr.write(`\r\u001b[K${text} (job ${job.id})`);
  };
  const stop = (): void => {
    if (stopped) return;
    stopped = true;
    clearTimeout(timer);
    process.stderr.write('\r\u001b[K');
  };
  const tick = async (): Promise<void> => {
    current = await api.get<JobRecord>(jobPath(job.id)).catch(() => current);
    if (stopped) return;
    if (!PENDING.includes(current.status)) return stop();
    draw();
    timer = setTimeout(() => void tick(), PROGRESS_MS);
  };
  draw();
  timer = setTimeout(() => void tick(), PROGRESS_MS);
  return stop;
}

/** Ctrl-C: cancel the job, then exit 130 whatever the cancel answered; a second Ctrl-C leaves at once. */
async function cancelAfterInterrupt(ctx: Ctx, api: Api, id: string): Promise<number> {
  ctx.err(`\ndrover: cancelling job ${id}…`);
  try {
    const job = await api.post<JobRecord>(`${jobPath(id)}/cancel`);
    ctx.err(job.status === 'cancelled' ? `drover: job ${id} cancelled` : `drover: job ${id} is ${job.status}; the runner is stopping it`);
  } catch (err) {
    ctx.err(`drover: cancelling job ${id} failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  return EXIT_CANCELLED;
}

export const run: CommandDef = {
  usage: '[options] [--] <command...>',
  summary: "run a job, stream its output, exit with the job's exit code",
  help: `${COMMAND_HELP}

Exit code: the command's own; 124 if the job timed out; 130 if it was cancelled (Ctrl-C cancels the job);
128+N if it was killed by signal N; 1 if it failed without an exit code (lost, refused by policy, could not start)
or the API refused the job. The job's stdout goes to stdout, its stderr to stderr.`,
  command: true,
  options: {
    ...JOB_OPTIONS,
    ...NAME_OPTION,
    detach: { type: 'boolean', short: 'd', desc: 'print the job id (the record with --json) and exit without waiting' },
    json: { type: 'boolean', desc: 'with --detach: print the job record instead of the id' },
  },
  async run(ctx, p) {
    const body: JobSpecInput = jobTemplate(p, ctx.env);
    const detach = p.opts.flag('detach');
    // The job's own stdout is the output here; a record would be mixed into it.
    if (p.opts.flag('json') && !detach) throw new UsageError('--json goes with --detach (drover status <id> --json shows a record)');
    const api = ctx.api();
    if (detach) return printSubmitted(ctx, p, await submitJob(api, body));

    // Listening before the job exists: a Ctrl-C while it is being submitted still cancels it.
    const interrupt = new AbortController();
    const onSigint = (): void => {
      if (interrupt.signal.aborted) process.exit(EXIT_CANCELLED);
      interrupt.abort();
    };
    process.on('SIGINT', onSigint);
    try {
      const job = await submitJob(api, body);
      if (interrupt.signal.aborted) return await cancelAfterInterrupt(ctx, api, job.id);
      const stopProgress = showProgress(ctx, api, job);
      const write = (l: LogLine): void => {
        stopProgress();
        writeLine(ctx, l);
      };
      let end: LogEnd;
      try {
        end = await followLogs(api, job.id, write, interrupt.signal);
      } catch (err) {
        if (interrupt.signal.aborted) return await cancelAfterInterrupt(ctx, api, job.id);
        throw err;
      } finally {
        stopProgress();
      }
      if (end.truncated) ctx.err(TRUNCATED_NOTE);
      // The end event carries the outcome; only a job that vanished meanwhile needs reading again.
      const ended = end.status === null ? await api.get<JobRecord>(jobPath(job.id)) : { ...job, ...end, status: end.status as JobRecord['status'] };
      const { code, message } = outcome(ended);
      if (message) ctx.err(`drover: ${message}`);
      return code;
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
};
