// The secrets of the deployment files, made real enough to test: the files a container finds under its secret and
// ConfigMap mounts (from the rendered Kubernetes objects, or written by compose's init-secrets script), Redis's
// ACL file as the shipped render-acl.sh writes it, a parser for it, and a private redis-server that loads it.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import type { TestContext } from 'node:test';
import type { DroverConfig } from '@drover/core';
import { DEFAULT_JOB_UIDS } from '@drover/runner';
import { ROOT, asArray, asObj, asString, dockerfileUsers, get, isObj, podSpec, type Container, type K8sObject } from './deploy.js';
import { freePort } from './processes.js';

export const ACL_DIR = join(ROOT, 'deploy/k8s/base/redis');
export const ACL_TEMPLATE = join(ACL_DIR, 'users.acl.in');
export const RENDER_ACL = join(ACL_DIR, 'render-acl.sh');
export const COMPOSE_INIT = join(ROOT, 'deploy/compose/init-secrets.sh');
/**
 * What the runner keeps of root, in docker-compose.yml and deploy/k8s alike (each file says why for each): switch
 * to the job's uid and group, give it its directory, signal its processes, write into and remove that directory.
 */
export const RUNNER_CAPABILITIES = ['SETUID', 'SETGID', 'CHOWN', 'KILL', 'DAC_OVERRIDE'];

/**
 * A shipped runner gives each job a uid of its own: no RUNNER_JOB_USER, job uids (RUNNER_JOB_UIDS or the default)
 * that hold no user of the image (root, node 1000, nobody, those the Dockerfile adds) and at least one per running
 * job, and a writable work directory, which is also the jobs' HOME.
 */
export function assertUidPerJob(config: Pick<DroverConfig, 'runner'>, writableMounts: string[]): void {
  assert.equal(config.runner.jobUser, undefined, 'RUNNER_JOB_USER unset: no user shared by all jobs');
  const { first, last } = config.runner.jobUids ?? DEFAULT_JOB_UIDS;
  for (const uid of [0, 1000, 65534, ...[...dockerfileUsers().values()].map((u) => u.uid)]) {
    assert.ok(uid < first || uid > last, `the job uids ${first}-${last} hold no user of the image (uid ${uid})`);
  }
  assert.ok(last - first + 1 >= config.runner.concurrency, 'a uid for every running job');
  const wd = config.runner.workDir;
  assert.ok(writableMounts.some((m) => wd === m || wd.startsWith(`${m}/`)), `the jobs' directories and HOME, under ${wd}, are writable`);
}

/** A temporary directory removed after the test. */
export function tempDir(t: TestContext, name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `drover-${name}-`));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

// ---------------------------------------------------------------------------------------------------------------
// Kubernetes: what a container's volumes put where

export interface MountedFile {
  content: string;
  /** The file's mode as the kubelet sets it (before fsGroup adds group read). */
  mode: number;
  /** Which Secret or ConfigMap it comes from. */
  source: { kind: 'Secret' | 'ConfigMap'; name: string; key: string };
}

