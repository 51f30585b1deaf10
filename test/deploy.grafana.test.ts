// deploy/grafana/drover.json against Drover's metric catalog (DroverMetrics) and the provisioned datasource:
// every query selects metrics Drover exports, on labels they have, through the datasource Grafana is given.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  asArray, asObj, asString, get, isObj, metricCatalog, parseYaml, promqlLabels, promqlMetrics, readText, resolveSeries, type Obj,
} from './helpers/deploy.js';

const DASHBOARD = 'deploy/grafana/drover.json';
const DATASOURCES = 'deploy/grafana/provisioning/datasources/prometheus.yml';
const PANEL_TYPES = new Set(['timeseries', 'stat', 'bargauge', 'gauge', 'table', 'text', 'row']);
/** Labels Prometheus adds to every target. */
const TARGET_LABELS = ['job', 'instance'];
/** Never a label of a Drover metric; a query grouping by one of these would be unbounded. */
const UNBOUNDED = /^(?:id|job_?id|jobId|command|cmd|schedule|name|trace_?id|span_?id|runner_?id)$/i;

const dashboard = asObj(JSON.parse(readText(DASHBOARD)) as unknown, DASHBOARD);
const panels = asArray(dashboard.panels, 'panels').map((p) => asObj(p, 'panel'));
const queryPanels = panels.filter((p) => p.type !== 'row');
const variables = asArray(get(dashboard, 'templating', 'list'), 'templating.list').map((v) => asObj(v, 'variable'));

function targets(panel: Obj): Obj[] {
  return asArray(panel.targets, `${String(panel.title)} targets`).map((t) => asObj(t, 'target'));
}

/** Every PromQL expression of the dashboard: panel targets and query variables. */
function expressions(): { where: string; expr: string }[] {
  const out: { where: string; expr: string }[] = [];
  for (const p of queryPanels) for (const t of targets(p)) out.push({ where: `panel "${String(p.title)}" ${String(t.refId)}`, expr: asString(t.expr, 'expr') });
  for (const v of variables) {
    const q = get(v, 'query', 'query') ?? v.query;
    if (typeof q === 'string' && v.type === 'query') out.push({ where: `variable $${String(v.name)}`, expr: q });
  }
  return out;
}

/** `label_values(metric, label)` → its parts; PromQL otherwise. */
function labelValues(expr: string): { metric: string; label: string } | undefined {
  const m = /^\s*label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)(?:\{[^}]*\})?\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/.exec(expr);
  return m ? { metric: m[1]!, label: m[2]! } : undefined;
}

test('grafana: a valid dashboard: schema version, uid, panels with types, unique ids and non-overlapping grid positions', () => {
  assert.ok(Number(dashboard.schemaVersion) >= 36, 'schemaVersion');
  assert.match(asString(dashboard.uid, 'uid'), /^[A-Za-z0-9_-]{1,40}$/);
  assert.ok(asString(dashboard.title, 'title').length > 0);
  assert.ok(queryPanels.length >= 12, 'enough panels for the operator');
  const ids = new Set<number>();
  const cells = new Set<string>();
  for (const p of panels) {
    assert.ok(PANEL_TYPES.has(asString(p.type, 'type')), `panel type ${String(p.type)}`);
    const id = Number(p.id);
    assert.ok(Number.isInteger(id) && !ids.has(id), `panel id ${id} unique`);
    ids.add(id);
    const g = asObj(p.gridPos, `${String(p.title)} gridPos`);
    const [x, y, w, h] = [g.x, g.y, g.w, g.h].map(Number) as [number, number, number, number];
    assert.ok([x, y, w, h].every((n) => Number.isInteger(n) && n >= 0) && w > 0 && h > 0 && x + w <= 24, `${String(p.title)}: gridPos within 24 columns`);
    for (let i = x; i < x + w; i++) {
      for (let j = y; j < y + h; j++) {
        assert.ok(!cells.has(`${i},${j}`), `${String(p.title)} overlaps another panel at ${i},${j}`);
        cells.add(`${i},${j}`);
      }
    }
    if (p.type !== 'row') assert.ok(targets(p).length > 0, `${String(p.title)} has queries`);
  }
});

