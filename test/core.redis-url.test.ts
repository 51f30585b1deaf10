import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadConfig, parseRedisTarget } from '@drover/core';

test('REDIS_URL: one Redis, a cluster (any nodes, TLS, ACL user), a Sentinel-watched primary; bad forms say what is wrong', () => {
  assert.deepEqual(parseRedisTarget('redis://127.0.0.1:6379/2'), { kind: 'single', url: 'redis://127.0.0.1:6379/2' });
  assert.deepEqual(parseRedisTarget('redis+cluster://h1:7000,h2:7001,[::1]:7002'), {
    kind: 'cluster', nodes: [{ host: 'h1', port: 7000 }, { host: 'h2', port: 7001 }, { host: '::1', port: 7002 }], tls: false,
  });
  assert.deepEqual(parseRedisTarget('rediss+cluster://drover:p%40ss@redis-0.redis:6379'), {
    kind: 'cluster', nodes: [{ host: 'redis-0.redis', port: 6379 }], tls: true, username: 'drover', password: 'p@ss',
  });
  assert.deepEqual(parseRedisTarget('redis+cluster://:secret@h1'), { kind: 'cluster', nodes: [{ host: 'h1', port: 6379 }], tls: false, password: 'secret' });
  assert.deepEqual(parseRedisTarget('redis+sentinel://s1,s2:26380/mymaster/3'), {
    kind: 'sentinel', sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26380 }], name: 'mymaster', db: 3, tls: false,
  });
  for (const [url, why] of [
    ['http://h:6379', /must be redis:\/\//],
    ['redis+cluster://h1:99999', /"h1:99999" is not host:port/],
    ['redis+cluster://h1:7000/0', /a cluster has no database number/],
    ['redis+sentinel://s1:26379', /needs the name/],
    ['redis+sentinel://s1/main/x', /"x" is not a database number/],
  ] as const) {
    const r = parseRedisTarget(url);
    assert.ok(r instanceof Error, url);
    assert.match(r.message, why, url);
  }
});

test('a bad REDIS_URL is a configuration problem that never shows its password', () => {
  assert.throws(() => loadConfig({ REDIS_URL: 'redis+cluster://user:hunter2@h1:99999' }), (err: unknown) => {
    const text = String((err as Error).message);
    return /is not host:port/.test(text) && !text.includes('hunter2');
  });
  assert.equal(loadConfig({ REDIS_URL: 'redis+cluster://h1:7000,h2:7001' }).redisUrl, 'redis+cluster://h1:7000,h2:7001');
});
