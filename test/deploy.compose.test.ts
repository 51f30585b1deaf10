// docker-compose.yml and its overrides, deploy/prometheus.yml, the Grafana provisioning and the Dockerfile,
// checked against Drover's own configuration (loadConfig) without Docker. The init-secrets service's script runs for
// real (into temporary directories standing in for its volumes), so each service's *_FILE variables are read from
// the files it would find.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, resolve } from 'node:path';
import { after, test } from 'node:test';
import { loadConfig, REDIS_TUNING } from '@drover/core';
import { DEFAULT_JOB_UIDS } from '@drover/runner';
import { DROVER_LIKE, ROOT, asArray, asObj, asString, composeEnv, dockerfileFinalStage, dockerfileUsers, dummySecret, get, interpolations, isObj, knownEnvNames, loadCompose, parseDuration, parseEnvFile, parseYaml, readText, type ComposeModel, type Obj, hostPort } from './helpers/deploy.js';
import { RUNNER_CAPABILITIES, assertUidPerJob, composeVolumeMounts, parseAcl, runComposeInit, sha256, withHostFiles } from './helpers/deploy-secrets.js';

const BASE = 'docker-compose.yml';
const RABBITMQ = 'docker-compose.rabbitmq.yml';
const ARCHIVE = 'docker-compose.archive.yml';
const COMPOSE_FILES = [BASE, RABBITMQ, ARCHIVE];
const ENV_EXAMPLE = 'deploy/compose.env.example';
const DROVER_SERVICES = ['api', 'scheduler', 'runner'] as const;
const INIT = 'init-secrets';
/** Secrets: only ever taken from the environment with compose's required-variable syntax, never defaulted. */
const SECRETS = [
  'DROVER_ADMIN_TOKEN', 'DROVER_CALLBACK_SECRET', 'DROVER_ENV_KEY', 'REDIS_API_PASSWORD', 'REDIS_SCHEDULER_PASSWORD', 'REDIS_RUNNER_PASSWORD',
  'GRAFANA_ADMIN_PASSWORD', 'RABBITMQ_PASSWORD', 'POSTGRES_PASSWORD',
];
/** Compose-only variables (substituted into the files, never passed to a Drover process) with a Drover-like name. */
const COMPOSE_ONLY = ['DROVER_IMAGE', 'REDIS_API_PASSWORD', 'REDIS_SCHEDULER_PASSWORD', 'REDIS_RUNNER_PASSWORD'];
/** Variables that hold a secret themselves: a Drover container gets only their *_FILE form. */
const SECRET_VALUES = ['REDIS_URL', 'AMQP_URL', 'DATABASE_URL', 'DROVER_ADMIN_TOKEN', 'DROVER_CALLBACK_SECRET', 'DROVER_ENV_KEY'];
/** Images that take a secret from their environment only; their containers run no jobs (comment in the file). */
const ENV_ONLY_SECRETS: Record<string, string[]> = { [INIT]: SECRETS, rabbitmq: ['RABBITMQ_DEFAULT_PASS'] };
const IS_ROOT = process.getuid?.() === 0;

/** The environment `.env` would give compose: every variable of the example, secrets filled in. */
function exampleEnv(): Record<string, string> {
  const values = parseEnvFile(readText(ENV_EXAMPLE));
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v === '' ? dummySecret(k) : v]));
}

const scratch = mkdtempSync(join(tmpdir(), 'drover-compose-'));
chmodSync(scratch, 0o711); // other users (the check below reads files as them) pass through
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Without root, a chown that does nothing: the files are then the caller's, which is enough to read them. */
function initPath(): string {
  if (IS_ROOT) return process.env.PATH ?? '';
  const shim = join(scratch, 'bin');
  if (!existsSync(join(shim, 'chown'))) {
    mkdirSync(shim, { recursive: true });
    writeFileSync(join(shim, 'chown'), '#!/bin/sh\nexit 0\n');
    chmodSync(join(shim, 'chown'), 0o755);
  }
  return `${shim}:${process.env.PATH ?? ''}`;
}

interface InitRun {
  volumes: Map<string, string>;
}
const initRuns = new Map<string, InitRun>();

/** init-secrets.sh run once per combination of files, as `docker compose up` would, with the example .env. */
function initRun(files: string[], env = exampleEnv()): InitRun {
  const key = files.join('+');
  const cached = initRuns.get(key);
  if (cached) return cached;
  const model = loadCompose(files, env);
  const dir = mkdtempSync(join(scratch, 'init-'));
  chmodSync(dir, 0o711);
  const r = runComposeInit(dir, model.services[INIT]!, { ...composeEnv(model.services[INIT]!), PATH: initPath() });
  assert.equal(r.status, 0, `init-secrets.sh failed: ${r.stderr}`);
  const run = { volumes: r.volumes };
  initRuns.set(key, run);
  return run;
}

/** What loadConfig makes of a service's environment, its *_FILE variables read from init-secrets' output. */
function serviceConfig(model: ComposeModel, service: string): ReturnType<typeof loadConfig> {
  return loadConfig(configEnv(filesOf.get(model)!, model, service));
}

/** A service's environment with each *_FILE pointing at what init-secrets wrote into the volume mounted there. */
function configEnv(files: string[], model: ComposeModel, service: string): Record<string, string> {
  const run = initRun(files);
  const mounts = composeVolumeMounts(model.services[service]!);
  return withHostFiles(droverEnv(model, service), (path) => {
    const m = mounts.find((x) => path.startsWith(`${x.path}/`));
    const host = m && run.volumes.get(m.volume);
    return host ? join(host, path.slice(m.path.length + 1)) : undefined;
  });
}

