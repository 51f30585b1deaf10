import type { Redis } from 'ioredis';

/** A Meproc task as Meproc's API shows it, plus what Drover needs to stop and restart it. */
export interface MeprocTask {
  name: string;
  cmd: string;
  type: 'once' | 'daemon' | 'cron';
  replica: number;
  user: string | null;
  group: string | null;
  deps: string[];
  /** Milliseconds between a daemon's exit and its next start (Meproc's source uses ms; default 3000). */
  interval: number;
  cron: string | null;
  /** Epoch seconds of the first start and of the last (re)start. */
  start_time: number;
  last_time: number;
  /** The jobs of the latest start, one per replica. */
  jobIds: string[];
}

/** The schedule a cron task fires through. */
export const meprocSchedule = (name: string): string => `meproc.${name}`;

/** Meproc tasks by name, in one Redis hash under the prefix. */
export class MeprocTasks {
  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {}

  async all(): Promise<MeprocTask[]> {
    const h = await this.redis.hgetall(this.key);
    return Object.values(h)
      .map((v) => JSON.parse(v) as MeprocTask)
      .sort((a, b) => a.start_time - b.start_time || a.name.localeCompare(b.name));
  }

  async get(name: string): Promise<MeprocTask | undefined> {
    const v = await this.redis.hget(this.key, name);
    return v ? (JSON.parse(v) as MeprocTask) : undefined;
  }

  /** Stores the task unless one of that name exists; returns false then. */
  async add(task: MeprocTask): Promise<boolean> {
    return (await this.redis.hsetnx(this.key, task.name, JSON.stringify(task))) === 1;
  }

  async save(task: MeprocTask): Promise<void> {
    await this.redis.hset(this.key, task.name, JSON.stringify(task));
  }

  async remove(name: string): Promise<void> {
    await this.redis.hdel(this.key, name);
  }

  /** The dependency path back to `name` through registered tasks' deps, if adding `deps` to it would close a cycle. */
  async cycle(name: string, deps: string[]): Promise<string[] | undefined> {
    const tasks = new Map((await this.all()).map((t) => [t.name, t.deps]));
    tasks.set(name, deps);
    const walk = (at: string, path: string[]): string[] | undefined => {
      for (const next of tasks.get(at) ?? []) {
        if (next === name) return [...path, next];
        if (!path.includes(next)) {
          const found = walk(next, [...path, next]);
          if (found) return found;
        }
      }
      return undefined;
    };
    return walk(name, [name]);
  }
}
