import type { Redis } from 'ioredis';
import { sealEnvOf, type EnvCipher } from '../env-cipher.js';
import { DroverError } from '../errors.js';
import { deniedEnvReason } from '../policy-env.js';
import type { Keys } from './keys.js';

/** Most operator variables at once: each one goes into every job's environment. */
export const MAX_VARIABLES = 256;
/** Longest value, as for a job's own env values. */
export const MAX_VARIABLE_BYTES = 65_536;

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/**
 * Why `name` cannot be an operator variable, or null. Besides being a valid env name it must not be one the runner
 * sets itself (DROVER_*), nor one that changes which code runs behind a program (LD_PRELOAD, PATH, BASH_ENV, ...):
 * a variable reaches every job of every queue, so the list a `shell: false` queue refuses is refused here for all.
 */
export function variableNameProblem(name: string): string | null {
  if (!NAME.test(name)) return 'must be an environment variable name: a letter or "_", then letters, digits or "_", up to 128';
  if (name.startsWith('DROVER_') || name === 'TRACEPARENT') return 'is set by the runner for each job';
  const denied = deniedEnvReason(name);
  return denied ? `may not be set for every job: ${denied}` : null;
}

/**
 * Operator variables: environment variables that every job started after a change sees, under the job's own env.
 * One hash under the prefix; values are sealed like jobs' env (DROVER_ENV_KEY) and never leave through the API.
 * Each change is announced on the control channel, so runners re-read before their next start.
 */
export class VariableStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly envCipher?: EnvCipher,
  ) {}

  /** Sets one variable (VALIDATION for a bad name or value, CONFLICT past MAX_VARIABLES); runners are told. */
  async set(name: string, value: string): Promise<void> {
    const problem = variableNameProblem(name);
    if (problem) throw new DroverError('VALIDATION', `name: "${name}" ${problem}`, [{ field: 'name', message: problem }]);
    if (Buffer.byteLength(value) > MAX_VARIABLE_BYTES || value.includes('\u0000')) {
      throw new DroverError('VALIDATION', `value: at most ${MAX_VARIABLE_BYTES} bytes, without NUL`, [{ field: 'value', message: `at most ${MAX_VARIABLE_BYTES} bytes, without NUL` }]);
    }
    const [exists, count] = await Promise.all([this.redis.hexists(this.keys.variables, name), this.redis.hlen(this.keys.variables)]);
    if (!exists && count >= MAX_VARIABLES) throw new DroverError('CONFLICT', `there are ${MAX_VARIABLES} operator variables already; delete one first`);
    const sealed = sealEnvOf(this.envCipher, { env: { [name]: value } }).env;
    await this.redis.multi().hset(this.keys.variables, name, sealed[name]!).publish(this.keys.control, JSON.stringify({ type: 'variables' })).exec();
  }

  /** Removes one variable; false when there was none. */
  async delete(name: string): Promise<boolean> {
    const [[, removed] = []] = (await this.redis.multi().hdel(this.keys.variables, name).publish(this.keys.control, JSON.stringify({ type: 'variables' })).exec()) ?? [];
    return removed === 1;
  }

  /** The names, sorted: values are for runners only. */
  async names(): Promise<string[]> {
    return (await this.redis.hkeys(this.keys.variables)).sort();
  }

  /** Every variable with its value as stored (sealed when DROVER_ENV_KEY is set): for runners, never for answers. */
  async all(): Promise<Record<string, string>> {
    return this.redis.hgetall(this.keys.variables);
  }
}
