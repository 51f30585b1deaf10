// The OpenAPI document at /docs/json: complete (every route, operationId, tags, 2xx and 4xx schemas, scope), true
// (the scope it states is the one enforced; real answers match its schemas), clean by Redocly's recommended rules,
// and good enough to generate a TypeScript client that compiles.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { createConfig, lintFromString } from '@redocly/openapi-core';
import { routeTable } from '@drover/api';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { startStack, type Stack } from './helpers/stack.js';

// The API's own Ajv 8 (the root's is eslint's Ajv 6).
const fromApi = createRequire(new URL('../services/api/package.json', import.meta.url));
interface Validator {
  (data: unknown): boolean;
  errors?: unknown[] | null;
}
interface AjvLike {
  compile(schema: object): Validator;
  errorsText(errors?: unknown[] | null): string;
}
const { Ajv } = fromApi('ajv') as { Ajv: new (options: object) => AjvLike };
const addFormats = fromApi('ajv-formats') as (ajv: AjvLike) => void;

type Schema = Record<string, unknown>;
interface Operation {
  operationId?: string;
  tags?: string[];
  summary?: string;
  description?: string;
  security?: unknown[];
  'x-drover-scope'?: string;
  responses: Record<string, { description: string; content?: Record<string, { schema?: Schema }> }>;
}
interface Doc {
  openapi: string;
  servers?: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
  tags?: { name: string }[];
}

const METHODS = ['get', 'put', 'post', 'delete', 'patch'];
/** One API without runner or scheduler for the tests that only read the document and knock on doors; closed after the file. */
let docStackStarted: Promise<Stack> | undefined;
const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});
const docStack = (): Promise<Stack> => (docStackStarted ??= startStack({ after: (fn: () => Promise<void>) => cleanups.push(fn) } as unknown as TestContext, { runner: false, scheduler: false }));
const fetchDoc = async (s: Stack): Promise<Doc> => {
  const res = await s.request<Doc>('GET', '/docs/json', undefined, null);
  assert.equal(res.status, 200, 'the document is open');
  return res.body;
};
const operations = (doc: Doc): { method: string; path: string; op: Operation }[] =>
  Object.entries(doc.paths).flatMap(([path, item]) => METHODS.filter((m) => item[m]).map((method) => ({ method, path, op: item[method]! })));
/** A concrete URL for a templated path: the auth hook answers before any parameter is looked at. */
const concrete = (path: string): string => path.replace('{id}', '01ARZ3NDEKTSV4RRFFQ69G5FAV').replace(/\{[^}]+\}/g, 'x');

