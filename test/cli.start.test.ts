import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { REDIS_TUNING } from '@drover/core';
import { Redis } from 'ioredis';
import { freePort, spawnDrover } from './helpers/processes.js';
import { alive } from './helpers/stack.js';

test('drover start with no Redis running: starts its own (AOF, noeviction), generates a token, runs a job, stops cleanly', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'drover-start-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const [redisPort, apiPort] = [await freePort(), await freePort()];
  const child = spawnDrover(
    t, ['start'],
    { PATH: process.env.PATH, REDIS_URL: `redis://127.0.0.1:${redisPort}`, DROVER_PORT: String(apiPort), DROVER_DATA_DIR: dataDir, DROVER_LOG_LEVEL: 'warn', DROVER_METRICS_PORT: '0' },
    ['ignore', 'ignore', 'pipe'],
  );
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const url = `http://127.0.0.1:${apiPort}`;
  for (let i = 0; !stderr.includes('listening on'); i++) {
    assert.ok(i < 300 && child.exitCode === null, `drover start did not come up:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const tokenFile = join(dataDir, 'admin-token');
  assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
  const token = readFileSync(tokenFile, 'utf8').trim();
  assert.ok(stderr.includes(token), 'the generated token is printed');

  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const created = (await (await fetch(`${url}/v1/jobs`, { method: 'POST', headers, body: '{"command":"echo hello; exit 3"}' })).json()) as { id: string };
  let job: { status: string; exitCode: number | null } = { status: 'queued', exitCode: null };
  for (let i = 0; i < 200 && (job.status === 'queued' || job.status === 'running'); i++) {
    await new Promise((r) => setTimeout(r, 25));
    job = (await (await fetch(`${url}/v1/jobs/${created.id}`, { headers })).json()) as typeof job;
  }
  assert.equal(job.status, 'failed');
  assert.equal(job.exitCode, 3);
  const logs = (await (await fetch(`${url}/v1/jobs/${created.id}/logs`, { headers })).json()) as { items: { line: string }[] };
  assert.deepEqual(logs.items.map((l) => l.line), ['hello']);

  // RUNNER_QUEUES defaults to * here: a queue nobody named runs too, and its submission carries no warning.
  const other = (await (await fetch(`${url}/v1/jobs`, { method: 'POST', headers, body: '{"queue":"reports","command":"true"}' })).json()) as { id: string; warnings?: unknown };
  assert.equal(other.warnings, undefined);
  let report = { status: 'queued' };
  for (let i = 0; i < 400 && report.status !== 'succeeded'; i++) {
    await new Promise((r) => setTimeout(r, 25));
    report = (await (await fetch(`${url}/v1/jobs/${other.id}`, { headers })).json()) as typeof report;
  }
  assert.equal(report.status, 'succeeded', 'drover start serves every queue');

  // No job runs now: the children are the Redis it started and the runner's spawner helper.
  const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  t.after(() => kids.filter(alive).forEach((pid) => process.kill(pid, 'SIGKILL')));
  const names = kids.map((pid) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim()).sort();
  assert.deepEqual(names, ['drover-spawner', 'redis-server']);
  const redis = new Redis(`redis://127.0.0.1:${redisPort}`);
  t.after(() => redis.disconnect());
  assert.deepEqual(await redis.config('GET', 'appendonly'), ['appendonly', 'yes']);
  assert.deepEqual(await redis.config('GET', 'maxmemory-policy'), ['maxmemory-policy', 'noeviction']);
  for (const [k, v] of Object.entries(REDIS_TUNING)) assert.deepEqual(await redis.config('GET', k), [k, v], `${k} (REDIS_TUNING)`);
  assert.ok(existsSync(join(dataDir, 'redis')), 'the Redis data lives in the data dir');
  child.kill('SIGTERM');
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0, stderr);
  assert.deepEqual(kids.filter(alive), [], 'the Redis it started and the helper are stopped');
});
