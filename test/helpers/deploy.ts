// Reading the deployment files (docker-compose, Kubernetes/kustomize, Prometheus, Grafana) the way their tools
// would, closely enough to check them against Drover's own configuration and metrics, without Docker, kubectl or
// a network. Only the features the files in this repository use are implemented; anything else throws.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, parseAllDocuments } from 'yaml';
import { DroverMetrics, OTEL_ENV_NAMES, configEnvNames } from '@drover/core';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function asObj(v: unknown, what: string): Obj {
  if (!isObj(v)) throw new Error(`${what}: expected a mapping, got ${JSON.stringify(v)}`);
  return v;
}

export function asArray(v: unknown, what: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new Error(`${what}: expected a list, got ${JSON.stringify(v)}`);
  return v as unknown[];
}

export function asString(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new Error(`${what}: expected a string, got ${JSON.stringify(v)}`);
  return v;
}

/** `get(o, 'spec', 'template', 'spec')`: undefined as soon as a step is missing. */
export function get(v: unknown, ...path: (string | number)[]): unknown {
  let cur = v;
  for (const key of path) {
    if (typeof key === 'number' ? !Array.isArray(cur) : !isObj(cur)) return undefined;
    cur = (cur as Record<string | number, unknown>)[key];
  }
  return cur;
}

export function readText(path: string): string {
  return readFileSync(resolve(ROOT, path), 'utf8');
}

/** One YAML document, with `<<` merge keys (compose files use anchors). Parse errors throw. */
export function parseYaml(text: string, what: string): unknown {
  try {
    return parse(text, { merge: true, prettyErrors: true, strict: true, uniqueKeys: true }) as unknown;
  } catch (err) {
    throw new Error(`${what}: ${(err as Error).message}`);
  }
}

/** Every document of a multi-document YAML file (empty documents skipped). Parse errors and warnings throw. */
export function parseYamlDocs(text: string, what: string): unknown[] {
  const out: unknown[] = [];
  for (const doc of parseAllDocuments(text, { merge: true, prettyErrors: true, uniqueKeys: true })) {
    if (!('errors' in doc)) continue; // an empty stream
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) throw new Error(`${what}: ${problems.map((e) => e.message).join('; ')}`);
    const value = doc.toJS() as unknown;
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Environment names

/** Variables the deployment files may set for Drover's processes that loadConfig does not read itself. */
export const EXTRA_ENV_NAMES = ['NODE_ENV'] as const;

/** What a Drover container's environment may contain: loadConfig's names, the OTel SDK's, and the extras. */
export function knownEnvNames(): Set<string> {
  return new Set<string>([...configEnvNames(), ...OTEL_ENV_NAMES, ...EXTRA_ENV_NAMES]);
}

/** Names that look like Drover settings (a typo here would be silently ignored by loadConfig). */
export const DROVER_LIKE = /\b(?:DROVER|RUNNER|SCHEDULER|AMQP|REDIS)_[A-Z0-9_]+\b/g;

/** `KEY=value` lines (kustomize `envs:` files, .env files); blank lines and `#` comments skipped. */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) throw new Error(`not KEY=value: ${line}`);
    out[line.slice(0, eq).trim()] = line.slice(eq + 1);
  }
  return out;
}

/**
 * A value standing in for the secret `name` in tests: 64 hex digits, different for each name (so passwords that must
 * differ do), URL-safe, and valid wherever Drover checks a secret's form (token lengths, a 32-byte DROVER_ENV_KEY).
 */
export function dummySecret(name: string): string {
  return createHash('sha256').update(`drover-test-secret:${name}`).digest('hex');
}

/** An example secrets file filled in: empty values and `<...>` placeholders become dummySecret(key). */
export function fillExampleSecrets(values: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(values)) out[k] = v === '' ? dummySecret(k) : v.replace(/<[^>]*>/g, dummySecret(k));
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Dockerfile

/** The Dockerfile's final stage: one instruction a line (continuations joined), comments dropped. */
export function dockerfileFinalStage(): string[] {
  const lines = readText('Dockerfile')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const from = lines.map((l, i) => ({ l, i })).filter(({ l }) => /^FROM\s/i.test(l)).at(-1);
  if (!from) throw new Error('Dockerfile: no FROM');
  return lines.slice(from.i);
}

