import type { Keys, NamespaceStore, OutboundPolicy } from '@drover/core';
import type { ArchiveStore, DroverConfig, DroverMetrics, EventStore, WebhookStore, WorkflowStore, CommandPolicy, JobStore, LogStore, Logger, QueueStore, RunnerRegistry, ScheduleStore, SpecDefaults, Transport } from '@drover/core';
import type { Redis } from 'ioredis';
import type { TokenRegistry } from './auth.js';
import type { EventHub } from './event-hub.js';
import type { StreamSlots } from './stream-slots.js';

/** What route handlers use; built once per API instance by server.ts (or by a test). */
export interface ApiContext {
  /** The namespace this app serves (every store below is its); see namespace-router.ts. */
  namespace: string;
  /** The deployment's namespaces (kept in the default namespace). */
  namespaces: NamespaceStore;
  /** The default namespace's keys: state of the deployment rather than of a namespace (rate windows, stream slots). */
  deploymentKeys: Keys;
  store: JobStore;
  logs: LogStore;
  schedules: ScheduleStore;
  queues: QueueStore;
  events: EventStore;
  webhooks: WebhookStore;
  workflows: WorkflowStore;
  /** The PostgreSQL archive, with DATABASE_URL: read-through for jobs Redis no longer holds. */
  archive?: ArchiveStore;
  /** Fans new events out to SSE clients. */
  hub: EventHub;
  /** Which addresses callbackUrls and webhook URLs may reach (checked at submit; the scheduler checks again at connect). */
  outbound: OutboundPolicy;
  /** Caps the SSE streams each token holds open (DROVER_MAX_STREAMS_PER_TOKEN). */
  streams: StreamSlots;
  /** Most jobs one request may create (DROVER_MAX_JOBS_PER_REQUEST). */
  maxJobsPerRequest: number;
  runners: RunnerRegistry;
  transport: Transport;
  /** Connection used to publish control messages (cancel) to runners. */
  control: Redis;
  tokens: TokenRegistry;
  specDefaults: SpecDefaults;
  killGraceMs: number;
  /** Per-queue command policy, if configured. */
  policy?: CommandPolicy;
  /** Users and groups jobs may run as (the runners' allow-lists, from the same configuration). */
  identities: { users: string[]; groups: string[] };
  /** Limits for script jobs and their files. */
  scripts: DroverConfig['scripts'];
  /** Meproc's and Coyotes' APIs answer without a token (DROVER_COMPAT_OPEN=1, loopback only). */
  compatOpen: boolean;
  /** The queue Meproc tasks run in. */
  compatQueue: string;
  /** Furthest a job may be delayed, ms. */
  maxDelayMs: number;
  /** How long an Idempotency-Key answers its submission, ms (DROVER_IDEMPOTENCY_TTL_MS); default 24 h. */
  idempotencyTtlMs?: number;
  /** Test-only fault injection between persisting and publishing a submission (see config `faults`). */
  beforePublish?: () => Promise<void>;
  /** The process's metrics (submissions, request durations; everything under `drover start`). */
  metrics: DroverMetrics;
  log: Logger;
}
