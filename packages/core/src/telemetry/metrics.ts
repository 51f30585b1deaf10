import { AggregatorRegistry, Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { DEFAULT_NAMESPACE } from '../model/namespace.js';

/** 10 ms to 4 h: a job runner sees `true` and nightly builds in the same histogram. Seconds, as Prometheus wants. */
export const DURATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400];

/** API requests: 1 ms to 30 s. */
export const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/** Job states the queue-depth gauge reports: everything before a job finishes. */
export const DEPTH_STATES = ['waiting', 'delayed', 'queued', 'parked', 'running'] as const;
export type DepthState = (typeof DEPTH_STATES)[number];

/** Reads the current depth of every queue, state by state (O(queues) counters, never a scan of jobs). */
export type DepthReader = () => Promise<{ queue: string; counts: Record<DepthState, number> }[]>;

/**
 * What the scheduler reads from the store at scrape time for the fleet-wide gauges and the counters' initialisation.
 * Each read is bounded (per queue or per runner, never per job).
 */
export interface FleetReader {
  /** The queues that exist: the per-queue counters start at 0 for each. */
  queueNames(): Promise<string[]>;
  /** Live runners (running, not draining) whose RUNNER_QUEUES serve each queue. */
  consumers(): Promise<{ queue: string; live: number }[]>;
  /** How long the oldest queued job of each queue has been queued (queues with none queued are left out). */
  oldestQueuedSeconds(): Promise<{ queue: string; seconds: number }[]>;
  /** Enabled schedules whose latest finished run failed, timed out or was lost. */
  failingSchedules(): Promise<number>;
  /** Runners in the registry by state; `offline`: gone without a clean stop in the last hour. */
  runnerStates(): Promise<Record<'running' | 'draining' | 'offline', number>>;
  /** Whether the store's Redis connection is up now (no round trip). */
  storeConnected(): boolean;
}

