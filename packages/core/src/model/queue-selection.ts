import { QUEUE_NAME_PATTERN } from './job-spec.js';

/**
 * Which queues a runner serves (RUNNER_QUEUES): queue names and patterns, with exclusions.
 *   `default`            the queue `default`
 *   `*`                  every queue, also those created later
 *   `*,!heavy`           every queue but `heavy`
 *   `build-*,reports`    the queues whose names start with `build-`, and `reports`
 * A `*` matches any run of characters. Exclusions win over inclusions; at least one inclusion is needed.
 */
export interface QueueSelection {
  /** The entries as given, in order (what the runner registry shows). */
  readonly entries: readonly string[];
  /** Names served from the start, whether or not the store knows them yet. */
  readonly names: readonly string[];
  /** True when a pattern can match queues that appear later: the runner then watches for new ones. */
  readonly dynamic: boolean;
  /** True when this selection serves `queue`. */
  serves(queue: string): boolean;
}

const NAME = new RegExp(QUEUE_NAME_PATTERN);
/** Letters, digits, `_ . -` as in queue names, plus `*`. */
const ENTRY = /^!?[A-Za-z0-9_.*-]{1,64}$/;

const globRe = (glob: string): RegExp => new RegExp(`^${glob.split('*').map((s) => s.replace(/[.]/g, '\\.')).join('.*')}$`);

/** Parses RUNNER_QUEUES entries; returns the problems instead when there are any. */
export function parseQueueSelection(entries: readonly string[]): QueueSelection | string[] {
  const problems: string[] = [];
  const include: string[] = [];
  const exclude: string[] = [];
  for (const e of entries) {
    const bare = e.replace(/^!/, '');
    if (!ENTRY.test(e) || (!bare.includes('*') && !NAME.test(bare))) {
      problems.push(`"${e}" is not a queue name or pattern (letters, digits, _ . -, * for any run of characters, ! before one to exclude it)`);
      continue;
    }
    (e.startsWith('!') ? exclude : include).push(bare);
  }
  if (include.length === 0 && problems.length === 0) {
    problems.push(entries.length === 0 ? 'names no queue' : `only excludes queues; to serve all others write *,${entries.join(',')}`);
  }
  if (problems.length > 0) return problems;
  const inc = include.map(globRe);
  const exc = exclude.map(globRe);
  const serves = (q: string): boolean => inc.some((r) => r.test(q)) && !exc.some((r) => r.test(q));
  return {
    entries: [...entries],
    names: include.filter((n) => !n.includes('*') && serves(n)),
    dynamic: include.some((n) => n.includes('*')),
    serves,
  };
}

/** Whether runner registry entries (a runner's RUNNER_QUEUES) serve `queue`; unreadable entries serve nothing. */
export function selectionServes(entries: readonly string[], queue: string): boolean {
  const sel = parseQueueSelection(entries);
  return !Array.isArray(sel) && sel.serves(queue);
}
