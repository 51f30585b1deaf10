import { encodeTime, monotonicFactory } from 'ulid';

const next = monotonicFactory();

/** Job ids are ULIDs: unique across replicas and sortable by creation time, which the list indexes rely on. */
export function newJobId(now = Date.now()): string {
  return next(now);
}

export const JOB_ID_PATTERN = '^[0-9A-HJKMNP-TV-Z]{26}$';
const JOB_ID_RE = new RegExp(JOB_ID_PATTERN);

export function isJobId(value: string): boolean {
  return JOB_ID_RE.test(value);
}

/** The smallest job id of a millisecond: ids below it were made before `ms`, ids from it on at or after. */
export function idTimeBound(ms: number): string {
  return `${encodeTime(Math.max(0, Math.min(ms, 2 ** 48 - 1)), 10)}${'0'.repeat(16)}`;
}
