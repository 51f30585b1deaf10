// Redis Cluster as shipped: docker-compose.cluster.yml (six nodes, a one-shot that creates the cluster) and
// deploy/k8s/overlays/redis-cluster (the single Redis as a six-pod StatefulSet, a Job that creates the cluster).
// Read the way compose and kustomize would, checked against Drover's own configuration: every service's REDIS_URL,
// as init-secrets.sh writes it or as the overlay's secret example gives it, is accepted by loadConfig and names the
// six nodes. Then, for real on loopback: init-secrets' output loaded by six redis-servers started with the nodes'
// own commands, the shipped create script run against them (twice: the second run does nothing), replicas following
// their primaries under ACLs, and each service logging in to the cluster as its own user.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { connectRedis, createRedis, loadConfig, parseRedisTarget, REDIS_TUNING, type DroverConfig } from '@drover/core';
import {
  ROOT, asArray, asString, composeEnv, containerEnv, dummySecret, fillExampleSecrets, get, isK8sObject, loadCompose, parseEnvFile, parseYamlDocs, readText,
  renderKustomize, selectorMatches, podLabels,
  type ComposeModel, type Container, type K8sObject, type Obj,
} from './helpers/deploy.js';
import { composeVolumeMounts, materialize, mountedFiles, parseAcl, runComposeInit, sha256, withHostFiles } from './helpers/deploy-secrets.js';
import { freePort } from './helpers/processes.js';

const BASE = 'docker-compose.yml';
const CLUSTER = 'docker-compose.cluster.yml';
const OPTIONAL = ['docker-compose.rabbitmq.yml', 'docker-compose.archive.yml'];
const INIT = 'init-secrets';
const CREATE = 'redis-cluster-init';
const DROVER_SERVICES = ['api', 'scheduler', 'runner'] as const;
const NODE_SERVICES = ['redis', 'redis-2', 'redis-3', 'redis-4', 'redis-5', 'redis-6'];
const OVERLAY = join(ROOT, 'deploy/k8s/overlays/redis-cluster');
const IS_ROOT = process.getuid?.() === 0;

const scratch = mkdtempSync(join(tmpdir(), 'drover-cluster-deploy-'));
chmodSync(scratch, 0o711);
after(() => rmSync(scratch, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------------------------
// Reading the files

/** The environment `.env` would give compose: the example with its secrets filled in. */
function exampleEnv(): Record<string, string> {
  const values = parseEnvFile(readText('deploy/compose.env.example'));
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v === '' ? dummySecret(k) : v]));
}