/** Users the final stage creates (`useradd --uid N --gid N --home-dir H ... name`), by name. */
export function dockerfileUsers(): Map<string, { uid: number; gid: number; home: string }> {
  const users = new Map<string, { uid: number; gid: number; home: string }>();
  for (const l of dockerfileFinalStage().filter((x) => /^RUN\s/i.test(x))) {
    for (const cmd of l.split(/&&|;/).map((c) => c.trim()).filter((c) => c.startsWith('useradd '))) {
      const words = cmd.split(/\s+/);
      const opt = (name: string): string | undefined => {
        const i = words.indexOf(name);
        return i >= 0 ? words[i + 1] : undefined;
      };
      const name = words.at(-1)!;
      users.set(name, { uid: Number(opt('--uid')), gid: Number(opt('--gid')), home: opt('--home-dir') ?? `/home/${name}` });
    }
  }
  return users;
}

// ---------------------------------------------------------------------------------------------------------------
// docker-compose

export interface Interpolated {
  name: string;
  /** '' (plain), ':-', '-', ':?', '?', ':+', '+'. */
  op: string;
  arg: string;
}

const INTERPOLATION = /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/** Every `${VAR...}` / `$VAR` reference in a compose file's text. */
export function interpolations(text: string): Interpolated[] {
  const out: Interpolated[] = [];
  for (const m of text.matchAll(INTERPOLATION)) {
    if (m[1]) continue;
    out.push({ name: (m[2] ?? m[5])!, op: m[3] ?? '', arg: m[4] ?? '' });
  }
  return out;
}

/** Compose's variable substitution on one string; a missing required variable throws its message. */
export function interpolate(s: string, env: Readonly<Record<string, string | undefined>>): string {
  return s.replace(INTERPOLATION, (_all, dollar: string | undefined, braced: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
    if (dollar) return '$';
    const name = (braced ?? bare)!;
    const v = env[name];
    const empty = v === undefined || v === '';
    switch (op ?? '') {
      case '':
        return v ?? '';
      case ':-':
        return empty ? arg! : v;
      case '-':
        return v === undefined ? arg! : v;
      case ':?':
        if (empty) throw new Error(`required variable ${name} is missing a value: ${arg}`);
        return v;
      case '?':
        if (v === undefined) throw new Error(`required variable ${name} is missing a value: ${arg}`);
        return v;
      case ':+':
        return empty ? '' : arg!;
      case '+':
        return v === undefined ? '' : arg!;
      default:
        throw new Error(`unsupported interpolation ${op ?? ''} in ${s}`);
    }
  });
}

function interpolateDeep(v: unknown, env: Readonly<Record<string, string | undefined>>): unknown {
  if (typeof v === 'string') return interpolate(v, env);
  if (Array.isArray(v)) return v.map((x) => interpolateDeep(x, env));
  if (isObj(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, interpolateDeep(x, env)]));
  return v;
}

/** Keys whose lists an override replaces instead of extending. */
const REPLACED_LISTS = new Set(['command', 'entrypoint', 'test']);

/** Compose's merge of `-f a.yml -f b.yml`: mappings merge, most lists extend, command-like lists are replaced. */
export function composeMerge(base: unknown, over: unknown, key = ''): unknown {
  if (isObj(base) && isObj(over)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = k in base ? composeMerge(base[k], v, k) : v;
    return out;
  }
  if (Array.isArray(base) && Array.isArray(over) && !REPLACED_LISTS.has(key)) {
    const seen = new Set(base.map((x) => JSON.stringify(x)));
    return [...(base as unknown[]), ...(over as unknown[]).filter((x) => !seen.has(JSON.stringify(x)))];
  }
  return over;
}

export interface ComposeModel {
  services: Record<string, Obj>;
  volumes: Obj;
  raw: Obj;
}

/** Loads compose files as `docker compose -f ... -f ...` would (top-level `x-` keys dropped), with `env` for substitution. */
export function loadCompose(files: string[], env: Readonly<Record<string, string | undefined>>): ComposeModel {
  let merged: unknown = {};
  for (const file of files) {
    const doc = asObj(parseYaml(readText(file), file), file);
    const withoutExtensions = Object.fromEntries(Object.entries(doc).filter(([k]) => !k.startsWith('x-')));
    merged = composeMerge(merged, interpolateDeep(withoutExtensions, env));
  }
  const raw = asObj(merged, files.join(' + '));
  const services = asObj(raw.services, 'services');
  return {
    services: Object.fromEntries(Object.entries(services).map(([k, v]) => [k, asObj(v, `service ${k}`)])),
    volumes: isObj(raw.volumes) ? raw.volumes : {},
    raw,
  };
}

