import { consumersOf, type QueueConsumer, type RunnerRegistry, type Logger } from '@drover/core';
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
    code: Type.Literal('NO_RUNNER'),
    message: Type.String(),
    queue: Type.String(),
  },
  { description: 'The job was accepted, but something stands in its way: NO_RUNNER means no live runner takes jobs of its queue now.' },
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

/**
 * A NO_RUNNER warning for each of `queues` that no running runner serves. Asking never fails a submission: the job
 * is stored and published already, so a registry read that fails only leaves the warnings out (and is logged).
 */
export async function submitWarnings(runners: RunnerRegistry, queues: readonly string[], log: Logger): Promise<SubmitWarning[]> {
  const distinct = [...new Set(queues)];
  let served: Map<string, QueueConsumer[]>;
  try {
    served = await consumersByQueue(runners, distinct, SERVED_CACHE_MS);
  } catch (err) {
    log.warn({ err, queues: distinct }, 'reading the runner registry for the submit warnings failed');
    return [];
  }
  const warnings: SubmitWarning[] = [];
  for (const queue of distinct) {
    const consumers = served.get(queue) ?? [];
    if (consumers.some((c) => c.state === 'running')) continue;
    const message = consumers.length > 0
      ? `no runner takes jobs of queue ${queue} now: the runners that serve it are draining`
      : `no runner serves queue ${queue}: the job waits until a runner with this queue in RUNNER_QUEUES starts (RUNNER_QUEUES=* serves every queue)`;
    warnings.push({ code: 'NO_RUNNER', message, queue });
  }
  return warnings;
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
