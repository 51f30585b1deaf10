import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { createLogger } from '@drover/core';
import { pino } from 'pino';
import { ownRedis } from './helpers/own-redis.js';
import { freePort, spawnDrover } from './helpers/processes.js';
import { until } from './helpers/until.js';

/**
 * JSON.parse keeps the last of two equal keys without a word; strict consumers reject the line. This walks the text
 * and throws on an object with a key twice.
 */
function parseStrict(line: string): Record<string, unknown> {
  let i = 0;
  const ws = (): void => void (i += /^\s*/.exec(line.slice(i))![0].length);
  const str = (): string => {
    const m = /^"(?:[^"\\]|\\.)*"/.exec(line.slice(i));
    if (!m) throw new Error(`string expected at ${i}`);
    i += m[0].length;
    return JSON.parse(m[0]) as string;
  };
  const value = (): void => {
    ws();
    const c = line[i];
    if (c === '{') {
      i++;
      const keys = new Set<string>();
      for (ws(); line[i] !== '}'; ws()) {
        const k = str();
        if (keys.has(k)) throw new Error(`duplicate key "${k}" in ${line}`);
        keys.add(k);
        ws();
        i++; // :
        value();
        ws();
        if (line[i] === ',') i++;
        ws();
      }
      i++;
    } else if (c === '[') {
      i++;
      for (ws(); line[i] !== ']'; ws()) {
        value();
        ws();
        if (line[i] === ',') i++;
      }
      i++;
    } else if (c === '"') str();
    else i += /^[^,}\]\s]+/.exec(line.slice(i))![0].length;
  };
  value();
  return JSON.parse(line) as Record<string, unknown>;
}

function capture(isTTY = false): { stream: Writable & { isTTY: boolean }; lines: () => string[] } {
  let text = '';
  const stream = Object.assign(new Writable({ write: (c: Buffer, _e, cb) => void ((text += c.toString()), cb()) }), { isTTY });
  return { stream, lines: () => text.split('\n').filter(Boolean) };
}

test('a child logger for another service carries one "service" key (the control: plain pino prints it twice)', () => {
  const out = capture();
  const root = createLogger('info', 'drover', { destination: out.stream });
  root.child({ service: 'scheduler' }).child({ runnerId: 'r1' }).warn({ queue: 'q' }, 'child line');
  root.info('root line');
  const [child, top] = out.lines().map(parseStrict);
  assert.deepEqual([child?.service, child?.runnerId, child?.queue, child?.msg], ['scheduler', 'r1', 'q', 'child line']);
  assert.deepEqual([top?.service, top?.msg], ['drover', 'root line']);

  const raw = capture();
  pino({ base: { service: 'drover' } }, raw.stream).child({ service: 'scheduler' }).info('x');
  assert.throws(() => parseStrict(raw.lines()[0]!), /duplicate key "service"/);
});

test('log format: pretty lines on a terminal (auto), JSON when not, and as asked', () => {
  const tty = capture(true);
  const pretty = createLogger('info', 'drover', { format: 'auto', destination: tty.stream });
  pretty.child({ service: 'scheduler' }).warn({ queue: 'q' }, 'child line');
  pretty.info('second');
  const lines = tty.lines();
  assert.equal(lines.length, 2, 'one line per event');
  assert.match(lines[0]!, /WARN.*scheduler: child line.*"queue":"q"/);
  assert.ok(!lines[0]!.startsWith('{'));

  const pipe = capture(false);
  createLogger('info', 'drover', { format: 'auto', destination: pipe.stream }).info('plain');
  assert.equal(parseStrict(pipe.lines()[0]!).msg, 'plain');
  const forced = capture(true);
  createLogger('info', 'drover', { format: 'json', destination: forced.stream }).info('json on a terminal');
  assert.equal(parseStrict(forced.lines()[0]!).msg, 'json on a terminal');
});

test('drover start on a Redis without AOF: the warning once, request lines at debug only, every line strict JSON', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-logs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const [redisPort, apiPort] = [await freePort(), await freePort()];
  const redis = ownRedis(redisPort, dir, ['--appendonly', 'no']);
  await redis.start();
  t.after(() => redis.stop());
  const child = spawnDrover(
    t, ['start'],
    { PATH: process.env.PATH, REDIS_URL: `redis://127.0.0.1:${redisPort}`, DROVER_PORT: String(apiPort), DROVER_DATA_DIR: join(dir, 'data'), DROVER_LOG_LEVEL: 'debug', DROVER_METRICS_PORT: '0' },
    ['ignore', 'pipe', 'pipe'],
  );
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  await until(`drover start to listen (${stderr})`, () => stderr.includes('listening on') || child.exitCode !== null, 60_000);
  assert.equal(child.exitCode, null, stderr);
  const token = readFileSync(join(dir, 'data', 'admin-token'), 'utf8').trim();
  const res = await fetch(`http://127.0.0.1:${apiPort}/v1/jobs?limit=1`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  await until('the request line', () => stdout.includes('"route":"/v1/jobs"'), 10_000);
  child.kill('SIGTERM');
  await once(child, 'exit');

  const lines = stdout.split('\n').filter(Boolean).map(parseStrict);
  const noAof = lines.filter((l) => String(l.msg).includes('without AOF'));
  assert.equal(noAof.length, 1, 'the no-AOF warning is said once by the three services');
  const requests = lines.filter((l) => l.msg === 'request' || l.msg === 'incoming request' || l.msg === 'request completed');
  assert.ok(requests.length >= 1);
  assert.deepEqual([...new Set(requests.map((l) => l.level))], [20], 'request lines are debug (20)');
  assert.deepEqual(requests.find((l) => l.route === '/v1/jobs')?.statusCode, 200);
  for (const l of lines) assert.ok(['api', 'drover', 'runner', 'scheduler'].includes(String(l.service)), `service ${String(l.service)}`);
  assert.ok(lines.some((l) => l.service === 'scheduler') && lines.some((l) => l.service === 'runner'), 'the services log under their own names');
});