/** A service's `environment` (mapping or `KEY=value` list) as a record. */
export function composeEnv(service: Obj): Record<string, string> {
  const env = service.environment;
  const out: Record<string, string> = {};
  if (Array.isArray(env)) {
    for (const item of env as unknown[]) {
      const s = asString(item, 'environment item');
      const eq = s.indexOf('=');
      if (eq > 0) out[s.slice(0, eq)] = s.slice(eq + 1);
    }
  } else if (isObj(env)) {
    for (const [k, v] of Object.entries(env)) out[k] = v === null || v === undefined ? '' : typeof v === 'string' ? v : JSON.stringify(v);
  }
  return out;
}

/** `1m30s`, `45s`, `500ms` → milliseconds. */
export function parseDuration(s: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|us|h|m|s)/g;
  let total = 0;
  let consumed = 0;
  for (const m of s.matchAll(re)) {
    const n = Number(m[1]);
    total += n * { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001 }[m[2] as 'h' | 'm' | 's' | 'ms' | 'us'];
    consumed += m[0].length;
  }
  if (consumed !== s.length || consumed === 0) throw new Error(`not a duration: ${s}`);
  return total;
}

// ---------------------------------------------------------------------------------------------------------------
// Kubernetes manifests and a small kustomize

export interface K8sObject extends Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> } & Obj;
}

export function isK8sObject(v: unknown): v is K8sObject {
  return isObj(v) && typeof v.apiVersion === 'string' && typeof v.kind === 'string' && typeof get(v, 'metadata', 'name') === 'string';
}

const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole', 'ClusterRoleBinding', 'CustomResourceDefinition', 'PersistentVolume', 'StorageClass']);

export interface Kustomization extends Obj {
  kind: 'Kustomization' | 'Component';
  resources?: string[];
  components?: string[];
  patches?: { path?: string; patch?: string; target?: Obj }[];
  configMapGenerator?: Generator[];
  secretGenerator?: Generator[];
  namespace?: string;
  images?: { name: string; newName?: string; newTag?: string }[];
}

interface Generator {
  name: string;
  behavior?: 'create' | 'merge' | 'replace';
  envs?: string[];
  literals?: string[];
  files?: string[];
}

export function readKustomization(dir: string): Kustomization {
  const path = join(dir, 'kustomization.yaml');
  const k = asObj(parseYaml(readFileSync(path, 'utf8'), relative(ROOT, path)), path);
  if (k.kind !== 'Kustomization' && k.kind !== 'Component') throw new Error(`${path}: kind ${String(k.kind)}`);
  return k as Kustomization;
}

/** Every file or directory a kustomization refers to, resolved. */
export function kustomizationRefs(dir: string, k: Kustomization): { what: string; path: string }[] {
  const refs: { what: string; path: string }[] = [];
  for (const r of k.resources ?? []) refs.push({ what: 'resources', path: resolve(dir, r) });
  for (const c of k.components ?? []) refs.push({ what: 'components', path: resolve(dir, c) });
  for (const p of k.patches ?? []) if (p.path) refs.push({ what: 'patches', path: resolve(dir, p.path) });
  for (const g of [...(k.configMapGenerator ?? []), ...(k.secretGenerator ?? [])]) {
    for (const f of [...(g.envs ?? []), ...(g.files ?? []).map((x) => x.slice(x.indexOf('=') + 1))]) refs.push({ what: `generator ${g.name}`, path: resolve(dir, f) });
  }
  return refs;
}

export interface RenderOptions {
  /**
   * `examples` (default): a generator's `secrets.env` is read from its committed `secrets.env.example`, filled with
   * dummy values, whether or not a real one exists locally (the result must not depend on anyone's secrets).
   */
  secrets: 'examples' | 'files';
}

/** `kubectl kustomize <dir>`, without name-hash suffixes. */
export function renderKustomize(dir: string, opts: RenderOptions = { secrets: 'examples' }): K8sObject[] {
  return renderKustomizationObject(dir, readKustomization(dir), opts);
}

