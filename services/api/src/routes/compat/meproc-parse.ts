import { DroverError, MAX_REPLICAS, QUEUE_NAME_PATTERN, validateCron } from '@drover/core';
import type { MeprocTask } from './meproc-tasks.js';

/** What a POST /proc body says, checked. */
export type TaskInput = Omit<MeprocTask, 'start_time' | 'last_time' | 'jobIds' | 'createdAt'>;

const NAME = new RegExp(QUEUE_NAME_PATTERN);
const IDENTITY = /^([a-z_][a-z0-9_-]{0,31}|[0-9]{1,10})$/;
export const bad = (message: string): DroverError => new DroverError('VALIDATION', message);

/**
 * Meproc's POST /proc body, with Meproc's own messages where it has them ("JSON body is required", "Type of cron
 * job must be 'cron'", "Invalid cron format"). Meproc answers every other field problem with "Invalid JSON field";
 * here that message goes on to name each problem, all of them at once. `replica` defaults to 1, as in Meproc.
 */
export function parseTask(body: unknown): TaskInput {
  if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body) || Object.keys(body).length === 0) {
    throw bad('JSON body is required');
  }
  const b = body as Record<string, unknown>;
  const problems: string[] = [];
  const missing = ['name', 'cmd', 'type'].filter((f) => b[f] === undefined);
  if (missing.length > 0) problems.push(`${missing.join(', ')} required`);
  if (b.name !== undefined && (typeof b.name !== 'string' || !NAME.test(b.name) || b.name === '__coroutine__')) {
    problems.push('name must be 1-64 letters, digits, "_", "." or "-"');
  }
  if (b.cmd !== undefined && (typeof b.cmd !== 'string' || b.cmd.trim() === '' || b.cmd.includes('\u0000'))) problems.push('cmd must be a non-empty command');
  if (b.type === 'coroutine') problems.push('type "coroutine" runs Melang coroutines, which Drover does not have');
  else if (b.type !== undefined && b.type !== 'once' && b.type !== 'daemon' && b.type !== 'cron') problems.push('type must be once, daemon or cron');
  const positive = (field: string, max: number, fallback: number): number => {
    const v = b[field];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
      problems.push(`${field} must be a positive integer up to ${max}`);
      return fallback;
    }
    return v;
  };
  const replica = positive('replica', MAX_REPLICAS, 1);
  const interval = positive('interval', 30 * 86_400_000, 3000);
  for (const f of ['user', 'group'] as const) {
    if (b[f] !== undefined && b[f] !== null && (typeof b[f] !== 'string' || !IDENTITY.test(b[f]))) problems.push(`${f} must be a user/group name or id`);
  }
  const deps = b.deps ?? [];
  if (!Array.isArray(deps) || deps.some((d) => typeof d !== 'string' || !NAME.test(d)) || deps.length > 64) {
    problems.push('deps must be a list of up to 64 task names');
  }
  if (problems.length > 0) throw bad(`Invalid JSON field: ${problems.join('; ')}`);
  if (b.cron !== undefined && b.type !== 'cron') throw bad("Type of cron job must be 'cron'");
  let cron: string | null = null;
  if (b.type === 'cron') {
    if (b.cron !== undefined && typeof b.cron !== 'string') throw bad('Invalid cron format: must be a string');
    cron = b.cron ?? '* * * * *';
    try {
      validateCron(cron, 'UTC');
    } catch (err) {
      throw bad(`Invalid cron format: ${(err as Error).message}`);
    }
  }
  return {
    name: b.name as string,
    cmd: b.cmd as string,
    type: b.type as TaskInput['type'],
    replica,
    user: (b.user as string | undefined) ?? null,
    group: (b.group as string | undefined) ?? null,
    deps: [...new Set(deps as string[])],
    interval,
    cron,
  };
}
