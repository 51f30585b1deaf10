import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { cli, cliEnv, type CliResult } from './helpers/cli.js';
import { startStack, type Stack } from './helpers/stack.js';

/** The command succeeded; its stderr is shown if not. */
function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');

/** A well-formed job id (a ULID) that no job has. */
const UNKNOWN_ID = '01JZZZZZZZZZZZZZZZZZZZZZZZ';

/** The job's HTTP status and record as the API answers GET /v1/jobs/:id. */
const getJob = (s: Stack, id: string) => s.request<JobRecord>('GET', `/v1/jobs/${id}`);

/** One finished job, one running (sleeps until cancelled) and one queued on a queue no runner serves. */
async function threeJobs(s: Stack): Promise<{ done: string; running: string; queued: string }> {
  const done = (await s.run({ command: 'echo finished' })).id;
  const running = (await s.submit({ command: 'sleep 30' })).id;
  await s.waitFor(running, (j) => j.status === 'running');
  const queued = (await s.submit({ queue: 'nobody-serves-this', command: 'echo never' })).id;
  assert.equal((await getJob(s, queued)).body.status, 'queued');
  return { done, running, queued };
}

test('drover rm: deletes finished jobs, refuses unfinished and unknown ones per id, exits 1 if any failed', async (t) => {
  const s = await startStack(t);
  const env = cliEnv(t, s.url, s.tokens.submit);
  const { done, running, queued } = await threeJobs(s);

  const mixed = await cli(t, env, 'rm', done, running, queued, UNKNOWN_ID);
  assert.equal(mixed.code, 1, `exit ${mixed.code}\n${mixed.stdout}\n${mixed.stderr}`);
  assert.deepEqual(lines(mixed.stdout), [`${done} deleted`], 'only the finished job is deleted, and said so on stdout');
  assert.deepEqual(lines(mixed.stderr), [
    `drover: ${running} not deleted: job ${running} is running; only a finished job can be deleted (cancel it first) (CONFLICT, HTTP 409)`,
    `drover: ${queued} not deleted: job ${queued} is queued; only a finished job can be deleted (cancel it first) (CONFLICT, HTTP 409)`,
    `drover: ${UNKNOWN_ID} not deleted: no job ${UNKNOWN_ID} (NOT_FOUND, HTTP 404)`,
  ]);

  assert.equal((await getJob(s, done)).status, 404, 'the finished job is gone');
  assert.equal((await getJob(s, running)).body.status, 'running', 'the running job stays and runs on');
  assert.equal((await getJob(s, queued)).body.status, 'queued', 'the queued job stays');

  // The same id again: it is gone now, so it is reported missing and the command fails.
  const again = await cli(t, env, 'rm', done);
  assert.equal(again.code, 1);
  assert.equal(again.stdout, '');
  assert.equal(again.stderr, `drover: ${done} not deleted: no job ${done} (NOT_FOUND, HTTP 404)\n`);

  // Once cancelled, the job that was running is finished and rm deletes it.
  assert.equal((await s.request<JobRecord>('POST', `/v1/jobs/${running}/cancel`, {})).body.status, 'cancelled');
  assert.equal(ok(await cli(t, env, 'rm', running)).stdout, `${running} deleted\n`);
  assert.equal((await getJob(s, running)).status, 404);
});

test('drover rm: several finished jobs exit 0; --json prints each id\'s HTTP status and the API\'s answer', async (t) => {
  const s = await startStack(t);
  const env = cliEnv(t, s.url, s.tokens.submit);
  const [a, b] = await Promise.all([s.run({ command: 'true' }), s.run({ command: 'exit 3' })]);
  assert.equal(b.status, 'failed');

  const both = ok(await cli(t, env, 'rm', a.id, b.id));
  assert.deepEqual(lines(both.stdout), [`${a.id} deleted`, `${b.id} deleted`]);
  assert.equal(both.stderr, '');
  for (const id of [a.id, b.id]) assert.equal((await getJob(s, id)).status, 404, `${id} is gone`);

  const c = await s.run({ command: 'echo json' });
  const json = await cli(t, env, 'rm', '--json', c.id, UNKNOWN_ID);
  assert.equal(json.code, 1, json.stderr);
  assert.equal(json.stderr, '', '--json says it all on stdout');
  assert.deepEqual(JSON.parse(json.stdout), [
    { id: c.id, status: 200, answer: { count: 1, ids: [c.id], idsTruncated: false } },
    { id: UNKNOWN_ID, status: 404, answer: { error: { code: 'NOT_FOUND', message: `no job ${UNKNOWN_ID}` } } },
  ]);
  assert.equal((await getJob(s, c.id)).status, 404);
});

test('drover rm: a read-only token is refused (403) for every id and nothing is deleted', async (t) => {
  const s = await startStack(t);
  const [a, b] = await Promise.all([s.run({ command: 'true' }), s.run({ command: 'true' })]);

  const refused = await cli(t, cliEnv(t, s.url, s.tokens.read), 'rm', a.id, b.id);
  assert.equal(refused.code, 1);
  assert.equal(refused.stdout, '');
  const forbidden = 'this action needs the "submit" scope; the token has "read" (FORBIDDEN, HTTP 403)';
  assert.deepEqual(lines(refused.stderr), [`drover: ${a.id} not deleted: ${forbidden}`, `drover: ${b.id} not deleted: ${forbidden}`]);
  for (const id of [a.id, b.id]) assert.equal((await getJob(s, id)).body.status, 'succeeded', `${id} is still there`);
});

test('drover rm: usage (no id exits 2), help, and the command list names it', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const env = cliEnv(t, s.url, s.tokens.submit);

  const none = await cli(t, env, 'rm');
  assert.equal(none.code, 2);
  assert.equal(none.stderr, 'drover rm: missing <id>\nusage: drover rm <id>... [--json]  (drover rm --help for more)\n');

  const help = ok(await cli(t, env, 'rm', '--help')).stdout;
  assert.match(help, /^usage: drover rm <id>\.\.\. \[--json\]$/m);
  assert.match(help, /cancel it first/);
  assert.match(help, /^ {2} {4}--json +print the API's JSON/m);
  assert.match(ok(await cli(t, env, 'help')).stdout, /^ {2}rm +delete finished jobs' records/m);
});
