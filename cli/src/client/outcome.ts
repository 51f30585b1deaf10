import { constants } from 'node:os';
import type { JobRecord } from '@drover/core';
import { duration } from './format.js';

/** Exit codes for endings without the command's own code, as timeout(1) and shells use them. */
export const EXIT_TIMED_OUT = 124;
export const EXIT_CANCELLED = 130;

/** The exit code `drover run` and `drover logs -f` end with for a finished job, and what to say on stderr, if anything. */
export function outcome(job: JobRecord): { code: number; message?: string } {
  const id = `job ${job.id}`;
  const why = job.error ? `: ${job.error}` : '';
  switch (job.status) {
    case 'succeeded':
      return { code: 0 };
    case 'failed': {
      // The command's own code, quietly: as if it had run here.
      if (job.exitCode !== null && job.exitCode >= 0 && job.exitCode <= 255) return { code: job.exitCode };
      const signal = job.signal ? constants.signals[job.signal as keyof typeof constants.signals] : undefined;
      if (signal !== undefined) return { code: 128 + signal, message: `${id} was killed by ${job.signal}` };
      return { code: 1, message: `${id} failed${why}` };
    }
    case 'timed_out':
      return { code: EXIT_TIMED_OUT, message: `${id} timed out${job.timeoutMs !== null ? ` after ${duration(job.timeoutMs)}` : ''}` };
    case 'cancelled':
      return { code: EXIT_CANCELLED, message: `${id} was cancelled` };
    case 'lost':
      return { code: 1, message: `${id} was lost (its runner stopped answering)${why}` };
    case 'expired':
      return { code: 1, message: `${id} expired: its deadline passed before it started` };
    default:
      return { code: 1, message: `${id} is still ${job.status}` };
  }
}
