import type { TestContext } from 'node:test';
import { DroverMetrics, JobStore, ScheduleStore, createLogger, createRedis, type Transport } from '@drover/core';
import type { fireDueSchedules } from '../../services/scheduler/src/cron-firing.js';
import { REDIS_URL, type Stack } from './stack.js';

/**
 * What the scheduler's fire step needs, on the stack's prefix, with a transport that publishes nothing: tests drive
 * `fireDueSchedules` themselves with an injected clock. The Redis connection is closed after the test.
 */
export function fireDeps(t: TestContext, s: Stack): Parameters<typeof fireDueSchedules>[0] & { schedules: ScheduleStore } {
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  const store = new JobStore(redis, s.prefix);
  const schedules = new ScheduleStore(redis, store.keys);
  const transport = { capabilities: { priorities: false }, publish: async () => undefined } as unknown as Transport;
  return { store, schedules, transport, log: createLogger('silent', 'test'), metrics: new DroverMetrics({ defaultMetrics: false }) };
}
