import type { TestContext } from 'node:test';
import { DEFAULT_SPEC_DEFAULTS, JobStore, createRedis, createTransport, newJobId, normalizeJobSpec, type JobTemplate } from '@drover/core';
import type { Stack } from './stack.js';

/**
 * A job written straight to Redis and published to the broker, as anyone with store access could, without the API
 * and its checks in between. Returns its id.
 */
export async function injectJob(t: TestContext, s: Stack, spec: JobTemplate): Promise<string> {
  const redis = createRedis(s.config.redisUrl, 'worker');
  t.after(() => redis.quit());
  const transport = createTransport(s.config);
  t.after(() => transport.close());
  await transport.ready();
  const id = newJobId();
  const normalized = normalizeJobSpec(spec, DEFAULT_SPEC_DEFAULTS);
  await new JobStore(redis, s.prefix).create([{ id, spec: normalized }]);
  await transport.publish([{ jobId: id, queue: normalized.queue }]);
  return id;
}
