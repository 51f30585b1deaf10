import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { createLogger, loadConfig, parseQueueSelection, type JobRecord, type QueueSelection, type QueueView } from '@drover/core';
import { Runner } from '@drover/runner';
import { injectJob } from './helpers/bypass.js';
import { brokerTest, startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

interface Warning {
  code: string;
  message: string;
  queue: string;
}
type Submitted = JobRecord & { warnings?: Warning[] };

const selection = (text: string): QueueSelection => {
  const s = parseQueueSelection(text.split(','));
  assert.ok(!Array.isArray(s), `${text}: ${Array.isArray(s) ? s.join('; ') : ''}`);
  return s;
};

test('RUNNER_QUEUES: names, * patterns and ! exclusions; bad entries are configuration errors', () => {
  const all = selection('*,!heavy');
  assert.equal(all.dynamic, true);
  assert.deepEqual(all.names, []);
  assert.deepEqual(['reports', 'default', 'heavy', 'heavy-2'].filter((q) => all.serves(q)), ['reports', 'default', 'heavy-2']);
  const some = selection('build-*,reports,!build-slow');
  assert.deepEqual(['build-1', 'build-slow', 'reports', 'report', 'xbuild-1'].filter((q) => some.serves(q)), ['build-1', 'reports']);
  assert.deepEqual(some.names, ['reports']);
  const plain = selection('default');
  assert.equal(plain.dynamic, false, 'names only: no watching for new queues');
  assert.deepEqual(plain.names, ['default']);
  assert.equal(plain.serves('default.x'), false, 'a dot is not a wildcard');
  assert.deepEqual(selection('a,!a').names, [], 'an excluded name is not served');

  assert.deepEqual(loadConfig({ RUNNER_QUEUES: ' *, !heavy ' }).runner.queues, ['*', '!heavy']);
  assert.equal(loadConfig({}).runner.queues.join(), 'default', 'a runner alone serves default unless told otherwise');
  assert.throws(() => loadConfig({ RUNNER_QUEUES: '!heavy' }), /RUNNER_QUEUES only excludes queues; to serve all others write \*,!heavy/);
  assert.throws(() => loadConfig({ RUNNER_QUEUES: 'a b,ok' }), /RUNNER_QUEUES "a b" is not a queue name or pattern/);
  assert.throws(() => loadConfig({ RUNNER_QUEUES: '.x' }), /RUNNER_QUEUES "\.x" is not a queue name/);
  assert.throws(() => loadConfig({ RUNNER_QUEUES: ',' }), /RUNNER_QUEUES names no queue/);
});

/** A second runner in this process on the stack's prefix, serving `queues`; closed after the test. */
async function extraRunner(t: TestContext, s: Stack, id: string, queues: string): Promise<Runner> {
  const runner = new Runner({
    config: { ...s.config, runner: { ...s.config.runner, id: `${id}-${s.prefix.slice(5, 13)}`, queues: queues.split(',') } },
    logger: createLogger('silent', 'test'),
  });
  t.after(() => runner.close());
  await runner.start();
  return runner;
}

brokerTest('RUNNER_QUEUES=*,!heavy serves queues created after it started; a queue no runner serves warns NO_RUNNER; queues show their consumers', async (t, broker) => {
  // A scan period far beyond the test: new queues reach the runner by the API's notice (or its start-up scan).
  const s = await startStack(t, { broker, env: { RUNNER_QUEUES: '*,!heavy', RUNNER_QUEUE_SCAN_MS: '600000' } });
  const runnerId = s.runner!.id;

  const reports = await s.request<Submitted>('POST', '/v1/jobs', { queue: 'reports', command: 'echo report' });
  assert.equal(reports.status, 201);
  assert.equal(reports.body.warnings, undefined, 'a served queue: no warnings');
  assert.equal((await s.waitFor(reports.body.id)).status, 'succeeded', 'a queue that did not exist when the runner started');

  const heavy = await s.request<Submitted>('POST', '/v1/jobs', { queue: 'heavy', command: 'echo heavy' });
  assert.equal(heavy.status, 201, 'accepted all the same');
  assert.deepEqual(heavy.body.warnings?.map((w) => [w.code, w.queue]), [['NO_RUNNER', 'heavy']]);
  assert.match(heavy.body.warnings[0]!.message, /^no runner serves queue heavy/);

  const batch = await s.request<{ jobs: JobRecord[]; warnings?: Warning[] }>('POST', '/v1/jobs/batch', {
    jobs: [{ queue: 'reports', command: 'true' }, { queue: 'heavy', command: 'true' }, { queue: 'heavy', command: 'true' }],
  });
  assert.equal(batch.status, 201);
  assert.deepEqual(batch.body.warnings?.map((w) => w.queue), ['heavy'], 'one warning per unserved queue');

  const view = async (name: string): Promise<QueueView> => (await s.request<QueueView>('GET', `/v1/queues/${name}`)).body;
  assert.deepEqual((await view('reports')).consumers?.map((c) => [c.id, c.state, typeof c.host]), [[runnerId, 'running', 'string']]);
  assert.deepEqual((await view('heavy')).consumers, []);
  const list = (await s.request<{ items: QueueView[] }>('GET', '/v1/queues')).body.items;
  assert.deepEqual(list.map((q) => [q.name, q.consumers?.map((c) => c.id)]), [['heavy', []], ['reports', [runnerId]]]);
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${heavy.body.id}`)).body.status, 'queued', 'the excluded queue waits');

  // The control: a runner that names heavy takes its jobs, and becomes its consumer.
  const second = await extraRunner(t, s, 'heavy', 'heavy');
  assert.equal((await s.waitFor(heavy.body.id)).status, 'succeeded');
  assert.deepEqual((await view('heavy')).consumers?.map((c) => c.id), [second.id]);
  // Served now: the warning goes once the API's view of the registry (at most a second old) has the runner.
  await until('submissions to heavy no longer warn', async () => (await s.request<Submitted>('POST', '/v1/jobs', { queue: 'heavy', command: 'true' })).body.warnings === undefined);
  await second.close();
});

brokerTest('a runner serving * finds a queue written straight to the store (no notice from the API) on its periodic scan', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_QUEUES: '*', RUNNER_QUEUE_SCAN_MS: '100' } });
  // As the scheduler or a script with store access would: a record and a broker message, no API in between.
  const id = await injectJob(t, s, { queue: 'nightly', command: 'echo found' });
  assert.equal((await s.waitFor(id)).status, 'succeeded');
});

brokerTest('a draining runner takes on new queues only once resumed; draining the last runner of a queue it serves by * needs force', async (t, broker) => {
  const s = await startStack(t, { broker, env: { RUNNER_QUEUES: '*', RUNNER_QUEUE_SCAN_MS: '100' } });
  const id = s.runner!.id;
  await s.run({ queue: 'alpha', command: 'true' });
  const refused = await s.request<{ error: { code: string; details: { queues: string[] } } }>('POST', `/v1/runners/${id}/drain`);
  assert.equal(refused.status, 409);
  assert.deepEqual(refused.body.error.details.queues, ['alpha']);
  assert.equal((await s.request('POST', `/v1/runners/${id}/drain?force=1`)).status, 200);

  const beta = await s.request<Submitted>('POST', '/v1/jobs', { queue: 'beta', command: 'echo beta' });
  assert.equal(beta.status, 201);
  assert.deepEqual(beta.body.warnings?.map((w) => w.code), ['NO_RUNNER']);
  assert.match(beta.body.warnings[0]!.message, /the runners that serve it are draining/);
  // Several scans (every 100 ms) later the draining runner knows beta, but must not take its job.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${beta.body.id}`)).body.status, 'queued');

  assert.equal((await s.request('POST', `/v1/runners/${id}/resume`)).status, 200);
  assert.equal((await s.waitFor(beta.body.id)).status, 'succeeded');
});

