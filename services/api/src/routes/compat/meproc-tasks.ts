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
  /** Epoch seconds of the last POST or PUT (Meproc sets it on every start it is asked for). */
  start_time: number;
  /** Epoch seconds the task's processes last started (0: not yet); kept apart (MeprocTasks.lastStart) as it moves. */
  last_time: number;
  /** The jobs of the latest start, one per replica (for a cron task: its first run). */
  jobIds: string[];
  /** Epoch ms of the first POST: the order GET /proc lists tasks in. */
  createdAt: number;
}

/** The schedule a cron task fires through. */
export const meprocSchedule = (name: string): string => `meproc.${name}`;

/** Meproc tasks by name, in one Redis hash under the prefix, and when each last started, in a sorted set beside it. */
export class MeprocTasks {
  private readonly starts: string;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
  ) {
    this.starts = `${key}:last-start`;
  }

  async all(): Promise<MeprocTask[]> {
    const h = await this.redis.hgetall(this.key);
    return Object.values(h)
      .map((v) => JSON.parse(v) as MeprocTask)
      .sort((a, b) => (a.createdAt ?? a.start_time * 1000) - (b.createdAt ?? b.start_time * 1000) || a.name.localeCompare(b.name));
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
    await this.redis.multi().hdel(this.key, name).zrem(this.starts, name).exec();
  }

  /** When each task's processes last started, epoch seconds (tasks that never started are missing). */
  async lastStarts(): Promise<Map<string, number>> {
    const flat = await this.redis.zrange(this.starts, 0, -1, 'WITHSCORES');
    const out = new Map<string, number>();
    for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i]!, Number(flat[i + 1]));
    return out;
  }

  /**
   * Moves a task's last start forward to `secs` (never back), so it outlives the job records it was read from: their
   * start times are read on every GET /proc, and Redis lets finished jobs go after the retention period.
   */
  async startedAt(name: string, secs: number): Promise<void> {
    await this.redis.zadd(this.starts, 'GT', secs, name);
  }

  /** Every task `deps` lead to through registered tasks' deps (Meproc waits while any of them runs). */
  async closure(deps: string[]): Promise<string[]> {
    const tasks = new Map((await this.all()).map((t) => [t.name, t.deps]));
    const seen = new Set<string>();
    const walk = (names: string[]): void => {
      for (const n of names) {
        if (seen.has(n)) continue;
        seen.add(n);
        walk(tasks.get(n) ?? []);
      }
    };
    walk(deps);
    return [...seen];
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
