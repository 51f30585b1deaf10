import { pino, type Logger } from 'pino';
import { activeTraceFields } from './telemetry/tracing.js';

export type { Logger };

/**
 * JSON logs on stdout; `service` tells apart the three services of an all-in-one process. With tracing on, each line
 * written inside a span carries its `trace_id` and `span_id`.
 */
export function createLogger(level: string, service: string): Logger {
  return pino({ level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime, mixin: activeTraceFields });
}
