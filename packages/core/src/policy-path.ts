/**
 * Program paths and the allow-list patterns of a command policy, compared segment by segment.
 *
 * A pattern is an absolute path whose segments are literal, contain `*` (any characters within that one
 * segment, never `/`), or are exactly `**` (any number of whole segments, none included). So
 * `/opt/tools/bin/*` admits `/opt/tools/bin/deploy` but not `/opt/tools/bin/sub/deploy`, and no pattern can be
 * walked out of with `..`: paths with `.`, `..` or empty segments are refused before they are matched at all.
 */

const GLOBSTAR = Symbol('**');

type SegmentMatcher = string | RegExp | typeof GLOBSTAR;

/** Why `path` cannot be compared with an allow-list (relative, `.`/`..`/empty segments), or null. */
export function programPathProblem(path: string): string | null {
  if (!path.startsWith('/')) return 'is not an absolute path';
  const segments = path.slice(1).split('/');
  if (segments.some((s) => s === '.' || s === '..')) return 'has a "." or ".." segment';
  if (segments.some((s) => s === '')) return 'has an empty segment ("//" or a trailing "/")';
  if (path.includes('\u0000')) return 'contains NUL';
  return null;
}

/** Why `pattern` is not a valid allow-list entry, or null. */
export function pathPatternProblem(pattern: string): string | null {
  if (typeof pattern !== 'string') return 'is not a string';
  const path = programPathProblem(pattern);
  if (path) return path === 'is not an absolute path' ? 'is not an absolute path (patterns must start with "/")' : path;
  if (pattern.slice(1).split('/').some((s) => s.includes('**') && s !== '**')) return 'uses "**" inside a segment; "**" must be a whole segment';
  return null;
}

const escape = (s: string): string => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');

function compileSegment(segment: string): SegmentMatcher {
  if (segment === '**') return GLOBSTAR;
  if (!segment.includes('*')) return segment;
  return new RegExp(`^${segment.split('*').map(escape).join('[^/]*')}$`);
}

const compiled = new Map<string, SegmentMatcher[] | null>();

/** The pattern's segment matchers; null for an invalid pattern, which then matches nothing (fail closed). */
function compile(pattern: string): SegmentMatcher[] | null {
  let c = compiled.get(pattern);
  if (c === undefined) {
    c = pathPatternProblem(pattern) ? null : pattern.slice(1).split('/').map(compileSegment);
    compiled.set(pattern, c);
  }
  return c;
}

/**
 * Segment-wise match by dynamic programming over (pattern position, segment position), from the ends: linear in
 * their product whatever the number of `**`, so a path of thousands of segments cannot make matching explode.
 */
function matchSegments(pattern: SegmentMatcher[], segments: string[]): boolean {
  const n = segments.length;
  // next[si]: does pattern[pi + 1..] match segments[si..]?
  let next: boolean[] = Array.from({ length: n + 1 }, (_, si) => si === n);
  for (let pi = pattern.length - 1; pi >= 0; pi--) {
    const m = pattern[pi]!;
    const row: boolean[] = new Array<boolean>(n + 1).fill(false);
    for (let si = n; si >= 0; si--) {
      if (m === GLOBSTAR) row[si] = next[si]! || (si < n && row[si + 1]!);
      else if (si < n) row[si] = (typeof m === 'string' ? m === segments[si] : m.test(segments[si]!)) && next[si + 1]!;
    }
    next = row;
  }
  return next[0]!;
}

/** True when the absolute, clean `path` (see programPathProblem) matches `pattern` segment by segment. */
export function pathMatches(pattern: string, path: string): boolean {
  const c = compile(pattern);
  if (!c || programPathProblem(path)) return false;
  return matchSegments(c, path.slice(1).split('/'));
}
