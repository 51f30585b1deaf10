import type { JobRecord, JobSpecInput, QueueView } from '@drover/core';
import type { CommandDef, Ctx } from './command.js';
import { ApiError, UsageError } from './errors.js';
import { duration } from './format.js';
import { seg, type Api } from './http.js';
import { jobPath, printSubmitted, printWarnings, submitJob, type Submitted } from './jobs.js';
import { TRUNCATED_NOTE, followLogs, writeLine, type LogEnd, type LogLine } from './logs.js';
import { COMMAND_HELP, JOB_OPTIONS, NAME_OPTION, jobTemplate } from './spec.js';
import { EXIT_CANCELLED, outcome } from './outcome.js';

const PENDING = ['waiting', 'delayed', 'queued'];
const PROGRESS_MS = 1000;
/** Most stdin `drover run` sends with a job (the API's DROVER_MAX_FILES_BYTES, default 1 MiB, may refuse less). */
export const MAX_STDIN_BYTES = 64 * 1024 * 1024;

/** All of our stdin, as the job's (base64: any bytes); undefined when there is none. */
async function readStdin(): Promise<{ base64: string } | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_STDIN_BYTES) throw new UsageError(`stdin holds more than ${MAX_STDIN_BYTES} bytes; a job takes its stdin whole at submit (-n to send none)`);
    chunks.push(chunk);
  }
  return size === 0 ? undefined : { base64: Buffer.concat(chunks).toString('base64') };
}

/** Whether the queue's jobs wait for a runner: no live runner serves it, or all that do are draining. */
async function unserved(api: Api, queue: string): Promise<boolean> {
  const q = await api.get<QueueView>(`/v1/queues/${seg(queue)}`).catch(() => undefined);
  return q?.consumers !== undefined && !q.consumers.some((c) => c.state === 'running');
}

/** "queued, waiting for a runner… 3s" on stderr, redrawn each second, while the job has not started (terminals only). */
function showProgress(ctx: Ctx, api: Api, job: Submitted): () => void {
  if (!ctx.errTTY || !PENDING.includes(job.status)) return () => undefined;
  const since = Date.now();
  let current: JobRecord = job;
  let noRunner = job.warnings?.some((w) => w.code === 'NO_RUNNER') ?? false;
  // Runners serve the queue, but none that is live satisfies the job's constraints (it starts when one comes).
  const noMatch = job.warnings?.some((w) => w.code === 'NO_MATCHING_RUNNER') ?? false;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  // Whole seconds: a progress line that changes every redraw in its decimals is noise.
  const secs = (ms: number): string => (ms < 60_000 ? `${Math.floor(Math.max(0, ms) / 1000)}s` : duration(ms));
  const draw = (): void => {
    const waited = secs(Date.now() - since);
    const text =
      current.status === 'delayed' && current.runAt ? `delayed, starts in ${secs(Date.parse(current.runAt) - Date.now())}…`
      : current.status === 'waiting' ? `waiting for its dependencies… ${waited}`
      : noRunner ? `queued; no runner serves this queue (${job.queue})… ${waited}`
      : noMatch ? `queued; no live runner satisfies its constraints… ${waited}`
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
    // Asked again only while it was unserved: a runner that starts meanwhile changes the line.
    if (noRunner && current.status === 'queued') noRunner = await unserved(api, job.queue);
    if (stopped) return;
    if (!PENDING.includes(current.status)) return stop();
    draw();
    timer = setTimeout(() => void tick(), PROGRESS_MS);
  };
  draw();
  timer = setTimeout(() => void tick(), PROGRESS_MS);
  return stop;
}

/** The first Ctrl-C: ask for the cancel and say so; the output keeps coming until the job has ended. */
function requestCancel(ctx: Ctx, api: Api, id: string): void {
  ctx.err(`\ndrover: cancelling job ${id}; its output follows until it has stopped (Ctrl-C again to stop waiting)`);
  api.post<JobRecord>(`${jobPath(id)}/cancel`).catch((err: unknown) => {
    // 409: it ended meanwhile, which the end of its output says.
    if (err instanceof ApiError && err.status === 409) return;
    ctx.err(`drover: cancelling job ${id} failed: ${err instanceof Error ? err.message : String(err)}`);
  });
}

