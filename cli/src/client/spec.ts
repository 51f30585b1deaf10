import type { JobTemplate } from '@drover/core';
import { DURATION_HELP, type Options, type Parsed } from './args.js';
import { UsageError } from './errors.js';

/** Options that describe what a job runs and how: shared by run, submit and schedules add. */
export const JOB_OPTIONS = {
  queue: { type: 'string', short: 'q', arg: 'queue', desc: "queue to run on (default: the API's default queue)" },
  timeout: { type: 'string', short: 't', arg: 'duration', desc: 'kill the job after this long' },
  env: { type: 'string', short: 'e', multiple: true, arg: 'K=V', desc: "environment variable for the command (K alone passes this shell's $K)" },
  label: { type: 'string', short: 'l', multiple: true, arg: 'k=v', desc: 'label for the job' },
  retries: { type: 'string', arg: 'n', desc: 'extra attempts after a failure, timeout or loss (default 0)' },
  priority: { type: 'string', arg: 'n', desc: 'from 1 (least urgent) to 10 (most urgent), default 5: waiting jobs start most urgent first' },
  ttl: { type: 'string', arg: 'duration', desc: 'a deadline this long after the job is made: not started by then, it ends expired' },
} satisfies Options;

/** For run and submit only: in a schedule the name is the schedule's own. */
export const NAME_OPTION: Options = { name: { type: 'string', arg: 'name', desc: 'a name other jobs can wait for (dependsOn)' } };

/** Characters that mean a single word is a shell command line rather than a program name. */
const SHELL_SYNTAX = /[\s|&;<>()$`\\"'*?[\]~#]/;

export const COMMAND_HELP = `The command: the words after -- (or after the options) are run as they are, without a shell.
A single word containing spaces or shell syntax (| & ; < > ( ) $ \` \\ " ' * ? [ ] ~ #) runs under /bin/sh -c instead:
  -- make test                 runs make with the argument test
  -- 'make test && echo ok'    runs sh -c 'make test && echo ok'
${DURATION_HELP}.`;

/** `command` (run by sh) for one word with shell syntax, otherwise `argv` (run directly). */
export function commandFields(words: string[]): { command: string } | { argv: string[] } {
  if (words.length === 1 && SHELL_SYNTAX.test(words[0]!)) return { command: words[0]! };
  return { argv: words };
}

/** `--env K=V`, or `--env K` for the value K has here (like docker run -e K). */
export function envOf(items: string[], env: NodeJS.ProcessEnv): Record<string, string> | undefined {
  if (items.length === 0) return undefined;
  const out: Record<string, string> = {};
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq === 0) throw new UsageError(`--env takes K=V or K, not "${item}"`);
    const key = eq < 0 ? item : item.slice(0, eq);
    const value = eq < 0 ? env[key] : item.slice(eq + 1);
    if (value === undefined) throw new UsageError(`--env ${key}: ${key} is not set here; give a value with --env ${key}=...`);
    out[key] = value;
  }
  return out;
}

/** The job template the JOB_OPTIONS and the command words describe; unset options are left to the API's defaults. */
export function jobTemplate(p: Parsed, env: NodeJS.ProcessEnv): JobTemplate {
  const { opts } = p;
  const job: JobTemplate = commandFields(p.command);
  const queue = opts.str('queue');
  const timeoutMs = opts.duration('timeout');
  const vars = envOf(opts.list('env'), env);
  const labels = opts.pairs('label');
  const retries = opts.int('retries', 0, 100);
  const priority = opts.int('priority', 1, 10);
  const ttlMs = opts.duration('ttl');
  // Only run and submit offer --name (for a schedule the name is the schedule's).
  const name = opts.str('name');
  if (queue !== undefined) job.queue = queue;
  if (timeoutMs !== undefined) job.timeoutMs = timeoutMs;
  if (vars) job.env = vars;
  if (labels) job.labels = labels;
  if (retries !== undefined) job.retries = retries;
  if (priority !== undefined) job.priority = priority;
  if (ttlMs !== undefined) job.ttlMs = ttlMs;
  if (name !== undefined) job.name = name;
  return job;
}
