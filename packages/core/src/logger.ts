import { pino, type DestinationStream, type Logger } from 'pino';
import pretty from 'pino-pretty';
import { activeTraceFields } from './telemetry/tracing.js';

export type { Logger };

/** `json`: one JSON object per line; `pretty`: one coloured, human line per event; `auto`: pretty on a terminal. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface LoggerOptions {
  /** Default `json`; entry points pass `DROVER_LOG_FORMAT` (default `auto`). */
  format?: LogFormat;
  /** Where lines go; default stdout. Tests pass a stream of their own. */
  destination?: DestinationStream & { isTTY?: boolean };
}

// pino writes a child's bindings after its parent's, so `child({ service })` under a logger bound to another service
// would print the key twice, which strict JSON readers reject. Each child's bindings are rewritten merged (the
// child's value wins), and the keys a logger binds are remembered so the trace mixin does not repeat them.
const boundKeys = new WeakMap<object, Set<string>>();
const { chindingsSym } = pino.symbols;

function mergeChildBindings(child: Logger): void {
  const merged = child.bindings();
  (child as unknown as Record<symbol, string>)[chindingsSym] = '';
  child.setBindings(merged);
  boundKeys.set(child, new Set(Object.keys(merged)));
}

function traceMixin(mergeObject: object, _level: number, logger: Logger): object {
  const fields = activeTraceFields();
  if (fields.trace_id === undefined) return fields;
  const bound = boundKeys.get(logger);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined && !bound?.has(k) && !(k in mergeObject)) out[k] = v;
  return out;
}

/**
 * The process's logger: JSON lines (or pretty ones on a terminal, see LogFormat); `service` tells apart the three
 * services of an all-in-one process. With tracing on, each line written inside a span carries its `trace_id` and
 * `span_id`.
 */
export function createLogger(level: string, service: string, opts: LoggerOptions = {}): Logger {
  const format = opts.format ?? 'json';
  const isPretty = format === 'pretty' || (format === 'auto' && (opts.destination ? opts.destination.isTTY === true : process.stdout.isTTY === true));
  const options = { level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime, mixin: traceMixin, onChild: mergeChildBindings };
  const stream = isPretty
    ? pretty({
        destination: opts.destination ?? 1,
        sync: true,
        singleLine: true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname,service',
        messageFormat: (log, messageKey) => `${typeof log.service === 'string' ? `${log.service}: ` : ''}${String(log[messageKey])}`,
        // Colours only where they render: pino-pretty's default checks the terminal and NO_COLOR / FORCE_COLOR.
      })
    : opts.destination;
  const logger = stream ? pino(options, stream) : pino(options);
  boundKeys.set(logger, new Set(['service']));
  return logger;
}

const said = new Set<string>();

/**
 * True the first time a condition `key` is met in this process: warnings about how the process is set up (no AOF,
 * no cgroups...) are said once however many services of an all-in-one process find them.
 */
export function firstTimeInProcess(key: string): boolean {
  if (said.has(key)) return false;
  said.add(key);
  return true;
}

/** `log.warn(obj, msg)` the first time `key` is met in this process (see firstTimeInProcess). */
export function warnOnce(log: Logger, key: string, obj: object, msg: string): void {
  if (firstTimeInProcess(key)) log.warn(obj, msg);
}