test('every route is in the document with operationId, tags, summary, 2xx and 4xx schemas and its scope', async () => {
  const s = await docStack();
  const doc = await fetchDoc(s);
  const ops = operations(doc);

  // Every route the app serves is documented, except the dashboard's and the docs' own files and the 405 answer.
  const undocumented = routeTable(s.api.app)
    .filter((r) => r.method !== 'OPTIONS' && !(r.method === 'PATCH' && r.url === '/proc'))
    // Meproc's /proc/output for any method, and the 404 of other paths under Meproc's and Coyotes' (in their envelopes).
    .filter((r) => !(r.url === '/proc/output' && r.method !== 'GET' && r.method !== 'HEAD') && !/^\/(proc|channels|delay-tasks)\/\*$/.test(r.url))
    .filter((r) => r.url !== '/' && !r.url.startsWith('/ui') && !r.url.startsWith('/docs'))
    // Keeper's PQL engine routes only answer that Drover has no PQL engine (404): no operations.
    .filter((r) => !/^\/(connection|function|variable)\/\*$/.test(r.url))
    .map((r) => `${r.method} ${r.url.replace(/:(\w+)/g, '{$1}')}`)
    .filter((k) => !ops.some(({ method, path }) => `${method.toUpperCase()} ${path}` === k));
  assert.deepEqual(undocumented, [], 'routes missing from the document');
  for (const tag of ['compat-meproc', 'compat-coyotes']) assert.ok(ops.some(({ op }) => op.tags?.includes(tag)), `${tag} operations are in the document`);
  assert.ok(doc.paths['/proc']?.post && doc.paths['/channels/{name}']?.post, 'Meproc and Coyotes routes are present');

  const ids = new Set<string>();
  for (const { method, path, op } of ops) {
    const at = `${method.toUpperCase()} ${path}`;
    assert.ok(op.operationId && /^[a-z][A-Za-z]+$/.test(op.operationId), `${at}: operationId`);
    assert.ok(!ids.has(op.operationId), `${at}: operationId ${op.operationId} is unique`);
    ids.add(op.operationId);
    assert.ok(op.tags?.length && op.tags.every((tag) => doc.tags?.some((d) => d.name === tag)), `${at}: declared tags`);
    assert.ok(op.summary, `${at}: summary`);
    const codes = Object.keys(op.responses);
    const success = codes.filter((c) => /^2/.test(c));
    assert.ok(success.length > 0, `${at}: a 2xx response`);
    for (const c of success) if (c !== '204') assert.ok(op.responses[c]!.content, `${at}: ${c} has a schema`);
    const failures = codes.filter((c) => /^4/.test(c));
    assert.ok(failures.length > 0, `${at}: a 4xx response`);
    for (const c of failures) assert.ok(op.responses[c]!.content?.['application/json']?.schema, `${at}: ${c} has the error schema`);
    for (const c of codes) assert.notEqual(op.responses[c]!.description, 'Default Response', `${at}: ${c} says what it means`);
    const scope = op['x-drover-scope'];
    assert.ok(scope && ['read', 'submit', 'admin', 'open'].includes(scope), `${at}: x-drover-scope`);
    assert.match(op.description ?? '', scope === 'open' ? /no token needed/ : new RegExp(`scope \`${scope}\``), `${at}: the scope in the description`);
    if (scope === 'open') assert.deepEqual(op.security, [], `${at}: open means no security requirement`);
    else assert.equal(op.security, undefined, `${at}: the document's bearer requirement applies`);
    const params = (op as { parameters?: { in: string; name: string }[] }).parameters ?? [];
    if (scope !== 'open') assert.ok(params.some((p) => p.in === 'header' && p.name === 'drover-namespace'), `${at}: takes the Drover-Namespace header`);
  }
  const open = ops.filter(({ op }) => op['x-drover-scope'] === 'open').map(({ op }) => op.operationId).sort();
  assert.deepEqual(open, ['getHealth', 'getReadiness'], 'only the probes are open');
  assert.equal(doc.servers?.[0]?.url, s.url, 'servers: where the document was fetched from');
});

test('the stated scope is the enforced one: a token one scope short gets 403, no token 401, open routes answer without', async (t) => {
  const s = await docStack();
  const below: Record<string, string | undefined> = { admin: s.tokens.submit, submit: s.tokens.read, read: undefined };
  const checked: string[] = [];
  for (const { method, path, op } of operations(await fetchDoc(s))) {
    const url = concrete(path);
    const scope = op['x-drover-scope']!;
    if (scope === 'open') {
      const res = await s.request(method.toUpperCase(), url, undefined, null);
      assert.ok(res.status < 400, `${method} ${path} answers without a token (${res.status})`);
      continue;
    }
    // Only tokens that fall short: nothing is changed by these calls.
    assert.equal((await s.request(method.toUpperCase(), url, undefined, null)).status, 401, `${method} ${path} without a token`);
    const weaker = below[scope];
    if (weaker) assert.equal((await s.request(method.toUpperCase(), url, undefined, weaker)).status, 403, `${method} ${path} with a token below ${scope}`);
    checked.push(op.operationId!);
  }
  assert.ok(checked.length > 60, `checked ${checked.length} operations`);

  // Control: with DROVER_COMPAT_OPEN the adapters need no token, and the document says so.
  const compatOpen = await startStack(t, { runner: false, scheduler: false, env: { DROVER_COMPAT_OPEN: '1' } });
  const opened = operations(await fetchDoc(compatOpen)).filter(({ op }) => op['x-drover-scope'] === 'open').map(({ op }) => op.operationId!);
  assert.ok(opened.includes('meprocList') && opened.includes('coyotesListChannels') && !opened.includes('listJobs'), opened.join(', '));
  assert.equal((await compatOpen.request('GET', '/proc', undefined, null)).status, 200);
});

