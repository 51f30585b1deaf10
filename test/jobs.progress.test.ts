import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DroverEvent, JobRecord } from '@drover/core';
import { brokerTest, startStack, type Stack } from './helpers/stack.js';

type Job = JobRecord & { progress: number | null; result: unknown };

/** Every stored event of one job, oldest first, through the API's JSON pages. */
async function eventsOf(s: Stack, jobId: string): Promise<DroverEvent[]> {
  const out: DroverEvent[] = [];
  for (let cursor = '0-0'; ;) {
    const page = (await s.request<{ items: DroverEvent[]; nextCursor: string }>('GET', `/v1/events?after=${cursor}&limit=1000&job=${jobId}`)).body;
    out.push(...page.items);
    if (page.items.length === 0 || page.nextCursor === cursor) return out;
    cursor = page.nextCursor;
  }
}

const finalEvent = (events: DroverEvent[]): DroverEvent => {
  const e = events.find((x) => x.type === 'job.succeeded' || x.type === 'job.failed');
  assert.ok(e, `a final event among ${events.map((x) => x.type).join(',')}`);
  return e;
};

async function logText(s: Stack, id: string): Promise<string[]> {
  const page = (await s.request<{ items: { line: string; stream: string }[] }>('GET', `/v1/jobs/${id}/logs?limit=1000`)).body;
  return page.items.map((l) => `${l.stream} ${l.line}`);
}

brokerTest('progress and result from ::drover lines on stdout: in the record, the events and the final event', async (t, broker) => {
  const s = await startStack(t, { broker });
  const job = (await s.run({
    command: `echo '::drover progress 10'; echo '::drover progress 55.5'; echo '::drover result {"rows":12,"fine":0.1234567890123456,"names":["a","b"]}'; echo done`,
  })) as Job;
  assert.equal(job.status, 'succeeded');
  assert.equal(job.progress, 55.5);
  assert.deepEqual(job.result, { rows: 12, fine: 0.1234567890123456, names: ['a', 'b'] });
  const events = await eventsOf(s, job.id);
  const progress = events.filter((e) => e.type === 'job.progress');
  assert.ok(progress.length >= 1, 'at least one job.progress event');
  assert.equal(progress[progress.length - 1]!.data.progress, 55.5, 'the last value is always written');
  assert.equal(progress[0]!.data.attempt, 1);
  const end = finalEvent(events);
  assert.equal(end.data.progress, 55.5);
  // All 16 digits: the final event's script copies the JSON as it is (re-encoding it in Lua would keep 14).
  assert.deepEqual(end.data.result, { rows: 12, fine: 0.1234567890123456, names: ['a', 'b'] });
  // The lines stay in the output, as the job printed them.
  assert.deepEqual((await logText(s, job.id)).slice(0, 2), ['stdout ::drover progress 10', 'stdout ::drover progress 55.5']);

  // Control: a job that reports nothing has neither, and its final event carries neither.
  const plain = (await s.run({ command: 'echo ::drover-ish; echo " ::drover progress 50"; echo "::drover progress 7" >&2' })) as Job;
  assert.equal(plain.progress, null);
  assert.equal(plain.result, null);
  const plainEvents = await eventsOf(s, plain.id);
  assert.equal(plainEvents.filter((e) => e.type === 'job.progress').length, 0);
  assert.equal('result' in finalEvent(plainEvents).data, false);
  assert.equal('progress' in finalEvent(plainEvents).data, false);
});