/** Outcomes the labelled counters start at 0 with, so rates and alerts have a series before the first event. */
export const FINISHED_STATUSES = ['succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'expired'] as const;
export const FIRE_OUTCOMES = ['fired', 'skipped', 'misfired'] as const;
export const DELIVERY_OUTCOMES = ['delivered', 'failed', 'given_up'] as const;

/** How long one read of the queue names serves the counters' initialisation: one scrape reads it once. */
const QUEUE_NAMES_TTL_MS = 100;

/** A runner's slots, read at scrape time. */
export interface RunnerLoad {
  id: string;
  running: number;
  capacity: number;
  /** Slots it would fill now: 0 while it drains. */
  free: number;
}

/**
 * Every metric Drover exports, in one registry per namespace a process serves (a service, or the three services of
 * `drover start`), each sample labelled with its `namespace`; `render` of any of them shows the whole process.
 * Labels are bounded: namespace, queue, status/outcome, runner, broker, HTTP route; never a job id, command or
 * schedule name.
 */
export class DroverMetrics {
  /** This namespace's metrics (every sample carries `namespace`). */
  readonly registry = new Registry();
  readonly namespace: string;
  /** process_* and nodejs_*: once per process, without a namespace. */
  readonly processRegistry = new Registry();
  /** The process's metrics of the default namespace, which holds those of the others. */
  private root: DroverMetrics = this;
  private readonly others = new Map<string, DroverMetrics>();
  private depthReader: DepthReader | undefined;
  private fleet: FleetReader | undefined;
  private queueNames: { at: number; names: Promise<string[]> } | undefined;
  private readonly runners = new Map<string, () => RunnerLoad>();

  readonly jobsSubmitted = new Counter({
    name: 'drover_jobs_submitted_total',
    help: 'Jobs created (API, schedules, workflows, compatibility adapters), by queue. Deduplicated submissions are not counted.',
    labelNames: ['queue'],
    registers: [this.registry],
    collect: async () => (await this.knownQueues()).forEach((queue) => this.jobsSubmitted.inc({ queue }, 0)),
  });

  readonly jobsStarted = new Counter({
    name: 'drover_jobs_started_total',
    help: 'Attempts started by a runner, by queue.',
    labelNames: ['queue'],
    registers: [this.registry],
    collect: async () => (await this.knownQueues()).forEach((queue) => this.jobsStarted.inc({ queue }, 0)),
  });

  readonly jobsFinished = new Counter({
    name: 'drover_jobs_finished_total',
    help: 'Jobs that reached a final status (succeeded, failed, timed_out, cancelled, lost, expired), by queue. Retried attempts are not final.',
    labelNames: ['queue', 'status'],
    registers: [this.registry],
    collect: async () => (await this.knownQueues()).forEach((queue) => FINISHED_STATUSES.forEach((status) => this.jobsFinished.inc({ queue, status }, 0))),
  });

  readonly jobsRetried = new Counter({
    name: 'drover_jobs_retried_total',
    help: 'Attempts that ended unsuccessfully and were queued again by the retry policy, by queue.',
    labelNames: ['queue'],
    registers: [this.registry],
    collect: async () => (await this.knownQueues()).forEach((queue) => this.jobsRetried.inc({ queue }, 0)),
  });

  readonly jobsLost = new Counter({
    name: 'drover_jobs_lost_total',
    help: 'Attempts whose runner stopped heartbeating or shut down before they ended, by queue (retried or final per the retry policy).',
    labelNames: ['queue'],
    registers: [this.registry],
    collect: async () => (await this.knownQueues()).forEach((queue) => this.jobsLost.inc({ queue }, 0)),
  });

  readonly jobsSlow = new Counter({
    name: 'drover_jobs_slow_total',
    help: 'Attempts that ran past their alertAfterMs (a job.slow alert; the job kept running), by queue.',
    labelNames: ['queue'],
    registers: [this.registry],
    collect: async () => (await this.knownQueues()).forEach((queue) => this.jobsSlow.inc({ queue }, 0)),
  });

  readonly jobDuration = new Histogram({
    name: 'drover_job_duration_seconds',
    help: "Run time of each attempt's process, by queue and outcome.",
    labelNames: ['queue', 'status'],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });

  readonly queueWait = new Histogram({
    name: 'drover_job_queue_wait_seconds',
    help: 'Time from a job being queued (submitted, due, or retried) to a runner starting it, by queue.',
    labelNames: ['queue'],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });

  readonly queueDepth = new Gauge({
    name: 'drover_queue_depth',
    help: 'Unfinished jobs per queue and state: waiting (on dependencies), delayed, queued (includes parked), parked (held by the queue limits), running.',
    labelNames: ['queue', 'state'],
    registers: [this.registry],
    collect: async () => this.collectDepth(),
  });

  readonly runnerRunning = new Gauge({
    name: 'drover_runner_running_jobs',
    help: 'Jobs running on a runner now.',
    labelNames: ['runner'],
    registers: [this.registry],
    collect: () => this.collectRunners(),
  });

  readonly runnerCapacity = new Gauge({
    name: 'drover_runner_slots',
    help: "A runner's concurrency (RUNNER_CONCURRENCY).",
    labelNames: ['runner'],
    registers: [this.registry],
    collect: () => this.collectRunners(),
  });

  readonly runnerFree = new Gauge({
    name: 'drover_runner_free_slots',
    help: 'Slots free on a runner now (0 while it drains).',
    labelNames: ['runner'],
    registers: [this.registry],
    collect: () => this.collectRunners(),
  });

  readonly queueConsumers: Gauge<'queue'> = new Gauge({
    name: 'drover_queue_consumers',
    help: 'Live runners (running, not draining) whose RUNNER_QUEUES serve the queue; 0 with jobs queued: they wait for a runner.',
    labelNames: ['queue'],
    registers: [this.registry],
    collect: async (): Promise<void> => this.fromFleet(this.queueConsumers, async (f) => (await f.consumers()).map(({ queue, live }) => [{ queue }, live])),
  });

  readonly queueOldest: Gauge<'queue'> = new Gauge({
    name: 'drover_queue_oldest_queued_seconds',
    help: 'How long the oldest queued job of the queue has been waiting for a runner (absent when none is queued).',
    labelNames: ['queue'],
    registers: [this.registry],
    collect: async (): Promise<void> => this.fromFleet(this.queueOldest, async (f) => (await f.oldestQueuedSeconds()).map(({ queue, seconds }) => [{ queue }, seconds])),
  });

  readonly schedulesFailing: Gauge<'scope'> = new Gauge({
    name: 'drover_schedules_failing',
    help: 'Enabled schedules whose latest finished run failed, timed out or was lost (GET /v1/schedules shows which).',
    // A label, so that processes without the reader (API, runner) export nothing rather than a 0 of their own.
    labelNames: ['scope'],
    registers: [this.registry],
    collect: async (): Promise<void> => this.fromFleet(this.schedulesFailing, async (f) => [[{ scope: 'all' }, await f.failingSchedules()]]),
  });

  readonly runnersByState: Gauge<'state'> = new Gauge({
    name: 'drover_runners',
    help: 'Runners in the registry by state: running, draining, offline (stopped heartbeating without a clean stop, within the last hour).',
    labelNames: ['state'],
    registers: [this.registry],
    collect: async (): Promise<void> => this.fromFleet(this.runnersByState, async (f) => Object.entries(await f.runnerStates()).map(([state, n]) => [{ state }, n])),
  });

  readonly storeUp = new Gauge({
    name: 'drover_redis_connected',
    help: "1 while the scheduler's connection to the Redis store is up, 0 while it is not.",
    labelNames: ['connection'],
    registers: [this.registry],
    collect: () => {
      if (this.fleet) this.storeUp.set({ connection: 'store' }, this.fleet.storeConnected() ? 1 : 0);
    },
  });

  readonly scheduleFireLag = new Histogram({
    name: 'drover_schedule_fire_lag_seconds',
    help: 'How late a cron fire was handled after its fire time.',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [this.registry],
  });

  readonly schedulesFired = new Counter({
    name: 'drover_schedule_fires_total',
    help: 'Cron fire times handled, by outcome (fired, skipped by the overlap policy, misfired).',
    labelNames: ['outcome'],
    registers: [this.registry],
  });

  readonly webhookDeliveries = new Counter({
    name: 'drover_webhook_deliveries_total',
    help: 'Webhook and callback delivery attempts, by outcome (delivered, failed and to be retried, given_up).',
    labelNames: ['outcome'],
    registers: [this.registry],
  });

  readonly brokerReconnects = new Counter({
    name: 'drover_broker_reconnects_total',
    help: 'Broker connections lost and re-established, by broker.',
    labelNames: ['broker'],
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'drover_http_request_duration_seconds',
    help: 'API request duration by method, route template and status code.',
    labelNames: ['method', 'route', 'status_code'],
    buckets: HTTP_BUCKETS,
    registers: [this.registry],
  });

  constructor(opts: { defaultMetrics?: boolean; namespace?: string } = {}) {
    this.namespace = opts.namespace ?? DEFAULT_NAMESPACE;
    this.registry.setDefaultLabels({ namespace: this.namespace });
    // Standard process_* and nodejs_* names, so existing Node.js dashboards work unchanged.
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.processRegistry });
    // Counters with a fixed label set start at 0: a panel or alert on them has a series from the first scrape.
    for (const outcome of FIRE_OUTCOMES) this.schedulesFired.inc({ outcome }, 0);
    for (const outcome of DELIVERY_OUTCOMES) this.webhookDeliveries.inc({ outcome }, 0);
  }

  /** The broker a service connects to: its reconnect counter starts at 0. */
  initBroker(broker: string): void {
    this.brokerReconnects.inc({ broker }, 0);
  }

  /**
   * The scheduler's view of the store for the fleet gauges; the per-queue counters also start at 0 for the queues it
   * lists, so `drover_jobs_lost_total` and the others have a series before the first event.
   */
  setFleetReader(reader: FleetReader | undefined): void {
    this.fleet = reader;
    this.queueNames = undefined;
  }

  /** The scheduler (or anything with a queue store) tells the gauge where depths come from. */
  setDepthReader(reader: DepthReader | undefined): void {
    this.depthReader = reader;
  }

  /** A runner registers itself; its load is read at each scrape. Returns the unregister function. */
  addRunner(id: string, load: () => RunnerLoad): () => void {
    this.runners.set(id, load);
    return () => {
      this.runners.delete(id);
      for (const g of [this.runnerRunning, this.runnerCapacity, this.runnerFree]) g.remove({ runner: id });
    };
  }

  /** The metrics of namespace `ns` in this process (made on first use); rendered with the rest. */
  forNamespace(ns: string): DroverMetrics {
    if (ns === this.namespace) return this;
    if (this.root !== this) return this.root.forNamespace(ns);
    let m = this.others.get(ns);
    if (!m) {
      m = new DroverMetrics({ defaultMetrics: false, namespace: ns });
      m.root = this;
      this.others.set(ns, m);
    }
    return m;
  }

  /**
   * Prometheus text format: the whole process, every namespace, or only those `only` names (what a token of some
   * namespaces may see: a namespace's queue names are its own business).
   */
  async render(only?: readonly string[] | '*'): Promise<{ contentType: string; body: string }> {
    const root = this.root;
    const all = [root, ...root.others.values()].filter((m) => only === undefined || only === '*' || only.includes(m.namespace));
    // Each scrape reads the queue names afresh (once, however many counters ask): a queue made just before counts.
    for (const m of all) m.queueNames = undefined;
    const processText = await root.processRegistry.metrics();
    // Several registries hold the same names: merged by name, so each metric family is one block in the output.
    const drover = all.length <= 1
      ? await (all[0]?.registry.metrics() ?? '')
      : await AggregatorRegistry.aggregate(await Promise.all(all.map((m) => m.registry.getMetricsAsJSON()))).metrics();
    const body = [processText, drover].filter((t) => t.trim() !== '').map((t) => (t.endsWith('\n') ? t : `${t}\n`)).join('');
    return { contentType: this.registry.contentType, body };
  }

  /** The queue names, read once per scrape however many counters ask. */
  private knownQueues(now = Date.now()): Promise<string[]> {
    const fleet = this.fleet;
    if (!fleet) return Promise.resolve([]);
    if (!this.queueNames || now - this.queueNames.at > QUEUE_NAMES_TTL_MS) {
      // A failed read initialises nothing this time; the scrape itself must not fail for it.
      this.queueNames = { at: now, names: fleet.queueNames().catch(() => []) };
    }
    return this.queueNames.names;
  }

  /**
   * Sets a fleet gauge from a fresh read. A failed read (Redis down) leaves the gauge empty rather than stale, and
   * does not fail the scrape, so `drover_redis_connected` 0 still reaches Prometheus.
   */
  private async fromFleet<L extends string>(gauge: Gauge<L>, read: (f: FleetReader) => Promise<[Partial<Record<L, string>>, number][]>): Promise<void> {
    if (!this.fleet) return;
    let rows: [Partial<Record<L, string>>, number][] = [];
    try {
      rows = await read(this.fleet);
    } catch {
      rows = [];
    }
    gauge.reset();
    for (const [labels, value] of rows) gauge.set(labels, value);
  }

  private async collectDepth(): Promise<void> {
    if (!this.depthReader) return;
    // Unreadable (Redis down): no depth this scrape, rather than a failed scrape.
    const depths = await this.depthReader().catch(() => []);
    // Reset first: a queue that disappeared must not keep its last value.
    this.queueDepth.reset();
    for (const { queue, counts } of depths) {
      for (const state of DEPTH_STATES) this.queueDepth.set({ queue, state }, counts[state]);
    }
  }

  private collectRunners(): void {
    for (const load of this.runners.values()) {
      const l = load();
      this.runnerRunning.set({ runner: l.id }, l.running);
      this.runnerCapacity.set({ runner: l.id }, l.capacity);
      this.runnerFree.set({ runner: l.id }, l.free);
    }
  }
}