/** Without root, a chown that does nothing (the files are then the caller's, enough to read them). */
function initPath(): string {
  if (IS_ROOT) return process.env.PATH ?? '';
  const shim = join(scratch, 'bin');
  mkdirSync(shim, { recursive: true });
  writeFileSync(join(shim, 'chown'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  return `${shim}:${process.env.PATH ?? ''}`;
}

/** init-secrets.sh run for real, as compose would with these files; where each volume's content landed. */
function runInit(model: ComposeModel, env: Record<string, string> = {}): Map<string, string> {
  const dir = mkdtempSync(join(scratch, 'init-'));
  chmodSync(dir, 0o711);
  const r = runComposeInit(dir, model.services[INIT]!, { ...composeEnv(model.services[INIT]!), ...env, PATH: initPath() });
  assert.equal(r.status, 0, `init-secrets.sh failed: ${r.stderr}`);
  return r.volumes;
}

/** loadConfig over a compose service's environment, each *_FILE read from the volume init-secrets wrote. */
function composeServiceConfig(model: ComposeModel, volumes: Map<string, string>, service: string): DroverConfig {
  const mounts = composeVolumeMounts(model.services[service]!);
  return loadConfig(withHostFiles(composeEnv(model.services[service]!), (path) => {
    const m = mounts.find((x) => path.startsWith(`${x.path}/`));
    const host = m && volumes.get(m.volume);
    return host ? join(host, path.slice(m.path.length + 1)) : undefined;
  }));
}

/** `--name value` of a redis-server command line (the last one wins, as in Redis). */
function option(args: string[], name: string): string | undefined {
  let value: string | undefined;
  args.forEach((a, i) => {
    if (a === `--${name}`) value = args[i + 1];
  });
  return value;
}

/** A REDIS_URL that must be a cluster one: its nodes as host:port, user and password. */
function clusterTarget(url: string, what: string): { nodes: string[]; username?: string; password?: string } {
  const target = parseRedisTarget(url);
  assert.ok(!(target instanceof Error), `${what}: ${target instanceof Error ? target.message : ''}`);
  assert.equal(target.kind, 'cluster', `${what}: REDIS_URL is a cluster one (redis+cluster://)`);
  if (target.kind !== 'cluster') throw new Error('unreachable');
  return { nodes: target.nodes.map((n) => `${n.host}:${n.port}`), username: target.username, password: target.password };
}

/** What every node runs with: the single Redis's durability settings, cluster mode, the ACL file. */
function assertNodeArgs(args: string[], what: string): void {
  assert.equal(args[0], 'redis-server', `${what}: runs redis-server`);
  assert.equal(option(args, 'cluster-enabled'), 'yes', `${what}: cluster-enabled yes`);
  assert.equal(option(args, 'appendonly'), 'yes', `${what}: appendonly yes`);
  assert.equal(option(args, 'appendfsync'), 'everysec', `${what}: appendfsync everysec`);
  assert.equal(option(args, 'maxmemory-policy'), 'noeviction', `${what}: noeviction`);
  for (const [k, v] of Object.entries(REDIS_TUNING)) assert.equal(option(args, k), v, `${what}: ${k} ${v} (REDIS_TUNING)`);
  // Bounds what a failover can lose to about a second of acknowledged writes (docs/store.md, Failover).
  assert.equal(option(args, 'min-replicas-to-write'), '1', `${what}: min-replicas-to-write 1`);
  assert.equal(option(args, 'min-replicas-max-lag'), '1', `${what}: min-replicas-max-lag 1`);
  assert.equal(option(args, 'cluster-preferred-endpoint-type'), 'hostname', `${what}: clients get the announced name`);
  assert.ok(option(args, 'aclfile'), `${what}: loads the ACL file`);
  assert.match(args[1] ?? '', /\/replication\.conf$/, `${what}: replication.conf (masteruser/masterauth) is its config file`);
}

/** The create script names the node list and creates with one replica per primary, unless cluster_state:ok. */
function assertCreateScript(script: string, what: string): void {
  assert.match(script, /redis-cli [^\n]*--cluster create \$\(echo "\$CLUSTER_NODES" \| tr ',' ' '\) --cluster-replicas 1 --cluster-yes/, `${what}: creates from the node list, one replica each`);
  assert.match(script, /grep -q '\^cluster_state:ok'[^\n]*\n[^\n]*\n\s*exit 0/, `${what}: nothing to do once cluster_state:ok`);
  assert.match(script, /--user drover-cluster-admin/, `${what}: as the cluster admin user`);
}

// ---------------------------------------------------------------------------------------------------------------
// docker-compose

const composeVariants = [[BASE, CLUSTER], ...OPTIONAL.map((o) => [BASE, o, CLUSTER]), [BASE, ...OPTIONAL, CLUSTER]];

test('compose cluster: six nodes, each in cluster mode with AOF, noeviction, the shared ACL file and its own data volume', () => {
  const model = loadCompose([BASE, CLUSTER], exampleEnv());
  const nodes = Object.entries(model.services).filter(([, s]) => (asArray(s.command, 'command') as string[]).includes('--cluster-enabled'));
  assert.deepEqual(nodes.map(([n]) => n).sort(), [...NODE_SERVICES].sort(), 'six nodes');
  const dataVolumes = new Set<string>();
  for (const [name, svc] of nodes) {
    const args = asArray(svc.command, 'command') as string[];
    assertNodeArgs(args, name);
    assert.equal(svc.image, 'redis:7.4', `${name}: the image of the single Redis`);
    assert.equal(option(args, 'cluster-announce-hostname'), name, `${name}: announces its service name`);
    const mounts = composeVolumeMounts(svc);
    const secrets = mounts.find((m) => m.volume === 'redis-secrets');
    assert.ok(secrets?.readOnly, `${name}: the redis-secrets volume, read-only`);
    for (const path of [option(args, 'aclfile')!, args[1]!]) assert.ok(path.startsWith(`${secrets.path}/`), `${name}: ${path} is on the redis-secrets volume`);
    assert.equal(option(args, 'aclfile'), '/run/secrets/redis/users.acl', `${name}: the same ACL file as the single Redis`);
    const data = mounts.filter((m) => m.path === '/data').map((m) => m.volume);
    assert.equal(data.length, 1, `${name}: one data volume`);
    assert.ok(data[0]! in model.volumes, `${name}: ${data[0]} is declared`);
    dataVolumes.add(data[0]!);
    assert.equal(svc.user, '999:999', `${name}: as the redis user`);
    assert.equal(svc.read_only, true, `${name}: read-only root filesystem`);
    assert.deepEqual(svc.cap_drop, ['ALL'], `${name}: no capabilities`);
    assert.match(JSON.stringify(get(svc, 'healthcheck', 'test')), /drover-healthcheck ping/, `${name}: the PING-only probe`);
    assert.equal(get(svc, 'depends_on', INIT, 'condition'), 'service_completed_successfully', `${name}: starts once its ACL file is written`);
  }
  assert.equal(dataVolumes.size, 6, 'every node keeps its own data');
});

test('compose cluster: the create step names every node, one replica each, runs after all six are healthy, and Drover waits for it', () => {
  for (const files of composeVariants) {
    const model = loadCompose(files, exampleEnv());
    const create = model.services[CREATE];
    assert.ok(create, `${files.join(' + ')}: ${CREATE} exists`);
    const entrypoint = asArray(create.entrypoint, 'entrypoint') as string[];
    assert.deepEqual(entrypoint.slice(0, 2), ['sh', '-c']);
    assertCreateScript(entrypoint[2]!, CREATE);
    const list = composeEnv(create).CLUSTER_NODES!;
    assert.deepEqual(list.split(','), NODE_SERVICES.map((n) => `${n}:6379`), 'the create step names every node');
    assert.equal(composeEnv(model.services[INIT]!).CLUSTER_NODES, list, 'init-secrets writes the same nodes into each REDIS_URL');
    for (const n of NODE_SERVICES) assert.equal(get(create, 'depends_on', n, 'condition'), 'service_healthy', `${CREATE} waits for ${n}`);
    assert.equal(create.restart, 'no', 'a one-shot');
    assert.equal(create.user, '999:999');
    assert.ok(composeVolumeMounts(create).some((m) => m.volume === 'redis-secrets' && m.readOnly), 'reads its password from redis-secrets');
    for (const s of DROVER_SERVICES) {
      assert.equal(get(model.services[s], 'depends_on', CREATE, 'condition'), 'service_completed_successfully', `${s} waits for the cluster`);
      assert.equal(get(model.services[s], 'depends_on', 'redis', 'condition'), 'service_healthy', `${s} still waits for Redis`);
    }
  }
});

test('compose cluster: every Drover service\'s REDIS_URL, as init-secrets writes it, is a cluster URL loadConfig accepts, with its own user', () => {
  const env = exampleEnv();
  for (const files of composeVariants) {
    const model = loadCompose(files, env);
    const volumes = runInit(model);
    for (const s of DROVER_SERVICES) {
      const config = composeServiceConfig(model, volumes, s);
      const target = clusterTarget(config.redisUrl, `${files.join(' + ')}/${s}`);
      assert.deepEqual(target.nodes, NODE_SERVICES.map((n) => `${n}:6379`), `${s}: the six nodes`);
      for (const node of target.nodes) assert.ok(model.services[node.split(':')[0]!], `${s}: ${node} is a service`);
      assert.equal(target.username, `drover-${s}`, `${s}: its own Redis user`);
      assert.equal(target.password, env[`REDIS_${s.toUpperCase()}_PASSWORD`], `${s}: its password from .env`);
    }
  }
  // Without the override the script writes what it always did: one Redis, no cluster users.
  const single = loadCompose([BASE], env);
  const volumes = runInit(single);
  assert.equal(composeServiceConfig(single, volumes, 'api').redisUrl, `redis://drover-api:${env.REDIS_API_PASSWORD}@redis:6379`);
  const users = parseAcl(readFileSync(join(volumes.get('redis-secrets')!, 'users.acl'), 'utf8'));
  assert.deepEqual([...users.keys()].sort(), ['default', 'drover-api', 'drover-healthcheck', 'drover-runner', 'drover-scheduler']);
  assert.throws(() => readFileSync(join(volumes.get('redis-secrets')!, 'replication.conf')), /ENOENT/);
});

test('compose cluster: the ACL file adds a replication user (PSYNC, REPLCONF, PING) and a cluster admin; replication.conf logs replicas in', () => {
  const model = loadCompose([BASE, CLUSTER], exampleEnv());
  const volumes = runInit(model);
  const redisDir = volumes.get('redis-secrets')!;
  const { users, replica, admin, conf } = clusterSecrets(redisDir);
  assert.deepEqual([...users.keys()].sort(), ['default', 'drover-api', 'drover-cluster-admin', 'drover-healthcheck', 'drover-replica', 'drover-runner', 'drover-scheduler']);
  assert.equal(users.get('default')!.enabled, false, 'default stays off');
  assertClusterUsers(users, replica, admin, conf);
  // Run again (every `up`): the generated passwords are kept, so running nodes keep working.
  const rerun = runComposeInit(join(redisDir, '../..'), model.services[INIT]!, { ...composeEnv(model.services[INIT]!), PATH: initPath() });
  assert.equal(rerun.status, 0, rerun.stderr);
  const again = clusterSecrets(redisDir);
  assert.equal(again.replica, replica);
  assert.equal(again.admin, admin);
  assertClusterUsers(again.users, replica, admin, again.conf);
});

test('compose cluster: init-secrets.sh refuses a node list that is not host:port,...', (t) => {
  const model = loadCompose([BASE, CLUSTER], exampleEnv());
  for (const bad of ['redis', 'redis:6379,', 'redis:6379,,redis-2:6379', 'redis:port', 'red is:6379', ':6379', 'a:1:2']) {
    const dir = mkdtempSync(join(scratch, 'bad-'));
    const r = runComposeInit(dir, model.services[INIT]!, { ...composeEnv(model.services[INIT]!), CLUSTER_NODES: bad, PATH: initPath() });
    assert.notEqual(r.status, 0, `${bad}: refused`);
    assert.match(r.stderr, /CLUSTER_NODES/, `${bad}: names the variable`);
  }
  t.diagnostic('each refusal names CLUSTER_NODES');
});

function clusterSecrets(redisDir: string): { users: ReturnType<typeof parseAcl>; replica: string; admin: string; conf: string } {
  return {
    users: parseAcl(readFileSync(join(redisDir, 'users.acl'), 'utf8')),
    replica: readFileSync(join(redisDir, 'replica-password'), 'utf8'),
    admin: readFileSync(join(redisDir, 'cluster-admin-password'), 'utf8'),
    conf: readFileSync(join(redisDir, 'replication.conf'), 'utf8'),
  };
}

function assertClusterUsers(users: ReturnType<typeof parseAcl>, replica: string, admin: string, conf: string): void {
  assert.match(replica, /^[0-9a-f]{64}$/, 'a generated replica password');
  assert.match(admin, /^[0-9a-f]{64}$/, 'a generated admin password');
  assert.notEqual(replica, admin);
  const r = users.get('drover-replica')!;
  assert.deepEqual(r.commands, ['+psync', '+replconf', '+ping'], 'the replica user: what a replica sends its primary');
  assert.deepEqual(r.keys, [], 'and no keys');
  assert.deepEqual(r.passwords, [sha256(replica)]);
  const a = users.get('drover-cluster-admin')!;
  assert.deepEqual(a.commands, ['+cluster', '+info', '+ping']);
  assert.deepEqual(a.keys, [], 'the admin reads no data');
  assert.deepEqual(a.passwords, [sha256(admin)]);
  assert.equal(conf, `masteruser drover-replica\nmasterauth ${replica}\n`);
}

// ---------------------------------------------------------------------------------------------------------------
// For real: six local redis-servers with the nodes' own commands, the create script, the services' users

interface LocalNode {
  port: number;
  child: ChildProcess;
}

/**
 * Six redis-servers on loopback, each with a node's own arguments (`args(i)`: the command with its container paths
 * and variables filled in), then its own ports, data directory and cluster file, and 127.0.0.1 as the name it
 * announces (later arguments win in Redis).
 */
async function startNodes(t: TestContext, args: (i: number) => string[]): Promise<LocalNode[]> {
  const nodes: LocalNode[] = [];
  for (let i = 0; i < 6; i++) {
    const a = args(i);
    assert.equal(a[0], 'redis-server');
    const port = await freePort();
    const local = [
      ...a.slice(1), '--bind', '127.0.0.1', '--port', String(port), '--cluster-port', String(await freePort()),
      '--dir', mkdtempSync(join(scratch, `node-${i}-`)), '--cluster-config-file', 'nodes.conf', '--cluster-announce-hostname', '127.0.0.1', '--save', '',
    ];
    const child = spawn('redis-server', local, { stdio: ['ignore', 'ignore', 'inherit'] });
    t.after(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    nodes.push({ port, child });
  }
  return nodes;
}

function cli(port: number, password: string, ...args: string[]): string {
  return spawnSync('redis-cli', ['--no-auth-warning', '--user', 'drover-cluster-admin', '-p', String(port), ...args], { env: { ...process.env, REDISCLI_AUTH: password }, encoding: 'utf8' }).stdout;
}

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A create script as its container runs it: container paths mapped, CLUSTER_NODES the loopback nodes. */
function runScript(script: string, mapPath: (text: string) => string, nodes: LocalNode[]): { status: number | null; stdout: string; stderr: string } {
  const list = nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
  return spawnSync('sh', ['-c', mapPath(script)], { env: { PATH: process.env.PATH, CLUSTER_NODES: list }, encoding: 'utf8', timeout: 90_000 });
}

/**
 * The shipped create script builds the cluster (three primaries, each replica's link up: it logged in to its
 * primary as drover-replica), a second run does nothing, and each service's URL (its hosts swapped for the
 * loopback ones) logs in as the service's own user, limited to Drover's keys.
 */
async function assertLiveCluster(t: TestContext, nodes: LocalNode[], admin: string, create: () => ReturnType<typeof runScript>, urls: Record<string, string>): Promise<void> {
  for (const n of nodes) await until(`node ${n.port} answers`, () => cli(n.port, admin, 'ping').trim() === 'PONG');
  const first = create();
  assert.equal(first.status, 0, `${first.stdout}\n${first.stderr}`);
  assert.match(first.stdout, /cluster_state:ok/);
  assert.match(cli(nodes[0]!.port, admin, 'cluster', 'info'), /cluster_state:ok/);
  const second = create();
  assert.equal(second.status, 0, second.stderr);
  assert.match(second.stdout, /nothing to do/, 'the second run leaves the cluster alone');

  const roles = nodes.map((n) => /role:(\w+)/.exec(cli(n.port, admin, 'info', 'replication'))?.[1]);
  assert.equal(roles.filter((r) => r === 'master').length, 3, 'three primaries');
  assert.equal(roles.filter((r) => r === 'slave').length, 3, 'three replicas');
  for (const n of nodes.filter((_, i) => roles[i] === 'slave')) {
    await until(`replica ${n.port} in sync`, () => /master_link_status:up/.test(cli(n.port, admin, 'info', 'replication')));
  }

  const list = nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
  for (const [s, url] of Object.entries(urls)) {
    const client = createRedis(url.replace(/@.*$/, `@${list}`), 'producer');
    t.after(() => client.disconnect());
    await connectRedis(client, 10_000);
    assert.equal(await client.call('ACL', 'WHOAMI'), `drover-${s}`);
    assert.equal(await client.set(`{drover}:deploy-${s}`, s), 'OK');
    assert.equal(await client.get(`{drover}:deploy-${s}`), s);
    await assert.rejects(client.set('other-app:x', '1'), /NOPERM|no permissions/i, `${s}: Drover's keys only, on a cluster too`);
  }
}

test('compose cluster, live: the nodes load init-secrets\' files, the create step builds the cluster once, replicas follow under ACLs, each service logs in', async (t) => {
  const model = loadCompose([BASE, CLUSTER], exampleEnv());
  const volumes = runInit(model);
  const secretsDir = volumes.get('redis-secrets')!;
  const mapPath = (text: string): string => text.replaceAll('/run/secrets/redis/', `${secretsDir}/`);
  const nodes = await startNodes(t, (i) => (asArray(model.services[NODE_SERVICES[i]!]!.command, 'command') as string[]).map(mapPath));
  const script = (asArray(model.services[CREATE]!.entrypoint, 'entrypoint') as string[])[2]!;
  const urls = Object.fromEntries(DROVER_SERVICES.map((s) => [s, composeServiceConfig(model, volumes, s).redisUrl]));
  await assertLiveCluster(t, nodes, readFileSync(join(secretsDir, 'cluster-admin-password'), 'utf8'), () => runScript(script, mapPath, nodes), urls);
});

// ---------------------------------------------------------------------------------------------------------------
// Kubernetes: overlays/redis-cluster

function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(o, `${kind}/${name} is rendered`);
  return o;
}

function container(o: K8sObject, name: string): Container {
  const spec = get(o, 'spec', 'template', 'spec') as Obj;
  const all = [...asArray(spec.initContainers, 'initContainers'), ...asArray(spec.containers, 'containers')] as Container[];
  const c = all.find((x) => x.name === name);
  assert.ok(c, `${o.metadata.name} has the container ${name}`);
  return c;
}

/** The six pods' names under the headless Service, as the Job and the URLs must name them. */
function podAddresses(objects: K8sObject[]): string[] {
  const sts = find(objects, 'StatefulSet', 'drover-redis');
  const replicas = Number(get(sts, 'spec', 'replicas'));
  const service = asString(get(sts, 'spec', 'serviceName'), 'serviceName');
  return Array.from({ length: replicas }, (_, i) => `drover-redis-${i}.${service}:6379`);
}

test('k8s redis-cluster: six nodes in cluster mode with AOF, noeviction and the ACL file, announcing their pod DNS names; a headless Service', () => {
  const objects = renderKustomize(OVERLAY);
  const sts = find(objects, 'StatefulSet', 'drover-redis');
  assert.equal(get(sts, 'spec', 'replicas'), 6, 'six nodes');
  assert.equal(sts.metadata.namespace, 'drover');
  const redis = container(sts, 'redis');
  const args = redis.args!;
  assertNodeArgs(args, 'drover-redis');
  assert.equal(option(args, 'aclfile'), '/run/redis/users.acl');
  assert.equal(option(args, 'cluster-config-file'), '/data/nodes.conf', 'cluster state on the pod\'s volume');
  assert.ok(redis.volumeMounts?.some((m) => m.name === 'data' && m.mountPath === '/data'));
  assert.equal(option(args, 'cluster-announce-hostname'), '$(POD_NAME).drover-redis.$(POD_NAMESPACE).svc', 'announces a name every pod resolves');
  const fieldRef = (n: string): unknown => get(redis.env?.find((e) => e.name === n), 'valueFrom', 'fieldRef', 'fieldPath');
  assert.equal(fieldRef('POD_NAME'), 'metadata.name');
  assert.equal(fieldRef('POD_NAMESPACE'), 'metadata.namespace');
  assert.deepEqual(redis.ports?.map((p) => p.containerPort).sort((a, b) => a - b), [6379, 16379], 'client port and cluster bus');
  const service = find(objects, 'Service', 'drover-redis');
  assert.equal(get(service, 'spec', 'clusterIP'), 'None', 'headless: each pod has its own DNS name');
  assert.equal(get(sts, 'spec', 'serviceName'), 'drover-redis');
});

test('k8s redis-cluster: the Job names every pod and creates with one replica each, as the cluster admin', () => {
  const objects = renderKustomize(OVERLAY);
  const job = find(objects, 'Job', 'drover-redis-cluster-create');
  assert.equal(job.metadata.namespace, 'drover');
  const c = container(job, 'create');
  const command = asArray(c.command, 'command') as string[];
  assert.deepEqual(command.slice(0, 2), ['sh', '-c']);
  assertCreateScript(command[2]!, 'the Job');
  assert.deepEqual(c.env?.find((e) => e.name === 'CLUSTER_NODES')?.value?.split(','), podAddresses(objects), 'every pod of the StatefulSet');
  const files = mountedFiles(job, c, objects);
  assert.ok(files.has('/run/secrets/redis-cluster/cluster-admin-password'), 'its password as a file');
  assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
});

test('k8s redis-cluster: every service\'s REDIS_URL (the secret example) is a cluster URL loadConfig accepts, naming the six pods, with its own user', () => {
  const objects = renderKustomize(OVERLAY);
  const pods = podAddresses(objects);
  for (const s of DROVER_SERVICES) {
    const config = k8sServiceConfig(objects, s);
    const target = clusterTarget(config.redisUrl, s);
    assert.deepEqual(target.nodes, pods, `${s}: the six pods`);
    assert.equal(target.username, `drover-${s}`);
    assert.equal(target.password, dummySecret(`${s}-redis-url`), `${s}: the password of its URL in the base secret`);
    assert.equal(config.broker, 'bullmq');
  }
});

/** The StatefulSet's init container run for real: its mounts below a temporary root; returns its emptyDir /run/redis. */
function runUsersInit(t: TestContext, objects: K8sObject[]): { out: string; mapPath: (text: string) => string } {
  const sts = find(objects, 'StatefulSet', 'drover-redis');
  const users = container(sts, 'users');
  const dir = mkdtempSync(join(scratch, 'k8s-users-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const root = join(dir, 'fs');
  assert.ok(materialize(root, mountedFiles(sts, users, objects)).size > 0);
  mkdirSync(join(root, 'run/redis'), { recursive: true });
  const mapPath = (text: string): string => text.replace(/(\/run\/secrets\/|\/etc\/drover\/|\/run\/redis\b)/g, `${root}$1`);
  const r = spawnSync('sh', ['-c', mapPath((asArray(users.command, 'command') as string[])[2]!)], { env: { PATH: process.env.PATH }, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return { out: join(root, 'run/redis'), mapPath };
}

/** loadConfig over a Drover Deployment's environment, its *_FILE read from its mounts. */
function k8sServiceConfig(objects: K8sObject[], service: string): DroverConfig {
  const dep = find(objects, 'Deployment', `drover-${service}`);
  const c = container(dep, service);
  const where = materialize(mkdtempSync(join(scratch, `k8s-${service}-`)), mountedFiles(dep, c, objects));
  return loadConfig(withHostFiles(containerEnv(c, objects), (p) => where.get(p)));
}

test('k8s redis-cluster: the init container renders the ACL file from the cluster URLs, adds the replica and admin users, and writes replication.conf', (t) => {
  const { out } = runUsersInit(t, renderKustomize(OVERLAY));
  const acl = parseAcl(readFileSync(join(out, 'users.acl'), 'utf8'));
  for (const s of DROVER_SERVICES) assert.deepEqual(acl.get(`drover-${s}`)?.passwords, [sha256(dummySecret(`${s}-redis-url`))], `drover-${s}: the password of its cluster URL`);
  assertClusterUsers(acl, dummySecret('redis-replica-password'), dummySecret('redis-cluster-admin-password'), readFileSync(join(out, 'replication.conf'), 'utf8'));
  assert.equal(acl.get('default')?.enabled, false);
});

test('k8s redis-cluster, live: six nodes with the pod\'s arguments and the init container\'s files, the Job\'s script creates the cluster once, each service logs in', async (t) => {
  const objects = renderKustomize(OVERLAY);
  const { mapPath } = runUsersInit(t, objects);
  const args = container(find(objects, 'StatefulSet', 'drover-redis'), 'redis').args!;
  // What Kubernetes does with $(VAR) in args, for pod drover-redis-<i> in the namespace drover.
  const nodes = await startNodes(t, (i) => args.map((a) => mapPath(a).replace('$(POD_NAME)', `drover-redis-${i}`).replace('$(POD_NAMESPACE)', 'drover')));
  const job = find(objects, 'Job', 'drover-redis-cluster-create');
  const create = container(job, 'create');
  const adminDir = mkdtempSync(join(scratch, 'k8s-job-'));
  materialize(adminDir, mountedFiles(job, create, objects));
  const jobPaths = (text: string): string => text.replaceAll('/run/secrets/', `${adminDir}/run/secrets/`);
  const script = (asArray(create.command, 'command') as string[])[2]!;
  const urls = Object.fromEntries(DROVER_SERVICES.map((s) => [s, k8sServiceConfig(objects, s).redisUrl]));
  await assertLiveCluster(t, nodes, dummySecret('redis-cluster-admin-password'), () => runScript(script, jobPaths, nodes), urls);
});

test('k8s redis-cluster: the nodes reach each other on 6379 and the bus, the Job reaches them, runners still reach every node', () => {
  const objects = renderKustomize(OVERLAY);
  const policy = find(objects, 'NetworkPolicy', 'drover-redis');
  const nodeLabels = podLabels(find(objects, 'StatefulSet', 'drover-redis'));
  const jobLabels = podLabels(find(objects, 'Job', 'drover-redis-cluster-create'));
  const ingress = asArray(get(policy, 'spec', 'ingress'), 'ingress') as Obj[];
  const admits = (labels: Record<string, string>, port: number): boolean => ingress.some((rule) =>
    (asArray(rule.from, 'from') as Obj[]).some((f) => f.podSelector !== undefined && selectorMatches(f.podSelector, labels)) &&
    (asArray(rule.ports, 'ports') as Obj[]).some((p) => p.port === port));
  assert.ok(admits(nodeLabels, 16379), 'node to node on the cluster bus');
  assert.ok(admits(nodeLabels, 6379), 'replica to primary');
  assert.ok(admits(jobLabels, 6379), 'the Job to every node');
  for (const s of DROVER_SERVICES) assert.ok(admits(podLabels(find(objects, 'Deployment', `drover-${s}`)), 6379), `${s} to every node`);
  assert.ok(!admits(podLabels(find(objects, 'Deployment', 'drover-runner')), 16379), 'no Drover pod on the bus');
  const runner = find(objects, 'NetworkPolicy', 'drover-runner');
  const egress = asArray(get(runner, 'spec', 'egress'), 'egress') as Obj[];
  assert.ok(egress.some((rule) => (asArray(rule.to, 'to') as Obj[]).some((x) => x.podSelector !== undefined && selectorMatches(x.podSelector, nodeLabels))), 'runners reach every node');
});

/** `kubectl kustomize` of the overlay on a copy of deploy/k8s, every secrets.env filled from its example; undefined without kubectl. */
function kubectlRender(): K8sObject[] | undefined {
  const probe = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8', timeout: 10_000 });
  if (probe.error || probe.status !== 0) return undefined;
  const k8s = join(ROOT, 'deploy/k8s');
  const copy = mkdtempSync(join(scratch, 'kubectl-'));
  cpSync(k8s, copy, { recursive: true });
  const examples = (readdirSync(copy, { recursive: true }) as string[]).filter((f) => f.endsWith('secrets.env.example'));
  for (const f of examples) {
    const filled = fillExampleSecrets(parseEnvFile(readFileSync(join(copy, f), 'utf8')));
    writeFileSync(join(copy, f.replace(/\.example$/, '')), Object.entries(filled).map(([k, v]) => `${k}=${v}\n`).join(''));
  }
  const out = spawnSync('kubectl', ['kustomize', join(copy, relative(k8s, OVERLAY))], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(out.status, 0, `kubectl kustomize: ${out.stderr}`);
  return parseYamlDocs(out.stdout, 'kubectl kustomize output').filter(isK8sObject);
}

test('k8s redis-cluster: kubectl kustomize renders the same nodes, Job and cluster URLs (skipped without kubectl)', (t) => {
  const real = kubectlRender();
  if (!real) {
    t.skip('kubectl is not installed');
    return;
  }
  const ours = renderKustomize(OVERLAY);
  const unhash = (name: string): string => name.replace(/-[a-z0-9]{10}$/, '');
  const key = (o: K8sObject): string => `${o.kind}/${o.kind === 'ConfigMap' || o.kind === 'Secret' ? unhash(o.metadata.name) : o.metadata.name}`;
  assert.deepEqual(real.map(key).sort(), ours.map(key).sort(), 'the same objects');
  assert.deepEqual(container(find(real, 'StatefulSet', 'drover-redis'), 'redis').args, container(find(ours, 'StatefulSet', 'drover-redis'), 'redis').args);
  assert.equal(get(find(real, 'StatefulSet', 'drover-redis'), 'spec', 'replicas'), 6);
  assert.deepEqual(container(find(real, 'Job', 'drover-redis-cluster-create'), 'create').command, container(find(ours, 'Job', 'drover-redis-cluster-create'), 'create').command);
  for (const s of DROVER_SERVICES) {
    const dep = find(real, 'Deployment', `drover-${s}`);
    const c = container(dep, s);
    const where = materialize(mkdtempSync(join(scratch, `kubectl-${s}-`)), mountedFiles(dep, c, real));
    const config = loadConfig(withHostFiles(containerEnv(c, real), (p) => where.get(p)));
    assert.deepEqual(clusterTarget(config.redisUrl, `kubectl/${s}`).nodes, podAddresses(real), `${s}: kubectl's rendering names the six pods`);
  }
});
