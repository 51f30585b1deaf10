import { AnsiUp } from 'ansi_up';
import { between, duration } from './format';
import type { Attempt, Job, LogLine } from './types';
import { Status } from './ui';

/**
 * Terminal output made readable: ANSI colours rendered (ansi_up escapes the text; OSC 8 links are dropped, so job
 * output cannot put a link on the page), and a line rewritten with `\r` (progress bars) shows its last state. Each
 * stream of each attempt keeps its own colour state, as a terminal would per program.
 */
export class AnsiLines {
  private readonly state = new Map<string, AnsiUp>();

  private converter(key: string): AnsiUp {
    let c = this.state.get(key);
    if (!c) {
      c = new AnsiUp();
      c.url_allowlist = {};
      c.escape_html = true;
      this.state.set(key, c);
    }
    return c;
  }

  /** HTML for one stored line; lines must come in order (colour state carries over, as on a terminal). */
  html(l: Pick<LogLine, 'line' | 'stream' | 'attempt'>): string {
    const c = this.converter(`${l.attempt}:${l.stream}`);
    const parts = lastState(l.line);
    // Overwritten parts still set colours the visible part may inherit: feed them, drop their text.
    for (const p of parts.before) c.ansi_to_html(p);
    return c.ansi_to_html(parts.shown);
  }
}

/** A line's carriage-return segments: what was overwritten, and what a terminal shows last. */
export function lastState(line: string): { before: string[]; shown: string } {
  // A trailing \r (CRLF output, or a progress bar's last redraw) overwrites nothing.
  const segments = line.replace(/\r+$/, '').split('\r');
  return { before: segments.slice(0, -1), shown: segments.at(-1) ?? '' };
}

export interface AttemptGroup {
  attempt: number;
  lines: LogLine[];
  record: Attempt | undefined;
}

/** Lines grouped by attempt, in order, each with its attempt record (none yet for the one running now). */
export function byAttempt(lines: LogLine[], attempts: Attempt[] | undefined): AttemptGroup[] {
  const groups: AttemptGroup[] = [];
  for (const l of lines) {
    let g = groups.at(-1);
    if (!g || g.attempt !== l.attempt) {
      g = { attempt: l.attempt, lines: [], record: attempts?.find((a) => a.attempt === l.attempt) };
      groups.push(g);
    }
    g.lines.push(l);
  }
  return groups;
}

/** "Attempt 2 · failed (exit 1) · 1.2 s on runner-a", or the job's own state for the attempt in progress. */
export function AttemptHeader({ group, job, total }: { group: AttemptGroup; job: Job; total: number }) {
  const a = group.record;
  const status = a?.status ?? (group.attempt === job.attempts ? job.status : 'running');
  const exit = a ? (a.exitCode !== null ? `exit ${a.exitCode}` : a.signal ? `signal ${a.signal}` : null) : null;
  return (
    <div class="attempt-head" data-testid="attempt-head">
      <strong>Attempt {group.attempt}{total > 1 ? ` of ${total}` : ''}</strong>
      <Status status={status} />
      {exit ? <span class="mono">{exit}</span> : null}
      {a ? <span class="muted">{duration(between(a.startedAt, a.finishedAt))} on {a.runnerId}</span> : null}
      {a?.error ? <span class="muted">{a.error}</span> : null}
    </div>
  );
}
