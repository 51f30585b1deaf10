import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DroverError, createLogger, effectiveResources, loadConfig, parseResourceMaximum, type JobRecord, type JobResources } from '@drover/core';
import { Runner, type ExecProcess, type ExecRequest, type Executor } from '@drover/runner';
import { startStack, type Stack } from './helpers/stack.js';

/*
 * Per-job resources: the model (validation through HTTP on jobs, schedules, workflow steps and queue defaults), the
 * effective limits (job, else queue default, else runner maximum), and what the runner hands its executor. The
 * enforcement itself (cgroups, rlimits) belongs to the executors and is tested with them.
 */

test('effective limits: the job, else the queue default, else the runner maximum; field by field', () => {
  const max = { memoryMb: 1024, cpus: 2, pids: 500 };
  assert.deepEqual(effectiveResources(undefined, undefined, {}), { resources: {}, capped: [] }, 'nothing asked, no maximum: no limit');
  assert.deepEqual(effectiveResources(undefined, undefined, max), { resources: max, capped: [] }, 'a job that sets none gets the maximum');
  assert.deepEqual(
    effectiveResources({ cpus: 0.5 }, { memoryMb: 256, cpus: 1 }, max),
    { resources: { memoryMb: 256, cpus: 0.5, pids: 500 }, capped: [] },
    "the job's own field wins over the queue default, which wins over the maximum",
  );
  assert.deepEqual(effectiveResources({ memoryMb: 1024 }, undefined, max), { resources: { memoryMb: 1024, cpus: 2, pids: 500 }, capped: [] }, 'exactly the maximum is allowed');
  assert.deepEqual(effectiveResources({ memoryMb: 64 }, undefined, {}), { resources: { memoryMb: 64 }, capped: [] }, 'no maximum: only what was asked');
  assert.deepEqual(
    effectiveResources(undefined, { memoryMb: 4096 }, max),
    { resources: { memoryMb: 1024, cpus: 2, pids: 500 }, capped: [{ name: 'memoryMb', queueDefault: 4096, max: 1024 }] },
    'a queue default above the maximum is capped, not refused',
  );
  const refused = effectiveResources({ memoryMb: 2048, cpus: 1, pids: 501 }, undefined, max);
  assert.ok('refusal' in refused);
  assert.equal(
    refused.refusal,
    'resources.memoryMb 2048 is more than this runner allows (RUNNER_MAX_JOB_MEMORY_MB=1024); resources.pids 501 is more than this runner allows (RUNNER_MAX_JOB_PIDS=500)',
    'every field over its maximum is named, with the variable',
  );
});

test('RUNNER_MAX_JOB_*: 0 or unset is no maximum; bad values are configuration errors, all named at once', () => {
  assert.equal(parseResourceMaximum('memoryMb', '0'), undefined);
  assert.equal(parseResourceMaximum('cpus', ' 1.5 '), 1.5);
  assert.deepEqual(loadConfig({ RUNNER_MAX_JOB_MEMORY_MB: '512', RUNNER_MAX_JOB_CPUS: '0.5', RUNNER_MAX_JOB_PIDS: '64' }).runner.maxJobResources, { memoryMb: 512, cpus: 0.5, pids: 64 });
  assert.deepEqual(loadConfig({}).runner.maxJobResources, {}, 'default: no maximum');
  try {
    loadConfig({ RUNNER_MAX_JOB_MEMORY_MB: '1.5', RUNNER_MAX_JOB_CPUS: 'two', RUNNER_MAX_JOB_PIDS: '99999999' });
    assert.fail('expected a configuration error');
  } catch (err) {
    assert.ok(err instanceof DroverError && err.code === 'CONFIG', String(err));
    assert.match(err.message, /RUNNER_MAX_JOB_MEMORY_MB must be a whole number, got "1\.5"/);
    assert.match(err.message, /RUNNER_MAX_JOB_CPUS must be a number such as 1\.5, got "two"/);
    assert.match(err.message, /RUNNER_MAX_JOB_PIDS must be 0 \(no maximum\) or between 1 and 4194304, got 99999999/);
  }
});