/** Every file a container's Secret and ConfigMap volumes hold, by absolute path in the container. */
export function mountedFiles(workload: K8sObject, container: Container, objects: K8sObject[]): Map<string, MountedFile> {
  const volumes = asArray(podSpec(workload)?.volumes, 'volumes').map((v) => asObj(v, 'volume'));
  const claims = asArray(get(workload, 'spec', 'volumeClaimTemplates'), 'volumeClaimTemplates').map((c) => get(c, 'metadata', 'name'));
  const out = new Map<string, MountedFile>();
  for (const m of container.volumeMounts ?? []) {
    const vol = volumes.find((v) => v.name === m.name);
    if (!vol && claims.includes(m.name)) continue;
    if (!vol) throw new Error(`${container.name}: volumeMount ${m.name} has no volume`);
    const kind = isObj(vol.secret) ? 'Secret' : isObj(vol.configMap) ? 'ConfigMap' : undefined;
    if (!kind) continue;
    const spec = asObj(vol.secret ?? vol.configMap, 'volume source');
    const name = asString(spec.secretName ?? spec.name, 'volume source name');
    const obj = objects.find((o) => o.kind === kind && o.metadata.name === name);
    if (!obj) throw new Error(`${container.name}: volume ${m.name} refers to ${kind} ${name}, which is not rendered`);
    const data = asObj(obj.data ?? {}, `${kind} ${name} data`) as Record<string, string>;
    const decode = (v: string): string => (kind === 'Secret' ? Buffer.from(v, 'base64').toString('utf8') : v);
    const defaultMode = typeof spec.defaultMode === 'number' ? spec.defaultMode : 0o644;
    const items: Record<string, unknown>[] = spec.items === undefined ? Object.keys(data).map((key) => ({ key, path: key })) : asArray(spec.items, 'items').map((i) => asObj(i, 'item'));
    for (const item of items) {
      const key = asString(item.key, 'item key');
      if (!(key in data)) throw new Error(`${container.name}: volume ${m.name} wants key ${key}, which ${kind} ${name} does not have`);
      const mode = typeof item.mode === 'number' ? item.mode : defaultMode;
      out.set(posix.join(m.mountPath, asString(item.path, 'item path')), { content: decode(data[key]!), mode, source: { kind, name, key } });
    }
  }
  return out;
}

/** Writes container files below a host directory; returns where each container path landed. */
export function materialize(dir: string, files: Map<string, { content: string }>): Map<string, string> {
  const where = new Map<string, string>();
  for (const [path, f] of files) {
    const host = join(dir, path);
    mkdirSync(dirname(host), { recursive: true });
    writeFileSync(host, f.content, { mode: 0o600 });
    where.set(path, host);
  }
  return where;
}

/**
 * The environment with each `*_FILE` value pointing at the host copy of that container file, so loadConfig reads
 * what the container would. A `*_FILE` naming a path no mount provides throws: the container could not start.
 */
