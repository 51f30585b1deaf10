import {
  ArchiveStore, DroverError, DroverMetrics, OutboundPolicy, EventStore, JobStore, LogStore, QueueStore, ScheduleStore, WebhookStore, checkRedisDurability, publishQueued, coerceError, within, connectRedis, createRedis, createTransport, logBrokerEvents,
  RunnerRegistry, selectionServes, type DroverConfig, type TransportConfig, type JobRef, type Logger, type Resolver, type Transport, EnvCipher,
} from '@drover/core';
import type { Redis } from 'ioredis';
import { SCHEDULE_BATCH, fireDueSchedules } from './cron-firing.js';
import { reportGoneRunners } from './runner-watch.js';
import { WebhookDeliverer } from './webhooks.js';
import { Archiver } from './archiver.js';
import { registerFleetMetrics } from './fleet-metrics.js';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';

export interface SchedulerOptions {
  config: TransportConfig & Pick<DroverConfig, 'scheduler' | 'outbound'> & Partial<Pick<DroverConfig, 'databaseUrl' | 'envKey'>>;
  logger: Logger;
  /** The process's metrics registry (shared by the services of `drover start`); default: a private one. */
  metrics?: DroverMetrics;
  /** How deliveries resolve host names; default the system's (dns.lookup). Tests inject one to play DNS tricks. */
  resolver?: Resolver;
}

/** Callbacks are always signed, so a scheduler without the key does not start (drover start generates one). */
export function assertSchedulerConfig<C extends Pick<DroverConfig, 'scheduler'>>(config: C): asserts config is C & { scheduler: { callbackSecret: string } } {
  if (config.scheduler.callbackSecret === undefined) {
    throw new DroverError('CONFIG', 'the scheduler needs DROVER_CALLBACK_SECRET (or DROVER_CALLBACK_SECRET_FILE) to sign job callbacks; ' +
      'generate one with: echo "whsec_$(openssl rand -base64 32)"');
  }
}

/** Due jobs and expired leases handled per tick; more wait for the next tick, which follows at once. */
const BATCH = 1000;
const SWEEP_EVERY_MS = 1000;
/** Longest wait for one shutdown step. */
const CLOSE_STEP_MS = 5000;
/** A tick running longer than this is stuck: liveness fails and an orchestrator restarts the scheduler. */
const STUCK_TICK_MS = 60_000;

/** A settled step's value, or `fallback` for one that failed (the tick reports the failure after the others). */
function valueOf<T>(r: PromiseSettledResult<T>, fallback: T): T {
  return r.status === 'fulfilled' ? r.value : fallback;
}

/**
 * The service that owns time. Each tick: end jobs past their deadline (expired), promote due delayed jobs (delayed submissions, retry backoffs), fire due
 * cron schedules, publish jobs whose dependencies ended, release parked jobs their queue has room for, recover jobs whose runner
 * stopped heartbeating, and republish queued jobs whose publish was never confirmed. Every step is one atomic
 * script, so any number of scheduler replicas can run side by side without firing anything twice.
 */
export class Scheduler {
  private readonly redis: Redis;
  private readonly store: JobStore;
  private readonly schedules: ScheduleStore;
  private readonly events: EventStore;
  private readonly webhooks: WebhookDeliverer;
  private readonly archive: ArchiveStore | undefined;
  private readonly archiver: Archiver | undefined;
  private readonly transport: Transport;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private lastWaitingSweep = 0;
  private lastSweep = 0;
  private closing: Promise<void> | undefined;
  private stopped = false;
  readonly metrics: DroverMetrics;
  private tickStartedAt: number | undefined;
  private lastTickOkAt = 0;