test('schedules, their triggers and workflows whose jobs no runner serves are accepted with a NO_RUNNER warning per queue', async (t) => {
  const s = await startStack(t, { env: { RUNNER_QUEUES: 'default' } });
  type Warned = { warnings?: Warning[] };
  const queuesOf = (body: Warned): string[] | undefined => body.warnings?.map((w) => `${w.code}:${w.queue}`);

  const created = await s.request<Warned & { name: string }>('POST', '/v1/schedules', { name: 'nightly', cron: '0 3 * * *', job: { queue: 'reports', command: 'true' } });
  assert.equal(created.status, 201);
  assert.deepEqual(queuesOf(created.body), ['NO_RUNNER:reports']);
  assert.equal((await s.request('GET', '/v1/schedules/nightly')).status, 200, 'the schedule exists all the same');
  // No body at all, as `curl -X POST` sends it: the body is optional.
  const trigger = await s.request<Submitted>('POST', '/v1/schedules/nightly/trigger');
  assert.equal(trigger.status, 201);
  assert.deepEqual(queuesOf(trigger.body), ['NO_RUNNER:reports']);
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${trigger.body.id}`)).body.status, 'queued', 'the triggered job waits');
  // Moved to a served queue: no warning any more (the update answers like the create).
  const moved = await s.request<Warned>('PUT', '/v1/schedules/nightly', { job: { queue: 'default', command: 'true' } });
  assert.equal(moved.status, 200);
  assert.equal(moved.body.warnings, undefined);
  const plain = await s.request<Warned>('POST', '/v1/schedules', { name: 'served', cron: '0 3 * * *', job: { command: 'true' } });
  assert.equal(plain.body.warnings, undefined, 'a served queue: no warnings');

  const flow = await s.request<Warned & { id: string }>('POST', '/v1/workflows', {
    name: 'mixed',
    steps: [{ name: 'a', job: { command: 'true' } }, { name: 'b', dependsOn: ['a'], job: { queue: 'gpu', command: 'true' } }, { name: 'c', dependsOn: ['a'], job: { queue: 'gpu', command: 'true' } }],
  });
  assert.equal(flow.status, 201);
  assert.deepEqual(queuesOf(flow.body), ['NO_RUNNER:gpu'], 'one warning per unserved queue, none for the served step');
  const wflowSchedule = await s.request<Warned>('POST', '/v1/schedules', {
    name: 'flow', cron: '0 3 * * *', workflow: { steps: [{ name: 'x', job: { queue: 'etl', command: 'true' } }, { name: 'y', dependsOn: ['x'], job: { command: 'true' } }] },
  });
  assert.equal(wflowSchedule.status, 201);
  assert.deepEqual(queuesOf(wflowSchedule.body), ['NO_RUNNER:etl']);
});
