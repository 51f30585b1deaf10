import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { startStack } from './helpers/stack.js';

const ROOT = new URL('..', import.meta.url).pathname;
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

interface Doc {
  paths: Record<string, Record<string, { tags?: string[] }>>;
}

/** An OpenAPI path as a pattern over how the tables write it: `{param}` may be written any way (`{name}.do`). */
const pathPattern = (path: string): RegExp => new RegExp(path.split(/\{[^}]+\}/).map((part) => part.replace(/[.*+?^$()|[\]\\]/g, '\\$&')).join('[^\\s`|]+'));

test('every route of the four adapters is in its table, in the README and in its docs/compat page', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const doc = (await s.request<Doc>('GET', '/docs/json', undefined, null)).body;
  const readme = read('README.md');
  const pages: Record<string, string> = {
    'compat-meproc': read('docs/compat/meproc.md'),
    'compat-coyotes': read('docs/compat/coyotes.md'),
    'compat-keeper': read('docs/compat/keeper.md'),
    'compat-qschedule': read('docs/compat/qschedule.md'),
  };
  // The README's section: one <details> table per system, in the order above.
  const sections = [...readme.matchAll(/<details><summary>([^<]+)<[\s\S]*?<\/details>/g)].map((m) => m[0]);
  assert.equal(sections.length, 4, 'one table per seed system in the README');
  const seen = new Set<string>();
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const tag = op.tags?.find((x) => x.startsWith('compat-'));
      if (!tag) continue;
      seen.add(tag);
      const re = pathPattern(path);
      const i = Object.keys(pages).indexOf(tag);
      assert.ok(i >= 0, `${tag} has a docs/compat page`);
      assert.match(pages[tag]!, re, `docs/compat page of ${tag} lists ${method.toUpperCase()} ${path}`);
      assert.match(sections[i]!, re, `the README's ${tag} table lists ${method.toUpperCase()} ${path}`);
    }
  }
  assert.deepEqual([...seen].sort(), Object.keys(pages).sort(), 'every adapter has routes in the API document');
  // The control: a path no table has is not found by the same pattern.
  assert.doesNotMatch(sections[3]!, pathPattern('/api/nothing/{file}'));
});
