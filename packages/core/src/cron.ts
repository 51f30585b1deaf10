import { CronExpressionParser, type CronExpression } from 'cron-parser';

/**
 * Cron in one place: 5-field (minute) and 6-field (second) expressions, `@hourly`-style macros (and `@midnight`),
 * `@every <duration>` intervals, IANA time zones.
 *
 * Fire times are wall-clock times in the time zone, whatever the spelling (`*`, steps, lists, ranges, seconds,
 * macros): the expression is matched against the local clock (cron-parser evaluated in UTC, which has no DST), and
 * each matching local time becomes one instant. A local time that happens twice (fall-back) fires once, at its
 * first occurrence; a local time skipped by spring-forward fires at the instant it would have been under the offset
 * before the change (02:30 becomes 03:30 after a one-hour jump); fires that land on one instant fire once.
 */
const cache = new Map<string, CronExpression>();
const CACHE_MAX = 10_000;
const HOUR = 3_600_000;

/** `@every 90s`, `@every 5m`, `@every 1h30m`: a fixed interval (at least a second). */
const EVERY = /^@every\s+((?:\d+(?:h|m|s))+)$/i;
const ALIASES: Record<string, string> = { '@midnight': '0 0 * * *' };

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** The interval of an `@every` expression in ms, or null for any other expression. */
export function everyIntervalMs(expr: string): number | null {
  const m = EVERY.exec(expr.trim());
  if (!m) return null;
  let ms = 0;
  for (const [, n, unit] of m[1]!.matchAll(/(\d+)([hms])/gi)) ms += Number(n) * ({ h: HOUR, m: 60_000, s: 1000 } as Record<string, number>)[unit!.toLowerCase()]!;
  return ms;
}

/** Throws with a message a person can act on. */
export function validateCron(expr: string, tz: string): void {
  if (!isTimeZone(tz)) throw new Error(`unknown time zone "${tz}" (use an IANA name such as Europe/Berlin)`);
  const trimmed = expr.trim();
  if (/^@every\b/i.test(trimmed)) {
    const ms = everyIntervalMs(trimmed);
    if (ms === null || ms < 1000) throw new Error('@every takes a duration of at least 1s such as 90s, 5m or 1h30m');
    return;
  }
  const fields = trimmed.split(/\s+/);
  if (!trimmed.startsWith('@') && (fields.length < 5 || fields.length > 6)) {
    throw new Error(`expected 5 fields (minute hour day month weekday) or 6 (with seconds first), got ${fields.length}`);
  }
  CronExpressionParser.parse(ALIASES[trimmed.toLowerCase()] ?? trimmed, { tz: 'UTC', strict: false });
}

function wallIterator(expr: string): CronExpression {
  let it = cache.get(expr);
  if (!it) {
    const trimmed = expr.trim();
    it = CronExpressionParser.parse(ALIASES[trimmed.toLowerCase()] ?? trimmed, { tz: 'UTC' });
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(expr, it);
  }
  return it;
}

/** The first local (wall-clock, as if UTC) time matching `expr` strictly after `wall`, or null. */
function nextWall(expr: string, wall: number): number | null {
  const it = wallIterator(expr);
  it.reset(new Date(wall));
  return it.hasNext() ? it.next().getTime() : null;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
/** The zone's UTC offset (ms) at an instant. */
export function utcOffsetMs(tz: string, at: number): number {
  if (tz === 'UTC') return 0;
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: tz, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formatters.set(tz, f);
  }
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(new Date(at))) if (part.type !== 'literal') p[part.type] = Number(part.value);
  const whole = at - (((at % 1000) + 1000) % 1000);
  return Date.UTC(p.year!, p.month! - 1, p.day, p.hour, p.minute, p.second) - whole;
}

/** The instant a local time means: its first occurrence, or (skipped by spring-forward) under the earlier offset. */
function instantOf(tz: string, wall: number): number {
  const guess = wall - utcOffsetMs(tz, wall);
  const offsets = new Set<number>();
  for (let h = -4; h <= 4; h++) offsets.add(utcOffsetMs(tz, guess + h * HOUR));
  const valid = [...offsets].map((o) => wall - o).filter((t) => utcOffsetMs(tz, t) === wall - t);
  if (valid.length > 0) return Math.min(...valid);
  // In a gap the earlier (smaller) offset gives the later instant: the time shifted by the jump.
  return Math.max(...[...offsets].map((o) => wall - o));
}

/** The instant (within the last 4 h before `at`) where the offset changed, found by bisection; null if none. */
function changeBefore(tz: string, at: number): { at: number; before: number; after: number } | null {
  const after = utcOffsetMs(tz, at);
  const before = utcOffsetMs(tz, at - 4 * HOUR);
  if (before === after) return null;
  let lo = at - 4 * HOUR;
  let hi = at;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (utcOffsetMs(tz, mid) === before) lo = mid;
    else hi = mid;
  }
  return { at: hi, before, after };
}

function nextCronAfter(expr: string, tz: string, afterMs: number): number | null {
  if (tz === 'UTC') return nextWall(expr, afterMs);
  let from = afterMs + utcOffsetMs(tz, afterMs);
  const change = changeBefore(tz, afterMs);
  // Just after a fall-back, local times up to the old clock's reading fired at their first occurrence already.
  if (change && change.after < change.before) from = Math.max(from, change.at + change.before - 1);
  const w = nextWall(expr, from);
  let best = w === null ? null : instantOf(tz, w);
  // Just after a spring-forward, skipped local times (earlier on the new clock) fire shifted, possibly still ahead.
  if (change && change.after > change.before && afterMs < change.at + (change.after - change.before)) {
    const g = nextWall(expr, afterMs + change.before);
    if (g !== null && g < change.at + change.after) {
      const shifted = g - change.before;
      if (best === null || shifted < best) best = shifted;
    }
  }
  return best;
}

/**
 * The first fire time strictly after `afterMs`, or null if the expression never fires again. `@every` intervals
 * count from `anchorMs` (default `afterMs`): the fire times are anchor + k × interval.
 */
export function nextFireAfter(expr: string, tz: string, afterMs: number, anchorMs = afterMs): number | null {
  const every = everyIntervalMs(expr);
  if (every !== null) return anchorMs + Math.max(0, Math.floor((afterMs - anchorMs) / every) + 1) * every;
  return nextCronAfter(expr, tz, afterMs);
}

/** The next `count` fire times after `afterMs` (a preview for people editing a schedule). */
export function nextFireTimes(expr: string, tz: string, afterMs: number, count: number, anchorMs = afterMs): number[] {
  const out: number[] = [];
  let t = afterMs;
  for (let i = 0; i < count; i++) {
    const next = nextFireAfter(expr, tz, t, anchorMs);
    if (next === null) break;
    out.push(next);
    t = next;
  }
  return out;
}
