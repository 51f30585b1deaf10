import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { JobRecord, LogEntry } from '@drover/core';
import { Redis } from 'ioredis';
import { cli, cliEnv } from './helpers/cli.js';
import { freshDatabase, poolThenDrop } from './helpers/postgres.js';
import { connectSse, type SseClient } from './helpers/sse.js';
import { REDIS_URL, startStack, type Stack, keysOf } from './helpers/stack.js';
import { until } from './helpers/until.js';

async function download(s: Stack, id: string): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const res = await fetch(`${s.url}/v1/jobs/${id}/logs?format=text`, { headers: { authorization: `Bearer ${s.tokens.read}` } });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** Every stored line through the JSON pages. */
async function pages(s: Stack, id: string): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  for (let cursor = ''; ;) {
    const page = (await s.request<{ items: LogEntry[]; nextCursor: string | null }>('GET', `/v1/jobs/${id}/logs?limit=2${cursor ? `&cursor=${cursor}` : ''}`)).body;
    out.push(...page.items);
    if (!page.nextCursor || page.items.length === 0) return out;
    cursor = page.nextCursor;
  }
}

/** The bytes one stream wrote, rejoined from the JSON lines (a partial piece gets no newline). */
const streamBytes = (lines: LogEntry[], stream: string): string =>
  lines.filter((l) => l.stream === stream).map((l) => (l.partial ? l.line : `${l.line}\n`)).join('');

/** Frames until `end`. */
async function followed(client: SseClient): Promise<{ lines: LogEntry[]; end: Record<string, unknown> }> {
  const lines: LogEntry[] = [];
  for (;;) {
    const f = await client.next(20_000);
    assert.ok(f, 'the stream ended before its end event');
    if (f.event === 'line') lines.push(JSON.parse(f.data) as LogEntry);
    if (f.event === 'end') return { lines, end: JSON.parse(f.data) as Record<string, unknown> };
  }
}

