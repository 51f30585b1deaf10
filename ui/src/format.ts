/** Times and durations the way an operator reads them. */

export function ago(iso: string | null | undefined, now = Date.now()): string {
  if (!iso) return '–';
  const s = Math.round((now - Date.parse(iso)) / 1000);
  if (s < 0) return `in ${duration(-s * 1000)}`;
  if (s === 0) return 'just now';
  return `${duration(s * 1000)} ago`;
}

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  const h = Math.floor(m / 60);
  return h < 48 ? `${h} h ${m % 60} min` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

export const between = (a: string | null, b: string | null): number | null => (a && b ? Date.parse(b) - Date.parse(a) : null);

export const time = (iso: string | null | undefined): string => (iso ? new Date(iso).toLocaleString() : '–');

export const commandOf = (j: { command?: string | null; argv?: string[] | null }): string => j.command ?? (j.argv ?? []).join(' ');

export const TERMINAL = new Set(['succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'expired']);