const variants: { name: string; files: string[]; broker: 'bullmq' | 'rabbitmq'; archive: boolean }[] = [
  { name: 'default', files: [BASE], broker: 'bullmq', archive: false },
  { name: 'rabbitmq', files: [BASE, RABBITMQ], broker: 'rabbitmq', archive: false },
  { name: 'archive', files: [BASE, ARCHIVE], broker: 'bullmq', archive: true },
  { name: 'rabbitmq + archive', files: [BASE, RABBITMQ, ARCHIVE], broker: 'rabbitmq', archive: true },
];

const filesOf = new WeakMap<ComposeModel, string[]>();

function load(files: string[]): ComposeModel {
  const model = loadCompose(files, exampleEnv());
  filesOf.set(model, files);
  return model;
}

function droverEnv(model: ComposeModel, service: string): Record<string, string> {
  const svc = model.services[service];
  assert.ok(svc, `service ${service} exists`);
  return composeEnv(svc);
}

/** host and port of a URL, with the scheme's default port. */
/** The port a service listens on inside the network (image defaults known for the dependencies used here). */
const DEPENDENCY_PORTS: Record<string, number[]> = { redis: [6379], rabbitmq: [5672, 15672, 15692], postgres: [5432], prometheus: [9090], grafana: [3000] };

/** `{ url }` a `node -e "fetch('...')"` healthcheck probes, or undefined. */
function healthcheckUrl(svc: Obj): string | undefined {
  const t = asArray(get(svc, 'healthcheck', 'test'), 'healthcheck.test') as string[];
  return /fetch\('([^']+)'\)/.exec(t.join(' '))?.[1];
}

test('compose: every file parses; the services are there; Drover services share one image built from the Dockerfile', () => {
  const model = load(COMPOSE_FILES);
  for (const s of ['redis', 'api', 'scheduler', 'runner', 'prometheus', 'grafana', 'rabbitmq', 'postgres']) assert.ok(model.services[s], `service ${s}`);
  const base = load([BASE]);
  assert.equal(base.services.rabbitmq, undefined, 'RabbitMQ only comes with its override');
  assert.equal(base.services.postgres, undefined, 'PostgreSQL only comes with its override');
  const images = new Set<string>();
  for (const name of DROVER_SERVICES) {
    const svc = base.services[name]!;
    assert.deepEqual(svc.command, [name], `${name} runs \`drover ${name}\``);
    assert.equal(get(svc, 'build', 'dockerfile'), 'Dockerfile', `${name} builds the repository's Dockerfile`);
    assert.equal(resolve(ROOT, asString(get(svc, 'build', 'context'), 'build.context')), ROOT);
    images.add(asString(svc.image, `${name}.image`));
  }
  assert.equal(images.size, 1, 'one image for the three services');
  const cli = readText('cli/src/main.ts');
  for (const name of DROVER_SERVICES) assert.match(cli, new RegExp(`\\b${name}: async`), `the CLI has a ${name} command`);
});