  constructor(private readonly opts: SchedulerOptions) {
    assertSchedulerConfig(opts.config);
    this.log = opts.logger;
    this.metrics = opts.metrics ?? new DroverMetrics({ defaultMetrics: false });
    this.redis = createRedis(opts.config.redisUrl, 'worker', 'drover-scheduler');
    this.redis.on('error', (err) => this.log.warn({ err: err.message }, 'redis connection error'));
    const envCipher = opts.config.envKey ? new EnvCipher(opts.config.envKey) : undefined;
    this.store = new JobStore(this.redis, opts.config.prefix, envCipher);
    this.schedules = new ScheduleStore(this.redis, this.store.keys, envCipher);
    this.events = new EventStore(this.redis, this.store.keys);
    const { webhookRetryBaseMs, webhookMaxAgeMs, callbackSecret } = opts.config.scheduler;
    const outbound = new OutboundPolicy(opts.config.outbound.allow, opts.resolver);
    // This scheduler's name in the events consumer groups (unique, so a restart is a new consumer).
    const consumer = `scheduler-${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
    this.webhooks = new WebhookDeliverer(
      this.events, new WebhookStore(this.redis, this.store.keys), consumer,
      { retryBaseMs: webhookRetryBaseMs, maxAgeMs: webhookMaxAgeMs, callbackSecret, outbound }, this.log, this.metrics,
    );
    if (opts.config.databaseUrl) {
      this.archive = new ArchiveStore(opts.config.databaseUrl, opts.config.prefix);
      this.archiver = new Archiver(
        this.events, this.store, new LogStore(this.redis, this.store.keys), this.archive, consumer, this.log,
      );
    }
    this.transport = createTransport(opts.config, logBrokerEvents(this.log, opts.config.broker, this.metrics), (m) => this.log.warn(m));
    const queues = new QueueStore(this.store);
    this.metrics.setDepthReader(() => queues.depths());
    registerFleetMetrics(this.metrics, { redis: this.redis, queues, jobs: this.store, schedules: this.schedules, runners: new RunnerRegistry(this.redis, this.store.keys), serves: selectionServes });
  }

  /** Liveness: the tick loop is not stuck. */
  isLive(now = Date.now()): boolean {
    return this.tickStartedAt === undefined || now - this.tickStartedAt < STUCK_TICK_MS;
  }

  /** Readiness: a tick succeeded recently (Redis and the broker answer). */
  isReady(now = Date.now()): boolean {
    return !this.stopped && now - this.lastTickOkAt < Math.max(10_000, this.opts.config.scheduler.tickMs * 20);
  }

  async start(): Promise<void> {
    await connectRedis(this.redis, 10_000);
    await checkRedisDurability(this.redis, this.log);
    await this.transport.ready();
    if (this.archive) {
      const applied = await this.archive.migrate();
      if (applied.length > 0) this.log.info({ applied }, 'archive database migrated');
    }
    await this.webhooks.prepare();
    this.schedule(0);
    this.webhooks.start();
    this.archiver?.start();
    this.log.info({ tickMs: this.opts.config.scheduler.tickMs }, 'scheduler started');
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.tickStartedAt = Date.now();
      this.ticking = this.tick()
        .then((busy) => {
          this.lastTickOkAt = Date.now();
          this.schedule(busy ? 0 : this.opts.config.scheduler.tickMs);
        })
        .catch((err: unknown) => {
          this.log.error({ err: coerceError(err) }, 'scheduler tick failed');
          this.schedule(this.opts.config.scheduler.tickMs * 10);
        })
        .finally(() => (this.tickStartedAt = undefined));
    }, delay);
  }

  /** Returns true when a batch was full, so the next tick should follow immediately. */
  async tick(now = Date.now()): Promise<boolean> {
    // The tick's steps start together, so their first calls leave in one write (autopipelining) and an idle tick
    // costs one round trip instead of seven. Redis runs them in the order sent: jobs past their deadline end
    // expired before the promotion could publish them. A failed step does not hold up the others' results; the
    // tick fails after them (what it took stays in the outbox, which the sweep republishes).
    const [expiredR, dueR, readyR, parkedR, lostR, cronR, intakeR] = await Promise.allSettled([
      this.store.expireDue(BATCH, now),
      this.store.promoteDue(BATCH, now),
      // Jobs whose dependencies ended, and the queues holding parked jobs (released below when they have room).
      this.store.takeReady(BATCH),
      this.store.parkedQueues(),
      this.store.expireLeases(BATCH, now),
      fireDueSchedules(
        { store: this.store, schedules: this.schedules, transport: this.transport, log: this.log, metrics: this.metrics },
        now,
        this.opts.config.scheduler.misfireThresholdMs,
      ),
      // Webhook intake: failures here must not hold up timers and recovery.
      this.webhooks.intake(now).catch((err: unknown) => {
        this.log.warn({ err: coerceError(err) }, 'webhook intake failed; retrying next tick');
        return 0;
      }),
    ]);
    const expired = valueOf(expiredR, []);
    for (const j of expired) this.metrics.jobsFinished.inc({ queue: j.queue, status: 'expired' });
    if (expired.length > 0) this.log.info({ count: expired.length }, 'jobs expired: not started by their deadline');
    const lost = valueOf(lostR, []);
    for (const j of lost) {
      this.log.warn({ jobId: j.id, queue: j.queue, next: j.status }, 'job lost: its runner stopped heartbeating');
      this.metrics.jobsLost.inc({ queue: j.queue });
      if (j.status === 'queued' || j.status === 'delayed') this.metrics.jobsRetried.inc({ queue: j.queue });
      else this.metrics.jobsFinished.inc({ queue: j.queue, status: j.status });
    }
    const due = valueOf(dueR, []);
    const ready = valueOf(readyR, []);
    const released = await Promise.allSettled(valueOf(parkedR, []).map(async (queue) => this.publish(await this.store.releaseParked(queue, BATCH, now), 'released by queue')));
    await Promise.all([
      this.publish(due, 'promoted'),
      this.publish(ready, 'dependencies met'),
      this.publish(lost.filter((j) => j.status === 'queued'), 'requeued after loss'),
    ]);
    const failed = [expiredR, dueR, readyR, parkedR, lostR, cronR, intakeR, ...released].find((r) => r.status === 'rejected');
    if (now - this.lastSweep >= SWEEP_EVERY_MS) {
      this.lastSweep = now;
      const stale = await this.store.sweepOutbox(now - this.opts.config.scheduler.republishAfterMs, BATCH, now);
      if (stale.length > 0) this.log.warn({ count: stale.length }, 'republishing queued jobs whose publish was not confirmed');
      await this.publish(stale, 'republished');
      if (now - this.lastWaitingSweep >= this.opts.config.scheduler.republishAfterMs) {
        this.lastWaitingSweep = now;
        // Failures here must not hold up retention and the rest of the sweep.
        await this.republishStranded(now).catch((err: unknown) => this.log.warn({ err: coerceError(err) }, 'looking for jobs waiting without a message failed; retrying next sweep'));
      }
      for (const id of await reportGoneRunners(this.events)) this.log.warn({ runnerId: id }, 'runner gone: no heartbeat for two leases');
      await this.events.trimOlderThan(this.opts.config.scheduler.eventsRetentionMs, now);
      const { retentionFinishedMs, retentionMaxPerQueue } = this.opts.config.scheduler;
      const forgotten = await this.store.expireFinished(retentionFinishedMs, retentionMaxPerQueue, BATCH, now, this.archive !== undefined);
      if (forgotten > 0) this.log.debug({ count: forgotten }, 'finished jobs past their retention deleted');
    }
    if (failed) throw failed.reason;
    return expired.length === BATCH || due.length === BATCH || ready.length === BATCH || lost.length === BATCH || valueOf(intakeR, 0) >= 500 || valueOf(cronR, 0) === SCHEDULE_BATCH;
  }

  /**
   * Store order (a broker without priorities) lets a delivery claim any waiting job, on the promise that each waiting
   * job has a message on its way. A claim that a Redis failover lost breaks it: the job is waiting again, its message
   * was acknowledged. Such jobs are republished when the broker holds no message for their queue; any spare message
   * finds nothing to claim and is dropped.
   */
  private async republishStranded(now: number): Promise<void> {
    const transport = this.transport;
    if (!transport.readyMessages || transport.capabilities.priorities) return;
    // A queue whose broker queue still holds messages is passed over: its waiting jobs have messages on the way (a
    // backlog is never scanned). One that holds none has only the jobs runners' prefetched messages will take, and
    // strays.
    for (const queue of await this.store.queuesWithWaiting()) {
      if ((await transport.readyMessages(queue)) > 0) continue;
      const jobs = await this.store.sweepWaiting(queue, now - this.opts.config.scheduler.republishAfterMs, BATCH);
      if (jobs.length === 0) continue;
      this.log.warn({ queue, count: jobs.length }, 'republishing jobs waiting without a broker message (a claim lost in a Redis failover?)');
      await this.publish(jobs, 'waiting without a message');
    }
  }

  /** Publish, then clear the outbox; if publishing fails the outbox sweep retries it later. */
  private async publish(jobs: JobRef[], why: string): Promise<void> {
    if (jobs.length === 0) return;
    try {
      await publishQueued(this.transport, this.store, jobs);
      this.log.debug({ count: jobs.length, why }, 'published');
    } catch (err) {
      this.log.error({ err: coerceError(err), count: jobs.length, why }, 'publish failed; the outbox sweep will retry');
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopped = true;
      clearTimeout(this.timer);
      await within(this.webhooks.close(), CLOSE_STEP_MS);
      await within(this.archiver?.close(), CLOSE_STEP_MS);
      await within(this.archive?.close(), CLOSE_STEP_MS);
      // Bounded: a tick stuck on an unreachable Redis must not hold the process.
      await within(this.ticking?.catch(() => undefined), CLOSE_STEP_MS);
      await within(this.transport.close().catch((err: unknown) => this.log.error({ err: coerceError(err) }, 'closing transport failed')), CLOSE_STEP_MS);
      await within(this.redis.quit().catch(() => undefined), CLOSE_STEP_MS);
      this.redis.disconnect();
      this.log.info('scheduler stopped');
    })();
    return this.closing;
  }
}
