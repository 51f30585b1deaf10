import { coerceError, isStoreFull, type Logger } from '@drover/core';

const FIRST_WAIT_MS = 100;
const MAX_WAIT_MS = 5000;

/**
 * Runs a store write until Redis takes it. A full Redis (maxmemory under noeviction) refuses writes, and a refusal
 * applies nothing, so trying again is safe; giving up is not: a final record dropped would leave the job `running`
 * until its lease ran out and it ran a second time. Meanwhile the heartbeat keeps the job's lease (its renewal is
 * allowed at maxmemory), so waiting here never hands the job to another attempt. Waits 100 ms, doubling to 5 s, for
 * as long as it takes; other errors are thrown as they come (a dropped connection is retried by the connection).
 */
export async function untilStored<T>(what: string, log: Logger, write: () => Promise<T>): Promise<T> {
  for (let tries = 0; ; tries++) {
    try {
      const result = await write();
      if (tries > 0) log.info({ tries: tries + 1 }, `Redis takes writes again: ${what} stored`);
      return result;
    } catch (err) {
      if (!isStoreFull(err)) throw err;
      if (tries === 0) log.error({ err: coerceError(err) }, `Redis is full (maxmemory): ${what} is kept and retried until Redis takes it`);
      await new Promise((r) => setTimeout(r, Math.min(FIRST_WAIT_MS * 2 ** Math.min(tries, 10), MAX_WAIT_MS)));
    }
  }
}
