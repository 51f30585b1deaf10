import { readFileSync, realpathSync, statSync } from 'node:fs';
import { sep } from 'node:path';
import { DroverError } from './errors.js';
import type { JobSpec } from './model/job-spec.js';
import { deniedEnvReason, envNameMatches, envPatternProblem } from './policy-env.js';
import { pathMatches, pathPatternProblem, programPathProblem } from './policy-path.js';

export { deniedEnvReason, envNameMatches } from './policy-env.js';
export { pathMatches, programPathProblem } from './policy-path.js';

/**
 * Per-queue command policy (`DROVER_POLICY_FILE`), checked by the API (403 at submit time) and again by runners
 * (anyone able to write to Redis or the broker could otherwise bypass the API):
 *   {"queues": {"backups": {"shell": false, "allow": ["/usr/local/bin/backup-*"], "env": ["BACKUP_*"]}, "*": {"shell": true}}}
 * A queue without an entry falls back to "*"; without either, anything goes.
 *
 * - `shell: false` refuses `command` strings and scripts (their programs cannot be known before a shell or an
 *   interpreter runs), and refuses job env names that change what runs behind an allowed program (`LD_*`,
 *   `BASH_ENV`, `PATH`, ...; see policy-env.ts). Allow-lists are only watertight together with it.
 * - `allow` lists absolute path patterns matched segment by segment (see policy-path.ts): `*` within one segment,
 *   `**` for any number of segments. The program (argv[0], or a script's interpreter) must be an absolute path
 *   without `.`, `..` or empty segments. A bare name (`true`) or a relative path (`./x`) is refused rather than
 *   looked up: the API cannot know the PATH, the working directory or the files of the runner that will run it.
 *   Launchers (`env`, `xargs`, `sudo`, interpreters) on an allow-list admit everything they can start.
 * - `env` (optional) lists the only variable names a job may set (`*` wildcards, case-sensitive). Under
 *   `shell: false` the denied names stay denied whatever it says.
 * - Under an allow-list no `files` entry may carry the program's name, and the runner refuses a program that
 *   resolves into its job directory (RUNNER_WORK_DIR), so a job-supplied file is never what runs.
 *
 * The runner checks the executable it will really run (policyViolation for the spec, then resolveAllowedProgram:
 * symlinks resolved at exec time, the resolved path matched again) and execs that resolved path.
 */
export interface QueuePolicy {
  shell?: boolean;
  allow?: string[];
  env?: string[];
}

export interface CommandPolicy {
  queues: Record<string, QueuePolicy>;
}

const QUEUE_POLICY_KEYS = new Set(['shell', 'allow', 'env']);

/** Every problem of a parsed policy file, each naming its entry. */
function policyProblems(parsed: unknown): string[] {
  if (typeof parsed !== 'object' || parsed === null || typeof (parsed as CommandPolicy).queues !== 'object' || (parsed as CommandPolicy).queues === null) {
    return ['expected {"queues": {...}}'];
  }
  const problems: string[] = [];
  for (const [queue, rule] of Object.entries((parsed as CommandPolicy).queues)) {
    const at = `queues["${queue}"]`;
    if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) {
      problems.push(`${at} must be an object`);
      continue;
    }
    // A misspelt key ("allows") would silently open the queue: refuse it.
    for (const key of Object.keys(rule)) if (!QUEUE_POLICY_KEYS.has(key)) problems.push(`${at}.${key} is not a policy setting (shell, allow, env)`);
    if (rule.shell !== undefined && typeof rule.shell !== 'boolean') problems.push(`${at}.shell must be true or false`);
    for (const [name, check] of [['allow', pathPatternProblem], ['env', envPatternProblem]] as const) {
      const list = rule[name] as unknown;
      if (list === undefined) continue;
      if (!Array.isArray(list)) {
        problems.push(`${at}.${name} must be a list`);
        continue;
      }
      list.forEach((entry: unknown, i) => {
        const why = check(entry as string);
        if (why) problems.push(`${at}.${name}[${i}] ${JSON.stringify(entry)} ${why}`);
      });
    }
  }
  return problems;
}

export function loadPolicy(path: string | undefined): CommandPolicy | undefined {
  if (!path) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new DroverError('CONFIG', `Invalid configuration:\n  - cannot read DROVER_POLICY_FILE ${path}: ${(err as Error).message}`);
  }
  const problems = policyProblems(parsed);
  if (problems.length > 0) {
    throw new DroverError('CONFIG', `Invalid configuration:\n${problems.map((p) => `  - DROVER_POLICY_FILE ${path}: ${p}`).join('\n')}`);
  }
  return parsed as CommandPolicy;
}

/** The rule that governs a queue and how to name it in a refusal, or null when nothing does. */
export function queueRule(policy: CommandPolicy | undefined, queue: string): { rule: QueuePolicy; where: string } | null {
  const own = policy?.queues[queue];
  if (own) return { rule: own, where: `queue "${queue}"` };
  const fallback = policy?.queues['*'];
  return fallback ? { rule: fallback, where: 'the default ("*") policy' } : null;
}

