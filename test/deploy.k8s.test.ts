// deploy/k8s: every manifest parses, every kustomization's references exist, and each overlay (rendered by a small
// kustomize in test/helpers/deploy.ts; by `kubectl kustomize` too when kubectl is installed) gives Drover a
// configuration loadConfig accepts, probes on the ports and paths Drover serves, a termination grace above the
// runner drain, a locked-down securityContext, and autoscaling queries on metrics Drover exports.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { after, test } from 'node:test';
import { loadConfig, parseQueueSelection, REDIS_TUNING, type DroverConfig } from '@drover/core';
import { DROVER_LIKE, ROOT, asArray, asObj, asString, containerEnv, fillAdapterTemplate, k8sVariants, fillExampleSecrets, get, isK8sObject, isObj, knownEnvNames, kustomizationRefs, metricCatalog, parseEnvFile, parseYamlDocs, podContainers, podLabels, podSpec, promqlLabels, promqlMatcherValues, promqlMetrics, readKustomization, renderKustomize, resolveSeries, selectorMatches, type Container, type K8sObject, hostPort } from './helpers/deploy.js';
import { RUNNER_CAPABILITIES, assertUidPerJob, materialize, mountedFiles, withHostFiles } from './helpers/deploy-secrets.js';

const K8S = join(ROOT, 'deploy/k8s');
const BASE = join(K8S, 'base');
const OVERLAYS = ['bullmq', 'rabbitmq'] as const;
const DROVER = ['api', 'scheduler', 'runner'] as const;
const PROBE_PATHS = new Set(['/healthz', '/readyz']);
const ADAPTER_VALUES = join(K8S, 'components/hpa/prometheus-adapter-values.yaml');

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const yamlFiles = walk(K8S).filter((f) => /\.ya?ml$/.test(f));
const scratch = mkdtempSync(join(tmpdir(), 'drover-k8s-files-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const rendered = k8sVariants();

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} is rendered`);
  return o;
}

/**
 * A Drover Deployment's container, its environment, and what loadConfig makes of it with each *_FILE read from the
 * file its Secret volume puts there (written out below a scratch directory).
 */
function droverDeployment(objects: K8sObject[], component: string): { dep: K8sObject; container: Container; env: Record<string, string>; config: DroverConfig } {
  const dep = find(objects, 'Deployment', `drover-${component}`);
  const containers = podContainers(dep);
  assert.equal(containers.length, 1, `drover-${component}: one container`);
  const container = containers[0]!;
  const env = containerEnv(container, objects);
  const where = materialize(mkdtempSync(join(scratch, `${component}-`)), mountedFiles(dep, container, objects));
  return { dep, container, env, config: loadConfig(withHostFiles(env, (p) => where.get(p))) };
}

function workloads(objects: K8sObject[]): K8sObject[] {
  return objects.filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind));
}

function declaredPort(containers: Container[], port: unknown): { name?: string; containerPort: number } | undefined {
  return containers.flatMap((c) => c.ports ?? []).find((p) => (typeof port === 'string' ? p.name === port : p.containerPort === port));
}

/** The Service a URL's host names, and that it serves the URL's port from pods that declare it. */
function assertServiceFor(objects: K8sObject[], url: string, what: string): void {
  const { host, port } = hostPort(url);
  const svc = objects.find((o) => o.kind === 'Service' && o.metadata.name === host.split('.')[0]);
  assert.ok(svc, `${what}: ${host} is a Service in the rendered manifests`);
  const p = asArray(get(svc, 'spec', 'ports'), 'ports').find((x) => get(x, 'port') === port);
  assert.ok(p, `${what}: Service ${host} serves port ${port}`);
  const backends = workloads(objects).filter((w) => selectorMatches(get(svc, 'spec', 'selector'), podLabels(w)));
  assert.equal(backends.length, 1, `${what}: Service ${host} selects one workload`);
  assert.ok(declaredPort(podContainers(backends[0]!), get(p, 'targetPort')), `${what}: its pods declare the target port`);
}

test('k8s: every YAML file parses and is a Kubernetes object, a kustomization, or the prometheus-adapter values', () => {
  assert.ok(yamlFiles.length > 10);
  for (const f of yamlFiles) {
    const docs = parseYamlDocs(readFileSync(f, 'utf8'), relative(ROOT, f));
    assert.ok(docs.length > 0, `${relative(ROOT, f)} is not empty`);
    if (basename(f) === 'kustomization.yaml') continue;
    if (f === ADAPTER_VALUES) continue;
    for (const d of docs) assert.ok(isK8sObject(d), `${relative(ROOT, f)}: every document has apiVersion, kind and metadata.name`);
  }
});

test('k8s: every kustomization refers to files that exist; secrets only come from git-ignored files with a committed example', () => {
  const referenced = new Set<string>();
  const gitignore = readFileSync(join(K8S, '.gitignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const f of yamlFiles.filter((x) => basename(x) === 'kustomization.yaml')) {
    const dir = dirname(f);
    const k = readKustomization(dir);
    for (const ref of kustomizationRefs(dir, k)) {
      referenced.add(ref.path);
      if (basename(ref.path) === 'secrets.env') {
        assert.ok(gitignore.includes('secrets.env'), 'secrets.env is git-ignored');
        assert.ok(existsSync(`${ref.path}.example`), `${relative(ROOT, ref.path)}.example is committed`);
        const example = parseEnvFile(readFileSync(`${ref.path}.example`, 'utf8'));
        for (const [key, v] of Object.entries(example)) {
          if (/pass|token|secret|key/i.test(key)) assert.equal(v, '', `${relative(ROOT, ref.path)}.example leaves ${key} empty`);
          if (/url/i.test(key)) assert.match(v, /:<[^>]+>@/, `${key}: the password is a placeholder`);
        }
        continue;
      }
      assert.ok(existsSync(ref.path), `${relative(ROOT, f)}: ${ref.what} ${relative(ROOT, ref.path)} exists`);
      if (ref.what === 'components') assert.equal(readKustomization(ref.path).kind, 'Component');
    }
    const components = (k.components ?? []).map((c) => basename(c));
    assert.ok(!(components.includes('keda') && components.includes('hpa')), `${relative(ROOT, f)}: KEDA and the HPA would fight over the runner's replicas`);
    if (dir.includes('/overlays/')) assert.ok(k.namespace, `${relative(ROOT, f)} sets a namespace`);
  }
  // No manifest is left out of every kustomization (it would silently not be applied).
  for (const f of yamlFiles) {
    if (basename(f) === 'kustomization.yaml' || f === ADAPTER_VALUES) continue;
    assert.ok(referenced.has(f), `${relative(ROOT, f)} is listed in a kustomization`);
  }
  // Manifests never carry secret values themselves.
  for (const f of yamlFiles) {
    for (const d of parseYamlDocs(readFileSync(f, 'utf8'), f)) if (isK8sObject(d)) assert.notEqual(d.kind, 'Secret', `${relative(ROOT, f)}: Secrets come from secretGenerator`);
  }
});