const BAD_RESOURCES: unknown[] = [
  { memoryMb: 0 }, { memoryMb: 3 }, { memoryMb: 1.5 }, { memoryMb: -256 }, { memoryMb: 2_000_000 },
  { cpus: 0 }, { cpus: 0.001 }, { cpus: 2000 }, { cpus: 'lots' },
  { pids: 0 }, { pids: 2.5 }, { pids: 5_000_000 },
  { disk: 10 }, 'big', [256],
];

type ErrorBody = { error: { code: string; message: string } };

async function assertRejected(s: Stack, method: string, path: string, body: unknown, what: string): Promise<void> {
  const res = await s.request<ErrorBody>(method, path, body);
  assert.equal(res.status, 400, `${what}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body.error.code, 'VALIDATION', what);
  assert.match(res.body.error.message, /resources/, `${what}: the message names the field`);
}

test('bad resources are 400 on jobs, schedules, workflow steps and queues, and create or change nothing', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  await s.request('PUT', '/v1/queues/sized', { resources: { memoryMb: 128 } });
  for (const resources of BAD_RESOURCES) {
    const what = JSON.stringify(resources);
    await assertRejected(s, 'POST', '/v1/jobs', { command: 'true', resources }, `job ${what}`);
    await assertRejected(s, 'POST', '/v1/jobs/batch', { jobs: [{ command: 'true' }, { command: 'true', resources }] }, `batch ${what}`);
    await assertRejected(s, 'POST', '/v1/schedules', { name: 'nightly', cron: '0 3 * * *', job: { command: 'true', resources } }, `schedule ${what}`);
    await assertRejected(s, 'POST', '/v1/workflows', { name: 'wf', steps: [{ name: 'a', job: { command: 'true', resources } }] }, `workflow step ${what}`);
    await assertRejected(s, 'PUT', '/v1/queues/sized', { resources }, `queue default ${what}`);
  }
  assert.equal((await s.request<ErrorBody>('POST', '/v1/jobs', { command: 'true', resources: null })).status, 400, 'null is for clearing a queue default, not a job field');
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items, [], 'no job was created');
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/schedules')).body.items, [], 'no schedule was created');
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/workflows')).body.items, [], 'no workflow was created');
  const q = await s.request<{ settings: { resources?: JobResources } }>('GET', '/v1/queues/sized');
  assert.deepEqual(q.body.settings.resources, { memoryMb: 128 }, 'the queue default is unchanged');
});

test('resources travel with jobs, batches, fired schedules and workflow steps; queue defaults are set and cleared', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  const asked = { memoryMb: 256, cpus: 0.5, pids: 64 };
  const job = await s.submit({ command: 'true', resources: asked });
  assert.deepEqual(job.resources, asked);
  assert.deepEqual((await s.request<JobRecord>('GET', `/v1/jobs/${job.id}`)).body.resources, asked, 'the record shows them');
  assert.equal((await s.submit({ command: 'true' })).resources, null, 'none asked: null');
  assert.equal((await s.submit({ command: 'true', resources: {} })).resources, null, 'an empty object asks for nothing');

  const batch = await s.request<{ jobs: JobRecord[] }>('POST', '/v1/jobs/batch', { jobs: [{ command: 'true', resources: { pids: 8 } }] });
  assert.equal(batch.status, 201, JSON.stringify(batch.body));
  assert.deepEqual(batch.body.jobs[0]?.resources, { pids: 8 });

  const sched = await s.request('POST', '/v1/schedules', { name: 'nightly', cron: '0 3 * * *', job: { command: 'true', resources: { memoryMb: 512 } } });
  assert.equal(sched.status, 201, JSON.stringify(sched.body));
  const fired = await s.request<JobRecord>('POST', '/v1/schedules/nightly/trigger', {});
  assert.equal(fired.status, 201, JSON.stringify(fired.body));
  assert.deepEqual(fired.body.resources, { memoryMb: 512 }, 'a fired job carries the template\'s resources');
  const changed = await s.request('PUT', '/v1/schedules/nightly', { job: { command: 'true', resources: { cpus: 2 } } });
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  assert.deepEqual((await s.request<JobRecord>('POST', '/v1/schedules/nightly/trigger', {})).body.resources, { cpus: 2 }, 'and the updated template\'s');

  const wf = await s.request<{ id: string; steps: { name: string; jobId: string }[] }>('POST', '/v1/workflows', {
    name: 'sized',
    steps: [{ name: 'big', job: { command: 'true', resources: { memoryMb: 2048 } } }, { name: 'plain', job: { command: 'true' }, dependsOn: ['big'] }],
  });
  assert.equal(wf.status, 201, JSON.stringify(wf.body));
  const stepJob = async (name: string): Promise<JobRecord> => (await s.request<JobRecord>('GET', `/v1/jobs/${wf.body.steps.find((x) => x.name === name)!.jobId}`)).body;
  assert.deepEqual((await stepJob('big')).resources, { memoryMb: 2048 });
  assert.equal((await stepJob('plain')).resources, null);

  type QueueView = { settings: { resources?: JobResources } };
  const set = await s.request<QueueView>('PUT', '/v1/queues/batchy', { resources: { memoryMb: 128, cpus: 0.25 } });
  assert.equal(set.status, 200, JSON.stringify(set.body));
  assert.deepEqual(set.body.settings.resources, { memoryMb: 128, cpus: 0.25 });
  const other = await s.request<QueueView>('PUT', '/v1/queues/batchy', { paused: true });
  assert.deepEqual(other.body.settings.resources, { memoryMb: 128, cpus: 0.25 }, 'another setting leaves the default as it is');
  const replaced = await s.request<QueueView>('PUT', '/v1/queues/batchy', { resources: { pids: 10 } });
  assert.deepEqual(replaced.body.settings.resources, { pids: 10 }, 'a new default replaces the old one whole');
  for (const clear of [null, {}]) {
    await s.request('PUT', '/v1/queues/batchy', { resources: { pids: 10 } });
    const cleared = await s.request<QueueView>('PUT', '/v1/queues/batchy', { resources: clear });
    assert.equal(cleared.body.settings.resources, undefined, `${JSON.stringify(clear)} clears the default`);
  }
});

type ExecExit = Awaited<ExecProcess['exited']>;

/** What a runner asked its executor to start; no process is started at all. */
interface Started {
  request: ExecRequest;
}

/**
 * An executor that runs nothing: it records each request and exits at once with success, or, for a command that
 * says so, as the kernel's OOM killer would end it (`oom`), or only when signalled, then also reporting an OOM kill
 * (`oom-when-stopped`: the runner's own stop came first, so that must win).
 */
class RecordingExecutor implements Executor {
  readonly name = 'recording';
  readonly containmentMode = 'none (starts nothing)';
  readonly started: Started[] = [];

  start(request: ExecRequest): Promise<ExecProcess> {
    this.started.push({ request });
    const command = request.argv?.[2] ?? '';
    let signalled: (exit: ExecExit) => void = () => undefined;
    const exited = new Promise<ExecExit>((resolve) => {
      if (command === 'oom') resolve({ exitCode: null, signal: 'SIGKILL', oomKilled: true });
      else if (command === 'oom-when-stopped') signalled = resolve;
      else resolve({ exitCode: 0, signal: null });
    });
    return Promise.resolve({
      pid: 4_000_000 + this.started.length,
      exited,
      signalGroup: () => signalled({ exitCode: null, signal: 'SIGKILL', oomKilled: true }),
      setDeadline: () => undefined,
    });
  }

  killUid(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A stack whose runner starts its jobs through `executor`; the runner is closed before the stack's own cleanup. */
async function withRunner(t: Parameters<typeof startStack>[0], env: Record<string, string>, fn: (s: Stack, executor: RecordingExecutor) => Promise<void>): Promise<void> {
  const s = await startStack(t, { runner: false, env });
  const executor = new RecordingExecutor();
  const runner = new Runner({ config: s.config, logger: createLogger(process.env.TEST_LOG_LEVEL ?? 'silent', 'test'), executor });
  await runner.start();
  try {
    await fn(s, executor);
  } finally {
    await runner.close();
  }
}

const MAXIMA = { RUNNER_MAX_JOB_MEMORY_MB: '512', RUNNER_MAX_JOB_PIDS: '100', RUNNER_QUEUES: 'default,sized,huge' };

test('the runner hands each attempt its effective limits and a label; a job over the maximum fails at once, not retried', async (t) => {
  await withRunner(t, MAXIMA, async (s, executor) => {
    const requestOf = (id: string): ExecRequest | undefined => executor.started.find((x) => x.request.env.DROVER_JOB_ID === id)?.request;

    const registry = await s.request<{ maxJobResources: JobResources }>('GET', `/v1/runners/${s.config.runner.id}`);
    assert.deepEqual(registry.body.maxJobResources, { memoryMb: 512, pids: 100 }, 'the registry shows the maxima');

    const plain = await s.run({ command: 'true' });
    assert.equal(plain.status, 'succeeded', JSON.stringify(plain));
    assert.deepEqual(requestOf(plain.id)?.resources, { memoryMb: 512, pids: 100 }, 'a job that sets none gets the maxima');
    assert.equal(requestOf(plain.id)?.label, `${plain.id}.1`, 'the label names the job and the attempt');

    await s.request('PUT', '/v1/queues/sized', { resources: { memoryMb: 256, cpus: 0.5 } });
    const sized = await s.run({ command: 'true', queue: 'sized', resources: { cpus: 1 } });
    assert.equal(sized.status, 'succeeded');
    assert.deepEqual(requestOf(sized.id)?.resources, { memoryMb: 256, cpus: 1, pids: 100 }, 'job, then queue default, then maximum');

    await s.request('PUT', '/v1/queues/huge', { resources: { memoryMb: 4096 } });
    const capped = await s.run({ command: 'true', queue: 'huge' });
    assert.equal(capped.status, 'succeeded');
    assert.deepEqual(requestOf(capped.id)?.resources, { memoryMb: 512, pids: 100 }, 'a queue default above the maximum is capped');
    const logs = await s.request<{ items: { stream: string; line: string }[] }>('GET', `/v1/jobs/${capped.id}/logs`);
    assert.ok(
      logs.body.items.some((l) => l.stream === 'system' && l.line.includes('resources.memoryMb: the queue default 4096 is more than this runner allows; capped to RUNNER_MAX_JOB_MEMORY_MB=512')),
      `the job's log says so: ${JSON.stringify(logs.body.items)}`,
    );

    const before = executor.started.length;
    const greedy = await s.run({ command: 'true', resources: { memoryMb: 1024 }, retries: 3, backoff: { type: 'fixed', delayMs: 0 } });
    assert.equal(greedy.status, 'failed');
    assert.equal(greedy.error, 'resources.memoryMb 1024 is more than this runner allows (RUNNER_MAX_JOB_MEMORY_MB=512)');
    assert.equal(greedy.attempts, 1, 'final: not retried, every attempt would be refused the same way');
    assert.equal(executor.started.length, before, 'the executor was never asked: nothing was started');
  });
});