test('servers: DROVER_PUBLIC_URL when set, else the host the document was asked from', async (t) => {
  const s = await docStack();
  const viaLan = await s.api.app.inject({ method: 'GET', url: '/docs/json', headers: { host: 'drover.lan:8606' } });
  assert.deepEqual(viaLan.json<Doc>().servers?.map((x) => x.url), ['http://drover.lan:8606']);
  const pub = await startStack(t, { runner: false, scheduler: false, env: { DROVER_PUBLIC_URL: 'https://drover.corp/' } });
  const viaProxy = await pub.api.app.inject({ method: 'GET', url: '/docs/json', headers: { host: 'internal:8606' } });
  assert.deepEqual(viaProxy.json<Doc>().servers?.map((x) => x.url), ['https://drover.corp']);
});

test('real answers match the documented schemas; workflows and steps say status, with state as a deprecated alias', async (t) => {
  const s = await startStack(t);
  const doc = await fetchDoc(s);
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  const check = async (method: string, path: string, template: string, body?: unknown, token?: string | null): Promise<Record<string, unknown>> => {
    const res = await s.request<Record<string, unknown>>(method, path, body, token);
    const schema = doc.paths[template]?.[method.toLowerCase()]?.responses[String(res.status)]?.content?.['application/json']?.schema;
    assert.ok(schema, `${method} ${template} documents its ${res.status}: ${JSON.stringify(res.body)}`);
    const validate = ajv.compile(schema);
    assert.ok(validate(res.body), `${method} ${path} ${res.status} matches its schema: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(res.body)}`);
    return res.body;
  };

  const job = await check('POST', '/v1/jobs', '/v1/jobs', { command: 'echo hi' });
  await s.waitFor(job.id as string);
  await check('GET', `/v1/jobs/${String(job.id)}`, '/v1/jobs/{id}');
  await check('GET', `/v1/jobs/${String(job.id)}/logs`, '/v1/jobs/{id}/logs');
  await check('GET', '/v1/jobs?limit=5', '/v1/jobs');
  await check('GET', '/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV', '/v1/jobs/{id}');
  await check('POST', '/v1/jobs', '/v1/jobs', { command: 42 });
  await check('GET', '/v1/queues', '/v1/queues');
  await check('GET', '/v1/queues/default', '/v1/queues/{name}');
  await check('PUT', '/v1/queues/openapi', '/v1/queues/{name}', { concurrency: 2 });
  await check('GET', '/v1/runners', '/v1/runners');
  await check('GET', '/v1/events?after=0-0&limit=5', '/v1/events');
  await check('GET', '/v1/whoami', '/v1/whoami');
  await check('GET', '/v1/webhooks', '/v1/webhooks');
  await check('GET', '/healthz', '/healthz', undefined, null);
  await check('GET', '/readyz', '/readyz', undefined, null);
  await check('POST', '/v1/schedules', '/v1/schedules', { name: 'openapi', cron: '0 0 1 1 *', job: { command: 'true' } });
  await check('GET', '/v1/schedules/openapi', '/v1/schedules/{name}');

  const created = await check('POST', '/v1/workflows', '/v1/workflows', { name: 'wf', steps: [{ name: 'a', job: { command: 'true' } }, { name: 'b', dependsOn: ['a'], job: { command: 'false' } }] });
  let wf = created;
  for (let i = 0; i < 400 && wf.status === 'running'; i++) {
    await new Promise((r) => setTimeout(r, 25));
    wf = await check('GET', `/v1/workflows/${String(created.id)}`, '/v1/workflows/{id}');
  }
  assert.equal(wf.status, 'failed');
  assert.equal(wf.state, wf.status, 'the deprecated alias says the same');
  const steps = wf.steps as { name: string; status: string; state: string }[];
  assert.deepEqual(steps.map((x) => [x.name, x.status, x.state]), [['a', 'succeeded', 'succeeded'], ['b', 'failed', 'failed']]);
  await check('GET', '/v1/workflows', '/v1/workflows');

  // The adapters, in their own envelopes.
  await check('POST', '/proc', '/proc', { name: 'oa', cmd: 'true', type: 'once', replica: 1 });
  await check('GET', '/proc', '/proc');
  await check('POST', '/proc', '/proc', { name: 'oa', cmd: 'true', type: 'once', replica: 1 });
  await check('POST', '/channels/default', '/channels/{name}', { task: 'true' });
  await check('GET', '/channels', '/channels');
  await check('GET', '/channels/nope-nope', '/channels/{name}');

  // The schemas say which is which.
  const workflowSchema = JSON.stringify(doc.paths['/v1/workflows/{id}']?.get?.responses['200']?.content?.['application/json']?.schema);
  const parsed = JSON.parse(workflowSchema) as { properties: Record<string, Schema>; required: string[] };
  assert.equal(parsed.properties.state?.deprecated, true, 'workflow state is deprecated');
  assert.notEqual(parsed.properties.status?.deprecated, true);
  const step = (parsed.properties.steps as { items: { properties: Record<string, Schema> } }).items;
  assert.equal(step.properties.state?.deprecated, true, 'step state is deprecated');
});