export function withHostFiles(env: Record<string, string>, where: (containerPath: string) => string | undefined): Record<string, string> {
  const out = { ...env };
  for (const [k, v] of Object.entries(env)) {
    if (!k.endsWith('_FILE') || k === 'DROVER_TOKENS_FILE' || k === 'DROVER_POLICY_FILE') continue;
    const host = where(v);
    if (!host) throw new Error(`${k}=${v}: no secret mount provides this file`);
    out[k] = host;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// docker-compose: the init-secrets service, run for real

/** `<volume>:<path>[:ro]` entries of a compose service, as pairs. */
export function composeVolumeMounts(service: Record<string, unknown>): { volume: string; path: string; readOnly: boolean }[] {
  return asArray(service.volumes, 'volumes').map((raw) => {
    const [volume = '', path = '', opts = ''] = asString(raw, 'volume').split(':');
    return { volume, path, readOnly: opts.split(',').includes('ro') };
  });
}

/**
 * Runs deploy/compose/init-secrets.sh as compose would, with `env`, each of its `/out/...` volume mounts a directory
 * below `dir`. Returns the exit status, stderr, and where each named volume's content is. As root, it runs with the
 * service's capabilities (`cap_add`) alone, as in its container; without root, PATH must bring a chown that does
 * nothing.
 */
export function runComposeInit(dir: string, init: Record<string, unknown>, env: Record<string, string>): { status: number | null; stderr: string; volumes: Map<string, string> } {
  const out = join(dir, 'out');
  const volumes = new Map<string, string>();
  for (const m of composeVolumeMounts(init)) {
    if (!m.path.startsWith('/out/')) continue;
    const host = join(out, m.path.slice('/out/'.length));
    mkdirSync(host, { recursive: true });
    volumes.set(m.volume, host);
  }
  const caps = (asArray(init.cap_add, 'cap_add') as string[]).map((c) => `+${c.toLowerCase()}`);
  const argv = process.getuid?.() === 0
    ? ['setpriv', '--no-new-privs', '--inh-caps=-all', `--bounding-set=-all${caps.length ? `,${caps.join(',')}` : ''}`, '--', 'sh', COMPOSE_INIT, out, ACL_DIR]
    : ['sh', COMPOSE_INIT, out, ACL_DIR];
  const r = spawnSync(argv[0]!, argv.slice(1), { env: { PATH: process.env.PATH, ...env }, encoding: 'utf8' });
  return { status: r.status, stderr: r.stderr, volumes };
}

// ---------------------------------------------------------------------------------------------------------------
// Redis's ACL file

/** render-acl.sh over these URLs into `outDir`; the rendered text, or the script's complaint. */
export function renderAcl(outDir: string, urls: string[], prefix?: string): { status: number | null; stderr: string; text?: string } {
  const r = spawnSync('sh', [RENDER_ACL, ACL_TEMPLATE, outDir], {
    input: urls.map((u) => `${u}\n`).join(''),
    env: { PATH: process.env.PATH, ...(prefix ? { DROVER_PREFIX: prefix } : {}) },
    encoding: 'utf8',
  });
  if (r.status !== 0) return { status: r.status, stderr: r.stderr };
  return { status: 0, stderr: r.stderr, text: readFileSync(join(outDir, 'users.acl'), 'utf8') };
}

export interface AclUser {
  enabled: boolean;
  nopass: boolean;
  /** SHA-256 hex of each password (`#...`, or `>plain` hashed). */
  passwords: string[];
  keys: string[];
  channels: string[];
  /** Command rules in order (`+@all`, `-@admin`, `+info`, ...). */
  commands: string[];
}

/** Redis's ACL file syntax, as far as the rules go: one `user <name> <rule>...` a line, rules applied in order. */
export function parseAcl(text: string): Map<string, AclUser> {
  const users = new Map<string, AclUser>();
  const fresh = (): AclUser => ({ enabled: false, nopass: false, passwords: [], keys: [], channels: [], commands: [] });
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const [word, name, ...rules] = line.trim().split(/\s+/);
    if (word !== 'user' || !name) throw new Error(`not an ACL user line: ${line}`);
    if (users.has(name)) throw new Error(`user ${name} twice`);
    const u = fresh();
    for (const r of rules) {
      if (r === 'reset') Object.assign(u, fresh());
      else if (r === 'on' || r === 'off') u.enabled = r === 'on';
      else if (r === 'nopass' || r === 'resetpass') Object.assign(u, { nopass: r === 'nopass', passwords: [] });
      else if (/^#[0-9a-f]{64}$/.test(r)) u.passwords.push(r.slice(1));
      else if (r.startsWith('>')) u.passwords.push(sha256(r.slice(1)));
      else if (r === 'resetkeys') u.keys = [];
      else if (r === 'allkeys' || r.startsWith('~') || r.startsWith('%')) u.keys.push(r === 'allkeys' ? '~*' : r);
      else if (r === 'resetchannels') u.channels = [];
      else if (r === 'allchannels' || r.startsWith('&')) u.channels.push(r === 'allchannels' ? '&*' : r);
      else if (r === 'nocommands' || r === 'allcommands') u.commands.push(r === 'nocommands' ? '-@all' : '+@all');
      else if (/^[+-]/.test(r)) u.commands.push(r);
      else throw new Error(`user ${name}: rule ${r} is not understood here`);
    }
    users.set(name, u);
  }
  return users;
}

// ---------------------------------------------------------------------------------------------------------------
// A redis-server of the test's own, loading an ACL file

/** Resolves once something accepts TCP connections on the port (Redis then answers, if only with NOAUTH). */
async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** redis-server with `--aclfile`, AOF and noeviction as shipped; killed after the test. Returns its port. */
export async function startAclRedis(t: TestContext, aclFile: string, dataDir: string): Promise<number> {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--bind', '127.0.0.1', '--port', String(port), '--dir', dataDir, '--aclfile', aclFile, '--appendonly', 'yes', '--appendfsync', 'everysec', '--maxmemory-policy', 'noeviction', '--save', ''],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  for (let i = 0; !(await listening(port)); i++) {
    if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode} (is ${aclFile} a valid ACL file?)`);
    if (i > 200) throw new Error('redis-server did not start listening');
    await new Promise((r) => setTimeout(r, 25));
  }
  return port;
}
