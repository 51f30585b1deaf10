import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';

/** One command-line option: what parseArgs needs plus what `--help` shows. */
export interface OptionSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Placeholder shown in help: `--queue <q>`. */
  arg?: string;
  desc: string;
}
export type Options = Record<string, OptionSpec>;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * `500ms`, `30s`, `5m`, `2h`, `1d`, combinations such as `1m30s`, and plain numbers, which are seconds (as for
 * sleep(1) and timeout(1)). Returns milliseconds, rounded; null when `text` is none of these.
 */
export function parseDuration(text: string): number | null {
  const t = text.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.round(Number(t) * 1000);
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(t)) return null;
  let ms = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(m[1]) * UNITS[m[2]!]!;
  return Math.round(ms);
}

export const DURATION_HELP = 'Durations: 500ms, 30s, 5m, 2h, 1d or 1m30s; a plain number is seconds';

/** Parsed option values with typed, validating accessors: a bad value is a usage error naming the option. */
export class Opts {
  constructor(private readonly values: Record<string, unknown>) {}

  str(name: string): string | undefined {
    const v = this.values[name];
    return typeof v === 'string' ? v : undefined;
  }

  flag(name: string): boolean {
    return this.values[name] === true;
  }

  list(name: string): string[] {
    const v = this.values[name];
    return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
  }

  int(name: string, min: number, max: number): number | undefined {
    const v = this.str(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || n < min || n > max) throw new UsageError(`--${name} must be a whole number from ${min} to ${max}, not "${v}"`);
    return n;
  }

  /** A duration in ms; at least `min` ms. */
  duration(name: string, min = 1): number | undefined {
    const v = this.str(name);
    if (v === undefined) return undefined;
    const ms = parseDuration(v);
    if (ms === null || ms < min) throw new UsageError(`--${name}: "${v}" is not a duration. ${DURATION_HELP}`);
    return ms;
  }

  /** One of `choices`, checked here so the mistake is a usage error rather than an API validation message. */
  choice<T extends string>(name: string, choices: readonly T[]): T | undefined {
    const v = this.str(name);
    if (v !== undefined && !(choices as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}, not "${v}"`);
    return v as T | undefined;
  }

  /** Repeated `--name k=v` as a record. */
  pairs(name: string): Record<string, string> | undefined {
    const items = this.list(name);
    if (items.length === 0) return undefined;
    const out: Record<string, string> = {};
    for (const item of items) {
      const eq = item.indexOf('=');
      if (eq <= 0) throw new UsageError(`--${name} takes key=value, not "${item}"`);
      out[item.slice(0, eq)] = item.slice(eq + 1);
    }
    return out;
  }
}

export interface Parsed {
  opts: Opts;
  /** Positional arguments before the command. */
  args: string[];
  /** For commands that run something: the words after `--`, or from the first extra positional on. */
  command: string[];
}

/**
 * Splits `[options] [args] [--] command...`: the command starts after `--`, or at the first positional beyond the
 * command's own `leading` ones, so `drover run ls -la` runs `ls -la` (the options must come first, as for env(1)).
 */
function splitCommand(argv: string[], options: Options, leading: number): { head: string[]; command: string[] } {
  let positionals = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return { head: argv.slice(0, i), command: argv.slice(i + 1) };
    if (a.startsWith('-') && a !== '-') {
      const spec = a.startsWith('--') ? options[a.slice(2)] : Object.values(options).find((o) => o.short === a.slice(1));
      // `--queue q` and `-q q` take the next word; `--queue=q` and `-qq` do not.
      if (spec?.type === 'string') i++;
      continue;
    }
    if (positionals++ >= leading) return { head: argv.slice(0, i), command: argv.slice(i) };
  }
  return { head: argv, command: [] };
}

/** The words before the command, where `--help` counts (after it, `--help` belongs to the command). */
export function optionWords(argv: string[], options: Options, takesCommand: boolean, leading: number): string[] {
  if (takesCommand) return splitCommand(argv, options, leading).head;
  const end = argv.indexOf('--');
  return end < 0 ? argv : argv.slice(0, end);
}

export function parseCommandLine(argv: string[], options: Options, takesCommand: boolean, leading: number): Parsed {
  const { head, command } = takesCommand ? splitCommand(argv, options, leading) : { head: argv, command: [] };
  const config: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, o] of Object.entries(options)) config[name] = { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  try {
    const { values, positionals } = parseArgs({ args: head, options: config, strict: true, allowPositionals: true });
    return { opts: new Opts(values), args: positionals, command };
  } catch (err) {
    // parseArgs' messages end with advice for programs ("To specify a positional argument starting with..."): keep the first sentence.
    throw new UsageError((err as Error).message.split('. ')[0]!.replace(/\.$/, ''));
  }
}

/** The options block of `--help`. */
export function optionsHelp(options: Options): string {
  const rows = Object.entries(options).map(([name, o]) => {
    const flag = `${o.short ? `-${o.short}, ` : '    '}--${name}${o.arg ? ` <${o.arg}>` : ''}`;
    return [flag, `${o.desc}${o.multiple ? ' (repeatable)' : ''}`] as const;
  });
  const width = Math.max(0, ...rows.map(([f]) => f.length));
  return rows.map(([f, d]) => `  ${f.padEnd(width)}  ${d}`).join('\n');
}
