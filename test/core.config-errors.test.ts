import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DroverError, ERROR_CODES, TRANSITIONS, JOB_STATUSES, TERMINAL_STATUSES, loadConfig, retryDelayMs } from '@drover/core';

test('config: defaults fill in; every problem is reported at once, in words', () => {
  const c = loadConfig({});
  assert.equal(c.redisUrl, 'redis://127.0.0.1:6379');
  assert.equal(c.host, '127.0.0.1');
  assert.equal(c.port, 8606);
  assert.equal(c.runner.concurrency, 5);
  assert.deepEqual(c.runner.queues, ['default']);
  assert.ok(Object.isFrozen(c));
  try {
    loadConfig({ DROVER_PORT: 'eighty', RUNNER_CONCURRENCY: '0', REDIS_URL: 'http://x', RUNNER_QUEUES: 'ok,bad queue' });
    assert.fail('expected a config error');
  } catch (err) {
    assert.ok(err instanceof DroverError);
    assert.equal(err.code, 'CONFIG');
    const problems = err.details as string[];
    assert.equal(problems.length, 4, problems.join('\n'));
    for (const name of ['DROVER_PORT', 'RUNNER_CONCURRENCY', 'REDIS_URL', 'RUNNER_QUEUES']) {
      assert.ok(err.message.includes(name), `message names ${name}`);
    }
  }
});

test('error codes are unique, documented and map to 4xx/5xx', () => {
  for (const [code, def] of Object.entries(ERROR_CODES)) {
    assert.match(code, /^[A-Z_]+$/);
    assert.ok(def.doc.length > 10, `${code} is documented`);
    assert.ok(def.status >= 400 && def.status < 600);
  }
});

test('state machine: terminal states have no way out, every state is reachable', () => {
  for (const s of TERMINAL_STATUSES) assert.deepEqual(TRANSITIONS[s], []);
  const reachable = new Set(['waiting', 'delayed', 'queued']); // the states a job is created in
  for (const targets of Object.values(TRANSITIONS)) for (const t of targets) reachable.add(t);
  assert.deepEqual([...reachable].sort(), [...JOB_STATUSES].sort());
});

test('backoff: fixed stays, exponential doubles up to its cap', () => {
  assert.equal(retryDelayMs({ type: 'fixed', delayMs: 500 }, 5), 500);
  assert.deepEqual([2, 3, 4, 5].map((n) => retryDelayMs({ type: 'exponential', delayMs: 100, maxDelayMs: 500 }, n)), [100, 200, 400, 500]);
});

test('config: RUNNER_CGROUP is auto, off or an absolute directory', () => {
  assert.equal(loadConfig({}).runner.cgroup, 'auto');
  assert.equal(loadConfig({ RUNNER_CGROUP: '/sys/fs/cgroup/drover.slice' }).runner.cgroup, '/sys/fs/cgroup/drover.slice');
  assert.throws(() => loadConfig({ RUNNER_CGROUP: 'yes' }), /RUNNER_CGROUP must be auto, off or the absolute path/);
});
