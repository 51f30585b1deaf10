import type { Transport } from '../transports/transport.js';
import type { JobRef, JobStore } from './job-store.js';

/**
 * Publishes queued jobs (already in the outbox) and then takes them out of it. If the publish fails they stay in
 * the outbox and the scheduler's sweep publishes them later, so a caller may log the error and go on.
 */
export async function publishQueued(transport: Transport, store: JobStore, refs: JobRef[]): Promise<void> {
  if (refs.length === 0) return;
  await transport.publish(refs.map((r) => ({ jobId: r.id, queue: r.queue })));
  await store.published(refs.map((r) => r.id));
}
