import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { audit, markerDir } from '../helpers/audit.js';
import { freePort, startService } from '../helpers/processes.js';
import { startStack } from '../helpers/stack.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));


test('kill -9 the API between persisting and publishing: the jobs still run, once', async (t) => {
  // The in-process stack provides the scheduler (whose outbox sweep republishes) and a runner.
  const s = await startStack(t, { env: { SCHEDULER_REPUBLISH_AFTER_MS: '1000' } });
  const { dir, command } = markerDir(t);
  const token = randomBytes(24).toString('base64url');
  const port = await freePort();
  const api = startService(t, 'api', s.prefix, {
    DROVER_ADMIN_TOKEN: token,
    DROVER_PORT: String(port),
    DROVER_ENABLE_FAULT_HOOKS: '1',
    DROVER_FAULT_PUBLISH_DELAY_MS: '5000',
  });
  const url = `http://127.0.0.1:${port}`;
  while (!(await fetch(`${url}/healthz`).then((r) => r.ok, () => false))) await sleep(50);

  // Five submissions: each is persisted, then held before its publish; the API dies while holding them.
  const pending = Array.from({ length: 5 }, () =>
    fetch(`${url}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ command: command() }) }).then(
      (r) => r.status,
      () => 'connection reset',
    ),
  );
  let ids: string[] = [];
  for (let i = 0; ids.length < 5; i++) {
    assert.ok(i < 200, 'the API did not persist the submissions');
    await sleep(20);
    ids = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs')).body.items.map((j) => j.id);
  }
  api.kill('SIGKILL');
  assert.deepEqual(await Promise.all(pending), Array(5).fill('connection reset'), 'the clients never got an answer');
  const a = await audit(s, 'kill -9 the API between persist and publish', ids, dir, 30_000);
  assert.deepEqual([a.succeeded, a.duplicated, a.missing, a.notEnded.length], [5, 0, 0, 0]);
});
