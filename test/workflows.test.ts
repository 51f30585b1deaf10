import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { jobTempDir, sharedFile } from './helpers/job-dir.js';
import { startStack, type Stack } from './helpers/stack.js';

interface StepView {
  name: string;
  status: string;
  jobId: string;
  startedAt: string | null;
  finishedAt: string | null;
}
interface WorkflowView {
  id: string;
  status: string;
  run: number;
  steps: StepView[];
}

async function settled(s: Stack, id: string, timeoutMs = 30_000): Promise<WorkflowView> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const wf = (await s.request<WorkflowView>('GET', `/v1/workflows/${id}`)).body;
    if (wf.status !== 'running') return wf;
    assert.ok(Date.now() < deadline, `workflow ${id} still running: ${JSON.stringify(wf.steps.map((x) => [x.name, x.status]))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const step = (wf: WorkflowView, name: string): StepView => wf.steps.find((x) => x.name === name)!;
const ms = (iso: string | null): number => Date.parse(iso!);

test('a diamond DAG: b and c run in parallel after a, d after both', async (t) => {
  const s = await startStack(t);
  const res = await s.request<WorkflowView>('POST', '/v1/workflows', {
    name: 'diamond',
    steps: [
      { name: 'd', job: { command: 'true' }, dependsOn: ['b', 'c'] },
      { name: 'a', job: { command: 'sleep 0.2' } },
      { name: 'b', job: { command: 'sleep 0.6' }, dependsOn: ['a'] },
      { name: 'c', job: { command: 'sleep 0.6' }, dependsOn: ['a'] },
    ],
  });
  assert.equal(res.status, 201);
  assert.equal(res.body.status, 'running');
  const wf = await settled(s, res.body.id);
  assert.equal(wf.status, 'succeeded');
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map((n) => step(wf, n));
  assert.ok(ms(b!.startedAt) >= ms(a!.finishedAt) && ms(c!.startedAt) >= ms(a!.finishedAt), 'b and c after a');
  assert.ok(ms(b!.startedAt) < ms(c!.finishedAt) && ms(c!.startedAt) < ms(b!.finishedAt), 'b and c overlapped: they ran in parallel');
  assert.ok(ms(d!.startedAt) >= Math.max(ms(b!.finishedAt), ms(c!.finishedAt)), 'd after both');
});

test('a failed step skips its descendants, others go on; restart failed / whole / from steps', async (t) => {
  const s = await startStack(t);
  // flag makes `bad` fail until the file exists; `side` does not depend on it.
  const flag = join(tmpdir(), `drover-wf-${s.prefix}`);
  t.after(async () => (await import('node:fs/promises')).rm(flag, { force: true }));
  const res = await s.request<WorkflowView>('POST', '/v1/workflows', {
    name: 'partial',
    steps: [
      { name: 'root', job: { command: 'true' } },
      { name: 'bad', job: { command: `test -e ${flag}` }, dependsOn: ['root'] },
      { name: 'after-bad', job: { command: 'true' }, dependsOn: ['bad'] },
      { name: 'side', job: { command: 'true' }, dependsOn: ['root'] },
    ],
  });
  const first = await settled(s, res.body.id);
  assert.equal(first.status, 'failed');
  assert.deepEqual(first.steps.map((x) => [x.name, x.status]), [['root', 'succeeded'], ['bad', 'failed'], ['after-bad', 'skipped'], ['side', 'succeeded']]);

  await (await import('node:fs/promises')).writeFile(flag, '');
  const again = await s.request<WorkflowView>('POST', `/v1/workflows/${res.body.id}/restart`, { mode: 'failed' });
  assert.equal(again.status, 200);
  const second = await settled(s, res.body.id);
  assert.equal(second.status, 'succeeded');
  assert.equal(second.run, 2);
  assert.equal(step(second, 'root').jobId, step(first, 'root').jobId, 'succeeded steps are kept');
  assert.equal(step(second, 'side').jobId, step(first, 'side').jobId);
  assert.notEqual(step(second, 'bad').jobId, step(first, 'bad').jobId);
  assert.notEqual(step(second, 'after-bad').jobId, step(first, 'after-bad').jobId);

  await s.request('POST', `/v1/workflows/${res.body.id}/restart`, { steps: ['side'] });
  const third = await settled(s, res.body.id);
  assert.notEqual(step(third, 'side').jobId, step(second, 'side').jobId, 'the named step runs again');
  assert.equal(step(third, 'bad').jobId, step(second, 'bad').jobId, 'steps not downstream of it stay');

  await s.request('POST', `/v1/workflows/${res.body.id}/restart`, { mode: 'whole' });
  const fourth = await settled(s, res.body.id);
  assert.equal(fourth.status, 'succeeded');
  assert.equal(fourth.run, 4);
  for (const x of fourth.steps) assert.notEqual(x.jobId, step(third, x.name).jobId, `${x.name} ran again`);
  const restartBad = await s.request('POST', `/v1/workflows/${res.body.id}/restart`, { mode: 'failed' });
  assert.equal(restartBad.status, 409, 'nothing failed');
});

test('cancel kills running steps and answers with them; waiting steps never start', async (t) => {
  const s = await startStack(t);
  const res = await s.request<WorkflowView>('POST', '/v1/workflows', {
    name: 'long',
    steps: [
      { name: 'slow', job: { command: 'sleep 30' } },
      { name: 'next', job: { command: 'true' }, dependsOn: ['slow'] },
    ],
  });
  const slowJob = step(res.body, 'slow').jobId;
  await s.waitFor(slowJob, (j) => j.status === 'running');
  const running = await s.request<WorkflowView>('POST', `/v1/workflows/${res.body.id}/restart`, { mode: 'whole' });
  assert.equal(running.status, 409, 'no restart while running');
  const cancelled = await s.request<{ interrupted: string[]; cancelled: string[] }>('POST', `/v1/workflows/${res.body.id}/cancel`);
  assert.deepEqual(cancelled.body.interrupted, [slowJob]);
  assert.deepEqual(cancelled.body.cancelled, [step(res.body, 'next').jobId]);
  const wf = await settled(s, res.body.id);
  assert.equal(wf.status, 'cancelled');
  assert.equal((await s.waitFor(slowJob)).status, 'cancelled');
});

test('workflows: a cycle or an unknown step is a 400 naming it; nothing is stored', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const cases: [unknown, RegExp][] = [
    [{ name: 'w', steps: [{ name: 'a', job: { command: 'true' }, dependsOn: ['b'] }, { name: 'b', job: { command: 'true' }, dependsOn: ['a'] }] }, /cycle: a -> b -> a/],
    [{ name: 'w', steps: [{ name: 'a', job: { command: 'true' }, dependsOn: ['ghost'] }] }, /unknown step "ghost"/],
    [{ name: 'w', steps: [{ name: 'a', job: { command: 'true' } }, { name: 'a', job: { command: 'true' } }] }, /duplicate step "a"/],
    [{ name: 'w', steps: [{ name: 'a', job: {} }] }, /command/],
    [{ name: 'w', steps: [] }, /steps/],
  ];
  for (const [body, message] of cases) {
    const res = await s.request<{ error: { message: string } }>('POST', '/v1/workflows', body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.match(res.body.error.message, message);
  }
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/workflows')).body.items, []);
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items, []);
  assert.equal((await s.request('GET', '/v1/workflows/01J0000000000000000000000Z')).status, 404);
});

test('a schedule can run a workflow: each fire starts a run, listed under /v1/workflows', async (t) => {
  const s = await startStack(t);
  const created = await s.request('POST', '/v1/schedules', {
    name: 'nightly-dag',
    cron: '0 3 * * *',
    workflow: { steps: [{ name: 'extract', job: { command: 'true' } }, { name: 'load', job: { command: 'true' }, dependsOn: ['extract'] }] },
  });
  assert.equal(created.status, 201);
  const fired = await s.request<{ id: string; labels: Record<string, string> }>('POST', '/v1/schedules/nightly-dag/trigger', {});
  assert.equal(fired.status, 201, JSON.stringify(fired.body));
  const workflowId = fired.body.labels['drover.workflow']!;
  const wf = await settled(s, workflowId);
  assert.equal(wf.status, 'succeeded');
  assert.deepEqual(wf.steps.map((x) => [x.name, x.status]), [['extract', 'succeeded'], ['load', 'succeeded']]);
  assert.ok(ms(step(wf, 'load').startedAt) >= ms(step(wf, 'extract').finishedAt));
  const runs = (await s.request<{ items: { id: string }[] }>('GET', '/v1/schedules/nightly-dag/runs')).body.items;
  assert.equal(runs.length, 2, 'both step jobs are runs of the schedule');
  // And by the clock: a one-second cron starts runs by itself.
  await s.request('POST', '/v1/schedules', { name: 'every-second', cron: '* * * * * *', workflow: { steps: [{ name: 'only', job: { command: 'true' } }] } });
  const deadline = Date.now() + 15_000;
  let fromCron: { id: string; name: string; status: string }[] = [];
  while (!fromCron.some((w) => w.status === 'succeeded')) {
    assert.ok(Date.now() < deadline, 'the cron did not start a workflow run');
    await new Promise((r) => setTimeout(r, 100));
    fromCron = (await s.request<{ items: typeof fromCron }>('GET', '/v1/workflows')).body.items.filter((w) => w.name === 'every-second');
  }
  await s.request('POST', '/v1/schedules/every-second/disable');
  const bad = await s.request<{ error: { message: string } }>('POST', '/v1/schedules', {
    name: 'both', cron: '* * * * *', job: { command: 'true' }, workflow: { steps: [{ name: 'a', job: { command: 'true' } }] },
  });
  assert.equal(bad.status, 400);
  assert.match(bad.body.error.message, /exactly one of "job" and "workflow"/);
  const cyclic = await s.request<{ error: { message: string } }>('POST', '/v1/schedules', {
    name: 'cyclic', cron: '* * * * *', workflow: { steps: [{ name: 'a', job: { command: 'true' }, dependsOn: ['a'] }] },
  });
  assert.equal(cyclic.status, 400);
  assert.match(cyclic.body.error.message, /cycle: a -> a/);
});

test('workflow concurrency: at most N steps of a run at once, however many could run', async (t) => {
  const s = await startStack(t, { env: { RUNNER_CONCURRENCY: '8' } });
  const dir = jobTempDir(t, 'drover-wfc-');
  const marks = sharedFile(dir, 'marks');
  const steps = ['a', 'b', 'c', 'd', 'e'].map((name) => ({ name, job: { command: `echo + >> ${marks}; sleep 0.3; echo - >> ${marks}` } }));
  const res = await s.request<WorkflowView & { concurrency: number }>('POST', '/v1/workflows', { name: 'limited', concurrency: 2, steps });
  assert.equal(res.body.concurrency, 2);
  const wf = await settled(s, res.body.id);
  assert.equal(wf.status, 'succeeded');
  let now = 0;
  let peak = 0;
  for (const m of (await (await import('node:fs/promises')).readFile(marks, 'utf8')).split('\n')) {
    if (m === '+') peak = Math.max(peak, ++now);
    if (m === '-') now--;
  }
  assert.equal(peak, 2, 'never more than 2 steps at once, and 2 did run together');
});

test('a step whose job expired before it started is expired and counts as failed; one whose jobs were deleted is purged', async (t) => {
  const s = await startStack(t);
  const res = await s.request<WorkflowView>('POST', '/v1/workflows', {
    name: 'deadline',
    steps: [
      { name: 'root', job: { command: 'sleep 0.2' } },
      // Its deadline runs from its creation: it passes while root runs, so it never starts.
      { name: 'late', job: { command: 'true', ttlMs: 1 }, dependsOn: ['root'] },
      { name: 'after-late', job: { command: 'true' }, dependsOn: ['late'] },
    ],
  });
  assert.equal(res.status, 201, JSON.stringify(res.body));
  const first = await settled(s, res.body.id);
  assert.deepEqual(first.steps.map((x) => [x.name, x.status]), [['root', 'succeeded'], ['late', 'expired'], ['after-late', 'skipped']]);
  assert.equal(first.status, 'failed', 'an expired step fails the run');
  const again = await s.request<WorkflowView>('POST', `/v1/workflows/${res.body.id}/restart`, { mode: 'failed' });
  assert.equal(again.status, 200, JSON.stringify(again.body));
  const second = await settled(s, res.body.id);
  assert.notEqual(step(second, 'late').jobId, step(first, 'late').jobId, 'mode failed runs an expired step again');
  assert.equal(step(second, 'root').jobId, step(first, 'root').jobId);

  // What retention does to a finished step, done at once by deleting its job's record.
  assert.equal((await s.request('DELETE', `/v1/jobs/${step(second, 'root').jobId}`)).status, 200);
  const purged = (await s.request<WorkflowView>('GET', `/v1/workflows/${res.body.id}`)).body;
  assert.equal(step(purged, 'root').status, 'purged');
  assert.equal(purged.status, 'purged');
});