/** Renders a kustomization given as an object, as if it were `dir/kustomization.yaml` (to try other combinations). */
export function renderKustomizationObject(dir: string, k: Kustomization, opts: RenderOptions = { secrets: 'examples' }): K8sObject[] {
  let objects: K8sObject[] = [];
  for (const r of k.resources ?? []) {
    const path = resolve(dir, r);
    if (statSync(path).isDirectory()) objects.push(...renderKustomize(path, opts));
    else objects.push(...readManifests(path));
  }
  for (const c of k.components ?? []) {
    const cdir = resolve(dir, c);
    const component = readKustomization(cdir);
    if (component.kind !== 'Component') throw new Error(`${cdir} is listed under components but is a ${component.kind}`);
    objects = applyKustomization(cdir, component, objects, opts);
  }
  return applyKustomization(dir, { ...k, resources: [], components: [] }, objects, opts);
}

export interface K8sVariant {
  name: string;
  broker: 'bullmq' | 'rabbitmq';
  objects: K8sObject[];
}

/**
 * Each overlay of deploy/k8s as committed, and each with the optional components swapped in: the HPA for KEDA, the
 * archive, network access for jobs, and none at all.
 */
export function k8sVariants(): K8sVariant[] {
  const out: K8sVariant[] = [];
  for (const overlay of ['bullmq', 'rabbitmq'] as const) {
    const dir = join(ROOT, 'deploy/k8s/overlays', overlay);
    const k = readKustomization(dir);
    const withComponent = (c: string): Kustomization => ({ ...k, components: [...(k.components ?? []), `../../components/${c}`] });
    const swap = (from: string, to: string): Kustomization => ({ ...k, components: (k.components ?? []).map((c) => (c.endsWith(from) ? c.replace(from, to) : c)) });
    out.push({ name: overlay, broker: overlay, objects: renderKustomize(dir) });
    out.push({ name: `${overlay} + hpa`, broker: overlay, objects: renderKustomizationObject(dir, swap('components/keda', 'components/hpa')) });
    out.push({ name: `${overlay} + archive`, broker: overlay, objects: renderKustomizationObject(dir, withComponent('archive-postgres')) });
    out.push({ name: `${overlay} + runner-egress`, broker: overlay, objects: renderKustomizationObject(dir, withComponent('runner-egress')) });
    out.push({ name: `${overlay} without optional components`, broker: overlay, objects: renderKustomizationObject(dir, { ...k, components: [] }) });
  }
  return out;
}

export function readManifests(path: string): K8sObject[] {
  return parseYamlDocs(readFileSync(path, 'utf8'), relative(ROOT, path)).map((d, i) => {
    if (!isK8sObject(d)) throw new Error(`${relative(ROOT, path)} document ${i + 1} is not a Kubernetes object`);
    return d;
  });
}

/** A component's (or the final step of a kustomization's) resources, generators, patches, namespace and images. */
function applyKustomization(dir: string, k: Kustomization, input: K8sObject[], opts: RenderOptions): K8sObject[] {
  let objects = structuredClone(input);
  if (k.kind === 'Component') for (const r of k.resources ?? []) objects.push(...readManifests(resolve(dir, r)));
  for (const [kind, gens] of [['ConfigMap', k.configMapGenerator], ['Secret', k.secretGenerator]] as const) {
    for (const g of gens ?? []) objects = generate(dir, kind, g, objects, opts);
  }
  for (const p of k.patches ?? []) {
    const docs = p.path ? parseYamlDocs(readFileSync(resolve(dir, p.path), 'utf8'), p.path) : parseYamlDocs(p.patch ?? '', 'inline patch');
    if (docs.length === 1 && Array.isArray(docs[0])) {
      const targets = objects.filter((o) => matchesTarget(o, p.target));
      if (targets.length === 0) throw new Error(`patch in ${dir} matches nothing: ${JSON.stringify(p.target)}`);
      for (const t of targets) applyJsonPatch(t, docs[0] as unknown[]);
    } else {
      for (const d of docs) {
        if (!isK8sObject(d)) throw new Error(`strategic merge patch in ${dir} is not a Kubernetes object`);
        const t = objects.find((o) => o.kind === d.kind && o.metadata.name === d.metadata.name);
        if (!t) throw new Error(`patch in ${dir} targets ${d.kind}/${d.metadata.name}, which is not there`);
        Object.assign(t, strategicMerge(t, d));
      }
    }
  }
  if (k.namespace) {
    for (const o of objects) {
      if (o.kind === 'Namespace') continue;
      if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
    }
  }
  for (const img of k.images ?? []) {
    for (const o of objects) {
      for (const c of podContainers(o)) {
        if (c.image === img.name || (typeof c.image === 'string' && c.image.startsWith(`${img.name}:`))) {
          c.image = `${img.newName ?? img.name}${img.newTag ? `:${img.newTag}` : ''}`;
        }
      }
    }
  }
  return objects;
}

