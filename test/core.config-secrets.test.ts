import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { DroverError, configEnvNames, loadConfig } from '@drover/core';

function dir(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'drover-secrets-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof DroverError);
    assert.equal(err.code, 'CONFIG');
    return err.details as string[];
  }
  return assert.fail('expected a config error');
}

const SECRETS = ['REDIS_URL', 'AMQP_URL', 'DATABASE_URL', 'DROVER_CALLBACK_SECRET', 'DROVER_ADMIN_TOKEN'];

test('NAME_FILE: every secret can come from a file; one trailing newline is dropped, nothing else', (t) => {
  const d = dir(t);
  const file = (name: string, content: string): string => {
    const path = join(d, name);
    writeFileSync(path, content, { mode: 0o600 });
    return path;
  };
  const c = loadConfig({
    REDIS_URL_FILE: file('redis', 'redis://:pw-redis@10.0.0.1:6380\n'),
    AMQP_URL_FILE: file('amqp', 'amqp://u:pw-amqp@10.0.0.2:5672\r\n'),
    DATABASE_URL_FILE: file('db', 'postgres://u:pw-db@10.0.0.3/drover'),
    DROVER_CALLBACK_SECRET_FILE: file('callback', 'callback-secret-from-a-file\n\n'),
    DROVER_ADMIN_TOKEN_FILE: file('token', ' token with spaces \n'),
  });
  assert.equal(c.redisUrl, 'redis://:pw-redis@10.0.0.1:6380');
  assert.equal(c.amqpUrl, 'amqp://u:pw-amqp@10.0.0.2:5672');
  assert.equal(c.databaseUrl, 'postgres://u:pw-db@10.0.0.3/drover', 'no newline, nothing dropped');
  assert.equal(c.scheduler.callbackSecret, 'callback-secret-from-a-file\n', 'only one newline is dropped');
  assert.equal(c.adminToken, ' token with spaces ', 'spaces are part of the secret');
  const names = configEnvNames();
  for (const name of [...SECRETS, ...SECRETS.map((n) => `${n}_FILE`), 'RUNNER_JOB_USER']) assert.ok(names.includes(name), `configEnvNames lists ${name}`);
});

test('NAME_FILE: both set, a missing file, an empty file are config problems that name the variable and never show the value', (t) => {
  const d = dir(t);
  const token = join(d, 'token');
  writeFileSync(token, 'file-token-value\n', { mode: 0o600 });
  const empty = join(d, 'empty');
  writeFileSync(empty, '\n', { mode: 0o600 });
  const badUrl = join(d, 'bad-url');
  writeFileSync(badUrl, 'http://user:pw-in-file@host\n', { mode: 0o600 });
  const found = problems({
    DROVER_ADMIN_TOKEN: 'env-token-value',
    DROVER_ADMIN_TOKEN_FILE: token,
    DATABASE_URL_FILE: join(d, 'missing'),
    DROVER_CALLBACK_SECRET_FILE: empty,
    AMQP_URL_FILE: d,
    REDIS_URL_FILE: badUrl,
  });
  assert.equal(found.length, 5, found.join('\n'));
  assert.ok(found.includes('DROVER_ADMIN_TOKEN and DROVER_ADMIN_TOKEN_FILE are both set; set only one'));
  assert.ok(found.includes(`DATABASE_URL_FILE: cannot read ${join(d, 'missing')} (ENOENT)`));
  assert.ok(found.includes(`DROVER_CALLBACK_SECRET_FILE: ${empty} is empty`));
  assert.ok(found.includes(`AMQP_URL_FILE: cannot read ${d} (EISDIR)`));
  assert.ok(found.includes('REDIS_URL must be redis://, rediss://, redis+cluster://host:port,... or redis+sentinel://host:port,.../name, got scheme "http:"'), found.join('\n'));
  const text = found.join('\n');
  for (const value of ['env-token-value', 'file-token-value', 'pw-in-file']) assert.ok(!text.includes(value), `no problem shows ${value}`);
  assert.equal(loadConfig({ DROVER_ADMIN_TOKEN: '', DROVER_ADMIN_TOKEN_FILE: token }).adminToken, 'file-token-value', 'an empty NAME counts as unset');
});
