import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { injectJob } from './helpers/bypass.js';
import { startStack } from './helpers/stack.js';

function policyFile(t: { after: (fn: () => void) => void }, policy: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'drover-policy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'policy.json');
  writeFileSync(path, JSON.stringify(policy));
  return path;
}

test('command policy: refused at submit with the rule that refused it; runners refuse it again when the API is bypassed', async (t) => {
  const path = policyFile(t, { queues: { locked: { shell: false, allow: ['/bin/echo', '/usr/bin/*'] } } });
  const s = await startStack(t, { env: { DROVER_POLICY_FILE: path, RUNNER_QUEUES: 'default,locked' } });
  const shell = await s.request<{ error: { code: string; message: string } }>('POST', '/v1/jobs', { queue: 'locked', command: 'echo hi' });
  assert.equal(shell.status, 403);
  assert.match(shell.body.error.message, /queue "locked" forbids shell commands/);
  const program = await s.request<{ error: { message: string } }>('POST', '/v1/jobs', { queue: 'locked', argv: ['/bin/sh', '-c', 'id'] });
  assert.equal(program.status, 403);
  assert.match(program.body.error.message, /allows only programs matching \/bin\/echo, \/usr\/bin\/\*; "\/bin\/sh"/);
  const batch = await s.request('POST', '/v1/jobs/batch', { jobs: [{ queue: 'locked', argv: ['/bin/echo'] }, { queue: 'locked', command: 'x' }] });
  assert.equal(batch.status, 403, 'a batch with one refused job is refused whole');
  assert.equal((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items.length, 0, 'nothing stored');
  const ok = await s.run({ queue: 'locked', argv: ['/usr/bin/env', 'true'] });
  assert.equal(ok.status, 'succeeded');
  assert.equal((await s.run({ command: 'true' })).status, 'succeeded', 'other queues are not restricted');
  const sched = await s.request('POST', '/v1/schedules', { name: 'x', cron: '@daily', job: { queue: 'locked', command: 'rm -rf /' } });
  assert.equal(sched.status, 403, 'schedules are checked too');

  // Someone writes straight to Redis and the broker: the runner checks the policy itself.
  const id = await injectJob(t, s, { queue: 'locked', command: 'touch /tmp/pwned' });
  const refused = await s.waitFor(id);
  assert.equal(refused.status, 'failed');
  assert.match(refused.error ?? '', /refused by the runner's command policy/);
  assert.equal(refused.startedAt !== null && refused.outputBytes > 0, false);
});

test('a token restricted to queues can only submit to and read jobs of those queues', async (t) => {
  const s = await startStack(t, { runner: false });
  const ci = randomBytes(24).toString('base64url');
  s.registry.add(ci, { name: 'ci', scope: 'submit', queues: ['ci'] });
  const mine = await s.request<JobRecord>('POST', '/v1/jobs', { queue: 'ci', command: 'true' }, ci);
  assert.equal(mine.status, 201);
  const other = await s.request<{ error: { code: string } }>('POST', '/v1/jobs', { command: 'true' }, ci);
  assert.equal(other.status, 403);
  const foreign = await s.submit({ command: 'true' });
  // Another queue's job looks like no job at all (test/security.queue-scope.test.ts checks every route).
  assert.equal((await s.request('GET', `/v1/jobs/${foreign.id}`, undefined, ci)).status, 404);
  assert.equal((await s.request('GET', `/v1/jobs/${foreign.id}/logs`, undefined, ci)).status, 404);
  assert.equal((await s.request('POST', `/v1/jobs/${foreign.id}/cancel`, undefined, ci)).status, 404);
  assert.equal((await s.request('GET', `/v1/jobs/${mine.body.id}`, undefined, ci)).status, 200);
  assert.equal((await s.request('GET', '/v1/jobs', undefined, ci)).status, 403, 'listing needs queue=');
  const listed = await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs?queue=ci', undefined, ci);
  assert.deepEqual(listed.body.items.map((j) => j.id), [mine.body.id]);
});

test('user and group: only from the runner allow-list (403 at submit); the job runs as them in its own directory', async (t) => {
  const s = await startStack(t, { env: { RUNNER_ALLOWED_USERS: 'nobody' } });
  const ok = await s.run({ command: 'id -u; id -g; touch here && echo wrote', user: 'nobody' });
  assert.equal(ok.status, 'succeeded', ok.error ?? '');
  assert.equal(ok.user, 'nobody');
  const lines = (await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${ok.id}/logs`)).body.items.map((l) => l.line);
  assert.deepEqual(lines, ['65534', '65534', 'wrote']);
  const before = (await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items.length;
  const root = await s.request<{ error: { code: string; message: string } }>('POST', '/v1/jobs', { command: 'id -u', user: 'root' });
  assert.equal(root.status, 403);
  assert.match(root.body.error.message, /user "root" is not allowed/);
  const group = await s.request<{ error: { code: string; message: string } }>('POST', '/v1/jobs/batch', { jobs: [{ command: 'true' }, { command: 'id -g', group: 'root' }] });
  assert.equal(group.status, 403);
  assert.match(group.body.error.message, /jobs\/1\/group: group "root" is not allowed/);
  assert.equal((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items.length, before, 'nothing was stored');
  const bad = await s.request('POST', '/v1/jobs', { command: 'true', user: 'rm -rf' });
  assert.equal(bad.status, 400);
});