test('k8s: only variables Drover knows; loadConfig accepts each service; the overlays pick their broker', () => {
  const known = knownEnvNames();
  for (const v of rendered) {
    for (const component of DROVER) {
      const { container, env, config } = droverDeployment(v.objects, component);
      assert.deepEqual(container.args, [component], `${v.name}: drover-${component} runs \`drover ${component}\``);
      for (const key of Object.keys(env)) assert.ok(known.has(key), `${v.name}/${component}: ${key} is not a variable Drover reads`);
      assert.equal(config.broker, v.broker, `${v.name}/${component}: DROVER_BROKER`);
      assert.equal(env.DROVER_ENABLE_FAULT_HOOKS, undefined, `${v.name}/${component}: fault hooks are for the test suite only`);
      assert.equal(config.metrics.host, '0.0.0.0', `${v.name}/${component}: metrics reachable by Prometheus and the kubelet`);
      assertServiceFor(v.objects, config.redisUrl, `${v.name}/${component} REDIS_URL`);
      if (v.broker === 'rabbitmq') {
        assertServiceFor(v.objects, config.amqpUrl, `${v.name}/${component} AMQP_URL`);
        const rabbit = podContainers(find(v.objects, 'StatefulSet', 'drover-rabbitmq'))[0]!;
        const rabbitEnv = containerEnv(rabbit, v.objects);
        const u = new URL(config.amqpUrl);
        assert.equal(u.username, rabbitEnv.RABBITMQ_DEFAULT_USER, 'AMQP_URL user is the one RabbitMQ creates');
      }
      if (v.name.endsWith('archive') && component !== 'runner') {
        assert.ok(config.databaseUrl, `${v.name}/${component}: DATABASE_URL`);
        assertServiceFor(v.objects, config.databaseUrl, `${v.name}/${component} DATABASE_URL`);
      } else {
        assert.equal(config.databaseUrl, undefined, `${v.name}/${component}: no archive unless the component is on`);
      }
    }
    assert.ok(droverDeployment(v.objects, 'api').config.adminToken, `${v.name}: the API has its admin token`);
    assert.equal(droverDeployment(v.objects, 'runner').env.DROVER_ADMIN_TOKEN, undefined, 'runners do not hold the admin token');
  }
  // Anything Drover-like anywhere under deploy/k8s is a name Drover reads (a typo would be silently ignored).
  for (const f of walk(K8S)) {
    for (const m of readFileSync(f, 'utf8').matchAll(DROVER_LIKE)) assert.ok(known.has(m[0]), `${relative(ROOT, f)}: unknown name ${m[0]}`);
  }
});

