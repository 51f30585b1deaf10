import { CronExpressionParser, type CronExpression } from 'cron-parser';

/**
 * Cron in one place: 5-field (minute) and 6-field (second) expressions, `@hourly`-style macros, IANA time zones.
 * DST follows cron-parser (on Luxon): a local time skipped by a spring-forward fires at the shifted instant,
 * a local time repeated by a fall-back fires once.
 */
const cache = new Map<string, CronExpression>();
const CACHE_MAX = 10_000;

export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Throws with a message a person can act on. */
export function validateCron(expr: string, tz: string): void {
  if (!isTimeZone(tz)) throw new Error(`unknown time zone "${tz}" (use an IANA name such as Europe/Berlin)`);
  const fields = expr.trim().split(/\s+/);
  if (!expr.trim().startsWith('@') && (fields.length < 5 || fields.length > 6)) {
    throw new Error(`expected 5 fields (minute hour day month weekday) or 6 (with seconds first), got ${fields.length}`);
  }
  CronExpressionParser.parse(expr, { tz, strict: false });
}

/** The first fire time strictly after `afterMs`, or null if the expression never fires again. */
export function nextFireAfter(expr: string, tz: string, afterMs: number): number | null {
  const key = `${tz}\u0000${expr}`;
  let it = cache.get(key);
  if (!it) {
    it = CronExpressionParser.parse(expr, { tz });
    if (cache.size >= CACHE_MAX) cache.clear();
    cache.set(key, it);
  }
  it.reset(new Date(afterMs));
  return it.hasNext() ? it.next().getTime() : null;
}

/** The next `count` fire times after `afterMs` (a preview for people editing a schedule). */
export function nextFireTimes(expr: string, tz: string, afterMs: number, count: number): number[] {
  const out: number[] = [];
  let t = afterMs;
  for (let i = 0; i < count; i++) {
    const next = nextFireAfter(expr, tz, t);
    if (next === null) break;
    out.push(next);
    t = next;
  }
  return out;
}
