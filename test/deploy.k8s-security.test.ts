// deploy/k8s against the promises about secrets and the network: each service reads only its own secrets, as files
// (never environment variables) that the runner's jobs cannot read; Redis renders its users from those same secrets
// in an init container (run here for real) and admits nobody without a password; the NetworkPolicies let runners
// reach only what the runner needs, unless the operator opts in; every pod fits the namespace's Pod Security level.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  ROOT, asArray, asObj, containerEnv, get, k8sVariants, podContainers, podLabels, podSpec, selectorMatches, type Container, type K8sObject, type K8sVariant,
} from './helpers/deploy.js';
import { materialize, mountedFiles, parseAcl, sha256 } from './helpers/deploy-secrets.js';

const DROVER = ['api', 'scheduler', 'runner'] as const;
/** Each service's keys of its Secrets (the file names it finds), by broker and archive. */
function expectedFiles(component: string, v: K8sVariant): string[] {
  const archive = v.objects.some((o) => o.metadata.name === 'drover-postgres');
  const own = { api: ['admin-token'], scheduler: ['callback-secret'], runner: [] as string[] }[component]!;
  return [
    ...['redis-url', 'env-key', ...own].map((f) => `/run/secrets/drover/${f}`),
    ...(v.broker === 'rabbitmq' ? ['/run/secrets/amqp/amqp-url'] : []),
    ...(archive && component !== 'runner' ? ['/run/secrets/archive/database-url'] : []),
  ].sort();
}
/** Variables that hold a secret themselves: a Drover container gets only their *_FILE form. */
const SECRET_VALUES = ['REDIS_URL', 'AMQP_URL', 'DATABASE_URL', 'DROVER_ADMIN_TOKEN', 'DROVER_CALLBACK_SECRET', 'DROVER_ENV_KEY'];
/** Capabilities Pod Security "baseline" lets a container add. */
const BASELINE_CAPS = ['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE', 'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT'];