function generate(dir: string, kind: 'ConfigMap' | 'Secret', g: Generator, objects: K8sObject[], opts: RenderOptions): K8sObject[] {
  const data: Record<string, string> = {};
  for (const f of g.envs ?? []) {
    let path = resolve(dir, f);
    let fromExample = false;
    if (opts.secrets === 'examples' && existsSync(`${path}.example`)) {
      path = `${path}.example`;
      fromExample = true;
    }
    const values = parseEnvFile(readFileSync(path, 'utf8'));
    Object.assign(data, fromExample ? fillExampleSecrets(values) : values);
  }
  for (const l of g.literals ?? []) {
    const eq = l.indexOf('=');
    data[l.slice(0, eq)] = l.slice(eq + 1);
  }
  // `path` (key: the file's name) or `key=path`, as kustomize reads them.
  for (const f of g.files ?? []) {
    const eq = f.indexOf('=');
    const [key, path] = eq > 0 ? [f.slice(0, eq), f.slice(eq + 1)] : [basename(f), f];
    data[key] = readFileSync(resolve(dir, path), 'utf8');
  }
  // As kustomize writes them: a Secret's data is base64.
  if (kind === 'Secret') for (const [k, v] of Object.entries(data)) data[k] = Buffer.from(v, 'utf8').toString('base64');
  const existing = objects.find((o) => o.kind === kind && o.metadata.name === g.name);
  const behavior = g.behavior ?? 'create';
  if (behavior === 'create') {
    if (existing) throw new Error(`${kind} ${g.name} generated twice (use behavior: merge)`);
    const obj: K8sObject = { apiVersion: 'v1', kind, metadata: { name: g.name }, data, ...(kind === 'Secret' ? { type: 'Opaque' } : {}) };
    return [...objects, obj];
  }
  if (!existing) throw new Error(`${kind} ${g.name}: behavior ${behavior} but nothing to ${behavior}`);
  existing.data = behavior === 'merge' ? { ...asObj(existing.data ?? {}, 'data'), ...data } : data;
  return objects;
}

function matchesTarget(o: K8sObject, target: Obj | undefined): boolean {
  if (!target) return false;
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  return (
    (target.kind === undefined || target.kind === o.kind) &&
    (target.name === undefined || target.name === o.metadata.name) &&
    (target.group === undefined || target.group === group) &&
    (target.version === undefined || target.version === version)
  );
}

/** RFC 6902 add / replace / remove (what the components use). */
function applyJsonPatch(target: Obj, ops: unknown[]): void {
  for (const raw of ops) {
    const op = asObj(raw, 'json patch op');
    const parts = asString(op.path, 'path').split('/').slice(1).map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop()!;
    const parent = get(target, ...parts);
    if (!isObj(parent) && !Array.isArray(parent)) throw new Error(`json patch: no parent for ${String(op.path)}`);
    const container = parent as Record<string, unknown>;
    if (op.op === 'remove') {
      if (!(last in container)) throw new Error(`json patch: remove of missing ${String(op.path)}`);
      if (Array.isArray(parent)) parent.splice(Number(last), 1);
      else delete container[last];
    } else if (op.op === 'add' || op.op === 'replace') {
      if (op.op === 'replace' && !(last in container)) throw new Error(`json patch: replace of missing ${String(op.path)}`);
      if (Array.isArray(parent) && last === '-') parent.push(op.value);
      else container[last] = op.value;
    } else {
      throw new Error(`json patch op ${String(op.op)} not supported here`);
    }
  }
}