/** The program a spec starts: argv[0], or the interpreter of a script. */
export function specProgram(spec: Pick<JobSpec, 'argv' | 'script' | 'interpreter'>): string {
  return spec.script !== undefined ? (spec.interpreter ?? 'sh') : (spec.argv?.[0] ?? '');
}

/** Why `program` (a name, before any symlink is resolved) is not on the rule's allow-list, or null. */
export function programViolation(rule: QueuePolicy, where: string, program: string): string | null {
  if (!rule.allow) return null;
  const problem = programPathProblem(program);
  if (problem) return `${where} allows only programs named by a clean absolute path; "${program}" ${problem}`;
  if (!rule.allow.some((p) => pathMatches(p, program))) return `${where} allows only programs matching ${rule.allow.join(', ')}; "${program}" is not one`;
  return null;
}

function envViolation(rule: QueuePolicy, where: string, env: Record<string, string>): string | null {
  for (const name of Object.keys(env)) {
    const denied = rule.shell === false ? deniedEnvReason(name) : null;
    if (denied) return `${where} (shell: false) does not let a job set env ${name}: ${denied}`;
    if (rule.env && !rule.env.some((p) => envNameMatches(p, name))) return `${where} lets a job set only env ${rule.env.join(', ')}; ${name} is not one`;
  }
  return null;
}

function filesViolation(where: string, program: string, files: JobSpec['files']): string | null {
  const name = program.slice(program.lastIndexOf('/') + 1);
  const clash = Object.keys(files ?? {}).find((f) => f.slice(f.lastIndexOf('/') + 1) === name);
  return clash === undefined ? null : `${where} has an allow-list: files may not carry the program's name ("${clash}" for ${program})`;
}

/** The rule a spec breaks, in words, or null when the policy lets it run. Pure: no filesystem access. */
export function policyViolation(
  policy: CommandPolicy | undefined,
  spec: Pick<JobSpec, 'queue' | 'command' | 'argv' | 'script' | 'interpreter'> & Partial<Pick<JobSpec, 'env' | 'files'>>,
): string | null {
  const found = queueRule(policy, spec.queue);
  if (!found) return null;
  const { rule, where } = found;
  if (spec.command !== undefined && rule.shell === false) return `${where} forbids shell commands (shell: false); submit argv instead`;
  // A script is code like a shell command: refused where shell commands are, and its interpreter is the program.
  if (spec.script !== undefined && rule.shell === false) return `${where} forbids shell commands (shell: false), scripts included`;
  const env = envViolation(rule, where, spec.env ?? {});
  if (env) return env;
  // A shell command's program is known only to the shell: allow-lists do not apply to it (see shell: false).
  if (spec.command !== undefined || !rule.allow) return null;
  const program = specProgram(spec);
  return programViolation(rule, where, program) ?? filesViolation(where, program, spec.files);
}

export interface ResolveOptions {
  /** Where the runner writes jobs' files (RUNNER_WORK_DIR): a program in there is a job's own file. */
  jobRoot: string;
}

const inside = (path: string, dir: string): boolean => path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);

const realOrSelf = (path: string): string => {
  try {
    return realpathSync(path);
  } catch {
    return path;
  }
};

/**
 * The runner's last check, made right before it spawns: the program the queue's allow-list admits as the file it
 * really is. The name must pass the allow-list (programViolation), its symlinks are resolved on this machine, and
 * the resolved path must match the allow-list too, be a regular file and lie outside the job directories.
 * The caller then execs `path`, the resolved one, so a link swapped after this check cannot redirect the exec.
 *
 * What remains: a directory on the resolved path that someone untrusted may write to lets them replace the file
 * itself between this check and the exec (the check is on names, not on the open file). Allowed programs and their
 * directories must therefore be writable only by the operator; then nothing a job controls can change them.
 *
 * Without an allow-list the program is returned unchanged (and a bare name is found through PATH as usual).
 */
export function resolveAllowedProgram(
  policy: CommandPolicy | undefined,
  queue: string,
  program: string,
  opts: ResolveOptions,
): { path: string } | { violation: string } {
  const found = queueRule(policy, queue);
  const allow = found?.rule.allow;
  if (!found || !allow) return { path: program };
  const { rule, where } = found;
  const named = programViolation(rule, where, program);
  if (named) return { violation: named };
  let real: string;
  try {
    real = realpathSync(program);
    if (!statSync(real).isFile()) return { violation: `${where}: "${program}" is not a regular file` };
  } catch (err) {
    return { violation: `${where}: "${program}" cannot be resolved on this runner (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})` };
  }
  if (!allow.some((p) => pathMatches(p, real))) {
    return { violation: `${where} allows only programs matching ${allow.join(', ')}; "${program}" resolves to "${real}", which is not one` };
  }
  if (inside(real, realOrSelf(opts.jobRoot))) {
    return { violation: `${where}: "${program}" resolves into the job directory (RUNNER_WORK_DIR), where jobs write their files` };
  }
  return { path: real };
}