test('grafana: the datasource is an input (${DS_PROMETHEUS}): chosen on import, a variable when provisioned', () => {
  const input = asArray(dashboard.__inputs, '__inputs').map((i) => asObj(i, 'input'));
  assert.deepEqual(input.map((i) => [i.name, i.type, i.pluginId]), [['DS_PROMETHEUS', 'datasource', 'prometheus']], 'one datasource input');
  const ds = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };
  for (const p of queryPanels) {
    assert.deepEqual(p.datasource, ds, `panel "${String(p.title)}"`);
    for (const t of targets(p)) {
      if (t.datasource !== undefined) assert.deepEqual(t.datasource, ds, `panel "${String(p.title)}" ${String(t.refId)}`);
    }
  }
  for (const v of variables.filter((x) => x.type === 'query')) assert.deepEqual(v.datasource, ds, `variable ${String(v.name)}`);
  // Provisioned from a file, Grafana does not fill __inputs: the datasource variable of the same name resolves it,
  // defaulting to the default Prometheus datasource, which provisioning sets.
  const dsVar = variables.find((v) => v.name === 'DS_PROMETHEUS');
  assert.ok(dsVar, 'a DS_PROMETHEUS variable');
  assert.deepEqual([dsVar.type, dsVar.query], ['datasource', 'prometheus']);
  const provisioned = asArray(asObj(parseYaml(readText(DATASOURCES), DATASOURCES), DATASOURCES).datasources, 'datasources').map((d) => asObj(d, 'datasource'));
  assert.deepEqual(provisioned.filter((d) => d.type === 'prometheus').map((d) => d.isDefault), [true], 'the provisioned Prometheus is the default');
  // The control: no panel names a fixed uid (what hampered import into an existing Grafana).
  assert.ok(!/"uid":\s*"prometheus"/.test(readText(DASHBOARD)), 'no fixed datasource uid');
});

