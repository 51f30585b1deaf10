// deploy/prometheus/rules.yml: its promtool unit tests (when promtool is installed; CI installs it), its metrics
// and labels against what Drover exports, and the same groups shipped as a PrometheusRule and mounted in compose.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import YAML from 'yaml';
import {
  asArray, asObj, asString, k8sVariants, metricCatalog, parseYaml, promqlLabels, promqlMetrics, readText, resolveSeries, type Obj,
} from './helpers/deploy.js';

const run = promisify(execFile);
const RULES = 'deploy/prometheus/rules.yml';
const RULE_TESTS = 'deploy/prometheus/rules.test.yml';
const PROMETHEUS_RULE = 'deploy/k8s/components/alerts/prometheusrule.yaml';
const ROOT = new URL('..', import.meta.url).pathname;
const TARGET_LABELS = ['job', 'instance'];
const havePromtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
const noPromtool = havePromtool ? false : 'promtool is not installed (Debian: apt-get install prometheus; .ci/run does)';

const groups = asArray(asObj(parseYaml(readText(RULES), RULES), RULES).groups, 'groups').map((g) => asObj(g, 'group'));
const rules = groups.flatMap((g) => asArray(g.rules, 'rules').map((r) => asObj(r, 'rule')));

/** The alerts the issue asks for, each watched by one rule. */
const EXPECTED = ['DroverJobFailureRateHigh', 'DroverScheduleFailing', 'DroverBacklogOld', 'DroverQueueWithoutRunner', 'DroverRunnerGone', 'DroverWebhooksGivenUp', 'DroverRedisUnreachable', 'DroverNoScheduler'];

test('rules: the alerts are there, each with a severity, a summary and a description, and a unit test', () => {
  assert.deepEqual(rules.map((r) => r.alert), EXPECTED);
  const tested = new Set(
    asArray(asObj(parseYaml(readText(RULE_TESTS), RULE_TESTS), RULE_TESTS).tests, 'tests')
      .flatMap((t) => asArray(asObj(t, 'test').alert_rule_test, 'alert_rule_test'))
      .map((a) => asObj(a, 'alert test').alertname),
  );
  for (const r of rules) {
    const labels = asObj(r.labels, `${String(r.alert)} labels`);
    assert.ok(['warning', 'critical'].includes(String(labels.severity)), `${String(r.alert)} severity`);
    const ann = asObj(r.annotations, `${String(r.alert)} annotations`);
    assert.ok(asString(ann.summary, 'summary').length > 0 && asString(ann.description, 'description').length > 0);
    assert.ok(tested.has(r.alert), `${String(r.alert)} has a promtool unit test`);
  }
});

test('rules: every metric and label they use is one Drover exports (the scheduler\'s gauges under max)', async () => {
  const catalog = await metricCatalog();
  for (const r of rules) {
    const expr = asString(r.expr, 'expr');
    const names = promqlMetrics(expr);
    assert.ok(names.length > 0, `${String(r.alert)} selects a metric`);
    const metrics = names.map((n) => {
      const found = resolveSeries(catalog, n);
      assert.ok(!found.problem, `${String(r.alert)}: ${found.problem ?? ''}`);
      return found.metric!;
    });
    const allowed = new Set([...TARGET_LABELS, ...metrics.flatMap((m) => m.labels)]);
    for (const l of promqlLabels(expr)) assert.ok(allowed.has(l), `${String(r.alert)}: ${l} is not a label of ${names.join(', ')}`);
  }
});

test('rules: promtool checks them and their unit tests pass', { skip: noPromtool }, async () => {
  await run('promtool', ['check', 'rules', RULES], { cwd: ROOT });
  const { stdout } = await run('promtool', ['test', 'rules', RULE_TESTS], { cwd: ROOT });
  assert.match(stdout, /SUCCESS/);
});

test('rules: the control: a broken rule fails its unit test', { skip: noPromtool }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-rules-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // The queue-without-runner alert made to look for queues with a runner: its test must catch it.
  const broken = readText(RULES).replace('max by (queue) (drover_queue_consumers) == 0', 'max by (queue) (drover_queue_consumers) > 0');
  assert.notEqual(broken, readText(RULES));
  writeFileSync(join(dir, 'rules.yml'), broken);
  writeFileSync(join(dir, 'rules.test.yml'), readText(RULE_TESTS));
  await assert.rejects(run('promtool', ['test', 'rules', 'rules.test.yml'], { cwd: dir }), (err: { stdout?: string; stderr?: string }) => /FAILED/.test(`${err.stdout ?? ''}${err.stderr ?? ''}`));
});

test('rules: the PrometheusRule in deploy/k8s carries the same groups, and the overlays include it', () => {
  const expected = { apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule', groups };
  if (process.env.UPDATE_PROMETHEUSRULE === '1') {
    const head = readFileSync(join(ROOT, PROMETHEUS_RULE), 'utf8').split('\n').filter((l) => l.startsWith('#')).join('\n');
    const doc = { apiVersion: expected.apiVersion, kind: expected.kind, metadata: { name: 'drover', labels: { 'app.kubernetes.io/name': 'drover', 'app.kubernetes.io/part-of': 'drover' } }, spec: { groups } };
    writeFileSync(join(ROOT, PROMETHEUS_RULE), `${head}\n${YAML.stringify(doc, { lineWidth: 0 })}`);
  }
  const pr = asObj(parseYaml(readText(PROMETHEUS_RULE), PROMETHEUS_RULE), PROMETHEUS_RULE);
  assert.deepEqual({ apiVersion: pr.apiVersion, kind: pr.kind, groups: asObj(pr.spec, 'spec').groups }, expected, `${PROMETHEUS_RULE} differs from ${RULES}: run UPDATE_PROMETHEUSRULE=1 on this test`);
  for (const overlay of k8sVariants().filter((v) => v.name === v.broker)) {
    const found = overlay.objects.filter((o) => o.kind === 'PrometheusRule');
    assert.equal(found.length, 1, `${overlay.name} renders the PrometheusRule`);
    assert.deepEqual((found[0] as unknown as { spec: Obj }).spec.groups, groups);
  }
});

test('rules: docker-compose mounts them where deploy/prometheus.yml loads them from', () => {
  const prom = asObj(parseYaml(readText('deploy/prometheus.yml'), 'deploy/prometheus.yml'), 'prometheus.yml');
  const files = asArray(prom.rule_files, 'rule_files').map(String);
  const compose = asObj(parseYaml(readText('docker-compose.yml'), 'docker-compose.yml'), 'docker-compose.yml');
  const mounts = asArray(asObj(asObj(compose.services, 'services').prometheus, 'prometheus').volumes, 'volumes').map(String);
  for (const f of files) assert.ok(mounts.includes(`./${RULES}:${f}:ro`), `${f} is mounted from ${RULES}`);
  assert.ok(files.length > 0);
});
