import { readFileSync } from 'node:fs';
import { DroverError } from './errors.js';
import type { JobSpec } from './model/job-spec.js';

/**
 * Per-queue command policy (`DROVER_POLICY_FILE`), read by the API (403 at submit time) and again by runners
 * (anyone able to write to Redis or the broker could otherwise bypass the API):
 *   {"queues": {"backups": {"shell": false, "allow": ["/usr/local/bin/backup-*"]}, "*": {"shell": true}}}
 * `allow` matches a job's program (argv[0]) with `*` wildcards; `shell: false` refuses `command` strings (whose
 * program cannot be known before the shell runs), so allow-lists are only watertight together with it.
 * A queue without an entry falls back to "*"; without either, anything goes.
 */
export interface QueuePolicy {
  shell?: boolean;
  allow?: string[];
}

export interface CommandPolicy {
  queues: Record<string, QueuePolicy>;
}

export function loadPolicy(path: string | undefined): CommandPolicy | undefined {
  if (!path) return undefined;
  try {
    const parsed = JSON.parse(readFileSync(path, 'utf8')) as CommandPolicy;
    if (typeof parsed.queues !== 'object' || parsed.queues === null) throw new Error('expected {"queues": {...}}');
    return parsed;
  } catch (err) {
    throw new DroverError('CONFIG', `Invalid configuration:\n  - cannot read DROVER_POLICY_FILE ${path}: ${(err as Error).message}`);
  }
}

const compiled = new Map<string, RegExp>();
const toRegExp = (pattern: string): RegExp => {
  let re = compiled.get(pattern);
  if (!re) compiled.set(pattern, (re = compileGlob(pattern)));
  return re;
};
const compileGlob = (pattern: string): RegExp => new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);

/** The rule a spec breaks, in words, or null when the policy lets it run. */
export function policyViolation(policy: CommandPolicy | undefined, spec: Pick<JobSpec, 'queue' | 'command' | 'argv' | 'script' | 'interpreter'>): string | null {
  const rule = policy?.queues[spec.queue] ?? policy?.queues['*'];
  if (!rule) return null;
  const where = policy?.queues[spec.queue] ? `queue "${spec.queue}"` : 'the default ("*") policy';
  if (spec.command !== undefined) {
    return rule.shell === false ? `${where} forbids shell commands (shell: false); submit argv instead` : null;
  }
  // A script is code like a shell command: refused where shell commands are, and its interpreter is the program.
  if (spec.script !== undefined && rule.shell === false) return `${where} forbids shell commands (shell: false), scripts included`;
  const program = spec.script !== undefined ? (spec.interpreter ?? 'sh') : (spec.argv?.[0] ?? '');
  if (rule.allow && !rule.allow.some((p) => toRegExp(p).test(program))) {
    return `${where} allows only programs matching ${rule.allow.join(', ')}; "${program}" is not one`;
  }
  return null;
}