test('k8s: container ports are the configured ports; probes hit declared ports and the paths Drover serves', () => {
  for (const v of rendered) {
    for (const component of DROVER) {
      const { container, config } = droverDeployment(v.objects, component);
      const metrics = declaredPort([container], 'metrics');
      assert.equal(metrics?.containerPort, config.metrics.port, `${v.name}/${component}: metrics port = DROVER_METRICS_PORT`);
      if (component === 'api') assert.equal(declaredPort([container], 'http')?.containerPort, config.port, `${v.name}: http port = DROVER_PORT`);
      else assert.equal(declaredPort([container], 'http'), undefined, `${component} has no HTTP server besides metrics`);
      for (const kind of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
        const probe = container[kind];
        if (kind === 'startupProbe' && probe === undefined) continue;
        const http = asObj(get(probe, 'httpGet'), `${v.name}/${component} ${kind}.httpGet`);
        const port = declaredPort([container], http.port);
        assert.ok(port, `${v.name}/${component} ${kind}: port ${String(http.port)} is declared`);
        assert.equal(port.containerPort, component === 'api' ? config.port : config.metrics.port, `${v.name}/${component} ${kind}: on ${component === 'api' ? 'DROVER_PORT' : 'the metrics port'}`);
        assert.ok(PROBE_PATHS.has(asString(http.path, 'path')), `${v.name}/${component} ${kind}: ${String(http.path)} is served`);
      }
      assert.equal(get(container, 'readinessProbe', 'httpGet', 'path'), '/readyz', `${component}: readiness is /readyz`);
      assert.equal(get(container, 'livenessProbe', 'httpGet', 'path'), '/healthz', `${component}: liveness is /healthz`);
    }
    for (const w of workloads(v.objects)) {
      for (const c of podContainers(w)) {
        for (const kind of ['livenessProbe', 'readinessProbe', 'startupProbe']) {
          const port = get(c, kind, 'httpGet', 'port') ?? get(c, kind, 'tcpSocket', 'port');
          if (port !== undefined) assert.ok(declaredPort([c], port), `${w.metadata.name}/${c.name} ${kind}: port ${JSON.stringify(port)} is declared`);
        }
      }
    }
  }
});

test('k8s: terminationGracePeriodSeconds outlasts the runner drain and kill grace', () => {
  for (const v of rendered) {
    for (const component of DROVER) {
      const { dep, config } = droverDeployment(v.objects, component);
      const grace = Number(get(podSpec(dep), 'terminationGracePeriodSeconds') ?? 30) * 1000;
      if (component === 'runner') {
        assert.ok(
          grace >= config.runner.drainTimeoutMs + config.killGraceMs + 10_000,
          `${v.name}: terminationGracePeriodSeconds ${grace / 1000} s must exceed RUNNER_DRAIN_TIMEOUT_MS ${config.runner.drainTimeoutMs} + DROVER_KILL_GRACE_MS ${config.killGraceMs} + 10 s to close`,
        );
      }
      assert.ok(grace >= 30_000, `${v.name}/${component}: at least 30 s to close`);
    }
  }
});

