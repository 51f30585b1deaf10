import {
  DEFAULT_SPEC_DEFAULTS, QUEUE_NAME_PATTERN, coerceError, newJobId, normalizeJobSpec, publishQueued, type DroverMetrics, type JobStore, type Logger, type NewJob, type Transport,
} from '@drover/core';
import type { Redis } from 'ioredis';

/** How long one blocking pop waits, so close() is noticed within this. */
const POP_TIMEOUT_S = 1;
const NAME = new RegExp(QUEUE_NAME_PATTERN);

/** A task document as Coyotes clients push it. */
interface CoyotesDoc {
  id?: unknown;
  task?: unknown;
  command?: { name?: unknown; args?: unknown };
  chan?: unknown;
  execute_at?: unknown;
}

/** Turns a pushed document into a job, or says why it cannot be one. */
export function jobFromCoyotes(raw: string, now: number): NewJob | string {
  let doc: CoyotesDoc;
  try {
    doc = JSON.parse(raw) as CoyotesDoc;
  } catch {
    return 'not JSON';
  }
  if (typeof doc !== 'object' || doc === null) return 'not a JSON object';
  const task = typeof doc.task === 'string' ? doc.task.trim() : '';
  const name = typeof doc.command?.name === 'string' ? doc.command.name : '';
  const args = Array.isArray(doc.command?.args) ? doc.command.args.map(String) : [];
  // Without a shell, as Coyotes runs them: `command` with its args, else the task line split on spaces.
  const argv = name ? [name, ...args] : task.split(/\s+/).filter(Boolean);
  if (argv.length === 0 || argv.some((a) => a.includes('\u0000'))) return 'no task or command';
  const queue = typeof doc.chan === 'string' && doc.chan !== '' ? doc.chan : 'default';
  if (!NAME.test(queue)) return `bad channel "${queue}"`;
  const labels: Record<string, string> = { 'coyotes.task': (task || argv.join(' ')).slice(0, 256), source: 'coyotes-list' };
  if (typeof doc.id === 'string' || typeof doc.id === 'number') labels['coyotes.id'] = String(doc.id).slice(0, 256);
  const job: NewJob = { id: newJobId(now), spec: normalizeJobSpec({ argv, queue, labels }, DEFAULT_SPEC_DEFAULTS) };
  const at = Number(doc.execute_at);
  if (Number.isFinite(at) && at * 1000 > now) job.runAt = at * 1000;
  return job;
}

/**
 * A key for `suffix` in the same Redis Cluster slot as `key`: the list and the lists an item moves through must share
 * one (BLMOVE, LMOVE and MULTI span them). A key with a hash tag keeps it; one without gets itself as the tag.
 */
export function sameSlotKey(key: string, suffix: string): string {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  return close > open + 1 ? `${key}:${suffix}` : `{${key}}:${suffix}`;
}

/**
 * Coyotes' Redis-list ingestion (DROVER_COYOTES_LIST=1): tasks LPUSHed as JSON to the list DROVER_COYOTES_LIST_KEY
 * names (`task:prepare:queue`, as Coyotes clients write) become jobs. Each item is moved atomically to this runner's
 * processing list, made a job, and only then removed, so a runner that dies mid-way leaves it in its processing
 * list, which it takes back on its next start. Items that cannot be jobs go to a rejected list for a person to look
 * at. The list is outside DROVER_PREFIX, so its slot is not the store's: the processing and rejected lists share the
 * list's slot, and no command or script touches it together with the store's keys.
 */
export class CoyotesListReader {
  private stopped = false;
  private loop: Promise<void> | undefined;
  private readonly processing: string;
  private readonly rejected: string;

  constructor(
    private readonly redis: Redis,
    private readonly store: JobStore,
    private readonly transport: Transport,
    runnerId: string,
    /** The list's exact key (DROVER_COYOTES_LIST_KEY). */
    private readonly source: string,
    private readonly log: Logger,
    private readonly metrics?: DroverMetrics,
  ) {
    // The list Drover read before DROVER_COYOTES_LIST_KEY keeps the names its items moved through then.
    const legacy = source === store.keys.name('coyotesList');
    this.processing = legacy ? store.keys.name('coyotesProcessing', runnerId) : sameSlotKey(source, `processing:${runnerId}`);
    this.rejected = legacy ? store.keys.name('coyotesRejected') : sameSlotKey(source, 'rejected');
  }

  async start(): Promise<void> {
    // Items this runner held when it last stopped go back to the front of the line.
    while ((await this.redis.lmove(this.processing, this.source, 'LEFT', 'RIGHT')) !== null);
    // Before DROVER_COYOTES_LIST_KEY the list was under the prefix: say so if items still wait there.
    const legacy = this.store.keys.name('coyotesList');
    if (legacy !== this.source && (await this.redis.llen(legacy)) > 0) {
      this.log.warn({ list: legacy, reading: this.source }, 'Coyotes tasks wait in the list Drover read before DROVER_COYOTES_LIST_KEY; set it to that key to take them');
    }
    this.loop = this.run();
    this.log.info({ list: this.source }, 'taking Coyotes tasks from the Redis list');
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const raw = await this.redis.blmove(this.source, this.processing, 'RIGHT', 'LEFT', POP_TIMEOUT_S);
        if (raw !== null) await this.ingest(raw);
      } catch (err) {
        if (this.stopped) return;
        this.log.warn({ err: coerceError(err) }, 'reading the Coyotes list failed; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  private async ingest(raw: string): Promise<void> {
    const job = jobFromCoyotes(raw, Date.now());
    if (typeof job === 'string') {
      this.log.warn({ reason: job, item: raw.slice(0, 200) }, 'Coyotes list item rejected');
      await this.redis.multi().rpush(this.rejected, raw).lrem(this.processing, 1, raw).exec();
      return;
    }
    const [created] = await this.store.create([job]);
    if (created && !created.duplicate) this.metrics?.jobsSubmitted.inc({ queue: job.spec.queue });
    if (created && !created.duplicate && created.record.status === 'queued') {
      // If this publish fails the job is in the outbox and the scheduler publishes it.
      await publishQueued(this.transport, this.store, [{ id: job.id, queue: job.spec.queue }]).catch((err: unknown) =>
        this.log.warn({ err: coerceError(err), jobId: job.id }, 'publish failed; the outbox will retry'),
      );
    }
    await this.redis.lrem(this.processing, 1, raw);
  }

  async close(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}
