import type { Redis } from 'ioredis';
import { selectionServes } from '../model/queue-selection.js';
import { parseResources, type JobResources } from '../model/resources.js';
import type { Keys } from './keys.js';

/** Runners not heard from for this long leave the list (their entry stays `offline` until then). */
export const RUNNER_FORGET_MS = 3600_000;

export type RunnerStatus = 'running' | 'draining' | 'offline';

export interface RunnerView {
  id: string;
  host: string | null;
  /** Its addresses (non-internal interfaces; loopback only without any): what `constraints.host` also matches. */
  addresses: string[];
  /** RUNNER_LABELS plus `host` and `address`: what `constraints.labels` are matched against. */
  labels: Record<string, string>;
  pid: number | null;
  version: string | null;
  queues: string[];
  concurrency: number | null;
  executor: string | null;
  /** How its jobs' processes are held together: cgroup2, cgroup2+cgroup1, cgroup1, process-group+subreaper, process-group. */
  containment: string | null;
  /** The most one attempt may use there (RUNNER_MAX_JOB_*, also the limit of jobs that set none); {}: no maximum. */
  maxJobResources: JobResources;
  running: string[];
  startedAt: string | null;
  lastHeartbeatAt: string;
  state: RunnerStatus;
  /** An operator asked it to drain (POST /v1/runners/:id/drain) and has not resumed it. */
  drainRequested: boolean;
  loopDelayP99Ms: number | null;
}

/** A live runner that serves a queue (GET /v1/queues/:name `consumers`). */
export interface QueueConsumer {
  id: string;
  host: string | null;
  /** `draining` runners serve the queue but take no new jobs now. */
  state: Exclude<RunnerStatus, 'offline'>;
}

/** The live runners among `runners` whose RUNNER_QUEUES serve `queue`. */
export function consumersOf(runners: readonly RunnerView[], queue: string): QueueConsumer[] {
  return runners
    .filter((r): r is RunnerView & { state: QueueConsumer['state'] } => r.state !== 'offline' && selectionServes(r.queues, queue))
    .map((r) => ({ id: r.id, host: r.host, state: r.state }));
}

/**
 * The runner registry: each runner writes `runner:<id>` (a hash that expires unless heartbeats renew it) and its
 * last heartbeat time in the `runners` zset. A runner whose hash expired is `offline`; after an hour it is forgotten.
 * Operators' wishes (drain) live in `runner:<id>:desired`, which the runner reads on every heartbeat.
 */
export class RunnerRegistry {
  private recent: { at: number; list: Promise<RunnerView[]> } | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /**
   * list(), shared by the calls of the next `maxAgeMs`: what every submission checks (is its queue served?) costs
   * one registry read per period and API process, not one per request. A failed read is not kept.
   */
  listRecent(maxAgeMs: number, now = Date.now()): Promise<RunnerView[]> {
    if (this.recent && now - this.recent.at < maxAgeMs) return this.recent.list;
    const list = this.list(now);
    const entry = { at: now, list };
    this.recent = entry;
    list.catch(() => {
      if (this.recent === entry) this.recent = undefined;
    });
    return list;
  }

  private key(id: string): string {
    return this.keys.runner(id);
  }

  desiredKey(id: string): string {
    return this.keys.runnerDesired(id);
  }

  async list(now = Date.now()): Promise<RunnerView[]> {
    const zkey = this.keys.runners;
    await this.redis.zremrangebyscore(zkey, '-inf', now - RUNNER_FORGET_MS);
    const flat = await this.redis.zrange(zkey, 0, -1, 'WITHSCORES');
    const ids: { id: string; at: number }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) ids.push({ id: flat[i]!, at: Number(flat[i + 1]) });
    const p = this.redis.pipeline();
    for (const { id } of ids) p.hgetall(this.key(id)).get(this.desiredKey(id));
    const rows = (await p.exec()) ?? [];
    return ids.map(({ id, at }, i) => view(id, at, rows[i * 2]?.[1] as Record<string, string>, rows[i * 2 + 1]?.[1] as string | null));
  }

  /** One runner, read on its own (the drain and resume routes poll it). */
  async get(id: string, now = Date.now()): Promise<RunnerView | undefined> {
    const rows = (await this.redis.pipeline().zscore(this.keys.runners, id).hgetall(this.key(id)).get(this.desiredKey(id)).exec()) ?? [];
    const [at, h, desired] = rows.map((r) => r[1]);
    if (at === null || at === undefined || Number(at) < now - RUNNER_FORGET_MS) return undefined;
    return view(id, Number(at), h as Record<string, string>, desired as string | null);
  }

  async setDrain(id: string, drain: boolean): Promise<void> {
    // The runner changes state on its next heartbeat: what this process cached may not say so.
    this.recent = undefined;
    if (drain) await this.redis.set(this.desiredKey(id), 'draining', 'PX', RUNNER_FORGET_MS);
    else await this.redis.del(this.desiredKey(id));
  }
}

function view(id: string, heartbeatAt: number, h: Record<string, string> | undefined, desired: string | null): RunnerView {
  const live = h !== undefined && h.id !== undefined;
  const num = (v: string | undefined): number | null => (v === undefined || v === '' ? null : Number(v));
  return {
    id,
    host: live ? (h.host ?? null) : null,
    addresses: live && h.addresses ? h.addresses.split(',') : [],
    labels: (live ? parseLabels(h.labels) : undefined) ?? {},
    pid: live ? num(h.pid) : null,
    version: live ? (h.version ?? null) : null,
    queues: live && h.queues ? h.queues.split(',') : [],
    concurrency: live ? num(h.concurrency) : null,
    executor: live ? (h.executor ?? null) : null,
    containment: live ? (h.containment ?? null) : null,
    maxJobResources: (live ? parseResources(h.maxJobResources) : undefined) ?? {},
    running: live && h.running ? h.running.split(',') : [],
    startedAt: live && h.startedAt ? new Date(Number(h.startedAt)).toISOString() : null,
    lastHeartbeatAt: new Date(heartbeatAt).toISOString(),
    state: !live ? 'offline' : h.state === 'running' ? 'running' : 'draining',
    drainRequested: desired === 'draining',
    loopDelayP99Ms: live ? num(h.loopDelayP99Ms) : null,
  };
}

function parseLabels(json: string | undefined): Record<string, string> | undefined {
  if (!json) return undefined;
  try {
    return JSON.parse(json) as Record<string, string>;
  } catch {
    return undefined;
  }
}
