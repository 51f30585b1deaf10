import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON logs on stdout; `service` tells apart the three services of an all-in-one process. */
export function createLogger(level: string, service: string): Logger {
  return pino({ level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime });
}