brokerTest('progress and result from the files DROVER_PROGRESS_FILE and DROVER_RESULT_FILE', async (t, broker) => {
  const s = await startStack(t, { broker });
  // The job waits for the test to see its first value while it runs: the file is read during the run, not only at the end.
  const dir = await mkdtemp(join(tmpdir(), 'drover-progress-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await chmod(dir, 0o755); // the job may run as a uid of its own: it must be able to see the file appear
  const go = join(dir, 'go');
  const submitted = await s.submit({
    command: 'echo 30 > "$DROVER_PROGRESS_FILE"; until [ -e "$GO" ]; do sleep 0.05; done; echo 80 > "$DROVER_PROGRESS_FILE"; printf \'{"ok":true}\' > "$DROVER_RESULT_FILE"; exit 3',
    env: { GO: go }, timeoutMs: 60_000,
  });
  const running = (await s.waitFor(submitted.id, (j) => (j as Job).progress === 30)) as Job;
  assert.equal(running.status, 'running');
  await writeFile(go, '');
  const job = (await s.waitFor(submitted.id)) as Job;
  assert.equal(job.status, 'failed', 'a failed job reports too');
  assert.equal(job.progress, 80);
  assert.deepEqual(job.result, { ok: true });
  const events = await eventsOf(s, job.id);
  const values = events.filter((e) => e.type === 'job.progress').map((e) => e.data.progress);
  assert.equal(values[values.length - 1], 80);
  assert.deepEqual(finalEvent(events).data.result, { ok: true });

  // A symlink planted as the result file is not followed (the runner may be able to read what the job may not);
  // the same JSON written as the file itself is read (the control).
  const planted = (await s.run({ command: 'mkdir d; printf \'{"leak":1}\' > d/x; ln -s "$PWD/d/x" "$DROVER_RESULT_FILE"' })) as Job;
  assert.equal(planted.status, 'succeeded');
  assert.equal(planted.result, null);
  const control = (await s.run({ command: 'mkdir d; printf \'{"leak":1}\' > d/x; mv d/x "$DROVER_RESULT_FILE"' })) as Job;
  assert.deepEqual(control.result, { leak: 1 });
});

brokerTest('progress events are rate-limited: a job printing 5000 progress lines over seconds writes about one a second, the last always', async (t, broker) => {
  const s = await startStack(t, { broker });
  // 100 distinct values over about 2.5 s: unlimited, the runner's 100 ms batches would write an event for most of them.
  const job = (await s.run({
    command: 'i=0; while [ $i -lt 5000 ]; do i=$((i+1)); echo "::drover progress $((i/50))"; [ $((i % 100)) = 0 ] && sleep 0.05; done; echo "::drover progress 100"',
  })) as Job;
  assert.equal(job.status, 'succeeded');
  assert.equal(job.progress, 100);
  const progress = (await eventsOf(s, job.id)).filter((e) => e.type === 'job.progress');
  assert.ok(progress.length >= 2, `${progress.length} job.progress events: some while it ran, and the last`);
  assert.equal(progress[progress.length - 1]!.data.progress, 100);
  // Spaced by the interval (but the last, written at the end), so bounded by how long the job ran.
  const at = progress.map((e) => Number(e.id.split('-')[0]));
  for (let i = 1; i < at.length - 1; i++) assert.ok(at[i]! - at[i - 1]! >= 900, `events ${i - 1} and ${i} ${at[i]! - at[i - 1]!} ms apart`);
  const ranMs = Date.parse(job.finishedAt!) - Date.parse(job.startedAt!);
  assert.ok(progress.length <= ranMs / 1000 + 2, `${progress.length} events for ${ranMs} ms`);
  const lines = (await s.request<{ items: unknown[] }>('GET', `/v1/jobs/${job.id}/logs?limit=10000`)).body.items;
  assert.equal(lines.length, 5001, 'every line is still in the output');
});

brokerTest('bad progress values are ignored; an over-size or invalid result is a note in the output, not a crash', async (t, broker) => {
  const s = await startStack(t, { broker });
  const job = (await s.run({
    command: [
      'echo "::drover progress 20"',
      'echo "::drover progress 101"', 'echo "::drover progress -5"', 'echo "::drover progress abc"', 'echo "::drover progress"',
      'echo "::drover progress 1e2"', 'echo "::drover result {not json"',
      // A result line over 64 KiB (70 KiB of x, quoted): too big, whole or in pieces.
      `printf '::drover result "'; head -c 71680 /dev/zero | tr '\\0' x; printf '"\\n'`,
      'echo "::drover unknown 1"', 'echo after',
    ].join('; '),
  })) as Job;
  assert.equal(job.status, 'succeeded');
  assert.equal(job.progress, 20, 'only the valid value counts');
  assert.equal(job.result, null);
  const lines = await logText(s, job.id);
  assert.ok(lines.some((l) => l === 'system result ignored: it is not valid JSON'), lines.filter((l) => l.startsWith('system')).join('\n'));
  assert.ok(lines.some((l) => l.startsWith('system ') && /64 ?KiB|65536|bytes/.test(l) && l.includes('ignored')), 'the over-size result is noted');
  assert.ok(lines.includes('stdout after'));

  // A result file over the limit: noted, the job still ends as it would.
  const file = (await s.run({ command: `head -c 70000 /dev/zero | tr '\\0' 1 > "$DROVER_RESULT_FILE"` })) as Job;
  assert.equal(file.status, 'succeeded');
  assert.equal(file.result, null);
  assert.ok((await logText(s, file.id)).some((l) => l.startsWith('system result file ignored')));

  // A retry starts without the failed attempt's report.
  const retried = (await s.run({
    command: 'if [ "$DROVER_ATTEMPT" = 1 ]; then echo "::drover progress 90"; echo \'::drover result {"a":1}\'; exit 1; fi; echo "::drover progress 5"',
    retries: 1, backoff: { type: 'fixed', delayMs: 10 },
  })) as Job;
  assert.equal(retried.status, 'succeeded');
  assert.equal(retried.attempts, 2);
  assert.equal(retried.progress, 5);
  assert.equal(retried.result, null);
});
