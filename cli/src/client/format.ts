/** Output for people: tables, colours, relative times. Scripts use --json, which bypasses all of this. */

const ANSI = { red: 31, green: 32, yellow: 33, blue: 34, grey: 90, bold: 1 } as const;
export type Style = keyof typeof ANSI;

/** Colours only on a terminal, never with NO_COLOR (https://no-color.org); FORCE_COLOR=1 forces them (CI logs). */
export function colorEnabled(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0') return true;
  if (env.NO_COLOR) return false;
  return stream.isTTY === true;
}

export function paint(text: string, style: Style | undefined, color: boolean): string {
  return color && style ? `\u001b[${ANSI[style]}m${text}\u001b[0m` : text;
}

const STATUS_STYLE: Record<string, Style> = {
  succeeded: 'green',
  failed: 'red',
  timed_out: 'red',
  lost: 'red',
  running: 'yellow',
  queued: 'yellow',
  cancelled: 'grey',
  expired: 'grey',
  draining: 'yellow',
  offline: 'red',
  paused: 'yellow',
  disabled: 'grey',
};

export const statusStyle = (status: string | null | undefined): Style | undefined => (status ? STATUS_STYLE[status] : undefined);

/** A table cell: its text and, optionally, how to colour it (applied after padding so columns stay aligned). */
export interface Styled {
  text: string;
  style?: Style | undefined;
}
export type Cell = string | Styled;

export const status = (s: string | null | undefined): Styled => ({ text: s ?? '-', style: statusStyle(s) });

/** Aligned columns, two spaces apart, headers first; the last column is not padded. */
export function table(headers: string[], rows: Cell[][], color: boolean): string {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'string' ? { text: c } : c)));
  const width = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.text.length ?? 0)));
  const line = (r: Styled[]): string =>
    r.map((c, i) => paint(i === r.length - 1 ? c.text : c.text.padEnd(width[i] ?? 0), c.style, color)).join('  ').trimEnd();
  return [line(headers.map((h) => ({ text: h, style: 'bold' as const }))), ...cells.map(line)].join('\n');
}

/** `key: value` lines, keys aligned, empty values left out: the `status` and `whoami` views. */
export function fields(pairs: [string, Cell | null | undefined][], color: boolean): string {
  const kept = pairs.filter((p): p is [string, Cell] => p[1] !== null && p[1] !== undefined && (typeof p[1] !== 'string' || p[1] !== ''));
  const width = Math.max(0, ...kept.map(([k]) => k.length + 1));
  return kept.map(([k, c]) => `${`${k}:`.padEnd(width)}  ${typeof c === 'string' ? c : paint(c.text, c.style, color)}`).join('\n');
}

/** 250ms, 1.2s, 2m05s, 1h02m, 3d04h. */
export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1).replace(/\.0$/, '') : Math.round(s)}s`;
  const two = (n: number): string => String(n).padStart(2, '0');
  const whole = Math.floor(s);
  if (whole < 3600) return `${Math.floor(whole / 60)}m${two(whole % 60)}s`;
  if (whole < 86_400) return `${Math.floor(whole / 3600)}h${two(Math.floor((whole % 3600) / 60))}m`;
  return `${Math.floor(whole / 86_400)}d${two(Math.floor((whole % 86_400) / 3600))}h`;
}

/** "3s ago" / "in 5m", coarse on purpose (one unit). */
export function relative(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const diff = Date.parse(iso) - now;
  const abs = Math.abs(diff);
  if (abs < 1000) return 'now';
  const unit = abs < 60_000 ? `${Math.round(abs / 1000)}s` : abs < 3_600_000 ? `${Math.round(abs / 60_000)}m` : abs < 86_400_000 ? `${Math.round(abs / 3_600_000)}h` : `${Math.round(abs / 86_400_000)}d`;
  return diff < 0 ? `${unit} ago` : `in ${unit}`;
}

/** An ISO time plus how far it is: `2025-01-06T09:15:00.000Z (in 14m)`. */
export function when(iso: string | null | undefined): string {
  return iso ? `${iso} (${relative(iso)})` : '-';
}

/** Wall-clock time in a time zone, `2025-01-06 10:15:00`, for cron previews in the schedule's zone. */
export function zoned(iso: string, timeZone: string): string {
  const f = new Intl.DateTimeFormat('en-CA', { timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const p = Object.fromEntries(f.formatToParts(new Date(iso)).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
}

/** How long a job ran (or has been running), '-' before it started. */
export function runTime(job: { startedAt: string | null; finishedAt: string | null }, now = Date.now()): string {
  if (!job.startedAt) return '-';
  return duration((job.finishedAt ? Date.parse(job.finishedAt) : now) - Date.parse(job.startedAt));
}

const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/** A word as a shell would need it typed: argv shown this way can be copied back into a terminal. */
export const shellQuote = (w: string): string => (SAFE_WORD.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`);

/** What a job runs, in one line. */
export function commandOf(job: { command?: string | null; argv?: string[] | null; script?: unknown }): string {
  if (typeof job.command === 'string') return job.command.replace(/\s*\n\s*/g, '; ');
  if (Array.isArray(job.argv)) return job.argv.map(shellQuote).join(' ');
  return job.script ? '(script)' : '-';
}

export function truncate(s: string, max: number): string {
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}
