import { lua } from './lua.js';

export { SKIP_EVENT_EVERY_MS, UNFIRED_MAX } from './lua.js';

/**
 * Schedule scripts. Keys: sched:<name> (hash: def, enabled, nextRunAt, version, last*), schedules (lex index of
 * names), sched-due (zset of enabled schedules by nextRunAt), sched:<name>:running (set of unfinished job ids),
 * sched:<name>:runs (lex index of the jobs it produced), sched:<name>:unfired (list, newest first, of the fire
 * times that made no job: overlap skips and misfires, capped at UNFIRED_MAX).
 */
export const SCHED_PUT = lua('sched-put');
export const SCHED_SET_ENABLED = lua('sched-set-enabled');
export const SCHED_DELETE = lua('sched-delete');
export const SCHED_CLAIM_DUE = lua('sched-claim-due');
export const SCHED_FIRE = lua('sched-fire');
export const SCHED_TRIGGER = lua('sched-trigger');
