// Env values at rest: with DROVER_ENV_KEY no plain value is in Redis, no answer or event shows one, and only a
// runner holding the key can give the command its value.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { EnvCipher, createRedis, isSealed, parseEnvKey, type JobRecord } from '@drover/core';
import { startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

const key = (): string => randomBytes(32).toString('base64');

/** Everything Redis holds under the stack's prefix (BullMQ's keys included), as one string to search. */
async function dumpPrefix(s: Stack): Promise<string> {
  const redis = createRedis(s.config.redisUrl, 'worker');
  try {
    const parts: string[] = [];
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `{${s.prefix}}*`, 'COUNT', 1000);
      cursor = next;
      for (const k of keys) {
        const type = await redis.type(k);
        const value =
          type === 'string' ? await redis.getBuffer(k).then((b) => b?.toString('latin1'))
          : type === 'hash' ? await redis.hgetall(k)
          : type === 'list' ? await redis.lrange(k, 0, -1)
          : type === 'set' ? await redis.smembers(k)
          : type === 'zset' ? await redis.zrange(k, 0, -1)
          : type === 'stream' ? await redis.xrange(k, '-', '+')
          : null;
        parts.push(k, JSON.stringify(value));
      }
    } while (cursor !== '0');
    return parts.join('\n');
  } finally {
    await redis.quit();
  }
}

const logLines = async (s: Stack, id: string): Promise<string[]> =>
  (await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${id}/logs`)).body.items.map((l) => l.line);

test('env values are sealed in Redis for jobs, schedules, manual runs and workflows; the command still sees them', async (t) => {
  const s = await startStack(t, { env: { DROVER_ENV_KEY: key() } });
  const secret = `hunter2-${randomBytes(6).toString('hex')}`;
  const override = `override-${randomBytes(6).toString('hex')}`;
  // The commands print a digest of what they got: neither the command nor the log may be where the value turns up.
  const check = (name: string) => `printf %s "$${name}" | sha256sum | cut -c1-16`;
  const digest = (value: string) => createHash('sha256').update(value).digest('hex').slice(0, 16);

  const job = await s.run({ command: check('DB_PASSWORD'), env: { DB_PASSWORD: secret } });
  assert.equal(job.status, 'succeeded', job.error ?? '');
  assert.deepEqual(await logLines(s, job.id), [digest(secret)]);
  assert.deepEqual(job.envKeys, ['DB_PASSWORD']);

  const created = await s.request('POST', '/v1/schedules', { name: 'nightly', cron: '0 3 * * *', job: { command: `${check('DB_PASSWORD')}; ${check('EXTRA')}`, env: { DB_PASSWORD: secret } } });
  assert.equal(created.status, 201);
  const fired = await s.request<JobRecord>('POST', '/v1/schedules/nightly/trigger', { env: { EXTRA: override } });
  assert.equal(fired.status, 201, JSON.stringify(fired.body));
  const run = await s.waitFor(fired.body.id);
  assert.equal(run.status, 'succeeded', run.error ?? '');
  assert.deepEqual(await logLines(s, run.id), [digest(secret), digest(override)]);

  const wf = await s.request<{ id: string }>('POST', '/v1/workflows', { name: 'w', steps: [{ name: 'a', job: { command: check('TOKEN'), env: { TOKEN: secret } } }] });
  assert.equal(wf.status, 201);
  const step = await until('the workflow step to finish', async () => {
    const view = await s.request<{ steps: { status: string; jobId: string }[] }>('GET', `/v1/workflows/${wf.body.id}`);
    return view.body.steps[0]?.status === 'succeeded' ? view.body.steps[0] : undefined;
  });
  assert.deepEqual(await logLines(s, step.jobId), [digest(secret)]);

  const stored = await dumpPrefix(s);
  assert.ok(stored.includes('enc:v1:'), 'sealed values are there');
  for (const value of [secret, override]) assert.ok(!stored.includes(value), `a plain env value is stored in Redis`);
  // Nor does any answer show one, sealed or plain.
  for (const path of ['/v1/schedules', '/v1/schedules/nightly', `/v1/jobs/${job.id}`, `/v1/workflows/${wf.body.id}`, '/v1/events?after=0-0&limit=1000', `/v1/jobs/${run.id}`]) {
    const text = JSON.stringify((await s.request('GET', path)).body);
    assert.ok(!text.includes(secret) && !text.includes(override) && !text.includes('enc:v1:'), `${path} shows an env value`);
  }
});

test('a runner without the key (or with another) fails the job naming the variable; the value never reaches the command', async (t) => {
  const writer = await startStack(t, { runner: false, env: { DROVER_ENV_KEY: key() } });
  const marker = `m-${randomBytes(6).toString('hex')}`;
  const id = (await writer.submit({ command: 'echo "got:$API_KEY"', env: { API_KEY: marker } })).id;
  // A second runner on the same prefix with a different key takes the job.
  const { Runner } = await import('@drover/runner');
  const { createLogger, loadConfig } = await import('@drover/core');
  const config = loadConfig({ ...Object.fromEntries(Object.entries(process.env)), REDIS_URL: writer.config.redisUrl, DROVER_PREFIX: writer.prefix, DROVER_ENV_KEY: key(), RUNNER_ID: `other-${marker}`, DROVER_METRICS_PORT: 'off' });
  const runner = new Runner({ config, logger: createLogger('silent', 'test') });
  t.after(() => runner.close());
  await runner.start();
  const job = await writer.waitFor(id);
  assert.equal(job.status, 'failed');
  assert.match(job.error ?? '', /env API_KEY is sealed with a key this runner does not have/);
  assert.ok(!JSON.stringify(await logLines(writer, id)).includes(marker));
});

test('EnvCipher: round trip; a value moved to another name, altered or opened with another key fails; keys parse strictly', () => {
  const k = parseEnvKey(randomBytes(32).toString('hex'));
  assert.ok(Buffer.isBuffer(k));
  const c = new EnvCipher(k);
  const sealed = c.seal({ A: 'one', B: '' });
  assert.ok(isSealed(sealed.A!) && isSealed(sealed.B!));
  assert.notEqual(c.seal({ A: 'one' }).A, sealed.A, 'a fresh IV each time');
  assert.deepEqual(c.open(sealed), { A: 'one', B: '' });
  assert.deepEqual(c.seal(sealed), sealed, 'sealing twice changes nothing');
  assert.throws(() => c.open({ B: sealed.A! }), /env B is sealed/);
  const body = sealed.A!.slice('enc:v1:'.length);
  const flipped = `enc:v1:${body.slice(0, 20)}${body[20] === 'A' ? 'B' : 'A'}${body.slice(21)}`;
  assert.throws(() => c.open({ A: flipped }), /env A is sealed/);
  assert.throws(() => new EnvCipher(parseEnvKey(randomBytes(32).toString('base64')) as Buffer).open({ A: sealed.A! }), /env A is sealed/);
  for (const bad of ['', 'short', randomBytes(31).toString('hex'), randomBytes(33).toString('base64')]) assert.equal(typeof parseEnvKey(bad), 'string', bad);
  assert.ok(Buffer.isBuffer(parseEnvKey(randomBytes(32).toString('base64url'))));
});
