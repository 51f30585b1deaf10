import type { Redis } from 'ioredis';
import { DroverError } from '../errors.js';
import { isJobId } from '../ids.js';
import type { StepInput } from '../model/workflow.js';
import { sealEnvOf, type EnvCipher } from '../env-cipher.js';
import type { Keys } from './keys.js';
import type { Page } from './job-store.js';

export interface WorkflowRun {
  run: number;
  mode: 'start' | 'whole' | 'failed' | 'steps';
  at: string;
  /** The steps this run started, with their job ids. */
  steps: Record<string, string[]>;
}

export interface WorkflowRecord {
  id: string;
  name: string;
  /** The schedule that started it, if one did. */
  schedule?: string;
  steps: StepInput[];
  /** Most steps running at once, if limited. */
  concurrency?: number;
  createdAt: string;
  /** Current job ids per step (a restart replaces those of the steps it runs again). */
  jobs: Record<string, string[]>;
  runs: WorkflowRun[];
}

/** Workflows in Redis: one hash each (definition, current jobs, run history) and a lex index by id. */
export class WorkflowStore {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    /** Seals the env values of the steps' jobs (DROVER_ENV_KEY). */
    private readonly envCipher?: EnvCipher,
  ) {}

  private key(id: string): string {
    return this.keys.name('workflow', id);
  }

  /** The record as stored (env values of its steps sealed): for save, and for a create that stores it with its jobs. */
  docOf(wf: WorkflowRecord): string {
    return JSON.stringify(this.envCipher ? { ...wf, steps: wf.steps.map((s) => ({ ...s, job: sealEnvOf(this.envCipher, s.job) })) } : wf);
  }

  async save(wf: WorkflowRecord): Promise<void> {
    await this.redis.multi().hset(this.key(wf.id), 'doc', this.docOf(wf)).zadd(this.keys.name('workflowIndex'), 0, wf.id).exec();
  }

  /** Forgets a workflow whose start was withdrawn (its jobs were discarded because their publish failed). */
  async remove(id: string): Promise<void> {
    await this.redis.multi().del(this.key(id)).zrem(this.keys.name('workflowIndex'), id).exec();
  }

  async get(id: string): Promise<WorkflowRecord | null> {
    if (!isJobId(id)) return null;
    const doc = await this.redis.hget(this.key(id), 'doc');
    return doc ? (JSON.parse(doc) as WorkflowRecord) : null;
  }

  /** Newest first; the cursor is the last id of the previous page. */
  async list(cursor: string | undefined, limit: number): Promise<Page<WorkflowRecord>> {
    if (cursor !== undefined && !isJobId(cursor)) throw new DroverError('BAD_CURSOR', 'cursor is not one this API issued');
    const ids = await this.redis.zrevrangebylex(this.keys.name('workflowIndex'), cursor ? `(${cursor}` : '+', '-', 'LIMIT', 0, limit + 1);
    const page = ids.slice(0, limit);
    const items = (await Promise.all(page.map((id) => this.get(id)))).filter((w): w is WorkflowRecord => w !== null);
    return { items, nextCursor: ids.length > limit ? (page[page.length - 1] ?? null) : null };
  }
}