test('k8s: api and scheduler run as uid 1000, the runner as root with exactly the documented capabilities; all on a read-only root', () => {
  for (const v of rendered) {
    for (const component of DROVER) {
      const { dep, container, config } = droverDeployment(v.objects, component);
      const pod = podSpec(dep)!;
      const psc = asObj(pod.securityContext, `${component} pod securityContext`);
      const csc = asObj(container.securityContext, `${component} container securityContext`);
      const uid = psc.runAsUser ?? csc.runAsUser;
      if (component === 'runner') {
        // Root only to start each job as a uid of its own; it keeps these capabilities and nothing else.
        assert.equal(uid, 0, 'runner: root');
        assert.equal(psc.runAsNonRoot ?? csc.runAsNonRoot, false, 'runner: runAsNonRoot false, said explicitly');
        assert.deepEqual([...(asArray(get(csc, 'capabilities', 'add'), 'add') as string[])].sort(), [...RUNNER_CAPABILITIES].sort(), 'runner: exactly these capabilities');
        assert.equal(psc.fsGroup, undefined, 'runner: no fsGroup (it would give every process of the pod, jobs included, a group that reads the secrets)');
        assert.equal(psc.supplementalGroups, undefined, 'runner: no supplemental groups either');
        const writable = (container.volumeMounts ?? []).filter((m) => asArray(pod.volumes, 'volumes').some((vol) => get(vol, 'name') === m.name && isObj(get(vol, 'emptyDir')))).map((m) => m.mountPath);
        assertUidPerJob(config, writable);
      } else {
        assert.equal(psc.runAsNonRoot ?? csc.runAsNonRoot, true, `${component}: runAsNonRoot`);
        assert.equal(uid, 1000, `${component}: uid 1000`);
        assert.equal(get(csc, 'capabilities', 'add'), undefined, `${component}: adds none`);
      }
      assert.equal(get(psc, 'seccompProfile', 'type') ?? get(csc, 'seccompProfile', 'type'), 'RuntimeDefault', `${component}: seccomp`);
      assert.equal(csc.allowPrivilegeEscalation, false, `${component}: allowPrivilegeEscalation false`);
      assert.equal(csc.readOnlyRootFilesystem, true, `${component}: readOnlyRootFilesystem`);
      assert.equal(csc.privileged, undefined, `${component}: not privileged`);
      assert.ok((asArray(get(csc, 'capabilities', 'drop'), 'drop') as string[]).includes('ALL'), `${component}: drops ALL capabilities`);
      assert.equal(pod.automountServiceAccountToken, false, `${component}: no API token for the pod (Drover does not call Kubernetes)`);
      const volumes = asArray(pod.volumes, 'volumes').map((x) => asObj(x, 'volume'));
      const emptyDirMounts = (container.volumeMounts ?? []).filter((m) => volumes.some((vol) => vol.name === m.name && 'emptyDir' in vol)).map((m) => m.mountPath);
      assert.ok(emptyDirMounts.includes('/tmp'), `${component}: emptyDir at /tmp`);
      if (component === 'runner') {
        const wd = config.runner.workDir;
        assert.ok(emptyDirMounts.some((m) => wd === m || wd.startsWith(`${m}/`)), `runner: RUNNER_WORK_DIR ${wd} is on an emptyDir`);
      }
      for (const kind of ['requests', 'limits']) assert.ok(get(container, 'resources', kind, 'memory'), `${component}: memory ${kind}`);
      assert.ok(get(container, 'resources', 'requests', 'cpu'), `${component}: cpu request`);
    }
  }
});

test('k8s: Services and PodDisruptionBudgets select pods that exist, on ports they declare', () => {
  for (const v of rendered) {
    const all = workloads(v.objects);
    for (const svc of v.objects.filter((o) => o.kind === 'Service')) {
      const backends = all.filter((w) => selectorMatches(get(svc, 'spec', 'selector'), podLabels(w)));
      assert.equal(backends.length, 1, `${v.name}: Service ${svc.metadata.name} selects exactly one workload`);
      for (const p of asArray(get(svc, 'spec', 'ports'), 'ports')) {
        assert.ok(typeof get(p, 'name') === 'string', `${svc.metadata.name}: named ports (ServiceMonitor refers to them)`);
        assert.ok(declaredPort(podContainers(backends[0]!), get(p, 'targetPort') ?? get(p, 'port')), `${svc.metadata.name}: target port ${String(get(p, 'targetPort'))} is declared`);
      }
    }
    for (const w of all) {
      assert.ok(selectorMatches(get(w, 'spec', 'selector'), podLabels(w)), `${w.metadata.name}: its selector matches its own pods`);
      if (w.kind === 'StatefulSet') find(v.objects, 'Service', asString(get(w, 'spec', 'serviceName'), 'serviceName'));
    }
    for (const component of DROVER) {
      const { dep } = droverDeployment(v.objects, component);
      const pdbs = v.objects.filter((o) => o.kind === 'PodDisruptionBudget' && selectorMatches(get(o, 'spec', 'selector'), podLabels(dep)));
      assert.equal(pdbs.length, 1, `${v.name}: one PodDisruptionBudget for drover-${component}`);
    }
    for (const pdb of v.objects.filter((o) => o.kind === 'PodDisruptionBudget')) {
      assert.equal(all.filter((w) => selectorMatches(get(pdb, 'spec', 'selector'), podLabels(w))).length, 1, `${pdb.metadata.name} covers one workload`);
    }
    const api = find(v.objects, 'Deployment', 'drover-api');
    const scheduler = find(v.objects, 'Deployment', 'drover-scheduler');
    assert.ok(Number(get(api, 'spec', 'replicas')) >= 2, 'api: 2 replicas');
    assert.ok(Number(get(scheduler, 'spec', 'replicas')) >= 2, 'scheduler: 2 replicas (safe to replicate)');
  }
});

