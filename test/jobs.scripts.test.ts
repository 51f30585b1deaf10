import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { startStack, type Stack } from './helpers/stack.js';

type Line = { line: string; stream: string };
const lines = async (s: Stack, id: string): Promise<Line[]> => (await s.request<{ items: Line[] }>('GET', `/v1/jobs/${id}/logs`)).body.items;
type Scripted = JobRecord & { script: { sha256: string; bytes: number; interpreter: string } | null; files: { path: string; bytes: number }[] };

test('script jobs run with each allowed interpreter, from a private file that is gone afterwards', async (t) => {
  const s = await startStack(t);
  const scripts: Record<string, string> = {
    sh: 'echo "sh $1"; test -x "$0" && echo private-file "$0"',
    bash: 'declare -a xs=(a b); echo "bash ${xs[1]} $1"',
    python3: 'import sys\nprint("python3", sys.argv[1])',
    node: 'console.log("node", process.argv[2])',
  };
  for (const [interpreter, script] of Object.entries(scripts)) {
    const res = await s.request<Scripted>('POST', '/v1/jobs', { script, interpreter, args: ['arg1'] });
    assert.equal(res.status, 201, JSON.stringify(res.body));
    assert.deepEqual(res.body.script, { sha256: createHash('sha256').update(script).digest('hex'), bytes: Buffer.byteLength(script), interpreter });
    assert.equal((res.body as unknown as Record<string, unknown>).command, null, 'the body is not returned');
    const job = await s.waitFor(res.body.id);
    assert.equal(job.status, 'succeeded', `${interpreter}: ${job.error}`);
    const out = await lines(s, job.id);
    assert.equal(out[0]!.stream, 'system');
    assert.match(out[0]!.line, new RegExp(`^script sha256:${res.body.script.sha256} \\(\\d+ bytes\\), run with ${interpreter}$`));
    assert.equal(out[1]!.line, `${interpreter === 'bash' ? 'bash b' : interpreter} arg1`);
    if (interpreter === 'sh') {
      const path = out[2]!.line.split(' ')[1]!;
      assert.match(path, /\.drover-script$/);
      assert.throws(() => statSync(path), /ENOENT/, 'removed with the job directory');
    }
  }
});

test('files are placed in the job directory (text and base64, with subdirectories) before it starts', async (t) => {
  const s = await startStack(t);
  const res = await s.request<Scripted>('POST', '/v1/jobs', {
    script: 'cat conf/app.ini; od -An -tx1 data.bin | tr -d " "; stat -c %a conf/app.ini',
    files: { 'conf/app.ini': 'key=value\n', 'data.bin': { base64: Buffer.from([0, 255, 16]).toString('base64') } },
  });
  assert.equal(res.status, 201);
  assert.deepEqual(res.body.files, [{ path: 'conf/app.ini', bytes: 10 }, { path: 'data.bin', bytes: 3 }]);
  const job = await s.waitFor(res.body.id);
  assert.equal(job.status, 'succeeded', job.error ?? '');
  assert.deepEqual((await lines(s, job.id)).filter((l) => l.stream === 'stdout').map((l) => l.line), ['key=value', '00ff10', '600']);
});

test('script and files bad input: escaping paths, oversized scripts, unknown interpreters are 400s; nothing stored', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false, env: { DROVER_MAX_SCRIPT_BYTES: '64', DROVER_MAX_FILES_BYTES: '16' } });
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ script: 'x'.repeat(65) }, /script: is 65 bytes; the limit is 64/],
    [{ script: 'true', interpreter: 'ruby' }, /interpreter: "ruby" is not allowed; use one of sh, bash, python3, node/],
    [{ command: 'true', interpreter: 'bash' }, /interpreter: only applies to "script"/],
    [{ command: 'true', script: 'true' }, /mutually exclusive/],
    [{ script: 'true', files: { '../escape': 'x' } }, /files\/..\/escape: must not leave the job's directory/],
    [{ script: 'true', files: { '/etc/passwd': 'x' } }, /must be relative/],
    [{ script: 'true', files: { 'a//b': 'x' } }, /empty or "." parts/],
    [{ script: 'true', files: { big: 'x'.repeat(17) } }, /files: hold 17 bytes; the limit is 16/],
    [{ script: 'true', files: { a: 'x' }, cwd: '/tmp' }, /do not set "cwd"/],
    [{ script: 'true', files: { a: { base64: 'not base64!' } } }, /base64/],
  ];
  for (const [body, message] of cases) {
    const res = await s.request<{ error: { message: string } }>('POST', '/v1/jobs', body);
    assert.equal(res.status, 400, JSON.stringify(body));
    assert.match(res.body.error.message, message);
  }
  assert.deepEqual((await s.request<{ items: unknown[] }>('GET', '/v1/jobs')).body.items, []);
});

test('schedules and workflows may use script jobs', async (t) => {
  const s = await startStack(t);
  await s.request('POST', '/v1/schedules', { name: 'scripted', cron: '0 0 1 1 *', job: { script: 'echo from-schedule' } });
  const fired = await s.request<JobRecord>('POST', '/v1/schedules/scripted/trigger', {});
  assert.equal((await s.waitFor(fired.body.id)).status, 'succeeded');
  assert.deepEqual((await lines(s, fired.body.id)).filter((l) => l.stream === 'stdout').map((l) => l.line), ['from-schedule']);
  const wf = await s.request<{ id: string; steps: { jobId: string }[] }>('POST', '/v1/workflows', {
    name: 'scripted', steps: [{ name: 'one', job: { script: 'print("step")', interpreter: 'python3' } }],
  });
  const step = await s.waitFor(wf.body.steps[0]!.jobId);
  assert.equal(step.status, 'succeeded', step.error ?? '');
});
