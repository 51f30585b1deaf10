import {
  Constraints, consumersOf, describeConstraints, satisfies, selectionServes, type JobConstraints, type QueueConsumer, type RunnerRegistry, type RunnerView, type Logger,
} from '@drover/core';
import type { Redis } from 'ioredis';
import { Type, type Static, type TObject, type TOptional, type TProperties } from 'typebox';

/** How long a submission's "is this queue served?" answer may be old: one registry read per period and process. */
const SERVED_CACHE_MS = 1000;
/** Queues this process announced to the runners; forgotten when full (an announcement again costs one PUBLISH). */
const ANNOUNCED_MAX = 10_000;

export const QueueConsumerSchema = Type.Object(
  {
    id: Type.String(),
    host: Type.Union([Type.String(), Type.Null()]),
    state: Type.Union([Type.Literal('running'), Type.Literal('draining')], { description: '`draining`: takes no new jobs now.' }),
  },
  { description: 'A live runner whose RUNNER_QUEUES serve this queue.' },
);

export const SubmitWarning = Type.Object(
  {
    code: Type.Union([Type.Literal('NO_RUNNER'), Type.Literal('NO_MATCHING_RUNNER')]),
    message: Type.String(),
    queue: Type.String(),
    constraints: Type.Optional(Constraints),
  },
  {
    description:
      'The job was accepted, but something stands in its way: NO_RUNNER means no live runner takes jobs of its queue now; ' +
      'NO_MATCHING_RUNNER that runners take jobs of its queue, but none that satisfies its `constraints` (named here) does.',
  },
);
export type SubmitWarning = Static<typeof SubmitWarning>;

export const SubmitWarnings = Type.Array(SubmitWarning, { description: 'Present when the job was accepted but will not start as things are.' });

/** An answer schema with the optional `warnings` of a submission (jobs, schedules, triggers, workflows). */
export function withWarnings<T extends TProperties>(schema: TObject<T>): TObject<T & { warnings: TOptional<typeof SubmitWarnings> }> {
  return Type.Object({ ...schema.properties, warnings: Type.Optional(SubmitWarnings) });
}

/** The live runners that serve each of `queues` (one registry read, maybe a second old). */
export async function consumersByQueue(runners: RunnerRegistry, queues: readonly string[], maxAgeMs = 0): Promise<Map<string, QueueConsumer[]>> {
  const live = maxAgeMs > 0 ? await runners.listRecent(maxAgeMs) : await runners.list();
  return new Map(queues.map((q) => [q, consumersOf(live, q)]));
}

/** What the warnings look at of a submitted job (a JobSpec will do). */
export interface SubmittedJob {
  queue: string;
  constraints?: JobConstraints | undefined;
}

/**
 * A NO_RUNNER warning for each queue of `jobs` that no running runner serves, and a NO_MATCHING_RUNNER one for each
 * queue and constraints of theirs that no running runner of a served queue satisfies. Asking never fails a submission:
 * the job is stored and published already, so a registry read that fails only leaves the warnings out (and is logged).
 */
export async function submitWarnings(runners: RunnerRegistry, submitted: readonly (SubmittedJob | string)[], log: Logger): Promise<SubmitWarning[]> {
  // A queue name stands for jobs without constraints.
  const jobs = submitted.map((j) => (typeof j === 'string' ? { queue: j } : j));
  const distinct = [...new Set(jobs.map((j) => j.queue))];
  let live: RunnerView[];
  try {
    live = await runners.listRecent(SERVED_CACHE_MS);
  } catch (err) {
    log.warn({ err, queues: distinct }, 'reading the runner registry for the submit warnings failed');
    return [];
  }
  const warnings: SubmitWarning[] = [];
  for (const queue of distinct) {
    const consumers = consumersOf(live, queue);
    if (consumers.some((c) => c.state === 'running')) continue;
    const message = consumers.length > 0
      ? `no runner takes jobs of queue ${queue} now: the runners that serve it are draining`
      : `no runner serves queue ${queue}: the job waits until a runner with this queue in RUNNER_QUEUES starts (RUNNER_QUEUES=* serves every queue)`;
    warnings.push({ code: 'NO_RUNNER', message, queue });
  }
  const seen = new Set<string>();
  for (const { queue, constraints } of jobs) {
    const key = `${queue} ${JSON.stringify(constraints)}`;
    if (!constraints || seen.has(key)) continue;
    seen.add(key);
    const warning = placementWarning(live, queue, constraints);
    if (warning) warnings.push(warning);
  }
  return warnings;
}

/** NO_MATCHING_RUNNER when runners take jobs of `queue` but none that satisfies `constraints` does (else NO_RUNNER says it). */
function placementWarning(live: readonly RunnerView[], queue: string, constraints: JobConstraints): SubmitWarning | undefined {
  const serving = live.filter((r) => r.state !== 'offline' && selectionServes(r.queues, queue));
  if (!serving.some((r) => r.state === 'running')) return undefined;
  const fit = serving.filter((r) => satisfies(constraints, r));
  if (fit.some((r) => r.state === 'running')) return undefined;
  const what = describeConstraints(constraints);
  const message = fit.length > 0
    ? `no runner takes jobs of queue ${queue} with constraints ${what} now: the runners that satisfy them are draining`
    : `no live runner of queue ${queue} satisfies the constraints ${what}: the job waits, queued, until one that does starts ` +
      '(runners\' labels, host names and addresses: GET /v1/runners)';
  return { code: 'NO_MATCHING_RUNNER', message, queue, constraints };
}

/**
 * Tells runners that serve a pattern (RUNNER_QUEUES=*) about queues this process has not submitted to before, so
 * they start consuming a new queue at once rather than on their next scan. Fire and forget: the scan is the backstop.
 */
export class QueueAnnouncer {
  private readonly announced = new Set<string>();

  constructor(
    private readonly control: Redis,
    private readonly channel: string,
    private readonly log: Logger,
  ) {}

  announce(queues: readonly string[]): void {
    const fresh = [...new Set(queues)].filter((q) => !this.announced.has(q));
    if (fresh.length === 0) return;
    if (this.announced.size + fresh.length > ANNOUNCED_MAX) this.announced.clear();
    for (const q of fresh) this.announced.add(q);
    this.control.publish(this.channel, JSON.stringify({ type: 'queues', queues: fresh })).catch((err: unknown) => {
      for (const q of fresh) this.announced.delete(q);
      this.log.warn({ err, queues: fresh }, 'announcing new queues to the runners failed; they find them on their next scan');
    });
  }
}

const announcers = new WeakMap<Redis, QueueAnnouncer>();

/** The announcer of an API instance (one per control connection). */
export function announcerFor(control: Redis, channel: string, log: Logger): QueueAnnouncer {
  let a = announcers.get(control);
  if (!a) {
    a = new QueueAnnouncer(control, channel, log);
    announcers.set(control, a);
  }
  return a;
}
