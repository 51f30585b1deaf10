// docker-compose.yml and its overrides, deploy/prometheus.yml, the Grafana provisioning and the Dockerfile,
// checked against Drover's own configuration (loadConfig) without Docker.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { posix, resolve } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '@drover/core';
import { DROVER_LIKE, DUMMY_SECRET, ROOT, asArray, asObj, asString, composeEnv, get, interpolations, isObj, knownEnvNames, loadCompose, parseDuration, parseEnvFile, parseYaml, readText, type ComposeModel, type Obj, hostPort } from './helpers/deploy.js';

const BASE = 'docker-compose.yml';
const RABBITMQ = 'docker-compose.rabbitmq.yml';
const ARCHIVE = 'docker-compose.archive.yml';
const COMPOSE_FILES = [BASE, RABBITMQ, ARCHIVE];
const ENV_EXAMPLE = 'deploy/compose.env.example';
const DROVER_SERVICES = ['api', 'scheduler', 'runner'] as const;
/** Secrets: only ever taken from the environment with compose's required-variable syntax, never defaulted. */
const SECRETS = ['DROVER_ADMIN_TOKEN', 'GRAFANA_ADMIN_PASSWORD', 'RABBITMQ_PASSWORD', 'POSTGRES_PASSWORD'];
/** Compose-only variables (substituted into the files, never passed to a Drover process) with a Drover-like name. */
const COMPOSE_ONLY = ['DROVER_IMAGE'];

/** The environment `.env` would give compose: every variable of the example, secrets filled in. */
function exampleEnv(): Record<string, string> {
  const values = parseEnvFile(readText(ENV_EXAMPLE));
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v === '' ? DUMMY_SECRET : v]));
}

const variants: { name: string; files: string[]; broker: 'bullmq' | 'rabbitmq'; archive: boolean }[] = [
  { name: 'default', files: [BASE], broker: 'bullmq', archive: false },
  { name: 'rabbitmq', files: [BASE, RABBITMQ], broker: 'rabbitmq', archive: false },
  { name: 'archive', files: [BASE, ARCHIVE], broker: 'bullmq', archive: true },
  { name: 'rabbitmq + archive', files: [BASE, RABBITMQ, ARCHIVE], broker: 'rabbitmq', archive: true },
];

function load(files: string[]): ComposeModel {
  return loadCompose(files, exampleEnv());
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
  for (const s of SECRETS) assert.equal(parseEnvFile(exampleText)[s], '', `the example leaves ${s} empty`);
  // Without a .env, compose refuses to start rather than run with a default secret.
  assert.throws(() => loadCompose([BASE], {}), /DROVER_ADMIN_TOKEN/);
  assert.throws(() => loadCompose([BASE, RABBITMQ], { DROVER_ADMIN_TOKEN: DUMMY_SECRET, GRAFANA_ADMIN_PASSWORD: 'x' }), /RABBITMQ_PASSWORD/);
  assert.throws(() => loadCompose([BASE, ARCHIVE], { DROVER_ADMIN_TOKEN: DUMMY_SECRET, GRAFANA_ADMIN_PASSWORD: 'x' }), /POSTGRES_PASSWORD/);
});

test('compose: Drover services use only variables Drover knows, and loadConfig accepts each one', () => {
  const known = knownEnvNames();
  for (const v of variants) {
    const model = load(v.files);
    for (const name of DROVER_SERVICES) {
      const env = droverEnv(model, name);
      for (const key of Object.keys(env)) assert.ok(known.has(key), `${v.name}/${name}: ${key} is not a variable Drover reads`);
      const config = loadConfig(env);
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
        const user = new URL(config.amqpUrl).username;
        assert.equal(composeEnv(model.services[amqp.host]!).RABBITMQ_DEFAULT_USER, user, 'AMQP_URL user is the one RabbitMQ creates');
      }
      if (name === 'runner') {
        assert.equal(config.databaseUrl, undefined, 'runners do not read the archive');
      } else if (v.archive) {
        assert.ok(config.databaseUrl, `${v.name}/${name}: DATABASE_URL`);
        const pg = hostPort(config.databaseUrl);
        assert.ok(model.services[pg.host], `${v.name}/${name}: DATABASE_URL names the service ${pg.host}`);
        const pgEnv = composeEnv(model.services[pg.host]!);
        const u = new URL(config.databaseUrl);
        assert.equal(u.username, pgEnv.POSTGRES_USER);
        assert.equal(u.pathname, `/${pgEnv.POSTGRES_DB}`);
        assert.equal(decodeURIComponent(u.password), pgEnv.POSTGRES_PASSWORD, 'DATABASE_URL password is the one PostgreSQL is created with');
      } else {
        assert.equal(config.databaseUrl, undefined, `${v.name}/${name}: no archive unless asked for`);
      }
    }
    for (const name of DROVER_SERVICES) {
      const env = droverEnv(model, name);
      assert.equal(env.DROVER_ENABLE_FAULT_HOOKS, undefined, `${v.name}/${name}: fault hooks are for the test suite only`);
      assert.equal(loadConfig(env).faults, undefined);
    }
    const api = loadConfig(droverEnv(model, 'api'));
    assert.equal(api.host, '0.0.0.0', 'the API listens beyond the container');
    assert.ok(api.adminToken && api.adminToken.length >= 16, 'the API gets its admin token');
    assert.equal(droverEnv(model, 'runner').DROVER_ADMIN_TOKEN, undefined, 'runners do not hold the admin token');
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
      const config = loadConfig(droverEnv(model, name));
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
        assert.equal(container, loadConfig(droverEnv(model, 'api')).port, 'the API publishes DROVER_PORT only');
        continue;
      }
      assert.equal(parts.length, 3, `${name}: ${p} names the host address`);
      assert.equal(parts[0], '127.0.0.1', `${name}: ${p} (no authentication) stays on localhost`);
    }
  }
  for (const name of DROVER_SERVICES) {
    const metricsPort = loadConfig(droverEnv(model, name)).metrics.port;
    for (const raw of asArray(model.services[name]!.ports, 'ports')) assert.notEqual(Number(asString(raw, 'port').split(':').at(-1)), metricsPort, `${name}: /metrics is unauthenticated`);
  }
});

test('compose: stop_grace_period outlasts the runner drain (and the kill grace after it)', () => {
  for (const v of variants) {
    const model = load(v.files);
    for (const name of DROVER_SERVICES) {
      const config = loadConfig(droverEnv(model, name));
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
      const workDir = loadConfig(droverEnv(model, name)).runner.workDir;
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
    const config = loadConfig(droverEnv(model, name));
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
  assert.ok(String(composeEnv(grafana).GF_SECURITY_ADMIN_PASSWORD).length > 0);
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
        const keys = Object.keys(asObj(svc, name));
        assert.deepEqual(keys.filter((k) => !['environment', 'depends_on'].includes(k)), [], `${file}: ${name} only gets environment and depends_on`);
      } else {
        assert.ok(isObj(svc) && typeof svc.image === 'string', `${file}: new service ${name} has an image`);
      }
    }
  }
});
