import type { Logger } from 'pino';
import { loadConfig, type DroverConfig } from './config.js';
import { coerceError } from './errors.js';

/**
 * Runs `close` on the first SIGTERM/SIGINT and exits 0 when it is done; a second signal exits at once with
 * 128+signal, so an operator can always force a stop.
 */
export function closeOnSignals(close: () => Promise<void>, log: Logger): void {
  let closing = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
    }
    closing = true;
    log.info({ signal }, 'shutting down');
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err: coerceError(err) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** Prints a configuration problem the way a person wants to read it, then exits 2. */
export function exitOnConfigError(err: unknown): never {
  const e = coerceError(err);
  process.stderr.write(`drover: ${e.message}\n`);
  process.exit(2);
}

/** For entry points: what `fn` returns, or its problem printed as a configuration error and exit status 2. */
export function orExitOnConfigError<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    exitOnConfigError(err);
  }
}

/** For entry points: the validated configuration, or a readable list of problems and exit status 2. */
export function loadConfigOrExit(env: Readonly<Record<string, string | undefined>>): Readonly<DroverConfig> {
  return orExitOnConfigError(() => loadConfig(env));
}

/** Waits for `p` at most `ms`; shutdown steps use it so a dependency that is gone cannot hold a process forever. */
export async function within<T>(p: Promise<T> | undefined, ms: number): Promise<T | undefined> {
  if (!p) return undefined;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
