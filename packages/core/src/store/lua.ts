import { DAEMON_STABLE_RUN_MS, DEFAULT_DAEMON_INTERVAL_MS, DEFAULT_MAX_LOST, DEFAULT_PRIORITY, DEFAULT_RESTART_BACKOFF_MAX_MS } from '../model/job-spec.js';
import { TERMINAL_STATUSES } from '../model/states.js';
import { luaLoader } from './lua-loader.js';

/** Events kept in the stream at most (approximately: trimming is done in whole stream nodes). */
export const EVENTS_MAX_LEN = 100_000;

/** Attempt entries kept per job, the newest: a daemon restarts without end, its history must not grow with it. */
export const ATTEMPTS_KEPT = 100;

/** How many unfired (skipped, misfired) fire times a schedule keeps listed. */
export const UNFIRED_MAX = 100;

/**
 * At most one schedule.skipped event per schedule in this long, saying how many skips it stands for: a per-second
 * schedule whose job runs for an hour would otherwise write 3600 events and push everything else out of the capped
 * stream. Every skip is still listed (unfired) and counted in the metric.
 */
export const SKIP_EVENT_EVERY_MS = 60_000;

/** Finished webhook deliveries (and their attempts) are kept this long. */
export const DELIVERY_RETENTION_MS = 7 * 86_400_000;

/** A webhook's list of deliveries shows its last this many. */
export const WEBHOOK_DELIVERIES_KEPT = 1000;

/** What the store's Lua shares with TypeScript, given to every script that names it (see lua-loader.ts). */
export const LUA_CONSTANTS = {
  EVENTS_MAX_LEN, ATTEMPTS_KEPT, UNFIRED_MAX, SKIP_EVENT_EVERY_MS, DELIVERY_RETENTION_MS, WEBHOOK_DELIVERIES_KEPT,
  DEFAULT_PRIORITY, DEFAULT_MAX_LOST, DEFAULT_DAEMON_INTERVAL_MS, DEFAULT_RESTART_BACKOFF_MAX_MS, DAEMON_STABLE_RUN_MS,
  /** The statuses a job ends in: TERMINAL[status] is true for them. */
  TERMINAL: TERMINAL_STATUSES,
} as const;

/** A store script by file name (packages/core/src/store/lua/<name>.lua), assembled once. */
export const lua = luaLoader(LUA_CONSTANTS);

/** Every store script's file name: the test that loads each into Redis reads this list. */
export const STORE_SCRIPTS = [
  'create', 'claim', 'release-parked', 'cancel-waiting', 'set-pid', 'mark-slow', 'finish', 'cancel', 'promote',
  'promote-one', 'expire-due', 'expire-leases', 'sweep-outbox', 'sweep-waiting', 'renew', 'placed', 'discard', 'expire-finished',
  'delete-finished', 'delete-finished-before', 'mark-retried', 'sched-put', 'sched-set-enabled', 'sched-delete',
  'sched-claim-due', 'sched-fire', 'sched-trigger', 'wh-enqueue', 'wh-take', 'wh-result', 'roll-daemon-log',
] as const;