/** Strategic merge as Kubernetes does it for the lists used here: lists of named objects merge by `name`. */
export function strategicMerge(base: unknown, patch: unknown): unknown {
  if (isObj(base) && isObj(patch)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(patch)) out[k] = k in base ? strategicMerge(base[k], v) : v;
    return out;
  }
  if (Array.isArray(base) && Array.isArray(patch) && [...(base as unknown[]), ...(patch as unknown[])].every((x) => isObj(x) && typeof x.name === 'string')) {
    const out = (base as Obj[]).map((x) => ({ ...x }));
    for (const p of patch as Obj[]) {
      const i = out.findIndex((x) => x.name === p.name);
      if (i >= 0) out[i] = strategicMerge(out[i], p) as Obj;
      else out.push(p);
    }
    return out;
  }
  return patch;
}

export interface Container extends Obj {
  name: string;
  image?: string;
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: ({ name: string; value?: string; valueFrom?: Obj } & Obj)[];
  envFrom?: Obj[];
  volumeMounts?: { name: string; mountPath: string }[];
  securityContext?: Obj;
  resources?: Obj;
}

export function podSpec(o: K8sObject): Obj | undefined {
  const spec = get(o, 'spec', 'template', 'spec');
  return isObj(spec) ? spec : undefined;
}

export function podContainers(o: K8sObject): Container[] {
  const spec = podSpec(o);
  if (!spec) return [];
  return [...asArray(spec.initContainers, 'initContainers'), ...asArray(spec.containers, 'containers')] as Container[];
}

export function podLabels(o: K8sObject): Record<string, string> {
  const labels = get(o, 'spec', 'template', 'metadata', 'labels');
  return isObj(labels) ? (labels as Record<string, string>) : {};
}

/** A label selector (`matchLabels` + `matchExpressions`, or a Service's plain map) against a label set. */
export function selectorMatches(selector: unknown, labels: Record<string, string>): boolean {
  const sel = asObj(selector, 'selector');
  const plain = 'matchLabels' in sel || 'matchExpressions' in sel ? (sel.matchLabels ?? {}) : sel;
  for (const [k, v] of Object.entries(asObj(plain, 'matchLabels'))) if (labels[k] !== v) return false;
  for (const raw of asArray(sel.matchExpressions, 'matchExpressions')) {
    const e = asObj(raw, 'matchExpression');
    const key = asString(e.key, 'key');
    const values = asArray(e.values, 'values') as string[];
    const has = key in labels;
    const ok =
      e.operator === 'In' ? has && values.includes(labels[key]!)
      : e.operator === 'NotIn' ? !has || !values.includes(labels[key]!)
      : e.operator === 'Exists' ? has
      : e.operator === 'DoesNotExist' ? !has
      : false;
    if (!ok) return false;
  }
  return true;
}

/** The environment a container starts with: envFrom ConfigMaps/Secrets, then env (values and key references). */
export function containerEnv(c: Container, objects: K8sObject[]): Record<string, string> {
  const find = (kind: string, name: string): Record<string, string> | undefined => {
    const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
    if (!o) return undefined;
    const data = { ...(o.data as Record<string, string> | undefined) };
    if (kind === 'Secret') for (const [k, v] of Object.entries(data)) data[k] = Buffer.from(v, 'base64').toString('utf8');
    return { ...data, ...(o.stringData as Record<string, string> | undefined) };
  };
  const env: Record<string, string> = {};
  for (const raw of c.envFrom ?? []) {
    const ref = (raw.configMapRef ?? raw.secretRef) as { name: string; optional?: boolean };
    const data = find(raw.configMapRef ? 'ConfigMap' : 'Secret', ref.name);
    if (!data && !ref.optional) throw new Error(`container ${c.name}: envFrom ${ref.name} does not exist`);
    Object.assign(env, data);
  }
  for (const e of c.env ?? []) {
    if (e.value !== undefined) {
      env[e.name] = e.value;
      continue;
    }
    const ref = (e.valueFrom?.secretKeyRef ?? e.valueFrom?.configMapKeyRef) as { name: string; key: string; optional?: boolean } | undefined;
    if (!ref) throw new Error(`container ${c.name}: env ${e.name} has neither value nor a key reference`);
    const data = find(e.valueFrom?.secretKeyRef ? 'Secret' : 'ConfigMap', ref.name);
    const v = data?.[ref.key];
    if (v === undefined) {
      if (ref.optional) continue;
      throw new Error(`container ${c.name}: env ${e.name} refers to ${ref.name}/${ref.key}, which does not exist`);
    }
    env[e.name] = v;
  }
  return env;
}

// ---------------------------------------------------------------------------------------------------------------
// PromQL (enough of it to find metric names and labels) and the metric catalog

