import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';

const ROOT = new URL('..', import.meta.url).pathname;

test('npm start builds first, says what it is doing, and does not rebuild an up-to-date dashboard', () => {
  const pkg = JSON.parse(readFileSync(`${ROOT}package.json`, 'utf8')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts.prestart, 'node scripts/build-for-start.mjs');
  // The suite runs after `npm run build`, so everything is up to date here.
  const r = spawnSync(process.execPath, ['scripts/build-for-start.mjs'], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /^drover: compiling TypeScript \(tsc -b\)…$/m);
  assert.match(r.stderr, /^drover: building the spawner helper: done in/m);
  assert.match(r.stderr, /^drover: dashboard: up to date$/m);
  assert.doesNotMatch(r.stderr, /building the dashboard/);
});