test('logs?format=text: every attempt with its separator, byte-exact (an over-long line, a partial last line), as a named attachment', async (t) => {
  const s = await startStack(t);
  const long = 'a'.repeat(100_000);
  const job = await s.run({
    command: [
      // Attempt 1: ends without a newline, then fails; attempt 2 prints unicode, an over-long line and a partial end.
      'if [ "$DROVER_ATTEMPT" = 1 ]; then echo first; printf "cut"; exit 2; fi',
      // The long line comes in two writes with a pause: the first 70000 bytes, over the collector's 64 KiB, are
      // stored as a piece whatever the pipe's read sizes.
      `echo "ünïcödé ✓"; head -c 70000 /dev/zero | tr '\\0' a; sleep 0.3; head -c 30000 /dev/zero | tr '\\0' a; echo; printf "no newline at end"`,
    ].join('; '),
    retries: 1, backoff: { type: 'fixed', delayMs: 10 },
  });
  assert.equal(job.status, 'succeeded');
  assert.equal(job.attempts, 2);
  const res = await download(s, job.id);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8');
  assert.equal(res.headers.get('content-disposition'), `attachment; filename="${job.id}.log"`);
  const expected =
    '--- attempt 1 of 2: failed (exit 2) ---\n' + 'first\ncut' +
    '\n--- attempt 2 of 2: succeeded (exit 0) ---\n' + `ünïcödé ✓\n${long}\nno newline at end`;
  assert.ok(res.body.equals(Buffer.from(expected, 'utf8')), `got ${res.body.length} bytes, expected ${Buffer.byteLength(expected)}: ${res.body.subarray(0, 200).toString()}`);
  // The over-long line was stored in pieces (the control: the text joined them again).
  assert.ok((await pages(s, job.id)).some((l) => l.partial && l.line.startsWith('aaa')), 'the long line is stored in pieces');

  // Both streams, and a script job's system note left out; a missing job is a 404 in the usual envelope.
  const mixed = await s.run({ script: 'echo out\necho err >&2\n' });
  const text = (await download(s, mixed.id)).body.toString();
  assert.ok(text.startsWith('--- attempt 1: succeeded (exit 0) ---\n'), text);
  assert.deepEqual(text.split('\n').slice(1).sort(), ['', 'err', 'out']);
  assert.ok((await pages(s, mixed.id)).some((l) => l.stream === 'system'), 'the control: a system note exists in the JSON');
  const missing = await fetch(`${s.url}/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/logs?format=text`, { headers: { authorization: `Bearer ${s.tokens.read}` } });
  assert.equal(missing.status, 404);
  assert.equal(((await missing.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
  const bad = await s.request<{ error: { code: string } }>('GET', `/v1/jobs/${job.id}/logs?format=html`);
  assert.equal(bad.status, 400);
  const noToken = await fetch(`${s.url}/v1/jobs/${job.id}/logs?format=text`);
  assert.equal(noToken.status, 401);
});

test('an archived job: the text download, ?follow=1 and drover logs -f read its stored output and its real end', async (t) => {
  const { url: db, drop } = await freshDatabase();
  const s = await startStack(t, { env: { DATABASE_URL: db, DROVER_RETENTION_FINISHED: '2000' } });
  const sql = poolThenDrop(t, { url: db, drop });
  const failed = await s.run({ command: 'echo one; echo two >&2; printf "three"; exit 3' });
  const ok = await s.run({ command: 'echo fine' });
  assert.equal(failed.status, 'failed');
  const before = { text: (await download(s, failed.id)).body, lines: await pages(s, failed.id) };
  // stdout and stderr are read apart: their order in the text is the order the runner read them.
  // The partial piece is stored when the output closes, so it comes last.
  const [head, ...rest] = before.text.toString().split('\n');
  assert.equal(head, '--- attempt 1: failed (exit 3) ---');
  assert.deepEqual(rest.slice(0, 2).sort(), ['one', 'two']);
  assert.deepEqual(rest.slice(2), ['three']);
  const redis = new Redis(REDIS_URL);
  t.after(async () => void (await redis.quit()));
  await until('archived', async () => (await sql.query('SELECT 1 FROM drover_jobs')).rowCount === 2);
  await until('gone from Redis', async () => (await keysOf(redis, `{${s.prefix}}:job:*`)).length === 0);

  // The same bytes from PostgreSQL, the partial flag included.
  const after = await download(s, failed.id);
  assert.equal(after.status, 200);
  assert.ok(after.body.equals(before.text), after.body.toString());
  assert.deepEqual(await pages(s, failed.id), before.lines);
  assert.equal(before.lines.at(-1)!.partial, true);

  // Follow: the stored lines, then how it really ended (not status null).
  const auth = { authorization: `Bearer ${s.tokens.read}` };
  const client = await connectSse(`${s.url}/v1/jobs/${failed.id}/logs?follow=1`, auth);
  t.after(() => client.close());
  assert.equal(client.status, 200);
  const { lines, end } = await followed(client);
  assert.deepEqual(lines, before.lines);
  assert.equal(streamBytes(lines, 'stdout'), 'one\nthree');
  assert.deepEqual(end, { status: 'failed', exitCode: 3, signal: null, error: null, truncated: false });
  // Resuming after the first line sends only what follows.
  const resumed = await connectSse(`${s.url}/v1/jobs/${failed.id}/logs?follow=1`, { ...auth, 'last-event-id': before.lines[0]!.id });
  t.after(() => resumed.close());
  assert.deepEqual((await followed(resumed)).lines, before.lines.slice(1));

  // The CLI exits with the job's own code, as `drover run` would; the succeeded one (the control) with 0.
  const env = cliEnv(t, s.url, s.tokens.read);
  const viaCli = await cli(t, env, 'logs', '-f', failed.id);
  assert.equal(viaCli.code, 3, viaCli.stderr);
  assert.equal(viaCli.stdout, 'one\nthree');
  assert.equal(viaCli.stderr, 'two\n');
  const fine = await cli(t, env, 'logs', '-f', ok.id);
  assert.equal(fine.code, 0, fine.stderr);
  assert.equal(fine.stdout, 'fine\n');
  const record = (await s.request<JobRecord>('GET', `/v1/jobs/${failed.id}`)).body;
  assert.equal(record.exitCode, 3, 'read through from the archive');
});

test('drover logs -f on a live job ends with its outcome too', async (t) => {
  const s = await startStack(t);
  const job = await s.submit({ command: 'sleep 0.3; echo late; exit 4' });
  const env = cliEnv(t, s.url, s.tokens.read);
  const r = await cli(t, env, 'logs', '-f', job.id);
  assert.equal(r.code, 4, r.stderr);
  assert.equal(r.stdout, 'late\n');
  assert.equal((await s.waitFor(job.id)).status, 'failed');
});

test('the OpenAPI document says what format=text answers: text/plain beside the JSON page', async (t) => {
  const s = await startStack(t, { runner: false });
  type Doc = { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, unknown> }> }>> };
  const doc = (await s.request<Doc>('GET', '/docs/json')).body;
  const content = doc.paths['/v1/jobs/{id}/logs']?.get?.responses['200']?.content ?? {};
  assert.deepEqual(Object.keys(content).sort(), ['application/json', 'text/plain']);
});
