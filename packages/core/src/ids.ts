import { monotonicFactory } from 'ulid';

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
