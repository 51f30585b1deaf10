import { lua } from './lua.js';

export { ATTEMPTS_KEPT, EVENTS_MAX_LEN } from './lua.js';

/**
 * The job scripts: every state change of a job happens in one of these, atomically, so API replicas, scheduler
 * replicas and runners can race freely. Each is a file under lua/ whose header says what it takes and returns; the
 * shared functions (index upkeep, events, job ends) are in lua/lib/. Keys are derived from ARGV[1] (`{prefix}`)
 * inside the scripts; all of them share that hash tag and therefore one Cluster slot.
 *
 * Index layout (see keys.ts): idx:all, idx:q:<queue>, idx:s:<status>, idx:qs:<queue>:<status>, all ZSETs with
 * score 0 ordered by id.
 */
export const CREATE = lua('create');
export const CLAIM = lua('claim');
export const RELEASE_PARKED = lua('release-parked');
export const CANCEL_WAITING = lua('cancel-waiting');
export const SET_PID = lua('set-pid');
export const MARK_SLOW = lua('mark-slow');
export const FINISH = lua('finish');
export const CANCEL = lua('cancel');
export const PROMOTE = lua('promote');
export const PROMOTE_ONE = lua('promote-one');
export const EXPIRE_DUE = lua('expire-due');
export const EXPIRE_LEASES = lua('expire-leases');
export const SWEEP_OUTBOX = lua('sweep-outbox');
export const SWEEP_WAITING = lua('sweep-waiting');
export const RENEW = lua('renew');
export const PLACED = lua('placed');
export const DISCARD = lua('discard');
export const EXPIRE_FINISHED = lua('expire-finished');
export const DELETE_FINISHED = lua('delete-finished');
export const DELETE_FINISHED_BEFORE = lua('delete-finished-before');
export const MARK_RETRIED = lua('mark-retried');