test('k8s: Redis (and the optional RabbitMQ / PostgreSQL) keep their data; Redis has AOF and never evicts', () => {
  for (const v of rendered) {
    const redis = find(v.objects, 'StatefulSet', 'drover-redis');
    const c = podContainers(redis).find((x) => x.name === 'redis')!;
    const cmd = [...(asArray(c.command, 'command') as string[]), ...(c.args ?? [])].join(' ');
    assert.match(cmd, /--appendonly yes\b/);
    assert.match(cmd, /--appendfsync everysec\b/);
    assert.match(cmd, /--maxmemory-policy noeviction\b/);
    for (const [k, val] of Object.entries(REDIS_TUNING)) assert.ok(cmd.includes(`--${k} ${val}`), `--${k} ${val} (REDIS_TUNING)`);
    for (const sts of v.objects.filter((o) => o.kind === 'StatefulSet')) {
      const claims = asArray(get(sts, 'spec', 'volumeClaimTemplates'), 'volumeClaimTemplates').map((x) => asString(get(x, 'metadata', 'name'), 'claim'));
      assert.ok(claims.length > 0, `${sts.metadata.name}: a PersistentVolumeClaim`);
      assert.ok(podContainers(sts).some((cc) => (cc.volumeMounts ?? []).some((m) => claims.includes(m.name))), `${sts.metadata.name}: mounts its claim`);
    }
  }
});

test('k8s: the ServiceMonitor scrapes the metrics port of api, scheduler and runner', () => {
  for (const v of rendered.filter((x) => x.objects.some((o) => o.kind === 'ServiceMonitor'))) {
    const sm = find(v.objects, 'ServiceMonitor', 'drover');
    assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
    const selected = v.objects.filter((o) => o.kind === 'Service' && selectorMatches(get(sm, 'spec', 'selector'), o.metadata.labels ?? {}));
    const byComponent = new Map(selected.map((s) => [s.metadata.labels?.['app.kubernetes.io/component'], s]));
    assert.deepEqual([...byComponent.keys()].sort(), [...DROVER].sort(), `${v.name}: selects the three Drover Services and nothing else`);
    for (const endpoint of asArray(get(sm, 'spec', 'endpoints'), 'endpoints')) {
      const port = asString(get(endpoint, 'port'), 'endpoint port');
      assert.equal(get(endpoint, 'path') ?? '/metrics', '/metrics');
      for (const [component, svc] of byComponent) {
        const p = asArray(get(svc, 'spec', 'ports'), 'ports').find((x) => get(x, 'name') === port);
        assert.ok(p, `${svc.metadata.name} declares port ${port}`);
        const { config } = droverDeployment(v.objects, component!);
        const backend = workloads(v.objects).find((w) => selectorMatches(get(svc, 'spec', 'selector'), podLabels(w)))!;
        assert.equal(declaredPort(podContainers(backend), get(p, 'targetPort'))?.containerPort, config.metrics.port, `${svc.metadata.name}: ${port} reaches DROVER_METRICS_PORT`);
      }
    }
  }
  assert.ok(rendered.some((x) => x.objects.some((o) => o.kind === 'ServiceMonitor')), 'the overlays include the ServiceMonitor');
});

