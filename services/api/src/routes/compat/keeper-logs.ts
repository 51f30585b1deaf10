import { DroverError, isJobId, isStreamId, type LogEntry } from '@drover/core';
import type { ApiContext } from '../../context.js';

/** Keeper's page size: at most this many lines a call. */
export const LOG_PAGE = 100;

export type LogMode = 'all' | 'debug' | 'error';
export interface KeeperLogLine {
  line: string;
  stream: LogEntry['stream'];
  ts: string;
  actionId: string;
}

const badCursor = (): DroverError => new DroverError('BAD_CURSOR', 'cursor is not one this API issued (pass back the cursor of the previous answer, or 0)');

/** Where each action's output was read up to (its last log entry's id). `0` or nothing: from the start. */
export function parseCursor(text: string | undefined): Map<string, string> {
  if (text === undefined || text === '' || text === '0') return new Map();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    throw badCursor();
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw badCursor();
  const out = new Map<string, string>();
  for (const [id, at] of Object.entries(parsed)) {
    if (!isJobId(id) || typeof at !== 'string' || !isStreamId(at)) throw badCursor();
    out.set(id, at);
  }
  return out;
}

/** The cursor for positions (`0` when nothing was read yet): opaque to clients. */
export function formatCursor(positions: Map<string, string>): string {
  return positions.size === 0 ? '0' : Buffer.from(JSON.stringify(Object.fromEntries(positions))).toString('base64url');
}

const shows = (mode: LogMode, stream: LogEntry['stream']): boolean => mode === 'all' || (mode === 'debug' ? stream === 'stdout' : stream === 'stderr');

/** Most log entries one call reads when the mode hides lines (then it reads on, to fill its page). */
const MAX_SCANNED = 20 * LOG_PAGE;

/**
 * The next lines of several actions' output, oldest first across them, at most LOG_PAGE, and the cursor to go on.
 * Each action is read from its own position (a Redis stream per job, or the archive once retention let the job go),
 * then merged by time: an action whose read filled its page may have more, so the merge stops where its buffered
 * lines end rather than step past lines not read yet, and reads on from there. Lines the mode hides are passed over
 * (the cursor moves past them), up to MAX_SCANNED entries a call.
 */
export async function readActionLogs(ctx: ApiContext, actions: string[], cursor: Map<string, string>, mode: LogMode): Promise<{ logs: KeeperLogLine[]; cursor: string }> {
  const live = await Promise.all(actions.map((id) => ctx.store.queueOf(id)));
  const positions = new Map([...cursor].filter(([id]) => actions.includes(id)));
  const logs: KeeperLogLine[] = [];
  for (let scanned = 0; logs.length < LOG_PAGE && scanned < MAX_SCANNED; ) {
    const lists = await Promise.all(actions.map(async (id, i) => {
      const from = positions.get(id);
      const items = live[i] !== null ? (await ctx.logs.read(id, from, LOG_PAGE)).items : ctx.archive ? await ctx.archive.logs(id, from, LOG_PAGE) : [];
      return { id, items, at: 0, full: items.length === LOG_PAGE };
    }));
    while (logs.length < LOG_PAGE) {
      // An action read to the end of a full page could have earlier lines than the others' next: read on first.
      if (lists.some((l) => l.full && l.at === l.items.length)) break;
      let next: (typeof lists)[number] | undefined;
      for (const l of lists) {
        const head = l.items[l.at];
        if (head && (!next || head.ts < next.items[next.at]!.ts)) next = l;
      }
      if (!next) break;
      const entry = next.items[next.at++]!;
      scanned++;
      positions.set(next.id, entry.id);
      if (shows(mode, entry.stream)) logs.push({ line: entry.line, stream: entry.stream, ts: entry.ts, actionId: next.id });
    }
    // Everything there is was read (no action filled its page): the next call goes on from here.
    if (!lists.some((l) => l.full)) break;
  }
  return { logs, cursor: formatCursor(positions) };
}