test('grafana: runner panels count runners, not series (a runner scraped on two ports counts once)', () => {
  for (const { where, expr } of expressions()) {
    if (where.startsWith('variable')) continue;
    for (const m of expr.matchAll(/\b(count|sum)\s*\(\s*(drover_runner_[a-z_]+)/g)) assert.fail(`${where}: ${m[1]}(${m[2]}...) counts series; aggregate by (runner) first: ${expr}`);
    for (const m of expr.matchAll(/\bsum by \(runner\)\s*\(\s*drover_runner_/g)) assert.fail(`${where}: ${m[0]} adds a runner's duplicate series; use max by (runner)`);
  }
  const runners = queryPanels.find((p) => p.title === 'Runners');
  assert.match(asString(targets(runners!)[0]!.expr, 'expr'), /^count\(count by \(runner\)/);
});

test('grafana: every metric in every query is one DroverMetrics exports (histograms through _bucket/_sum/_count)', async () => {
  const catalog = await metricCatalog();
  assert.ok(catalog.has('drover_jobs_finished_total'), 'counters are listed under their _total name');
  const used = new Set<string>();
  for (const { where, expr } of expressions()) {
    const lv = labelValues(expr);
    const names = lv ? [lv.metric] : promqlMetrics(expr);
    assert.ok(names.length > 0, `${where}: selects a metric`);
    for (const n of names) {
      const r = resolveSeries(catalog, n);
      assert.ok(!r.problem, `${where}: ${r.problem ?? ''}`);
      used.add(r.metric!.name);
      if (r.suffix === 'bucket') assert.match(expr, /histogram_quantile\(/, `${where}: buckets go through histogram_quantile`);
    }
    for (const q of expr.matchAll(/histogram_quantile\(\s*([\d.]+)\s*,\s*sum by \(([^)]*)\)/g)) {
      assert.ok(Number(q[1]) > 0 && Number(q[1]) < 1, `${where}: quantile in (0, 1)`);
      assert.ok(q[2]!.split(',').map((s) => s.trim()).includes('le'), `${where}: histogram_quantile keeps le`);
    }
    for (const r of expr.matchAll(/\b(?:rate|increase|irate)\([^[]*\[([^\]]+)\]\)/g)) {
      assert.ok(['$__rate_interval', '$__range', '$__interval'].includes(r[1]!), `${where}: window ${r[1]} follows the dashboard, not a fixed one`);
    }
  }
  // The dashboard covers every Drover metric (a new one should get a panel).
  for (const m of catalog.values()) {
    if (!m.name.startsWith('drover_')) continue;
    assert.ok(used.has(m.name), `no panel shows ${m.name}`);
  }
});

test('grafana: queries use only labels the metrics have (never an unbounded one), and drover_queue_depth is de-duplicated', async () => {
  const catalog = await metricCatalog();
  for (const { where, expr } of expressions()) {
    const lv = labelValues(expr);
    const metrics = (lv ? [lv.metric] : promqlMetrics(expr)).map((n) => resolveSeries(catalog, n));
    const allowed = new Set<string>([...TARGET_LABELS, ...metrics.flatMap((r) => r.metric?.labels ?? [])]);
    if (metrics.some((r) => r.suffix === 'bucket')) allowed.add('le');
    const labels = lv ? [lv.label] : promqlLabels(expr);
    for (const l of labels) {
      assert.ok(!UNBOUNDED.test(l), `${where}: ${l} is unbounded`);
      assert.ok(allowed.has(l), `${where}: label ${l} is not a label of ${metrics.map((r) => r.metric?.name).join(', ')}`);
    }
    // Each scheduler replica exports drover_queue_depth: aggregate with max per (queue, state) before anything else.
    const selectors = [...expr.matchAll(/drover_queue_depth\b/g)].length;
    if (selectors > 0 && !lv) {
      const deduped = [...expr.matchAll(/max by \((?=[^)]*\bqueue\b)(?=[^)]*\bstate\b)[^)]*\)\s*\(\s*drover_queue_depth\b/g)].length;
      assert.equal(deduped, selectors, `${where}: drover_queue_depth under max by (queue, state)`);
    }
  }
  for (const m of catalog.values()) for (const l of m.labels) assert.ok(!UNBOUNDED.test(l), `${m.name} has an unbounded label ${l}`);
});

test('grafana: the queue and runner variables come from Drover metrics and filter the panels', async () => {
  const catalog = await metricCatalog();
  const byName = new Map(variables.map((v) => [String(v.name), v]));
  const all = expressions().filter((e) => !e.where.startsWith('variable')).map((e) => e.expr);
  for (const [name, label] of [['queue', 'queue'], ['runner', 'runner']] as const) {
    const v = byName.get(name);
    assert.ok(v, `a $${name} variable`);
    const lv = labelValues(asString(get(v, 'query', 'query') ?? v.query, 'query'));
    assert.ok(lv, `$${name} is label_values(metric, label)`);
    assert.equal(lv.label, label);
    assert.ok(catalog.get(lv.metric)?.labels.includes(label), `${lv.metric} has a ${label} label`);
    assert.equal(v.includeAll, true, `$${name} offers All`);
    assert.equal(v.multi, true, `$${name} allows several`);
    assert.equal(v.allValue, '.*', `$${name} All matches every value with =~`);
    const uses = all.filter((e) => e.includes(`${label}=~"$${name}"`));
    assert.ok(uses.length >= 3, `$${name} filters panels (${uses.length})`);
    // Every selector of a metric with that label filters by the variable, or the panel would ignore it.
    for (const e of all) {
      for (const sel of e.replace(/\b(?:by|without)\s*\([^)]*\)/g, '').matchAll(/([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?/g)) {
        if (!resolveSeries(catalog, sel[1]!).metric?.labels.includes(label)) continue;
        assert.ok((sel[2] ?? '').includes(`${label}=~"$${name}"`), `${sel[0]} follows $${name} in: ${e}`);
      }
    }
    for (const e of all) assert.ok(!/=~?"\$(?!queue"|runner")/.test(e), `only defined variables are used: ${e}`);
  }
  assert.ok(isObj(dashboard.time) && typeof dashboard.refresh === 'string', 'time range and refresh set');
});