test('compose: secrets come from the environment with required-variable syntax, every variable is in the example .env', () => {
  const documented = new Set(Object.keys(parseEnvFile(readText(ENV_EXAMPLE))));
  const exampleText = readText(ENV_EXAMPLE);
  for (const m of exampleText.matchAll(/^#\s*([A-Z][A-Z0-9_]*)=/gm)) documented.add(m[1]!); // optional ones, commented out
  for (const file of COMPOSE_FILES) {
    for (const ref of interpolations(readText(file))) {
      assert.ok(documented.has(ref.name), `${file}: \${${ref.name}} is documented in ${ENV_EXAMPLE}`);
      if (SECRETS.includes(ref.name)) {
        assert.equal(ref.op, ':?', `${file}: secret ${ref.name} is required (\${${ref.name}:?...}), never defaulted`);
        assert.ok(ref.arg.length > 0, `${file}: ${ref.name} says what to set`);
      }
    }
  }
  for (const s of SECRETS) {
    assert.equal(parseEnvFile(exampleText)[s], '', `the example leaves ${s} empty`);
    assert.match(exampleText, new RegExp(`#[^\\n]*openssl rand[^\\n]*\\n(?:#[^\\n]*\\n|[A-Z_]+=\\n)*${s}=`), `the example says how to generate ${s}`);
  }
  // Without any one secret, compose refuses to start rather than run with a default or without it.
  const full = exampleEnv();
  for (const s of SECRETS) {
    const files = s === 'RABBITMQ_PASSWORD' ? [BASE, RABBITMQ] : s === 'POSTGRES_PASSWORD' ? [BASE, ARCHIVE] : [BASE];
    assert.doesNotThrow(() => loadCompose(files, full));
    assert.throws(() => loadCompose(files, { ...full, [s]: '' }), new RegExp(`required variable ${s}`), `compose refuses to start without ${s}`);
    const without = Object.fromEntries(Object.entries(full).filter(([k]) => k !== s));
    assert.throws(() => loadCompose(files, without), new RegExp(`required variable ${s}`));
  }
});

test('compose: init-secrets.sh refuses secrets it cannot use, before it writes anything', (t) => {
  const model = load([BASE]);
  const env = composeEnv(model.services[INIT]!);
  const cases: [string, Record<string, string>, RegExp][] = [
    ['an empty Redis password', { REDIS_RUNNER_PASSWORD: '' }, /REDIS_RUNNER_PASSWORD is empty/],
    ['a Redis password that needs percent-encoding', { REDIS_RUNNER_PASSWORD: `${dummySecret('x')}/+=` }, /REDIS_RUNNER_PASSWORD must be URL-safe/],
    ['two services with one Redis password', { REDIS_RUNNER_PASSWORD: env.REDIS_API_PASSWORD! }, /must differ/],
    ['a short admin token', { DROVER_ADMIN_TOKEN: 'short' }, /at least 16/],
    ['no callback secret', { DROVER_CALLBACK_SECRET: '' }, /DROVER_CALLBACK_SECRET is empty/],
    ['no env key', { DROVER_ENV_KEY: '' }, /DROVER_ENV_KEY is empty/],
  ];
  for (const [what, change, error] of cases) {
    const dir = mkdtempSync(join(scratch, 'bad-'));
    const r = runComposeInit(dir, model.services[INIT]!, { ...env, ...change, PATH: initPath() });
    assert.notEqual(r.status, 0, `${what}: refused`);
    assert.match(r.stderr, error, what);
    for (const [, host] of r.volumes) assert.equal(readdirSync(host).length, 0, `${what}: nothing written`);
    for (const v of Object.values(env)) if (v.length >= 16) assert.ok(!r.stderr.includes(v), `${what}: no secret in the message`);
  }
  t.diagnostic('each refusal names the variable and leaves the volumes empty');
});

test('compose: Drover services use only variables Drover knows, and loadConfig accepts each one', () => {
  const known = knownEnvNames();
  for (const v of variants) {
    const model = load(v.files);
    for (const name of DROVER_SERVICES) {
      const env = droverEnv(model, name);
      for (const key of Object.keys(env)) assert.ok(known.has(key), `${v.name}/${name}: ${key} is not a variable Drover reads`);
      const config = loadConfig(configEnv(v.files, model, name));
      assert.equal(config.broker, v.broker, `${v.name}/${name}: broker`);
      assert.equal(config.metrics.host, '0.0.0.0', `${v.name}/${name}: metrics reachable from Prometheus`);
      assert.notEqual(config.metrics.port, null, `${v.name}/${name}: metrics served`);
      const redis = hostPort(config.redisUrl);
      assert.ok(model.services[redis.host], `${v.name}/${name}: REDIS_URL names the service ${redis.host}`);
      assert.ok(DEPENDENCY_PORTS[redis.host]?.includes(redis.port), `${v.name}/${name}: REDIS_URL port`);
      if (v.broker === 'rabbitmq') {
        const amqp = hostPort(config.amqpUrl);
        assert.ok(model.services[amqp.host], `${v.name}/${name}: AMQP_URL names the service ${amqp.host}`);
        assert.ok(DEPENDENCY_PORTS[amqp.host]?.includes(amqp.port), `${v.name}/${name}: AMQP_URL port`);
        const u = new URL(config.amqpUrl);
        assert.equal(composeEnv(model.services[amqp.host]!).RABBITMQ_DEFAULT_USER, u.username, 'AMQP_URL user is the one RabbitMQ creates');
        assert.equal(u.password, exampleEnv().RABBITMQ_PASSWORD, 'AMQP_URL password is the one RabbitMQ is created with');
      }
      if (name === 'runner') {
        assert.equal(config.databaseUrl, undefined, 'runners do not read the archive');
      } else if (v.archive) {
        assert.ok(config.databaseUrl, `${v.name}/${name}: DATABASE_URL`);
        const pg = hostPort(config.databaseUrl);
        assert.ok(model.services[pg.host], `${v.name}/${name}: DATABASE_URL names the service ${pg.host}`);
        const pgEnv = configEnv(v.files, model, pg.host);
        const u = new URL(config.databaseUrl);
        assert.equal(u.username, pgEnv.POSTGRES_USER);
        assert.equal(u.pathname, `/${pgEnv.POSTGRES_DB}`);
        assert.equal(decodeURIComponent(u.password), readFileSync(pgEnv.POSTGRES_PASSWORD_FILE!, 'utf8'), 'DATABASE_URL password is the one PostgreSQL is created with');
      } else {
        assert.equal(config.databaseUrl, undefined, `${v.name}/${name}: no archive unless asked for`);
      }
    }
    for (const name of DROVER_SERVICES) {
      const env = droverEnv(model, name);
      assert.equal(env.DROVER_ENABLE_FAULT_HOOKS, undefined, `${v.name}/${name}: fault hooks are for the test suite only`);
      assert.equal(loadConfig(configEnv(v.files, model, name)).faults, undefined);
    }
    const api = loadConfig(configEnv(v.files, model, 'api'));
    assert.equal(api.host, '0.0.0.0', 'the API listens beyond the container');
    assert.equal(api.adminToken, exampleEnv().DROVER_ADMIN_TOKEN, 'the API gets its admin token');
    assert.ok(api.envKey, 'the API seals env values');
    const scheduler = loadConfig(configEnv(v.files, model, 'scheduler'));
    assert.equal(scheduler.scheduler.callbackSecret, exampleEnv().DROVER_CALLBACK_SECRET, 'the scheduler signs deliveries');
    const runner = loadConfig(configEnv(v.files, model, 'runner'));
    assert.equal(runner.adminToken, undefined, 'runners do not hold the admin token');
    assert.equal(runner.scheduler.callbackSecret, undefined, 'nor the callback secret');
    assert.equal(runner.databaseUrl, undefined, 'nor the archive');
    assert.ok(runner.envKey, 'runners open env values');
  }
  // Anything Drover-like anywhere in the files is a name Drover reads (a typo would be silently ignored).
  for (const file of COMPOSE_FILES) {
    for (const m of readText(file).matchAll(DROVER_LIKE)) {
      assert.ok(known.has(m[0]) || COMPOSE_ONLY.includes(m[0]), `${file}: unknown name ${m[0]}`);
    }
  }
  for (const v of variants) {
    for (const name of DROVER_SERVICES) for (const k of COMPOSE_ONLY) assert.equal(droverEnv(load(v.files), name)[k], undefined);
  }
});

test('compose: runners scale (no container_name, no published port) and every service has a working healthcheck', () => {
  for (const v of variants) {
    const model = load(v.files);
    const runner = model.services.runner!;
    assert.equal(runner.container_name, undefined, 'a fixed container name would stop --scale');
    assert.equal(runner.ports, undefined, 'a published port would stop --scale');
    assert.equal(runner.hostname, undefined, 'replicas need their own hostnames (RUNNER_ID defaults to it)');
    for (const name of DROVER_SERVICES) {
      const svc = model.services[name]!;
      const config = serviceConfig(model, name);
      const hc = asObj(svc.healthcheck, `${name}.healthcheck`);
      const t = asArray(hc.test, 'test') as string[];
      assert.equal(t[0], 'CMD', `${name}: exec-form healthcheck (no shell needed)`);
      assert.equal(t[1], 'node', `${name}: the image has node, not curl`);
      const url = healthcheckUrl(svc);
      assert.ok(url, `${name}: the healthcheck fetches a URL`);
      const u = new URL(url);
      assert.ok(['127.0.0.1', 'localhost'].includes(u.hostname), `${name}: probes itself`);
      if (name === 'api') {
        assert.equal(Number(u.port), config.port, 'api healthcheck on DROVER_PORT');
        assert.equal(u.pathname, '/readyz', 'api healthcheck is its readiness (Redis and broker reachable)');
      } else {
        assert.equal(Number(u.port), config.metrics.port, `${name} healthcheck on DROVER_METRICS_PORT (its only server)`);
        assert.ok(['/healthz', '/readyz'].includes(u.pathname), `${name}: a probe path the metrics server answers`);
      }
      assert.ok(!Number.isNaN(parseDuration(asString(hc.interval, 'interval'))));
    }
    for (const [name, svc] of Object.entries(model.services)) {
      assert.equal(svc.container_name, undefined, `${name}: no container_name (one project per host would clash)`);
      for (const [dep, cond] of Object.entries(asObj(svc.depends_on ?? {}, `${name}.depends_on`))) {
        assert.ok(model.services[dep], `${v.name}/${name} depends on ${dep}, which exists`);
        const condition = get(cond, 'condition');
        if (condition === 'service_healthy') assert.ok(model.services[dep].healthcheck, `${dep} has a healthcheck to wait for`);
      }
    }
    for (const name of DROVER_SERVICES) {
      assert.equal(get(model.services[name], 'depends_on', 'redis', 'condition'), 'service_healthy', `${v.name}/${name} waits for Redis`);
      if (v.broker === 'rabbitmq') assert.equal(get(model.services[name], 'depends_on', 'rabbitmq', 'condition'), 'service_healthy', `${v.name}/${name} waits for RabbitMQ`);
      if (v.archive && name !== 'runner') assert.equal(get(model.services[name], 'depends_on', 'postgres', 'condition'), 'service_healthy', `${v.name}/${name} waits for PostgreSQL`);
    }
  }
});

test('compose: only the API (token-protected) is published beyond localhost; metrics ports are never published', () => {
  const model = load(COMPOSE_FILES);
  for (const [name, svc] of Object.entries(model.services)) {
    for (const raw of asArray(svc.ports, `${name}.ports`)) {
      const p = asString(raw, `${name} port`);
      const parts = p.split(':');
      const container = Number(parts.at(-1));
      if (name === 'api') {
        assert.equal(container, serviceConfig(model, 'api').port, 'the API publishes DROVER_PORT only');
        continue;
      }
      assert.equal(parts.length, 3, `${name}: ${p} names the host address`);
      assert.equal(parts[0], '127.0.0.1', `${name}: ${p} (no authentication) stays on localhost`);
    }
  }
  for (const name of DROVER_SERVICES) {
    const metricsPort = serviceConfig(model, name).metrics.port;
    for (const raw of asArray(model.services[name]!.ports, 'ports')) assert.notEqual(Number(asString(raw, 'port').split(':').at(-1)), metricsPort, `${name}: /metrics is unauthenticated`);
  }
});

test('compose: stop_grace_period outlasts the runner drain (and the kill grace after it)', () => {
  for (const v of variants) {
    const model = load(v.files);
    for (const name of DROVER_SERVICES) {
      const config = serviceConfig(model, name);
      const grace = parseDuration(asString(model.services[name]!.stop_grace_period, `${name}.stop_grace_period`));
      assert.ok(grace > 10_000, `${name}: more than compose's default 10 s`);
      if (name === 'runner') {
        assert.ok(
          grace >= config.runner.drainTimeoutMs + config.killGraceMs + 10_000,
          `runner stop_grace_period ${grace} ms must exceed RUNNER_DRAIN_TIMEOUT_MS ${config.runner.drainTimeoutMs} + DROVER_KILL_GRACE_MS ${config.killGraceMs} + 10 s to close`,
        );
      }
    }
  }
});

test('compose: read-only Drover containers get a writable /tmp that holds the runner work directory', () => {
  const model = load([BASE]);
  for (const name of DROVER_SERVICES) {
    const svc = model.services[name]!;
    assert.equal(svc.read_only, true, `${name}: read-only root filesystem`);
    assert.ok((asArray(svc.cap_drop, 'cap_drop') as string[]).includes('ALL'), `${name}: drops capabilities`);
    const tmpfs = (asArray(svc.tmpfs, 'tmpfs') as string[]).map((t) => t.split(':')[0]!);
    assert.ok(tmpfs.includes('/tmp'), `${name}: tmpfs at /tmp`);
    if (name === 'runner') {
      const workDir = serviceConfig(model, name).runner.workDir;
      assert.ok(tmpfs.some((m) => workDir === m || workDir.startsWith(`${m}/`)), `RUNNER_WORK_DIR ${workDir} is on a tmpfs`);
      const tmp = (asArray(svc.tmpfs, 'tmpfs') as string[]).find((t) => t.startsWith('/tmp:'))!;
      assert.ok(!tmp.split(/[:,]/).includes('noexec'), 'jobs may run what they write to their work directory');
    }
  }
});

test('compose: Redis keeps an AOF fsync\'d every second and never evicts', () => {
  const cmd = (asArray(load([BASE]).services.redis!.command, 'redis.command') as string[]).join(' ');
  assert.match(cmd, /--appendonly yes\b/);
  assert.match(cmd, /--appendfsync everysec\b/);
  assert.match(cmd, /--maxmemory-policy noeviction\b/);
  for (const [k, v] of Object.entries(REDIS_TUNING)) assert.ok(cmd.includes(`--${k} ${v}`), `--${k} ${v} (REDIS_TUNING)`);
  const volumes = asArray(load([BASE]).services.redis!.volumes, 'volumes') as string[];
  assert.ok(volumes.some((v) => v.endsWith(':/data')), 'Redis data on a volume');
});

test('compose: Prometheus scrapes every Drover service (every replica) on its metrics port, and RabbitMQ when present', () => {
  const prom = asObj(parseYaml(readText('deploy/prometheus.yml'), 'deploy/prometheus.yml'), 'prometheus.yml');
  const interval = parseDuration(asString(get(prom, 'global', 'scrape_interval'), 'scrape_interval'));
  assert.ok(interval >= 5000 && interval <= 15_000, 'scrape interval between 5 and 15 s');
  const model = load(COMPOSE_FILES);
  const targets = new Map<string, { host: string; port: number; dns: boolean }[]>();
  for (const raw of asArray(prom.scrape_configs, 'scrape_configs')) {
    const job = asObj(raw, 'scrape_config');
    const list: { host: string; port: number; dns: boolean }[] = [];
    for (const sd of asArray(job.dns_sd_configs, 'dns_sd_configs')) {
      assert.equal(get(sd, 'type'), 'A', 'A records: every container of the service');
      for (const n of asArray(get(sd, 'names'), 'names')) list.push({ host: asString(n, 'name'), port: Number(get(sd, 'port')), dns: true });
    }
    for (const sc of asArray(job.static_configs, 'static_configs')) {
      for (const t of asArray(get(sc, 'targets'), 'targets')) {
        const [host, port] = asString(t, 'target').split(':');
        list.push({ host: host!, port: Number(port), dns: false });
      }
    }
    targets.set(asString(job.job_name, 'job_name'), list);
  }
  for (const name of DROVER_SERVICES) {
    const config = serviceConfig(model, name);
    const found = [...targets.values()].flat().filter((t) => t.host === name);
    assert.equal(found.length, 1, `${name} is scraped once`);
    assert.equal(found[0]!.port, config.metrics.port, `${name} is scraped on DROVER_METRICS_PORT`);
    assert.ok(found[0]!.dns, `${name}: DNS discovery, so every replica is a target`);
  }
  const rabbit = [...targets.values()].flat().find((t) => t.host === 'rabbitmq');
  assert.ok(rabbit, 'RabbitMQ is scraped when present');
  assert.equal(rabbit.port, 15692, 'the rabbitmq_prometheus plugin port');
  for (const t of [...targets.values()].flat()) {
    if (t.host === 'localhost') continue;
    assert.ok(model.services[t.host], `scrape target ${t.host} is a compose service`);
    if (DEPENDENCY_PORTS[t.host]) assert.ok(DEPENDENCY_PORTS[t.host]!.includes(t.port), `${t.host}:${t.port}`);
  }
  const mounts = asArray(load([BASE]).services.prometheus!.volumes, 'volumes') as string[];
  assert.ok(mounts.includes('./deploy/prometheus.yml:/etc/prometheus/prometheus.yml:ro'), 'Prometheus gets this configuration');
});

test('compose: Grafana mounts files that exist and provisions the datasource and dashboard it needs', () => {
  const model = load([BASE]);
  const grafana = model.services.grafana!;
  const targets = new Map<string, string>();
  for (const m of asArray(grafana.volumes, 'volumes') as string[]) {
    const [src, dst] = m.split(':');
    if (src!.startsWith('.')) {
      assert.ok(existsSync(resolve(ROOT, src!)), `${src} exists in the repository`);
      targets.set(dst!, src!);
    }
  }
  const provisioning = targets.get('/etc/grafana/provisioning');
  assert.ok(provisioning, 'provisioning mounted');
  const ds = asObj(parseYaml(readText(`${provisioning}/datasources/prometheus.yml`), 'datasource'), 'datasource');
  const source = asObj(asArray(ds.datasources, 'datasources')[0], 'datasource');
  const url = new URL(asString(source.url, 'url'));
  assert.ok(model.services[url.hostname], 'the datasource points at the compose Prometheus');
  assert.equal(Number(url.port), DEPENDENCY_PORTS.prometheus![0]);
  const dash = asObj(parseYaml(readText(`${provisioning}/dashboards/drover.yml`), 'dashboards'), 'dashboards');
  const dir = asString(get(dash, 'providers', 0, 'options', 'path'), 'providers[0].options.path');
  const mounted = [...targets.entries()].filter(([dst]) => posix.dirname(dst) === dir);
  assert.ok(mounted.some(([, src]) => src.endsWith('.json')), `a dashboard JSON is mounted into ${dir}`);
  const home = composeEnv(grafana).GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH;
  assert.ok(home && targets.has(home), 'the home dashboard is the mounted one');
  assert.equal(composeEnv(grafana).GF_SECURITY_ADMIN_PASSWORD, undefined, 'the admin password comes from a file');
  assert.equal(readFileSync(configEnv([BASE], model, 'grafana').GF_SECURITY_ADMIN_PASSWORD__FILE!, 'utf8'), exampleEnv().GRAFANA_ADMIN_PASSWORD);
  for (const [name, svc] of Object.entries(model.services)) {
    for (const m of asArray(svc.volumes, `${name}.volumes`)) {
      const src = typeof m === 'string' ? m.split(':')[0]! : asString(get(m, 'source'), 'source');
      if (src.startsWith('.')) assert.ok(existsSync(resolve(ROOT, src)), `${name}: ${src} exists`);
      else assert.ok(src in model.volumes, `${name}: named volume ${src} is declared`);
    }
  }
});

test('Dockerfile: multi-stage, non-root numeric user, exec-form entrypoint running the CLI, both ports exposed', () => {
  const lines = readText('Dockerfile')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const froms = lines.map((l, i) => ({ l, i })).filter(({ l }) => /^FROM\s/i.test(l));
  assert.ok(froms.length >= 2, 'multi-stage');
  const last = lines.slice(froms.at(-1)!.i);
  const instr = (name: string): string[] => last.filter((l) => new RegExp(`^${name}\\s`, 'i').test(l)).map((l) => l.slice(name.length).trim());
  const user = instr('USER').at(-1);
  assert.ok(user, 'the final stage sets USER');
  const uid = user.split(':')[0]!;
  assert.match(uid, /^\d+$/, 'numeric USER, so runAsNonRoot can verify it');
  assert.notEqual(Number(uid), 0, 'not root');
  const entrypoint = JSON.parse(instr('ENTRYPOINT').at(-1) ?? 'null') as unknown;
  const cmd = JSON.parse(instr('CMD').at(-1) ?? 'null') as unknown;
  assert.ok(Array.isArray(entrypoint) && Array.isArray(cmd), 'ENTRYPOINT and CMD in exec form (JSON arrays)');
  const ep = entrypoint as string[];
  const main = ep.indexOf('cli/dist/main.js');
  assert.ok(main > 0 && ep[main - 1] === 'node', 'the entrypoint runs node cli/dist/main.js');
  assert.ok(existsSync(resolve(ROOT, 'cli/src/main.ts')), 'cli/dist/main.js is built from cli/src/main.ts');
  assert.match(readText('cli/src/main.ts'), new RegExp(`\\b${(cmd as string[])[0]}: async`), 'the default command exists');
  const defaults = loadConfig({});
  const exposed = instr('EXPOSE').flatMap((l) => l.split(/\s+/)).map((p) => Number(p.split('/')[0]));
  assert.ok(exposed.includes(defaults.port) && exposed.includes(defaults.metrics.port!), `EXPOSE ${defaults.port} ${defaults.metrics.port}`);
  // Environment the image sets: names Drover knows, and what containers need (reachable metrics, work dir on /tmp).
  const env: Record<string, string> = {};
  for (const l of instr('ENV')) for (const m of l.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)) env[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  const known = knownEnvNames();
  for (const k of Object.keys(env)) assert.ok(known.has(k), `Dockerfile ENV ${k} is a name Drover reads`);
  const config = loadConfig(env);
  assert.equal(config.metrics.host, '0.0.0.0');
  assert.ok(config.runner.workDir.startsWith('/tmp/'), 'RUNNER_WORK_DIR under /tmp (writable with a read-only root)');
  const ignore = readText('.dockerignore').split('\n').map((l) => l.trim());
  for (const p of ['.env', '**/secrets.env', 'node_modules', '.git']) assert.ok(ignore.includes(p), `.dockerignore keeps ${p} out of the build context`);
});

test('compose: the override files only add to the base (no service or volume is redefined from scratch)', () => {
  const base = asObj(parseYaml(readText(BASE), BASE), BASE);
  for (const file of [RABBITMQ, ARCHIVE]) {
    const over = asObj(parseYaml(readText(file), file), file);
    for (const [name, svc] of Object.entries(asObj(over.services, 'services'))) {
      if (name in asObj(base.services, 'services')) {
        // init-secrets also gets the volume of a service the override adds (PostgreSQL's password).
        const allowed = name === INIT ? ['environment', 'volumes'] : ['environment', 'depends_on'];
        const keys = Object.keys(asObj(svc, name));
        assert.deepEqual(keys.filter((k) => !allowed.includes(k)), [], `${file}: ${name} only gets ${allowed.join(' and ')}`);
      } else {
        assert.ok(isObj(svc) && typeof svc.image === 'string', `${file}: new service ${name} has an image`);
      }
    }
  }
});

/** Where a container path of a service lands in the init-secrets output (undefined: not on a secrets volume). */
function hostPathOf(files: string[], model: ComposeModel, service: string, path: string): string | undefined {
  const run = initRun(files);
  const m = composeVolumeMounts(model.services[service]!).find((x) => path.startsWith(`${x.path}/`));
  const host = m && run.volumes.get(m.volume);
  return host ? join(host, path.slice(m.path.length + 1)) : undefined;
}

test('compose: init-secrets gives each service its own files, owned by the user it runs as, mode 0400; the job user reads none', (t) => {
  if (!IS_ROOT) {
    t.skip('needs root: the script chowns, and the check reads the files as other users');
    return;
  }
  const files = [BASE, RABBITMQ, ARCHIVE];
  const model = load(files);
  const { volumes } = initRun(files);
  const expected: Record<string, { files: string[]; uid: number; gid: number; mode: number; dirMode: number }> = {
    'api-secrets': { files: ['admin-token', 'amqp-url', 'database-url', 'env-key', 'redis-url'], uid: 1000, gid: 1000, mode: 0o400, dirMode: 0o755 },
    'scheduler-secrets': { files: ['amqp-url', 'callback-secret', 'database-url', 'env-key', 'redis-url'], uid: 1000, gid: 1000, mode: 0o400, dirMode: 0o755 },
    'runner-secrets': { files: ['amqp-url', 'env-key', 'redis-url'], uid: 0, gid: 0, mode: 0o400, dirMode: 0o700 },
    'redis-secrets': { files: ['healthcheck-password', 'users.acl'], uid: 0, gid: 999, mode: 0o440, dirMode: 0o755 },
    'grafana-secrets': { files: ['admin-password'], uid: 472, gid: 472, mode: 0o400, dirMode: 0o755 },
    'postgres-secrets': { files: ['password'], uid: 999, gid: 999, mode: 0o400, dirMode: 0o755 },
  };
  assert.deepEqual([...volumes.keys()].sort(), Object.keys(expected).sort(), 'init-secrets writes these volumes');
  for (const [volume, want] of Object.entries(expected)) {
    const dir = volumes.get(volume)!;
    assert.deepEqual(readdirSync(dir).sort(), want.files, `${volume}: exactly its files (nothing left over)`);
    const d = statSync(dir);
    assert.deepEqual([d.uid, d.mode & 0o777], [0, want.dirMode], `${volume}: the directory is root's, mode ${want.dirMode.toString(8)}`);
    for (const f of want.files) {
      const st = statSync(join(dir, f));
      assert.deepEqual([st.uid, st.gid, st.mode & 0o777], [want.uid, want.gid, want.mode], `${volume}/${f}: owner ${want.uid}:${want.gid}, mode ${want.mode.toString(8)}`);
    }
    // Mounted read-only, into the one service that reads it.
    const readers = Object.entries(model.services).filter(([n, svc]) => n !== INIT && composeVolumeMounts(svc).some((m) => m.volume === volume));
    assert.equal(readers.length, 1, `${volume} is mounted into one service`);
    assert.ok(composeVolumeMounts(readers[0]![1]).find((m) => m.volume === volume)!.readOnly, `${volume} is mounted read-only`);
  }
  // Read as the users that would try: a job (any uid of the runner's job uids; drover-job and nobody, the users
  // RUNNER_JOB_USER could name) reads no service's secrets, and the runner's directory cannot even be listed; the
  // API's user reads its own files, not the runner's.
  const jobUids = settingsOf(model.services.runner!).runner.jobUids ?? DEFAULT_JOB_UIDS;
  const as = (uid: number, ...cmd: string[]): boolean => spawnSync('setpriv', ['--reuid', String(uid), '--regid', String(uid), '--clear-groups', ...cmd], { stdio: 'ignore' }).status === 0;
  for (const uid of [jobUids.first, jobUids.last, dockerfileUsers().get('drover-job')!.uid, 65534]) {
    for (const volume of Object.keys(expected)) {
      for (const f of expected[volume]!.files) assert.equal(as(uid, 'cat', join(volumes.get(volume)!, f)), false, `uid ${uid} cannot read ${volume}/${f}`);
    }
    assert.equal(as(uid, 'ls', volumes.get('runner-secrets')!), false, `uid ${uid} cannot list the runner's secrets`);
  }
  assert.ok(as(1000, 'cat', join(volumes.get('api-secrets')!, 'redis-url')), 'the API (uid 1000) reads its own');
  assert.equal(as(1000, 'cat', join(volumes.get('runner-secrets')!, 'redis-url')), false, 'but not the runner\'s');
  // Run again (every `up` does): same result, the probe's password kept.
  const probe = readFileSync(join(volumes.get('redis-secrets')!, 'healthcheck-password'), 'utf8');
  const rerun = runComposeInit(join(volumes.get('api-secrets')!, '../..'), model.services[INIT]!, { ...composeEnv(model.services[INIT]!), PATH: initPath() });
  assert.equal(rerun.status, 0, `a second run over the same volumes works with CHOWN alone: ${rerun.stderr}`);
  assert.equal(readFileSync(join(volumes.get('redis-secrets')!, 'healthcheck-password'), 'utf8'), probe, 'the probe keeps its password');
});

test('compose: api, scheduler and runner each log in to Redis as their own user, with the password the ACL file holds for it; default is off', () => {
  for (const v of variants) {
    const model = load(v.files);
    const redis = model.services.redis!;
    const cmd = asArray(redis.command, 'redis.command') as string[];
    const aclPath = cmd[cmd.indexOf('--aclfile') + 1];
    assert.ok(cmd.includes('--aclfile') && aclPath, `${v.name}: Redis loads an ACL file`);
    const aclHost = hostPathOf(v.files, model, 'redis', aclPath);
    assert.ok(aclHost, `${v.name}: ${aclPath} is on Redis's secrets volume`);
    const acl = parseAcl(readFileSync(aclHost, 'utf8'));
    assert.equal(acl.get('default')?.enabled, false, `${v.name}: the default user is off`);
    const seen = new Set<string>();
    for (const name of DROVER_SERVICES) {
      const raw = droverEnv(model, name);
      assert.equal(raw.REDIS_URL, undefined, `${v.name}/${name}: no REDIS_URL in the environment`);
      const url = new URL(readFileSync(configEnv(v.files, model, name).REDIS_URL_FILE!, 'utf8'));
      assert.equal(url.username, `drover-${name}`, `${v.name}/${name}: its own Redis user`);
      assert.equal(url.hostname, 'redis');
      assert.deepEqual(acl.get(url.username)?.passwords, [sha256(url.password)], `${v.name}/${name}: the ACL file holds the hash of this password`);
      seen.add(url.password);
    }
    assert.equal(seen.size, 3, `${v.name}: three passwords`);
    // The health probe logs in as drover-healthcheck with the password next to the ACL file.
    const probe = (asArray(get(redis, 'healthcheck', 'test'), 'healthcheck.test') as string[]).join(' ');
    assert.match(probe, /--user drover-healthcheck\b/);
    const probeFile = /cat ([^)"\s]+)/.exec(probe)?.[1];
    assert.ok(probeFile, 'the probe reads its password from a file');
    assert.deepEqual(acl.get('drover-healthcheck')?.passwords, [sha256(readFileSync(hostPathOf(v.files, model, 'redis', probeFile)!, 'utf8'))]);
    assert.equal(get(redis, 'depends_on', INIT, 'condition'), 'service_completed_successfully', 'Redis starts once its users are written');
  }
});

test('compose: no container holds a secret in its environment (but init-secrets, and RabbitMQ whose image has no file form); Drover gets each as a *_FILE', () => {
  for (const v of variants) {
    const model = load(v.files);
    const env = exampleEnv();
    const values = SECRETS.map((k) => env[k]!).filter(Boolean);
    for (const [name, svc] of Object.entries(model.services)) {
      for (const [k, val] of Object.entries(composeEnv(svc))) {
        if (ENV_ONLY_SECRETS[name]?.includes(k)) continue;
        for (const secret of values) assert.ok(!val.includes(secret), `${v.name}/${name}: ${k} holds a secret`);
        assert.doesNotMatch(val, /:\/\/[^/@\s]*:[^/@\s]+@/, `${v.name}/${name}: ${k} is a URL with a password`);
      }
    }
    for (const name of DROVER_SERVICES) {
      const raw = droverEnv(model, name);
      for (const k of SECRET_VALUES) assert.equal(raw[k], undefined, `${v.name}/${name}: ${k} only as ${k}_FILE`);
      const mounts = composeVolumeMounts(model.services[name]!);
      for (const [k, path] of Object.entries(raw).filter(([key]) => key.endsWith('_FILE'))) {
        const m = mounts.find((x) => path.startsWith(`${x.path}/`));
        assert.ok(m && m.readOnly && m.volume === `${name}-secrets`, `${v.name}/${name}: ${k} is on its own read-only secrets volume`);
        assert.ok(existsSync(hostPathOf(v.files, model, name, path)!), `${v.name}/${name}: init-secrets writes ${path}`);
      }
      assert.equal(get(model.services[name], 'depends_on', INIT, 'condition'), 'service_completed_successfully', `${v.name}/${name} starts once its secrets are written`);
    }
  }
});

/** A service's configuration from its compose environment, its secret files (not there outside a container) left out. */
function settingsOf(service: Obj): ReturnType<typeof loadConfig> {
  return loadConfig(Object.fromEntries(Object.entries(composeEnv(service)).filter(([k]) => !k.endsWith('_FILE'))));
}

test('compose: the runner is root with exactly the documented capabilities and runs each job as a uid of its own; the rest run without root', () => {
  const composeText = readText(BASE);
  for (const v of variants) {
    const model = load(v.files);
    const runner = model.services.runner!;
    assert.equal(runner.user, '0:0', 'the runner is root, to start jobs as another user');
    assert.deepEqual(runner.cap_drop, ['ALL']);
    assert.deepEqual([...(runner.cap_add as string[])].sort(), [...RUNNER_CAPABILITIES].sort(), 'exactly these capabilities');
    assert.ok((asArray(runner.security_opt, 'security_opt') as string[]).includes('no-new-privileges:true'), 'no-new-privileges');
    assert.equal(runner.read_only, true);
    assertUidPerJob(settingsOf(runner), (asArray(runner.tmpfs, 'tmpfs') as string[]).map((m) => m.split(':')[0]!));
    for (const name of ['api', 'scheduler'] as const) {
      const svc = model.services[name]!;
      assert.equal(svc.user, undefined, `${name} runs as the image's uid 1000`);
      assert.equal(svc.cap_add, undefined, `${name}: no capability`);
      assert.deepEqual(svc.cap_drop, ['ALL']);
    }
    const init = model.services[INIT]!;
    assert.equal(init.network_mode, 'none', 'init-secrets has no network');
    assert.deepEqual(init.cap_add, ['CHOWN'], 'init-secrets only chowns');
    assert.equal(init.read_only, true);
    assert.equal(init.restart, 'no');
    const redis = model.services.redis!;
    assert.equal(redis.user, '999:999', 'Redis runs as its image\'s redis user from the start');
    assert.deepEqual(redis.cap_drop, ['ALL']);
  }
  // Each capability says what it is for.
  const block = composeText.slice(composeText.indexOf('  runner:'), composeText.indexOf('    environment:', composeText.indexOf('  runner:')));
  for (const cap of RUNNER_CAPABILITIES) assert.match(block, new RegExp(`- ${cap}\\s+#\\s*\\S`), `docker-compose.yml says why the runner keeps ${cap}`);
});

test('Dockerfile: the final stage creates the job user with its HOME, checks nobody exists, and leaves no setuid program', () => {
  const run = dockerfileFinalStage().filter((l) => /^RUN\s/i.test(l)).join('\n');
  const users = dockerfileUsers();
  const jobUser = users.get('drover-job');
  assert.ok(jobUser, 'drover-job is created');
  assert.ok(jobUser.uid >= 1000 && jobUser.uid !== 1000 && jobUser.gid === jobUser.uid, 'its own uid and group, neither root nor the services\' 1000');
  assert.match(run, new RegExp(`groupadd [^&]*--gid ${jobUser.gid} drover-job`), 'with its own group');
  assert.match(run, new RegExp(`install -d -o ${jobUser.uid} -g ${jobUser.gid} -m 0700 ${jobUser.home}`), 'its HOME exists, its own');
  assert.match(run, /getent passwd nobody/, 'nobody (what RUNNER_JOB_USER most often names) is checked');
  assert.match(run, /find \/ -xdev -perm \/6000 -type f -exec chmod a-s/, 'setuid and setgid bits are removed');
});