/** Checks a backlog query: catalog metrics only, bounded labels, drover_queue_depth de-duplicated, the runner queues covered. */
async function checkScalingQuery(query: string, what: string, runnerQueues: string[]): Promise<void> {
  const catalog = await metricCatalog();
  const metrics = promqlMetrics(query);
  assert.ok(metrics.length > 0, `${what}: selects metrics`);
  for (const m of metrics) {
    const r = resolveSeries(catalog, m);
    assert.ok(!r.problem, `${what}: ${r.problem ?? ''}`);
  }
  assert.ok(metrics.includes('drover_queue_depth'), `${what}: scales on drover_queue_depth`);
  const selectors = [...query.matchAll(/drover_queue_depth\b/g)].length;
  const deduped = [...query.matchAll(/max by \((?=[^)]*\bqueue\b)(?=[^)]*\bstate\b)[^)]*\)\s*\(\s*drover_queue_depth\b/g)].length;
  assert.equal(deduped, selectors, `${what}: every drover_queue_depth is aggregated with max by (queue, state) (each scheduler replica exports it)`);
  for (const l of promqlLabels(query)) assert.ok(['queue', 'state', 'namespace'].includes(l), `${what}: label ${l}`);
  const states = promqlMatcherValues(query, 'state');
  const plus = states.filter((s) => s.op === '=~').flatMap((s) => s.value.split('|'));
  assert.ok(plus.includes('queued') && plus.includes('running'), `${what}: counts queued and running jobs`);
  assert.ok(states.some((s) => s.op === '=' && s.value === 'parked'), `${what}: takes parked jobs out (queue limits hold them, not a lack of runners)`);
  assert.match(query, /-\s*sum\(max by \([^)]*\)\s*\(\s*drover_queue_depth\{[^}]*state="parked"/, `${what}: parked is subtracted`);
  const queueMatchers = promqlMatcherValues(query, 'queue');
  assert.ok(queueMatchers.length >= selectors, `${what}: every selector is limited to the runners' queues`);
  // The matchers (the same in every selector) take exactly the queues RUNNER_QUEUES serves, patterns and
  // exclusions included: tried on its names and on queues created later.
  const selection = parseQueueSelection(runnerQueues);
  assert.ok(!Array.isArray(selection), `${what}: RUNNER_QUEUES ${runnerQueues.join()} is valid`);
  const takes = (m: { op: string; value: string }, q: string): boolean => {
    const full = new RegExp(`^(?:${m.value})$`);
    return m.op === '=~' ? full.test(q) : m.op === '!~' ? !full.test(q) : m.op === '=' ? q === m.value : q !== m.value;
  };
  for (const q of new Set([...selection.names, 'default', 'reports', 'build-7', 'heavy', 'nightly.etl'])) {
    const counted = queueMatchers.every((m) => takes(m, q));
    assert.equal(counted, selection.serves(q), `${what}: queue ${q} is ${selection.serves(q) ? '' : 'not '}served by RUNNER_QUEUES=${runnerQueues.join()}, and ${counted ? '' : 'not '}counted`);
  }
}