test("Redocly's recommended rules find no error, and a client generated by openapi-typescript compiles", async (t) => {
  const s = await docStack();
  const doc = await fetchDoc(s);
  const config = await createConfig({ extends: ['recommended'] });
  const problems = await lintFromString({ source: JSON.stringify(doc), absoluteRef: 'drover-openapi.json', config });
  const describe = (p: (typeof problems)[number]): string => `${p.ruleId} ${p.location[0]?.pointer ?? ''}: ${p.message}`;
  const errors = problems.filter((p) => p.severity === 'error');
  assert.deepEqual(errors.map(describe), [], 'lint errors');
  const warnings = problems.filter((p) => p.severity === 'warn');
  t.diagnostic(`redocly warnings: ${warnings.length}${warnings.length ? ` (${[...new Set(warnings.map((w) => w.ruleId))].join(', ')})` : ''}`);

  // Control: the linter does report errors (a document without paths' responses).
  const broken = await lintFromString({ source: JSON.stringify({ openapi: '3.0.3', info: { title: 'x', version: '1' }, paths: { '/x': { get: {} } } }), absoluteRef: 'broken.json', config });
  assert.ok(broken.some((p) => p.severity === 'error'), 'the linter finds errors in a broken document');

  const client = astToString(await openapiTS(doc as never));
  const dir = mkdtempSync(join(tmpdir(), 'drover-openapi-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'drover.d.ts'), client);
  const usage = (extra: string): string => `import type { operations, paths } from './drover.js';
type Job = paths['/v1/jobs/{id}']['get']['responses'][200]['content']['application/json'];
type Workflow = operations['getWorkflow']['responses'][200]['content']['application/json'];
type Submit = operations['submitJob']['requestBody'];
export const status: Job['status'] = 'succeeded';
export const workflowStatus: Workflow['status'] = 'running';
export const stepStatus: Workflow['steps'][number]['status'] = 'skipped';
export const body: NonNullable<Submit>['content']['application/json'] = { command: 'echo hi', queue: 'default' };
${extra}`;
  // One program for both: the use that must compile, and a control that must not (a status the API does not have).
  writeFileSync(join(dir, 'usage.ts'), usage(''));
  writeFileSync(join(dir, 'wrong.ts'), usage("export const wrong: Job['status'] = 'finished';"));
  const program = ts.createProgram([join(dir, 'usage.ts'), join(dir, 'wrong.ts')], {
    strict: true, noEmit: true, noUncheckedIndexedAccess: true, target: ts.ScriptTarget.ES2022, lib: ['lib.es2022.d.ts'],
    module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, types: [],
  });
  const all = ts.getPreEmitDiagnostics(program).map((d) => ({ file: d.file?.fileName ?? '', text: ts.flattenDiagnosticMessageText(d.messageText, '\n') }));
  const wrong = all.filter((d) => d.file.endsWith('wrong.ts'));
  assert.deepEqual(all.filter((d) => !wrong.includes(d)).map((d) => `${d.file}: ${d.text}`), [], 'the generated client and its use compile');
  assert.ok(wrong.some((d) => d.text.includes('"finished"')), 'a status the API does not have is a type error');
});
