import type { Transport } from '../transports/transport.js';
import type { JobRef, JobStore } from './job-store.js';

/**
 * Publishes queued jobs (already in the outbox) and then takes them out of it. If the publish fails they stay in
 * the outbox and the scheduler's sweep publishes them later, so a caller may log the error and go on.
 */
export async function publishQueued(transport: Transport, store: JobStore, refs: JobRef[]): Promise<void> {
  if (refs.length === 0) return;
  // Refs from the scripts name id and queue only: the broker's order needs each job's priority, read in one round trip.
  const unknown = transport.capabilities.priorities ? refs.filter((r) => r.priority === undefined).map((r) => r.id) : [];
  const read = unknown.length > 0 ? await store.priorities(unknown) : new Map<string, number>();
  await transport.publish(refs.map((r) => {
    const priority = r.priority ?? read.get(r.id);
    return priority === undefined ? { jobId: r.id, queue: r.queue } : { jobId: r.id, queue: r.queue, priority };
  }));
  await store.published(refs.map((r) => r.id));
}