test('an attempt the kernel OOM-killed fails with its limit named, unless the runner had stopped it first', async (t) => {
  await withRunner(t, {}, async (s) => {
    const registry = await s.request<{ maxJobResources: JobResources }>('GET', `/v1/runners/${s.config.runner.id}`);
    assert.deepEqual(registry.body.maxJobResources, {}, 'control: no maximum configured, none shown');
    const oom = await s.run({ command: 'oom', resources: { memoryMb: 256 } });
    assert.equal(oom.status, 'failed');
    assert.equal(oom.error, 'out of memory (limit 256 MiB)');
    assert.equal(oom.signal, 'SIGKILL');

    const unlimited = await s.run({ command: 'oom' });
    assert.equal(unlimited.error, 'out of memory', 'no limit of its own to name (the host or a parent cgroup ran out)');

    const timedOut = await s.run({ command: 'oom-when-stopped', resources: { memoryMb: 256 }, timeoutMs: 50 });
    assert.equal(timedOut.status, 'timed_out', 'the timeout came first');
    assert.equal(timedOut.error, 'timed out after 50 ms');

    const control = await s.run({ command: 'true', resources: { memoryMb: 256 } });
    assert.equal(control.status, 'succeeded', 'control: the same limit without an OOM kill succeeds');
    assert.equal(control.error, null);
  });
});