const rendered = k8sVariants();
const scratch = mkdtempSync(join(tmpdir(), 'drover-k8s-security-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} is rendered`);
  return o;
}

function container(w: K8sObject, name: string): Container {
  const c = podContainers(w).find((x) => x.name === name);
  assert.ok(c, `${w.metadata.name} has a container ${name}`);
  return c;
}

function workloads(objects: K8sObject[]): K8sObject[] {
  return objects.filter((o) => ['Deployment', 'StatefulSet', 'DaemonSet'].includes(o.kind));
}

test('k8s: each Drover service gets only its own secrets, as files from a Secret volume; none as environment variables', () => {
  for (const v of rendered) {
    const values = new Set<string>();
    for (const s of v.objects.filter((o) => o.kind === 'Secret')) for (const x of Object.values(asObj(s.data ?? {}, 'data'))) values.add(Buffer.from(String(x), 'base64').toString('utf8'));
    for (const component of DROVER) {
      const dep = find(v.objects, 'Deployment', `drover-${component}`);
      const c = container(dep, component);
      for (const e of c.env ?? []) assert.equal(e.valueFrom?.secretKeyRef, undefined, `${v.name}/${component}: ${e.name} is not taken from a Secret into the environment`);
      for (const from of c.envFrom ?? []) assert.equal(from.secretRef, undefined, `${v.name}/${component}: no Secret as environment`);
      const env = containerEnv(c, v.objects);
      for (const k of SECRET_VALUES) assert.equal(env[k], undefined, `${v.name}/${component}: ${k} only as ${k}_FILE`);
      for (const [k, val] of Object.entries(env)) for (const secret of values) if (secret.length >= 16) assert.ok(!val.includes(secret), `${v.name}/${component}: ${k} holds a secret`);

      const files = mountedFiles(dep, c, v.objects);
      const secretFiles = [...files].filter(([, f]) => f.source.kind === 'Secret').map(([p]) => p).sort();
      assert.deepEqual(secretFiles, expectedFiles(component, v), `${v.name}/${component}: exactly its own secret files`);
      for (const [k, path] of Object.entries(env).filter(([key]) => key.endsWith('_FILE'))) assert.ok(files.has(path), `${v.name}/${component}: ${k}=${path} is a mounted file`);
      const redisUrl = new URL(files.get(env.REDIS_URL_FILE!)!.content);
      assert.equal(redisUrl.username, `drover-${component}`, `${v.name}/${component}: its own Redis user`);
      for (const m of c.volumeMounts ?? []) if (secretFiles.some((p) => p.startsWith(`${m.mountPath}/`))) assert.equal((m as { readOnly?: boolean }).readOnly, true, `${v.name}/${component}: ${m.mountPath} read-only`);

      // Who can read them: the runner's are root's alone (0400, no fsGroup), so its jobs cannot; the others' are
      // readable by their uid 1000 through the pod's fsGroup.
      const psc = asObj(podSpec(dep)!.securityContext, 'securityContext');
      for (const p of secretFiles) {
        const mode = files.get(p)!.mode;
        if (component === 'runner') assert.equal(mode, 0o400, `${v.name}/runner: ${p} is 0400`);
        else assert.ok(mode === 0o440 && psc.fsGroup === psc.runAsUser, `${v.name}/${component}: ${p} is 0440 for the pod's own group`);
      }
    }
    // The runner's files never hold what only others need.
    const runner = find(v.objects, 'Deployment', 'drover-runner');
    const runnerKeys = [...mountedFiles(runner, container(runner, 'runner'), v.objects).values()].map((f) => f.source.key);
    for (const k of ['admin-token', 'callback-secret', 'database-url', 'api-redis-url', 'scheduler-redis-url']) assert.ok(!runnerKeys.includes(k), `${v.name}: the runner does not get ${k}`);
  }
});

test('k8s: Redis\'s init container renders its users from the three services\' URLs; default is off, and each service\'s password opens its own user', () => {
  for (const v of rendered.filter((x) => x.name === x.broker)) {
    const redis = find(v.objects, 'StatefulSet', 'drover-redis');
    const init = container(redis, 'users');
    const server = container(redis, 'redis');
    // Run the init container's command here, its mounts as directories below a scratch root.
    const root = mkdtempSync(join(scratch, 'redis-'));
    const files = mountedFiles(redis, init, v.objects);
    materialize(root, files);
    for (const m of init.volumeMounts ?? []) mkdirSync(join(root, m.mountPath), { recursive: true });
    const cmd = asArray(init.command, 'command') as string[];
    assert.deepEqual(cmd.slice(0, 2), ['sh', '-c']);
    let script = cmd[2]!;
    for (const m of init.volumeMounts ?? []) script = script.split(m.mountPath).join(join(root, m.mountPath));
    const env = containerEnv(init, v.objects);
    const r = spawnSync('sh', ['-c', script], { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
    assert.equal(r.status, 0, `${v.name}: the init container's command: ${r.stderr}`);

    // Redis loads the file from the volume the init container wrote; it never sees the URLs themselves.
    const args = server.args ?? [];
    const aclPath = args[args.indexOf('--aclfile') + 1]!;
    const outMount = (init.volumeMounts ?? []).find((m) => aclPath.startsWith(`${m.mountPath}/`));
    const serverMount = (server.volumeMounts ?? []).find((m) => aclPath.startsWith(`${m.mountPath}/`));
    assert.ok(outMount && serverMount && outMount.name === serverMount.name, `${v.name}: --aclfile ${aclPath} is on the volume the init container fills`);
    const acl = parseAcl(readFileSync(join(root, aclPath), 'utf8'));
    assert.ok(!mountedFiles(redis, server, v.objects).size || [...mountedFiles(redis, server, v.objects).values()].every((f) => f.source.kind !== 'Secret'), `${v.name}: the Redis container mounts no Secret`);
    assert.equal(get(asArray(podSpec(redis)!.volumes, 'volumes').find((x) => get(x, 'name') === outMount.name), 'emptyDir', 'medium'), 'Memory', 'the ACL file stays in memory');

    assert.equal(acl.get('default')?.enabled, false, `${v.name}: default is off`);
    for (const component of DROVER) {
      const dep = find(v.objects, 'Deployment', `drover-${component}`);
      const c = container(dep, component);
      const url = new URL(mountedFiles(dep, c, v.objects).get(containerEnv(c, v.objects).REDIS_URL_FILE!)!.content);
      assert.deepEqual(acl.get(url.username)?.passwords, [sha256(url.password)], `${v.name}/${component}: its URL's password opens ${url.username}`);
      assert.deepEqual(acl.get(url.username)?.keys, ['~{drover}:*']);
    }
    // Probes log in as the PING-only user with the generated password.
    for (const probe of ['readinessProbe', 'livenessProbe']) {
      const text = (asArray(get(server, probe, 'exec', 'command'), probe) as string[]).join(' ');
      assert.match(text, /--user drover-healthcheck\b/, `${probe}: as drover-healthcheck`);
      const file = /cat ([^)"\s]+)/.exec(text)?.[1] ?? '';
      assert.deepEqual(acl.get('drover-healthcheck')?.passwords, [sha256(readFileSync(join(root, file), 'utf8'))], `${probe}: with the generated password`);
    }
  }
});

// ---------------------------------------------------------------------------------------------------------------
// NetworkPolicy, evaluated as the API defines it (all objects are in one namespace here)

type Peer = { workload: K8sObject } | { elsewhereInCluster: true } | { outside: true };

function policies(objects: K8sObject[], w: K8sObject, type: 'Ingress' | 'Egress'): K8sObject[] {
  return objects.filter(
    (o) => o.kind === 'NetworkPolicy' && selectorMatches(get(o, 'spec', 'podSelector'), podLabels(w)) && (asArray(get(o, 'spec', 'policyTypes'), 'policyTypes') as string[]).includes(type),
  );
}

function peerMatches(rulePeer: unknown, peer: Peer): boolean {
  const p = asObj(rulePeer, 'peer');
  if (p.ipBlock) return 'outside' in peer;
  if ('outside' in peer) return false;
  if (p.namespaceSelector !== undefined) {
    // namespaceSelector {} is every namespace; with a podSelector beside it, both must hold.
    if (Object.keys(asObj(p.namespaceSelector, 'namespaceSelector')).length > 0) throw new Error('only namespaceSelector {} is evaluated here');
    return p.podSelector === undefined || ('workload' in peer && selectorMatches(p.podSelector, podLabels(peer.workload)));
  }
  return 'workload' in peer && selectorMatches(p.podSelector, podLabels(peer.workload));
}

function portMatches(rulePorts: unknown, port: number, protocol: string): boolean {
  const ports = asArray(rulePorts, 'ports');
  return ports.length === 0 || ports.some((x) => get(x, 'port') === port && (get(x, 'protocol') ?? 'TCP') === protocol);
}

/** Whether `w` may open a connection to `to` on the port (no Egress policy selecting it: anything goes). */
function egressAllowed(objects: K8sObject[], w: K8sObject, to: Peer, port: number, protocol = 'TCP'): boolean {
  const ps = policies(objects, w, 'Egress');
  if (ps.length === 0) return true;
  return ps.some((p) => asArray(get(p, 'spec', 'egress'), 'egress').some((rule) => {
    const peers = asArray(get(rule, 'to'), 'to');
    return (peers.length === 0 || peers.some((x) => peerMatches(x, to))) && portMatches(get(rule, 'ports'), port, protocol);
  }));
}

/** Whether `from` may connect to `w` on the port (no Ingress policy selecting it: anything goes). */
function ingressAllowed(objects: K8sObject[], w: K8sObject, from: Peer, port: number, protocol = 'TCP'): boolean {
  const ps = policies(objects, w, 'Ingress');
  if (ps.length === 0) return true;
  return ps.some((p) => asArray(get(p, 'spec', 'ingress'), 'ingress').some((rule) => {
    const peers = asArray(get(rule, 'from'), 'from');
    return (peers.length === 0 || peers.some((x) => peerMatches(x, from))) && portMatches(get(rule, 'ports'), port, protocol);
  }));
}

test('k8s: runners reach Redis, RabbitMQ, DNS and in-cluster OTLP only, unless components/runner-egress opens their network; the scheduler still delivers webhooks', () => {
  for (const v of rendered) {
    const w = (name: string): K8sObject => workloads(v.objects).find((x) => x.metadata.name === name)!;
    const runner = w('drover-runner');
    const open = v.name.endsWith('runner-egress');
    const elsewhere: Peer = { elsewhereInCluster: true };
    const outside: Peer = { outside: true };
    assert.ok(egressAllowed(v.objects, runner, { workload: w('drover-redis') }, 6379), `${v.name}: runner -> Redis`);
    if (v.broker === 'rabbitmq') assert.ok(egressAllowed(v.objects, runner, { workload: w('drover-rabbitmq') }, 5672), `${v.name}: runner -> RabbitMQ`);
    for (const proto of ['UDP', 'TCP']) assert.ok(egressAllowed(v.objects, runner, outside, 53, proto), `${v.name}: runner -> DNS/${proto}`);
    for (const port of [4317, 4318]) assert.ok(egressAllowed(v.objects, runner, elsewhere, port), `${v.name}: runner -> OTLP ${port} in the cluster`);
    // What a job would go for.
    const jobTargets: [string, Peer, number][] = [
      ['the internet (HTTPS)', outside, 443],
      ['the cloud metadata service', outside, 80],
      ['OTLP outside the cluster', outside, 4318],
      ['the Drover API', { workload: w('drover-api') }, 8606],
      ['another pod\'s service', elsewhere, 8080],
      ['Redis on another port', { workload: w('drover-redis') }, 6380],
      ['the Kubernetes API', outside, 6443],
    ];
    for (const [what, peer, port] of jobTargets) assert.equal(egressAllowed(v.objects, runner, peer, port), open, `${v.name}: runner -> ${what}: ${open ? 'open (opted in)' : 'closed'}`);
    if (v.objects.some((o) => o.metadata.name === 'drover-postgres')) assert.equal(egressAllowed(v.objects, runner, { workload: w('drover-postgres') }, 5432), open, `${v.name}: runner -> PostgreSQL`);
    // Ingress: only the metrics port; nothing a job listens on.
    assert.ok(ingressAllowed(v.objects, runner, elsewhere, 9464), `${v.name}: Prometheus -> runner metrics`);
    assert.equal(ingressAllowed(v.objects, runner, elsewhere, 8080), false, `${v.name}: nothing else reaches a runner pod`);
    // The scheduler delivers webhooks and callbacks anywhere public; the API is reachable.
    assert.ok(egressAllowed(v.objects, w('drover-scheduler'), outside, 443), `${v.name}: scheduler -> webhooks`);
    assert.ok(ingressAllowed(v.objects, w('drover-api'), outside, 8606), `${v.name}: clients -> API`);
  }
});

test('k8s: Redis and RabbitMQ admit the three services only, PostgreSQL the API and scheduler only (the credential, not the network, keeps jobs out)', () => {
  for (const v of rendered) {
    const w = (name: string): K8sObject | undefined => workloads(v.objects).find((x) => x.metadata.name === name);
    const others: Peer[] = [{ elsewhereInCluster: true }, { outside: true }, ...workloads(v.objects).filter((x) => !x.metadata.name.match(/^drover-(api|scheduler|runner)$/)).map((x) => ({ workload: x }))];
    const services = DROVER.map((c) => ({ c, peer: { workload: w(`drover-${c}`)! } }));
    const checks: [string, number, string[]][] = [['drover-redis', 6379, [...DROVER]], ['drover-rabbitmq', 5672, [...DROVER]], ['drover-postgres', 5432, ['api', 'scheduler']]];
    for (const [name, port, allowed] of checks) {
      const target = w(name);
      if (!target) continue;
      assert.ok(policies(v.objects, target, 'Ingress').length > 0, `${v.name}: a policy guards ${name}`);
      for (const { c, peer } of services) assert.equal(ingressAllowed(v.objects, target, peer, port), allowed.includes(c), `${v.name}: ${c} -> ${name}:${port}`);
      for (const peer of others) if (!('workload' in peer && peer.workload === target)) assert.equal(ingressAllowed(v.objects, target, peer, port), false, `${v.name}: ${JSON.stringify('workload' in peer ? peer.workload.metadata.name : peer)} -> ${name}:${port}`);
    }
    // The policy over Redis says why runners are let in.
    const text = readFileSync(join(ROOT, 'deploy/k8s/base/redis.yaml'), 'utf8');
    assert.match(text, /jobs run inside those pods/, 'the Redis policy explains what keeps jobs out');
  }
});

test('k8s: the namespace enforces Pod Security baseline; the runner needs no more than baseline, every other pod would pass restricted', () => {
  for (const v of rendered) {
    const ns = v.objects.find((o) => o.kind === 'Namespace');
    assert.equal(ns?.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'baseline', `${v.name}: baseline is enforced`);
    for (const w of workloads(v.objects)) {
      const pod = podSpec(w)!;
      const psc = asObj(pod.securityContext ?? {}, 'securityContext');
      assert.ok(!pod.hostNetwork && !pod.hostPID && !pod.hostIPC, `${w.metadata.name}: no host namespaces`);
      for (const vol of asArray(pod.volumes, 'volumes')) assert.equal(get(vol, 'hostPath'), undefined, `${w.metadata.name}: no hostPath`);
      for (const c of podContainers(w)) {
        const csc = asObj(c.securityContext ?? {}, `${c.name} securityContext`);
        const added = asArray(get(csc, 'capabilities', 'add'), 'add') as string[];
        assert.equal(csc.privileged, undefined, `${w.metadata.name}/${c.name}: not privileged`);
        for (const cap of added) assert.ok(BASELINE_CAPS.includes(cap), `${w.metadata.name}/${c.name}: ${cap} is allowed by baseline`);
        assert.equal(csc.allowPrivilegeEscalation, false, `${w.metadata.name}/${c.name}: allowPrivilegeEscalation false`);
        assert.ok((asArray(get(csc, 'capabilities', 'drop'), 'drop') as string[]).includes('ALL'), `${w.metadata.name}/${c.name}: drops ALL`);
        assert.equal(get(psc, 'seccompProfile', 'type') ?? get(csc, 'seccompProfile', 'type'), 'RuntimeDefault', `${w.metadata.name}/${c.name}: seccomp`);
        if (w.metadata.name !== 'drover-runner') {
          assert.equal(csc.runAsNonRoot ?? psc.runAsNonRoot, true, `${w.metadata.name}/${c.name}: restricted-level runAsNonRoot`);
          assert.ok(added.every((cap) => cap === 'NET_BIND_SERVICE'), `${w.metadata.name}/${c.name}: restricted-level capabilities`);
        }
      }
    }
  }
});
