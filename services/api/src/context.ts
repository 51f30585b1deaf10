import type { CommandPolicy, JobStore, LogStore, Logger, ScheduleStore, SpecDefaults, Transport } from '@drover/core';
import type { Redis } from 'ioredis';
import type { TokenRegistry } from './auth.js';

/** What route handlers use; built once per API instance by server.ts (or by a test). */
export interface ApiContext {
  store: JobStore;
  logs: LogStore;
  schedules: ScheduleStore;
  transport: Transport;
  /** Connection used to publish control messages (cancel) to runners. */
  control: Redis;
  tokens: TokenRegistry;
  specDefaults: SpecDefaults;
  killGraceMs: number;
  /** Per-queue command policy, if configured. */
  policy?: CommandPolicy;
  /** Furthest a job may be delayed, ms. */
  maxDelayMs: number;
  /** Test-only fault injection between persisting and publishing a submission (see config `faults`). */
  beforePublish?: () => Promise<void>;
  log: Logger;
}