export interface CatalogMetric {
  name: string;
  type: string;
  labels: string[];
}

/** Every metric a Drover process exports, from the registry itself. */
export async function metricCatalog(): Promise<Map<string, CatalogMetric>> {
  const m = new DroverMetrics();
  const out = new Map<string, CatalogMetric>();
  // Drover's own carry the namespace label too (a default label of their registry); process_* and nodejs_* do not.
  for (const [registry, extra] of [[m.registry, ['namespace']], [m.processRegistry, []]] as const) {
    for (const j of await registry.getMetricsAsJSON()) {
      const metric = registry.getSingleMetric(j.name) as unknown as { labelNames?: unknown };
      const labels = Array.isArray(metric.labelNames) ? (metric.labelNames as string[]) : [];
      out.set(j.name, { name: j.name, type: String(j.type), labels: [...labels, ...extra] });
    }
  }
  return out;
}

/** The catalog entry a series name belongs to (a histogram's `_bucket`, `_sum`, `_count` included), with why not. */
export function resolveSeries(catalog: Map<string, CatalogMetric>, series: string): { metric?: CatalogMetric; suffix: string; problem?: string } {
  const direct = catalog.get(series);
  if (direct) {
    return direct.type === 'histogram'
      ? { metric: direct, suffix: '', problem: `${series} is a histogram: query ${series}_bucket, _sum or _count` }
      : { metric: direct, suffix: '' };
  }
  const m = /^(.*)_(bucket|sum|count)$/.exec(series);
  const base = m ? catalog.get(m[1]!) : undefined;
  if (base && (base.type === 'histogram' || base.type === 'summary')) return { metric: base, suffix: m![2]! };
  return { suffix: '', problem: `${series} is not a metric Drover exports` };
}

const PROMQL_KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan']);

function stripStrings(expr: string): string {
  return expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
}

/** Metric names an expression selects (Grafana variables allowed; function and aggregation names excluded). */
export function promqlMetrics(expr: string): string[] {
  let s = stripStrings(expr);
  s = s.replace(/\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/g, ' ');
  s = s.replace(/\{[^}]*\}/g, ' ');
  s = s.replace(/\[[^\]]*\]/g, ' ');
  s = s.replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  s = s.replace(/\boffset\s+\S+/g, ' ');
  s = s.replace(/(?<![A-Za-z0-9_:])\d+(?:\.\d+)?(?:e[+-]?\d+)?/gi, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const after = s.slice(m.index + m[0].length);
    if (/^\s*\(/.test(after)) continue; // a function or an aggregation
    if (PROMQL_KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Label names an expression matches on or groups by. */
export function promqlLabels(expr: string): string[] {
  const s = stripStrings(expr);
  const labels = new Set<string>();
  for (const block of s.matchAll(/\{([^}]*)\}/g)) {
    for (const part of block[1]!.split(',')) {
      const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/.exec(part);
      if (m) labels.add(m[1]!);
    }
  }
  for (const g of s.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    for (const l of g[1]!.split(',')) if (l.trim()) labels.add(l.trim());
  }
  return [...labels];
}

/** The string values of `label=~"..."` / `label="..."` matchers on one label, across an expression. */
export function promqlMatcherValues(expr: string, label: string): { op: string; value: string }[] {
  const out: { op: string; value: string }[] = [];
  const re = new RegExp(`(?:[{,]\\s*)${label}\\s*(=~|!~|!=|=)\\s*"((?:[^"\\\\]|\\\\.)*)"`, 'g');
  for (const m of expr.matchAll(re)) out.push({ op: m[1]!, value: m[2]! });
  return out;
}

/** Fills prometheus-adapter's template placeholders so the query can be read as PromQL. */
export function fillAdapterTemplate(query: string, series: string): string {
  return query.replace(/<<\.Series>>/g, series).replace(/<<\.LabelMatchers>>/g, 'namespace="drover"').replace(/<<\.GroupBy>>/g, 'namespace');
}

/** Host and port of a service URL, with each scheme's default port. */
export function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  const defaults: Record<string, number> = { 'redis:': 6379, 'rediss:': 6379, 'amqp:': 5672, 'amqps:': 5671, 'postgres:': 5432, 'postgresql:': 5432, 'http:': 80 };
  return { host: u.hostname, port: u.port ? Number(u.port) : defaults[u.protocol]! };
}
