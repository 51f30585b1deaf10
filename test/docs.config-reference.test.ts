import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '@drover/core';
import { CONFIG_DOC, CONFIG_SOURCE, readConfigSource, renderConfigDocs } from '../scripts/gen-config-docs.js';

const ROOT = new URL('..', import.meta.url).pathname;
const source = readFileSync(join(ROOT, CONFIG_SOURCE), 'utf8');

/** Every variable loadConfig looks up, fault hooks on so their branch is read too (a Proxy records each lookup). */
function namesReadAtRuntime(): Set<string> {
  const seen = new Set<string>();
  const env: Record<string, string | undefined> = new Proxy({}, {
    get: (_t, name) => {
      if (typeof name !== 'string') return undefined;
      seen.add(name);
      return name === 'DROVER_ENABLE_FAULT_HOOKS' ? '1' : undefined;
    },
  });
  loadConfig(env);
  return seen;
}

test('docs/configuration.md is what the generator makes of the config loader (npm run docs:config)', () => {
  const model = readConfigSource(source);
  assert.deepEqual(model.problems, []);
  assert.equal(readFileSync(join(ROOT, CONFIG_DOC), 'utf8'), renderConfigDocs(model), `${CONFIG_DOC} is stale: run npm run docs:config`);
});

test('the reference names exactly the variables loadConfig reads, secrets with their _FILE form', () => {
  const model = readConfigSource(source);
  const documented = new Set<string>();
  for (const v of model.variables.values()) {
    documented.add(v.name);
    if (v.kind === 'secret') documented.add(`${v.name}_FILE`);
  }
  const runtime = namesReadAtRuntime();
  assert.ok(runtime.size > 40, `the recorder saw ${runtime.size} lookups`);
  assert.deepEqual([...runtime].filter((n) => !documented.has(n)).sort(), [], 'read at runtime but missing from the reference');
  assert.deepEqual([...documented].filter((n) => !runtime.has(n)).sort(), [], 'in the reference but never read');
  const doc = readFileSync(join(ROOT, CONFIG_DOC), 'utf8');
  for (const n of documented) assert.ok(doc.includes(`\`${n}\``), `${CONFIG_DOC} names ${n}`);
  // Defaults as the loader fills them, for a few kinds of reading.
  const defaults = loadConfig({});
  assert.equal(model.variables.get('DROVER_PORT')?.fallback?.text, String(defaults.port));
  assert.equal(model.variables.get('RUNNER_LEASE_MS')?.fallback?.text, String(defaults.runner.leaseMs));
  assert.equal(model.variables.get('RUNNER_ENV_PASSTHROUGH')?.fallback?.text, defaults.runner.envPassthrough.join(','));
  assert.equal(model.variables.get('REDIS_URL')?.fallback?.text, defaults.redisUrl);
  assert.deepEqual(model.variables.get('DROVER_BROKER')?.allowed, ['bullmq', 'rabbitmq']);
});

test('control: a changed default, an undocumented variable and a TSDoc that lies are all caught', () => {
  const before = renderConfigDocs(readConfigSource(source));
  // A default changed in the loader changes the reference, so the freshness test fails until it is regenerated.
  const changed = source.replace("r.int('RUNNER_CONCURRENCY', 5,", "r.int('RUNNER_CONCURRENCY', 6,");
  assert.notEqual(changed, source);
  assert.notEqual(renderConfigDocs(readConfigSource(changed)), before);
  // A variable read without a TSDoc naming it.
  const undocumented = source.replace("port: r.int('DROVER_PORT'", "extra: r.int('DROVER_EXTRA_KNOB', 3, 0, 9),\n    port: r.int('DROVER_PORT'");
  assert.deepEqual(readConfigSource(undocumented).problems, ['DROVER_EXTRA_KNOB is read by loadConfig but no TSDoc of a DroverConfig field names it in backticks']);
  // A TSDoc "default N" the loader does not use.
  const lying = source.replace('`RUNNER_CONCURRENCY`, default 5', '`RUNNER_CONCURRENCY`, default 7');
  assert.notEqual(lying, source);
  assert.deepEqual(readConfigSource(lying).problems, ['RUNNER_CONCURRENCY: its TSDoc says default 7, loadConfig uses 5']);
});

test('the --check command passes on the committed file and fails, saying what to run, on a stale copy', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-config-doc-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const run = (...args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'scripts/gen-config-docs.ts', '--check', ...args], { cwd: ROOT, encoding: 'utf8' });
  const ok = run();
  assert.equal(ok.status, 0, ok.stderr);
  const stale = join(dir, 'configuration.md');
  writeFileSync(stale, readFileSync(join(ROOT, CONFIG_DOC), 'utf8').replace('| `RUNNER_CONCURRENCY` | `5` |', '| `RUNNER_CONCURRENCY` | `4` |'));
  const bad = run('--doc', stale);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /is stale: .*npm run docs:config/);
  assert.match(bad.stderr, /RUNNER_CONCURRENCY/);
});
