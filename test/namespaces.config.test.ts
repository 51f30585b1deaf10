import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadTokens, namedNamespace } from '@drover/api';
import { DroverMetrics, loadConfig, namespacePrefix, parseNamespaceSelection } from '@drover/core';
import { namespaceRunnerConfig } from '@drover/runner';
import { parseMetrics } from './helpers/prom.js';

/** Namespaces without services: names, RUNNER_NAMESPACE, tokens files, runner configuration, merged metrics. */

test('namespace names and selections: what is refused, and how default maps to the old prefix', () => {
  assert.equal(namespacePrefix('drover', 'default'), 'drover', 'default is the deployment prefix: no key moves');
  assert.equal(namespacePrefix('drover', 'team-a'), 'drover/team-a');
  assert.deepEqual(parseNamespaceSelection(['a', 'b', 'a']), ['a', 'b']);
  assert.equal(parseNamespaceSelection(['*']), '*');
  for (const bad of [['*', 'a'], [], ['A'], ['a_b'], ['-a'], ['a-'], ['x'.repeat(41)], ['a/b'], ['a b']]) {
    assert.ok('problems' in (parseNamespaceSelection(bad) as object), JSON.stringify(bad));
  }
  assert.deepEqual(namedNamespace({ 'drover-namespace': 'team-a' }, '/v1/jobs'), { name: 'team-a' });
  assert.deepEqual(namedNamespace({}, '/v1/jobs?namespace=team-a&x=1'), { name: 'team-a' });
  assert.deepEqual(namedNamespace({}, '/v1/jobs'), {});
  assert.equal(typeof namedNamespace({ 'drover-namespace': 'a' }, '/v1/jobs?namespace=b'), 'string', 'header and query disagree');
  assert.equal(typeof namedNamespace({ 'drover-namespace': '../x' }, '/'), 'string');
});

test('RUNNER_NAMESPACE: a list or *, default default; a bad one is a configuration error naming the variable', () => {
  assert.deepEqual(loadConfig({}).runner.namespaces, ['default']);
  assert.deepEqual(loadConfig({ RUNNER_NAMESPACE: 'a, b' }).runner.namespaces, ['a', 'b']);
  assert.equal(loadConfig({ RUNNER_NAMESPACE: '*' }).runner.namespaces, '*');
  assert.throws(() => loadConfig({ RUNNER_NAMESPACE: 'Team' }), /RUNNER_NAMESPACE a namespace is 1 to 40/);
  assert.throws(() => loadConfig({ RUNNER_NAMESPACE: '*,a' }), /RUNNER_NAMESPACE takes `\*` alone/);
});

test("a namespace's runner: its prefix and id; only default's reads the Coyotes list, a key outside every prefix", () => {
  const config = loadConfig({ DROVER_PREFIX: 'd', DROVER_COYOTES_LIST: '1', RUNNER_ID: 'r1', RUNNER_NAMESPACE: 'default,team-a' });
  const def = namespaceRunnerConfig(config, 'default', 'r1');
  const team = namespaceRunnerConfig(config, 'team-a', 'r1@team-a');
  assert.deepEqual([def.prefix, def.runner.id, def.compat.coyotesList], ['d', 'r1', true]);
  assert.deepEqual([team.prefix, team.runner.id, team.compat.coyotesList], ['d/team-a', 'r1@team-a', false]);
  assert.equal(config.compat.coyotesList, true, 'the process configuration is left as it was');
});

test('tokens file: namespaces are a list or "*", default only without them; a bad entry is refused with its index', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-ns-tokens-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'tokens.json');
  const write = (tokens: unknown[]): void => writeFileSync(file, JSON.stringify({ tokens }), { mode: 0o600 });
  const secret = (c: string): string => c.repeat(24);
  write([
    { name: 'old', token: secret('a'), scope: 'read' },
    { name: 'all', token: secret('b'), scope: 'admin', namespaces: '*' },
    { name: 'two', token: secret('c'), scope: 'submit', namespaces: ['default', 'team-a'] },
  ]);
  const reg = loadTokens({ tokensFile: file, adminToken: secret('d') });
  assert.deepEqual(reg.lookup(secret('a'))?.namespaces, ['default']);
  assert.equal(reg.lookup(secret('b'))?.namespaces, '*');
  assert.deepEqual(reg.lookup(secret('c'))?.namespaces, ['default', 'team-a']);
  assert.equal(reg.lookup(secret('d'))?.namespaces, '*', 'DROVER_ADMIN_TOKEN works in every namespace');
  for (const bad of [['Team'], 'team', [1], [], ['*', 'a']]) {
    write([{ token: secret('e'), scope: 'read', namespaces: bad }]);
    assert.throws(() => loadTokens({ tokensFile: file }), /tokens\[0\]\.namespaces/, JSON.stringify(bad));
  }
});

test('metrics of several namespaces render as one family each, every sample labelled; a filter shows only some', async () => {
  const root = new DroverMetrics({ defaultMetrics: true });
  root.jobsSubmitted.inc({ queue: 'q' }, 2);
  root.forNamespace('team-a').jobsSubmitted.inc({ queue: 'q' }, 3);
  root.forNamespace('team-a').jobDuration.observe({ queue: 'q', status: 'succeeded' }, 0.2);
  assert.equal(root.forNamespace('team-a'), root.forNamespace('team-a').forNamespace('team-a'));
  const { body } = await root.forNamespace('team-a').render();
  assert.equal(body.match(/^# TYPE drover_jobs_submitted_total /gm)?.length, 1, 'one family, not one per namespace');
  const samples = parseMetrics(body);
  const submitted = samples.filter((m) => m.name === 'drover_jobs_submitted_total').map((m) => [m.labels.namespace, m.value]);
  assert.deepEqual(submitted.sort(), [['default', 2], ['team-a', 3]]);
  assert.ok(samples.some((m) => m.name === 'drover_job_duration_seconds_bucket' && m.labels.namespace === 'team-a' && m.labels.le === '0.25' && m.value === 1));
  assert.ok(samples.some((m) => m.name === 'process_cpu_user_seconds_total' && m.labels.namespace === undefined), 'process metrics once, without a namespace');
  const only = parseMetrics((await root.render(['team-a'])).body);
  assert.deepEqual([...new Set(only.filter((m) => m.name.startsWith('drover_')).map((m) => m.labels.namespace))], ['team-a']);
  assert.equal(parseMetrics((await root.render([])).body).filter((m) => m.name.startsWith('drover_')).length, 0);
});