test('k8s: KEDA scales the runner on backlog + running from Prometheus, one replica per RUNNER_CONCURRENCY', async () => {
  const withKeda = rendered.filter((x) => x.objects.some((o) => o.kind === 'ScaledObject'));
  assert.ok(withKeda.length > 0, 'the overlays enable KEDA');
  for (const v of withKeda) {
    const so = find(v.objects, 'ScaledObject', 'drover-runner');
    assert.equal(so.apiVersion, 'keda.sh/v1alpha1');
    const { dep, config } = droverDeployment(v.objects, 'runner');
    assert.equal(get(so, 'spec', 'scaleTargetRef', 'name'), dep.metadata.name, 'targets the runner Deployment');
    assert.equal(get(dep, 'spec', 'replicas'), undefined, `${v.name}: the Deployment leaves replicas to the autoscaler`);
    const min = Number(get(so, 'spec', 'minReplicaCount'));
    const max = Number(get(so, 'spec', 'maxReplicaCount'));
    assert.ok(min >= 1 && max > min, `${v.name}: 1 <= min < max`);
    assert.ok(Number(get(so, 'spec', 'cooldownPeriod')) > 0, 'a cooldown');
    assert.ok(Number(get(so, 'spec', 'advanced', 'horizontalPodAutoscalerConfig', 'behavior', 'scaleDown', 'stabilizationWindowSeconds')) >= 60, 'scale-in is damped');
    const triggers = asArray(get(so, 'spec', 'triggers'), 'triggers').map((t) => asObj(t, 'trigger'));
    assert.equal(triggers.length, 1);
    const t = triggers[0]!;
    assert.equal(t.type, 'prometheus');
    assert.ok(/^https?:\/\//.test(asString(get(t, 'metadata', 'serverAddress'), 'serverAddress')), 'a Prometheus address');
    assert.equal(Number(get(t, 'metadata', 'threshold')), config.runner.concurrency, 'threshold = RUNNER_CONCURRENCY');
    assert.equal(get(t, 'metadata', 'ignoreNullValues'), 'false', 'missing data must not scale busy runners in');
    const query = asString(get(t, 'metadata', 'query'), 'query');
    await checkScalingQuery(query, `${v.name} KEDA query`, config.runner.queues);
    // The control: runners that leave a queue out must not be scaled for its backlog by this query.
    await assert.rejects(checkScalingQuery(query, 'control', ['*', '!heavy']), /queue heavy is not served by RUNNER_QUEUES=\*,!heavy, and counted/);
    assert.ok(!v.objects.some((o) => o.kind === 'HorizontalPodAutoscaler'), `${v.name}: not together with the HPA`);
  }
});

test('k8s: the HPA alternative scales on an External metric that the prometheus-adapter rule defines from the catalog', async () => {
  const values = asObj(parseYamlDocs(readFileSync(ADAPTER_VALUES, 'utf8'), 'adapter values')[0], 'adapter values');
  const rules = asArray(get(values, 'rules', 'external'), 'rules.external').map((r) => asObj(r, 'rule'));
  const withHpa = rendered.filter((x) => x.objects.some((o) => o.kind === 'HorizontalPodAutoscaler'));
  assert.ok(withHpa.length > 0);
  for (const v of withHpa) {
    const hpa = find(v.objects, 'HorizontalPodAutoscaler', 'drover-runner');
    assert.equal(hpa.apiVersion, 'autoscaling/v2');
    const { dep, config } = droverDeployment(v.objects, 'runner');
    assert.deepEqual(get(hpa, 'spec', 'scaleTargetRef'), { apiVersion: 'apps/v1', kind: 'Deployment', name: dep.metadata.name });
    assert.equal(get(dep, 'spec', 'replicas'), undefined, `${v.name}: the Deployment leaves replicas to the autoscaler`);
    assert.ok(!v.objects.some((o) => o.kind === 'ScaledObject'), `${v.name}: not together with KEDA`);
    const metrics = asArray(get(hpa, 'spec', 'metrics'), 'metrics').map((m) => asObj(m, 'metric'));
    assert.equal(metrics.length, 1);
    assert.equal(metrics[0]!.type, 'External');
    const name = asString(get(metrics[0], 'external', 'metric', 'name'), 'external metric name');
    assert.equal(Number(get(metrics[0], 'external', 'target', 'averageValue')), config.runner.concurrency, 'one runner per RUNNER_CONCURRENCY jobs');
    const rule = rules.find((r) => get(r, 'name', 'as') === name);
    assert.ok(rule, `the adapter rule defines ${name}`);
    const seriesQuery = asString(rule.seriesQuery, 'seriesQuery');
    const [series] = promqlMetrics(seriesQuery);
    assert.ok(series && resolveSeries(await metricCatalog(), series).metric, `seriesQuery ${seriesQuery} names a catalog metric`);
    assert.equal(get(rule, 'resources', 'overrides', 'namespace', 'resource'), 'namespace', 'namespaced like the HPA');
    await checkScalingQuery(fillAdapterTemplate(asString(rule.metricsQuery, 'metricsQuery'), series), `${v.name} adapter metricsQuery`, config.runner.queues);
  }
});

test('k8s: the overlays as committed: broker, namespace, image, and the optional pieces off', () => {
  for (const overlay of OVERLAYS) {
    const objects = rendered.find((v) => v.name === overlay)!.objects;
    const config = find(objects, 'ConfigMap', 'drover-config');
    assert.equal(get(config, 'data', 'DROVER_BROKER'), overlay, `${overlay}: DROVER_BROKER in drover-config`);
    const ns = find(objects, 'Namespace', asString(readKustomization(join(K8S, 'overlays', overlay)).namespace, 'namespace'));
    for (const o of objects) if (o !== ns) assert.equal(o.metadata.namespace, ns.metadata.name, `${o.kind}/${o.metadata.name} in the namespace`);
    for (const component of DROVER) {
      const image = droverDeployment(objects, component).container.image;
      assert.ok(image && image !== 'drover' && image.includes(':'), `${overlay}/${component}: a pinned image (${image})`);
    }
    assert.ok(!objects.some((o) => o.metadata.name === 'drover-postgres'), `${overlay}: the archive is opt-in`);
    assert.equal(objects.some((o) => o.metadata.name === 'drover-rabbitmq'), overlay === 'rabbitmq', `${overlay}: RabbitMQ only with its overlay`);
  }
  const base = renderKustomize(BASE);
  assert.ok(base.every((o) => o.metadata.namespace === undefined), 'base is namespace-agnostic');
  assert.equal(get(find(base, 'ConfigMap', 'drover-config'), 'data', 'DROVER_BROKER'), 'bullmq');
});

/** `kubectl kustomize` on a copy with secrets.env filled from the examples, when kubectl is installed. */
function kubectlRender(dir: string): K8sObject[] | undefined {
  const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8', timeout: 10_000 });
  if (probe.error || probe.status !== 0) return undefined;
  const tmp = mkdtempSync(join(tmpdir(), 'drover-k8s-'));
  try {
    cpSync(K8S, tmp, { recursive: true });
    for (const f of walk(tmp).filter((x) => x.endsWith('secrets.env.example'))) {
      const filled = fillExampleSecrets(parseEnvFile(readFileSync(f, 'utf8')));
      writeFileSync(f.replace(/\.example$/, ''), Object.entries(filled).map(([k, v]) => `${k}=${v}\n`).join(''));
    }
    const out = spawnSync('kubectl', ['kustomize', join(tmp, relative(K8S, dir))], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(out.status, 0, `kubectl kustomize ${relative(ROOT, dir)}: ${out.stderr}`);
    return parseYamlDocs(out.stdout, 'kubectl kustomize output').filter(isK8sObject);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

test('k8s: kubectl kustomize renders each overlay to the same objects (skipped without kubectl)', (t) => {
  for (const overlay of OVERLAYS) {
    const dir = join(K8S, 'overlays', overlay);
    const real = kubectlRender(dir);
    if (!real) {
      t.skip('kubectl is not installed');
      return;
    }
    const ours = rendered.find((v) => v.name === overlay)!.objects;
    // Generated names carry a content hash; references to them are rewritten accordingly.
    const generated = new Set(ours.filter((o) => o.kind === 'ConfigMap' || o.kind === 'Secret').map((o) => o.metadata.name));
    const unhash = (name: string): string => [...generated].find((g) => new RegExp(`^${g}-[a-z0-9]{10}$`).test(name)) ?? name;
    const key = (o: K8sObject): string => `${o.kind}/${unhash(o.metadata.name)}`;
    assert.deepEqual(real.map(key).sort(), ours.map(key).sort(), `${overlay}: same objects`);
    const cm = real.find((o) => o.kind === 'ConfigMap' && unhash(o.metadata.name) === 'drover-config')!;
    assert.equal(get(cm, 'data', 'DROVER_BROKER'), overlay);
    for (const component of DROVER) {
      const dep: K8sObject = real.find((o) => o.kind === 'Deployment' && o.metadata.name === `drover-${component}`)!;
      const c = podContainers(dep)[0]!;
      const env = containerEnv(c, real);
      const where = materialize(mkdtempSync(join(scratch, 'kubectl-')), mountedFiles(dep, c, real));
      assert.deepEqual(loadConfig(withHostFiles(env, (p) => where.get(p))).broker, overlay, `${overlay}/${component}: kubectl's rendering configures the broker too`);
      assert.deepEqual(
        { ...env, DROVER_ADMIN_TOKEN: '', DROVER_CALLBACK_SECRET: '' },
        { ...droverDeployment(ours, component).env, DROVER_ADMIN_TOKEN: '', DROVER_CALLBACK_SECRET: '' },
        `${overlay}/${component}: same environment`,
      );
      const mine = droverDeployment(ours, component).dep;
      assert.deepEqual(get(dep, 'spec', 'replicas'), get(mine, 'spec', 'replicas'), `${overlay}/${component}: replicas`);
      assert.deepEqual(
        { ...podSpec(dep), containers: undefined, volumes: undefined },
        { ...podSpec(mine), containers: undefined, volumes: undefined },
        `${overlay}/${component}: pod spec`,
      );
      // The same volumes (secret files above all), generated names without their hash.
      // (Order aside: kustomize puts a patch's new list items first.)
      const byName = (list: unknown, key: string): unknown[] => [...asArray(list, key)].sort((a, b) => String(get(a, key)).localeCompare(String(get(b, key))));
      const volumes = (o: K8sObject): unknown =>
        byName(JSON.parse(JSON.stringify(get(podSpec(o), 'volumes') ?? []).replace(/"(drover-[a-z-]+)-[a-z0-9]{10}"/g, (all, n: string) => (generated.has(n) ? `"${n}"` : all))), 'name');
      assert.deepEqual(volumes(dep), volumes(mine), `${overlay}/${component}: volumes`);
      assert.deepEqual(byName(c.volumeMounts, 'mountPath'), byName(podContainers(mine)[0]!.volumeMounts, 'mountPath'), `${overlay}/${component}: volume mounts`);
    }
  }
});

test('k8s: manifests for Drover use the image the Dockerfile builds and the labels the selectors rely on', () => {
  for (const f of yamlFiles.filter((x) => x.startsWith(BASE))) {
    for (const d of parseYamlDocs(readFileSync(f, 'utf8'), f)) {
      if (!isK8sObject(d)) continue;
      const labels = d.metadata.labels ?? {};
      assert.equal(labels['app.kubernetes.io/part-of'], 'drover', `${d.kind}/${d.metadata.name}: part-of label`);
      for (const c of podContainers(d)) {
        if (isObj(c) && labels['app.kubernetes.io/name'] === 'drover') assert.equal(c.image, 'drover', `${d.metadata.name}: the image name the overlays replace`);
      }
    }
  }
});
