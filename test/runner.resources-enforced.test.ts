import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { test, type TestContext } from 'node:test';
import type { JobRecord } from '@drover/core';
import { record } from './helpers/audit.js';
import { startStack, type Stack } from './helpers/stack.js';

const hasPython = ((): boolean => {
  try {
    execFileSync('python3', ['-c', '0']);
    return true;
  } catch {
    return false;
  }
})();

/** Allocates `mb` MiB and touches it, so it is really resident. */
const allocate = (mb: number): string => `python3 -c 'b = bytearray(${mb} * 1024 * 1024); print(len(b))'`;

async function cgroupStack(t: TestContext): Promise<Stack> {
  const s = await startStack(t, { env: { RUNNER_CGROUP: 'auto', RUNNER_EXECUTOR: 'spawner' } });
  const runners = await s.request<{ items: { containment: string | null }[] }>('GET', '/v1/runners');
  if (!runners.body.items[0]?.containment?.startsWith('cgroup')) t.skip('this host gives the runner no cgroup');
  return s;
}

const logs = async (s: Stack, id: string): Promise<string> =>
  (await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${id}/logs?limit=1000`)).body.items.map((i) => `${i.line}\n`).join('');

test('memory limit: an attempt over it is OOM-killed and ends failed "out of memory (limit 64 MiB)"; peak memory and CPU time come from its cgroup', { skip: !hasPython && 'no python3' }, async (t) => {
  const s = await cgroupStack(t);
  const job = await s.run({ command: allocate(300), resources: { memoryMb: 64 } });
  assert.equal(job.status, 'failed');
  assert.equal(job.error, 'out of memory (limit 64 MiB)');
  const usage = job.usage as { peakMemoryBytes?: number; cpuMs?: number } | null;
  assert.ok(usage?.peakMemoryBytes !== undefined && usage.peakMemoryBytes <= 64 * 1024 * 1024, `peak ${usage?.peakMemoryBytes} within the limit`);
  assert.ok(usage.peakMemoryBytes > 16 * 1024 * 1024, 'it did get close to the limit');
  assert.ok((usage.cpuMs ?? 0) > 0, 'CPU time from the cgroup');
  // The control: the same job under a limit it fits in.
  const fits = await s.run({ command: allocate(40), resources: { memoryMb: 256 } });
  assert.equal(fits.status, 'succeeded');
  assert.ok(((fits.usage as { peakMemoryBytes?: number }).peakMemoryBytes ?? 0) >= 40 * 1024 * 1024);
  // For the fault table: one attempt OOM-killed (failed, not lost, not retried), one that fits.
  record({ scenario: 'OOM kill under resources.memoryMb 64 (+1 job that fits)', accepted: 2, succeeded: 1, lost: 0, duplicated: 0, missing: 0 });
});

test('pids limit: a job cannot have more processes than it asked for', async (t) => {
  const s = await cgroupStack(t);
  const forks = 'i=0; while [ $i -lt 30 ]; do sleep 1 & i=$((i+1)); done; wait; echo "all 30 started"';
  const limited = await s.run({ command: forks, resources: { pids: 8 } });
  assert.equal(limited.status, 'failed');
  assert.match(await logs(s, limited.id), /fork/i, 'the shell could not fork past the limit');
  // The control: room for all of them.
  const roomy = await s.run({ command: forks, resources: { pids: 100 } });
  assert.equal(roomy.status, 'succeeded');
  assert.match(await logs(s, roomy.id), /all 30 started/);
});

test('cpus and memory limits are written to the attempt\'s own cgroup, as the job sees it', async (t) => {
  const s = await cgroupStack(t);
  // The job reads its cgroup files, v2 or v1, whichever carry the controller on this host.
  const read = [
    'for line in $(cat /proc/self/cgroup); do',
    '  ctl=$(echo "$line" | cut -d: -f2); path=$(echo "$line" | cut -d: -f3)',
    '  case "$ctl" in',
    '    "") d=$(grep cgroup2 /proc/self/mounts | cut -d" " -f2)$path; for f in memory.max cpu.max pids.max; do [ -f "$d/$f" ] && echo "v2 $f $(cat $d/$f)"; done;;',
    '    *memory*) d=$(grep -E "cgroup .*[ ,]memory[ ,]" /proc/self/mounts | cut -d" " -f2)$path; echo "v1 memory $(cat $d/memory.limit_in_bytes)";;',
    '    *cpu,*|cpu) d=$(grep -E "cgroup .*[ ,]cpu[ ,]" /proc/self/mounts | cut -d" " -f2)$path; echo "v1 cpu $(cat $d/cpu.cfs_quota_us)";;',
    '    pids) d=$(grep -E "cgroup .*[ ,]pids[ ,]" /proc/self/mounts | cut -d" " -f2)$path; echo "v1 pids $(cat $d/pids.max)";;',
    '  esac',
    'done',
    'exit 0',
  ].join('\n');
  const job: JobRecord = await s.run({ command: read, resources: { memoryMb: 96, cpus: 0.5, pids: 40 } });
  const out = await logs(s, job.id);
  assert.equal(job.status, 'succeeded', out);
  const bytes = String(96 * 1024 * 1024);
  assert.ok(out.includes(`v2 memory.max ${bytes}`) || out.includes(`v1 memory ${bytes}`), out);
  assert.ok(out.includes('v2 cpu.max 50000 100000') || out.includes('v1 cpu 50000'), out);
  assert.ok(out.includes('v2 pids.max 40') || out.includes('v1 pids 40'), out);
});

test('without a cgroup the memory limit is an address-space rlimit: the allocation fails, the job with it', { skip: !hasPython && 'no python3' }, async (t) => {
  const s = await startStack(t, { env: { RUNNER_CGROUP: 'off', RUNNER_EXECUTOR: 'spawner' } });
  const job = await s.run({ command: allocate(300), resources: { memoryMb: 64 } });
  assert.equal(job.status, 'failed');
  assert.match(await logs(s, job.id), /MemoryError/);
  const fits = await s.run({ command: 'echo small', resources: { memoryMb: 64 } });
  assert.equal(fits.status, 'succeeded');
});
