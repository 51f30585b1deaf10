import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import amqp from 'amqplib';
import { JobStore, RabbitmqTransport, createLogger, createRedis, createTransport, rabbitNames, type JobRecord, type QueueView } from '@drover/core';
import { Runner } from '@drover/runner';
import { AMQP_URL, BROKERS, REDIS_URL, brokerTest, startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

interface ErrorBody {
  error: { code: string; message: string; details?: { field: string; message: string }[] };
}

/** A runner started later on the stack's prefix, one job at a time, serving `queue`; closed after the test. */
async function lateRunner(t: TestContext, s: Stack, id: string, queue: string, labels: Record<string, string> = {}): Promise<Runner> {
  const runner = new Runner({
    config: { ...s.config, runner: { ...s.config.runner, id: `${id}-${s.prefix.slice(5, 13)}`, queues: [queue], concurrency: 1, labels } },
    logger: createLogger('silent', 'test'),
  });
  t.after(() => runner.close());
  await runner.start();
  return runner;
}

/** A Redis connection and the stack's job store on it, closed after the test. */
function storeOf(t: TestContext, s: Stack): { redis: ReturnType<typeof createRedis>; store: JobStore } {
  const redis = createRedis(REDIS_URL, 'worker');
  t.after(() => redis.quit());
  return { redis, store: new JobStore(redis, s.prefix) };
}

/** A channel on the test's own RabbitMQ connection (closed after the test), and the broker queue of a Drover queue. */
async function rabbitQueue(t: TestContext, s: Stack, queue: string): Promise<{ ch: amqp.Channel; name: string }> {
  const conn = await amqp.connect(AMQP_URL);
  t.after(() => conn.close().catch(() => undefined));
  return { ch: await conn.createChannel(), name: rabbitNames(s.prefix).queue(queue) };
}

/** The jobs' names in the order they were claimed, after checking that none overlapped (one runner slot). */
async function startOrder(s: Stack, jobs: Record<string, JobRecord>): Promise<string[]> {
  const done = await Promise.all(Object.entries(jobs).map(async ([name, j]) => ({ name, j: await s.waitFor(j.id) })));
  for (const { name, j } of done) assert.equal(j.status, 'succeeded', `${name}: ${JSON.stringify(j)}`);
  done.sort((a, b) => Date.parse(a.j.claimedAt!) - Date.parse(b.j.claimedAt!));
  for (let i = 1; i < done.length; i++) {
    assert.ok(Date.parse(done[i]!.j.claimedAt!) >= Date.parse(done[i - 1]!.j.finishedAt!), 'one at a time: each claimed after the one before ended');
  }
  return done.map((d) => d.name);
}

/**
 * One test per way jobs can be ordered: BullMQ's priorities, RabbitMQ classic queues' x-max-priority, and on the
 * default RabbitMQ quorum queues (no priorities on 3.x) the store's order, which the claim applies.
 */
function orderTest(name: string, fn: (t: TestContext, broker: 'bullmq' | 'rabbitmq', env: Record<string, string>) => Promise<void>): void {
  for (const broker of BROKERS) {
    if (broker === 'bullmq') void test(`${name} [bullmq]`, (t) => fn(t, broker, {}));
    else {
      void test(`${name} [rabbitmq quorum: store order]`, (t) => fn(t, broker, {}));
      void test(`${name} [rabbitmq classic]`, (t) => fn(t, broker, { AMQP_QUEUE_TYPE: 'classic' }));
    }
  }
}

orderTest('jobs waiting on the broker start most urgent first; equal priorities keep the order they came', async (t, broker, env) => {
  const s = await startStack(t, { broker, runner: false, env });
  const jobs: Record<string, JobRecord> = {};
  // Submitted least urgent first: the order they came is not the order they should start in.
  for (const [name, priority] of [['low1', 1], ['low2', 1], ['default1', undefined], ['high1', 9], ['high2', 9], ['default2', 5], ['top', 10]] as const) {
    jobs[name] = await s.submit({ queue: 'prio', command: 'true', ...(priority !== undefined ? { priority } : {}) });
  }
  assert.equal(jobs.low1!.priority, 1);
  assert.equal(jobs.default1!.priority, 5, 'the default');
  assert.equal(jobs.top!.priority, 10);
  await lateRunner(t, s, 'late', 'prio');
  assert.deepEqual(await startOrder(s, jobs), ['top', 'high1', 'high2', 'default1', 'default2', 'low1', 'low2']);
});

orderTest('control: jobs of one priority start in the order they came', async (t, broker, env) => {
  const s = await startStack(t, { broker, runner: false, env });
  const jobs: Record<string, JobRecord> = {};
  for (const name of ['a', 'b', 'c', 'd', 'e']) jobs[name] = await s.submit({ queue: 'fifo', command: 'true', priority: 3 });
  await lateRunner(t, s, 'late', 'fifo');
  assert.deepEqual(await startOrder(s, jobs), ['a', 'b', 'c', 'd', 'e']);
});

orderTest('a queue at its concurrency releases its parked jobs most urgent first', async (t, broker, env) => {
  const s = await startStack(t, { broker, env: { ...env, RUNNER_QUEUES: 'gate' } });
  assert.equal((await s.request('PUT', '/v1/queues/gate', { concurrency: 1 })).status, 200);
  // Holds the queue's one slot until cancelled, while the others arrive and are parked.
  const blocker = await s.submit({ queue: 'gate', command: 'sleep 30' });
  await s.waitFor(blocker.id, (j) => j.status === 'running');
  const jobs: Record<string, JobRecord> = {};
  for (const [name, priority] of [['low1', 2], ['high1', 9], ['low2', 2], ['mid', 5], ['high2', 9]] as const) {
    jobs[name] = await s.submit({ queue: 'gate', command: 'true', priority });
  }
  await until('all five parked', async () => (await s.request<QueueView>('GET', '/v1/queues/gate')).body.counts.parked === 5);
  assert.equal((await s.request('POST', `/v1/jobs/${blocker.id}/cancel`)).status < 300, true);
  assert.deepEqual(await startOrder(s, jobs), ['high1', 'high2', 'mid', 'low1', 'low2']);
});

brokerTest('jobs declined for placement are taken most urgent first by the runner that fits them', async (t, broker) => {
  // The stack's runner has no labels: it declines every job below into their placement group.
  const s = await startStack(t, { broker, env: { RUNNER_QUEUES: 'placed' } });
  const jobs: Record<string, JobRecord> = {};
  for (const [name, priority] of [['low1', 1], ['low2', 1], ['high1', 8], ['high2', 8]] as const) {
    jobs[name] = await s.submit({ queue: 'placed', command: 'true', priority, constraints: { labels: { zone: 'p' } } });
  }
  for (const j of Object.values(jobs)) await s.waitFor(j.id, (r) => r.placement !== null);
  await lateRunner(t, s, 'fits', 'placed', { zone: 'p' });
  const order = await startOrder(s, jobs);
  // A runner picks at random among the group's most urgent jobs (runners rarely race for one): only the levels are ordered.
  assert.deepEqual(order.slice(0, 2).sort(), ['high1', 'high2'], order.join());
  assert.deepEqual(order.slice(2).sort(), ['low1', 'low2'], order.join());
});

brokerTest('priority: 1 to 10 accepted; other values 400 with nothing stored; schedules and workflow steps carry it', async (t, broker) => {
  const s = await startStack(t, { broker, runner: false });
  for (const priority of [0, 11, -1, 1.5, '5', null]) {
    const res = await s.request<ErrorBody>('POST', '/v1/jobs', { command: 'true', priority });
    assert.equal(res.status, 400, `priority ${JSON.stringify(priority)}`);
    assert.equal(res.body.error.code, 'VALIDATION');
    assert.ok(res.body.error.details?.some((d) => d.field.includes('priority')), JSON.stringify(res.body));
  }
  const batch = await s.request<ErrorBody>('POST', '/v1/jobs/batch', { jobs: [{ command: 'true', priority: 3 }, { command: 'true', priority: 42 }] });
  assert.equal(batch.status, 400, 'one bad item refuses the batch');
  assert.equal((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items.length, 0, 'nothing stored');

  for (const priority of [1, 9, 10]) assert.equal((await s.submit({ command: 'true', priority })).priority, priority);
  const got = await s.submit({ command: 'true', priority: 9 });
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${got.id}`)).body.priority, 9, 'the stored record shows it');

  assert.equal((await s.request('POST', '/v1/schedules', { name: 'urgent', cron: '0 0 1 1 *', job: { command: 'true', priority: 8 } })).status, 201);
  const fired = await s.request<JobRecord>('POST', '/v1/schedules/urgent/trigger', {});
  assert.equal(fired.status, 201, JSON.stringify(fired.body));
  assert.equal(fired.body.priority, 8, "a schedule's job template sets it");
  assert.equal((await s.request('POST', '/v1/schedules', { name: 'bad', cron: '0 0 1 1 *', job: { command: 'true', priority: 0 } })).status, 400);

  const wf = await s.request<{ steps: { name: string; jobId: string }[] }>('POST', '/v1/workflows', {
    name: 'prio',
    steps: [{ name: 'a', job: { command: 'true', priority: 2 } }, { name: 'b', job: { command: 'true' }, dependsOn: ['a'] }],
  });
  assert.equal(wf.status, 201, JSON.stringify(wf.body));
  const jobOf = async (name: string) => (await s.request<JobRecord>('GET', `/v1/jobs/${wf.body.steps.find((x) => x.name === name)!.jobId}`)).body;
  assert.equal((await jobOf('a')).priority, 2, 'a workflow step sets it');
  assert.equal((await jobOf('b')).priority, 5);
});

test('RabbitMQ: a classic queue declared before priorities (no x-max-priority) is used as it is, with a warning', { skip: !BROKERS.includes('rabbitmq') }, async (t) => {
  const s = await startStack(t, { broker: 'rabbitmq', runner: false, env: { AMQP_QUEUE_TYPE: 'classic' } });
  // What an older Drover declared: RabbitMQ refuses to declare it again with other arguments.
  const name = rabbitNames(s.prefix).queue('legacy');
  const conn = await amqp.connect(AMQP_URL);
  try {
    const ch = await conn.createChannel();
    await ch.assertQueue(name, { durable: true, arguments: { 'x-queue-type': 'classic', 'x-dead-letter-exchange': rabbitNames(s.prefix).deadExchange } });
  } finally {
    await conn.close();
  }
  const warnings: string[] = [];
  const transport = new RabbitmqTransport({ url: AMQP_URL, prefix: s.prefix, queueType: 'classic', onWarning: (m) => warnings.push(m) });
  t.after(() => transport.close());
  await transport.ready();
  // The job is created through the API (so the test's cleanup knows the queue), published by it and again here.
  const job = await s.submit({ queue: 'legacy', command: 'echo still-runs', priority: 9 });
  await transport.publish([{ jobId: job.id, queue: 'legacy', priority: 9 }]);
  await transport.publish([{ jobId: job.id, queue: 'legacy', priority: 9 }]);
  assert.equal(warnings.length, 1, 'warned once for the queue');
  assert.match(warnings[0]!, new RegExp(`${name.replace(/\./g, '\\.')} was declared without x-max-priority`));
  assert.ok(transport.isConnected(), 'the publisher channel survived the refused declaration');
  await lateRunner(t, s, 'late', 'legacy');
  assert.equal((await s.waitFor(job.id)).status, 'succeeded', 'its jobs run (duplicate messages dropped at claim)');
});

test('store order (RabbitMQ quorum): two runners, spare and duplicate messages: each job runs once, in the store order', { skip: !BROKERS.includes('rabbitmq') }, async (t) => {
  const s = await startStack(t, { broker: 'rabbitmq', runner: false });
  const jobs: { id: string; priority: number; n: number }[] = [];
  const levels = [1, 5, 10, 3, 8];
  for (let n = 0; n < 30; n++) {
    const priority = levels[n % levels.length]!;
    jobs.push({ id: (await s.submit({ queue: 'so', command: 'true', priority })).id, priority, n });
  }
  // Spare messages: a publish retried after a lost confirm, the sweep's republish. Each finds its job run (or takes
  // the most urgent waiting one); none may run a job twice.
  const transport = createTransport(s.config);
  t.after(() => transport.close());
  await transport.ready();
  await transport.publish(jobs.filter((j) => j.priority === 1).map((j) => ({ jobId: j.id, queue: 'so' })));
  await Promise.all([lateRunner(t, s, 'a', 'so'), lateRunner(t, s, 'b', 'so')]);
  for (const j of jobs) {
    const done = await s.waitFor(j.id);
    assert.equal(done.status, 'succeeded');
    assert.equal(done.attempts, 1, `${j.id} ran once`);
  }
  // The events stream is in the order Redis applied the claims: most urgent first, then the order they came.
  const events = await s.request<{ items: { type: string; jobId: string }[] }>('GET', '/v1/events?types=job.started&limit=100');
  const started = events.body.items.filter((e) => e.type === 'job.started').map((e) => e.jobId);
  assert.equal(started.length, 30, 'one start each');
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const seq = started.map((id) => byId.get(id)!);
  const expected = [...jobs].sort((a, b) => b.priority - a.priority || a.n - b.n);
  assert.deepEqual(seq.map((j) => j.n), expected.map((j) => j.n));
});

test('store order: a claim replayed with its token gets the job it took, not another; a spare with nothing waiting is dropped', async (t) => {
  const s = await startStack(t, { runner: false });
  const { redis, store } = storeOf(t, s);
  const low = await s.submit({ queue: 'tok', command: 'true', priority: 2 });
  const high = await s.submit({ queue: 'tok', command: 'true', priority: 9 });
  const next = await s.submit({ queue: 'tok', command: 'true', priority: 9 });
  const claim = (token: string) => redis.droverClaim(store.keys.routing, low.id, 'r1', Date.now(), Date.now() + 10_000, token, '', '1', 'tok');
  const first = await claim('t-1');
  assert.equal(first[0], 1);
  assert.equal(first[10], high.id, "low's delivery took the most urgent waiting job");
  const replay = await claim('t-1');
  assert.equal(replay[0], 1, 'the replay gets its claim back');
  assert.equal(replay[10], high.id, 'the same job, not the next one');
  assert.equal((await s.request<JobRecord>('GET', `/v1/jobs/${next.id}`)).body.status, 'queued', 'the next one still waits');
  // The job's own message still comes: it takes what waits now, in order (next, then low itself).
  assert.equal((await redis.droverClaim(store.keys.routing, high.id, 'r1', Date.now(), Date.now() + 10_000, 't-2', '', '1', 'tok'))[10], next.id);
  assert.equal((await redis.droverClaim(store.keys.routing, next.id, 'r1', Date.now(), Date.now() + 10_000, 't-3', '', '1', 'tok'))[10], low.id);
  const spare = await redis.droverClaim(store.keys.routing, low.id, 'r1', Date.now(), Date.now() + 10_000, 't-4', '', '1', 'tok');
  assert.deepEqual(spare, [0, 'running'], 'nothing waits: the spare finds its job taken and is dropped');
  assert.equal(await redis.zcard(`${store.keys.base}:q:tok:waiting`), 0);
});

/** Takes `n` messages of a Drover queue off RabbitMQ and acknowledges them, as a runner whose claims were then lost. */
async function takeMessages(t: TestContext, s: Stack, queue: string, n: number): Promise<void> {
  const { ch, name } = await rabbitQueue(t, s, queue);
  for (let i = 0; i < n; i++) {
    const msg = await until(`message ${i + 1} of ${queue}`, async () => (await ch.get(name)) || undefined);
    ch.ack(msg);
  }
  await ch.close();
}

test('store order: a job left waiting without a message (its delivery claimed another job whose claim a Redis failover lost) is republished and runs once', { skip: !BROKERS.includes('rabbitmq') }, async (t) => {
  const s = await startStack(t, { broker: 'rabbitmq', runner: false, env: { SCHEDULER_REPUBLISH_AFTER_MS: '300' } });
  const jobs = [];
  for (let n = 0; n < 4; n++) jobs.push(await s.submit({ queue: 'stranded', command: 'true' }));
  // Two messages acknowledged by a claim that did not survive: all four jobs wait, two messages are left. Store order
  // runs the two oldest on them; the other two have no message unless the scheduler republishes them.
  await takeMessages(t, s, 'stranded', 2);
  await lateRunner(t, s, 'after-failover', 'stranded');
  for (const j of jobs) {
    const done = await s.waitFor(j.id);
    assert.equal(done.status, 'succeeded', `${j.id}: ${JSON.stringify(done)}`);
    assert.equal(done.attempts, 1, `${j.id} ran once`);
  }
});

test('store order: jobs waiting behind messages the broker still holds are not republished (no spare messages piling up)', { skip: !BROKERS.includes('rabbitmq') }, async (t) => {
  const s = await startStack(t, { broker: 'rabbitmq', runner: false, env: { SCHEDULER_REPUBLISH_AFTER_MS: '100' } });
  for (let n = 0; n < 5; n++) await s.submit({ queue: 'backlog', command: 'true' });
  const { ch, name } = await rabbitQueue(t, s, 'backlog');
  const counts: number[] = [];
  // Several sweeps (each 1 s, republishing after 100 ms of waiting) while no runner serves the queue.
  for (let i = 0; i < 4; i++) {
    await new Promise((r) => setTimeout(r, 800));
    counts.push((await ch.checkQueue(name)).messageCount);
  }
  assert.deepEqual(counts, [5, 5, 5, 5], 'one message per job, none added while the broker holds them');
});

test('sweepWaiting: waiting jobs listed before the cut whose publish was confirmed, most urgent first; stale entries removed, outbox entries left', async (t) => {
  const s = await startStack(t, { runner: false });
  const { redis, store } = storeOf(t, s);
  const low = await s.submit({ queue: 'sw', command: 'true', priority: 2 });
  const high = await s.submit({ queue: 'sw', command: 'true', priority: 9 });
  const unconfirmed = await s.submit({ queue: 'sw', command: 'true' });
  const ended = await s.submit({ queue: 'sw', command: 'true' });
  const waiting = `${store.keys.base}:q:sw:waiting`;
  // One whose publish is not confirmed (back in the outbox) and one that ended by a path that left it listed.
  await redis.zadd(store.keys.outbox, Date.now(), unconfirmed.id);
  assert.equal((await s.request('POST', `/v1/jobs/${ended.id}/cancel`)).status, 200);
  await redis.zadd(waiting, 0, ended.id);
  assert.deepEqual(await store.sweepWaiting('sw', 0, 100), [], 'nothing listed before the epoch');
  assert.equal(await redis.zscore(waiting, ended.id), null, 'the ended job is no longer listed');
  const found = await store.sweepWaiting('sw', Date.now() + 1, 100);
  assert.deepEqual(found, [{ id: high.id, queue: 'sw' }, { id: low.id, queue: 'sw' }]);
  assert.deepEqual(await store.sweepWaiting('sw', Date.now() + 1, 1), [{ id: high.id, queue: 'sw' }], 'up to the limit');
  assert.deepEqual(await store.queuesWithWaiting(), ['sw']);
});