export const run: CommandDef = {
  usage: '[options] [--] <command...>',
  summary: "run a job, stream its output, exit with the job's exit code",
  help: `${COMMAND_HELP}

Stdin: when it is not a terminal (a pipe or a file), drover run reads it to its end and the job gets it as its
standard input (-n sends none; -i reads it from a terminal too, until Ctrl-D). Otherwise the job's stdin is
/dev/null. The output comes byte for byte as the job wrote it.

Ctrl-C cancels the job (SIGTERM to its processes, SIGKILL after the grace period) and keeps showing its output
until it has stopped; a second Ctrl-C stops waiting (the job is still stopped).

Exit code: the command's own; 124 if the job timed out; 130 if it was cancelled (or Ctrl-C twice);
128+N if it was killed by signal N; 1 if it failed without an exit code (lost, refused by policy, could not start)
or the API refused the job. The job's stdout goes to stdout, its stderr to stderr.`,
  command: true,
  options: {
    ...JOB_OPTIONS,
    ...NAME_OPTION,
    stdin: { type: 'boolean', short: 'i', desc: 'send our stdin to the job even from a terminal (read until Ctrl-D)' },
    'no-stdin': { type: 'boolean', short: 'n', desc: 'send no stdin (the job reads /dev/null), even from a pipe' },
    detach: { type: 'boolean', short: 'd', desc: 'print the job id (the record with --json) and exit without waiting' },
    json: { type: 'boolean', desc: 'with --detach: print the job record instead of the id' },
  },
  async run(ctx, p) {
    const body: JobSpecInput = jobTemplate(p, ctx.env);
    const detach = p.opts.flag('detach');
    // The job's own stdout is the output here; a record would be mixed into it.
    if (p.opts.flag('json') && !detach) throw new UsageError('--json goes with --detach (drover status <id> --json shows a record)');
    if (p.opts.flag('stdin') && p.opts.flag('no-stdin')) throw new UsageError('give -i or -n, not both');
    const forward = p.opts.flag('stdin') || (!p.opts.flag('no-stdin') && process.stdin.isTTY !== true);
    const api = ctx.api();

    // Listening before the job exists: a Ctrl-C while it is being submitted still cancels it.
    let interrupts = 0;
    let reading = forward;
    let jobId: string | undefined;
    const detached = new AbortController();
    const onSigint = (): void => {
      interrupts++;
      if (reading) {
        ctx.err('\ndrover: interrupted while reading stdin; nothing was submitted');
        process.exit(EXIT_CANCELLED);
      }
      if (interrupts === 1 && jobId !== undefined) requestCancel(ctx, api, jobId);
      // Still being submitted: it may exist already, but its id is not known here.
      if (interrupts >= 2 && jobId === undefined) process.exit(EXIT_CANCELLED);
      if (interrupts >= 2) detached.abort();
    };
    process.on('SIGINT', onSigint);
    try {
      if (forward) {
        const stdin = await readStdin();
        if (stdin) body.stdin = stdin;
        reading = false;
      }
      if (detach) return printSubmitted(ctx, p, await submitJob(api, body));
      const job = await submitJob(api, body);
      jobId = job.id;
      printWarnings(ctx, job);
      if (interrupts === 1) requestCancel(ctx, api, job.id);
      const stopProgress = showProgress(ctx, api, job);
      const write = (l: LogLine): void => {
        stopProgress();
        writeLine(ctx, l);
      };
      let end: LogEnd;
      try {
        end = await followLogs(api, job.id, write, detached.signal);
      } catch (err) {
        if (detached.signal.aborted) {
          ctx.err(`drover: stopped waiting; job ${job.id} is being cancelled (drover status ${job.id})`);
          return EXIT_CANCELLED;
        }
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
