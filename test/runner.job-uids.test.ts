import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { DroverError, loadConfig, parseUidRange, type UidRange } from '@drover/core';
import { DEFAULT_JOB_UIDS, JobUidPool, chooseJobUser, hostLockPath, hostUidLock, type UidLock, type UserDatabase } from '@drover/runner';
import { jobTempDir } from './helpers/job-dir.js';
import { alive, startStack } from './helpers/stack.js';
import { EXECUTORS } from './helpers/executors.js';
import { until } from './helpers/until.js';

/*
 * One uid per running job: the range setting, the runner's choice, the pool that hands uids out (never one to two
 * jobs at once, on one runner or across runners of the host), and the kill of everything a uid left before it is
 * handed out again, with both executors.
 */


/** The problem parseUidRange reports (fails when it accepts the text). */
function rangeProblem(text: string): string {
  const r = parseUidRange(text);
  assert.equal(typeof r, 'string', `"${text}" is refused`);
  return r as string;
}

function configProblems(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    assert.ok(err instanceof DroverError && err.code === 'CONFIG');
    return err.details as string[];
  }
  return [];
}

test('RUNNER_JOB_UIDS: "first-last", at 1000 or above, at most 2^31-1, at least RUNNER_CONCURRENCY uids, never with RUNNER_JOB_USER', () => {
  assert.deepEqual(parseUidRange('2000000000-2000099999'), { first: 2_000_000_000, last: 2_000_099_999 });
  assert.deepEqual(parseUidRange(' 5000 - 5000 '), { first: 5000, last: 5000 }, 'one uid is a range');
  for (const bad of ['', 'abc', '5000', '5000-', '-5000', '5000-6000-7000', '1e4-2e4', '0x2000-0x3000', '5000..6000', '-1-5000']) {
    assert.match(rangeProblem(bad), /must be a range of uids "first-last"/, bad);
  }
  assert.match(rangeProblem('0-5000'), /must start at 1000 or above: uids below are the system's/);
  assert.match(rangeProblem('999-5000'), /must start at 1000 or above/);
  assert.match(rangeProblem('6000-5000'), /must start at or below its end/);
  assert.match(rangeProblem('2000000000-2147483648'), /must end at 2147483647 or below/);
  assert.match(rangeProblem('4294967294-4294967295'), /must end at 2147483647 or below/);

  assert.equal(loadConfig({}).runner.jobUids, undefined, 'unset: the runner decides');
  assert.deepEqual(loadConfig({ RUNNER_JOB_UIDS: '5000-5004', RUNNER_CONCURRENCY: '5' }).runner.jobUids, { first: 5000, last: 5004 });
  assert.deepEqual(configProblems({ RUNNER_JOB_UIDS: 'lots' }), ['RUNNER_JOB_UIDS must be a range of uids "first-last", e.g. 2000000000-2000099999 (got "lots")']);
  assert.deepEqual(configProblems({ RUNNER_JOB_UIDS: '5000-5003', RUNNER_CONCURRENCY: '5' }), [
    'RUNNER_JOB_UIDS 5000-5003 holds 4 uids, fewer than RUNNER_CONCURRENCY (5): every running job needs one',
  ]);
  assert.match(configProblems({ RUNNER_JOB_UIDS: '5000-5999', RUNNER_JOB_USER: 'nobody' }).join('\n'), /RUNNER_JOB_UIDS and RUNNER_JOB_USER are both set/);
  assert.equal(configProblems({ RUNNER_JOB_UIDS: '100-200', RUNNER_CONCURRENCY: 'x' }).length, 2, 'every problem at once');
});

const PASSWD = ['root:x:0:0:root:/root:/bin/bash', 'builder:x:1000:1000::/home/builder:/bin/sh', 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin', ''].join('\n');
const GROUP = ['root:x:0:', 'builder:x:1000:', 'ci:x:3000:builder', 'nogroup:x:65534:', ''].join('\n');
const ROOT = { uid: 0, missingCaps: [] };

function users(t: TestContext, self: UserDatabase['self'], maps: { uid?: string; gid?: string } = {}): UserDatabase {
  const dir = mkdtempSync(join(tmpdir(), 'drover-users-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string): string => (writeFileSync(join(dir, name), text), join(dir, name));
  const db: UserDatabase = { passwd: file('passwd', PASSWD), group: file('group', GROUP), self };
  if (maps.uid !== undefined) db.uidMap = file('uid_map', maps.uid);
  if (maps.gid !== undefined) db.gidMap = file('gid_map', maps.gid);
  return db;
}

function problemOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof DroverError && err.code === 'CONFIG', String(err));
    return err.message;
  }
  return assert.fail('expected a configuration error');
}

test("a runner that can switch users gives each job a uid of its own unless RUNNER_JOB_USER names one user; the range must be nobody's and mapped", (t) => {
  const root = users(t, ROOT);
  assert.deepEqual(chooseJobUser(undefined, root), { user: undefined, uids: DEFAULT_JOB_UIDS });
  assert.ok(DEFAULT_JOB_UIDS.first >= 1_000_000_000 && DEFAULT_JOB_UIDS.last < 2 ** 31 && DEFAULT_JOB_UIDS.last - DEFAULT_JOB_UIDS.first + 1 >= 10_000, 'far from people and services, above any RUNNER_CONCURRENCY');
  assert.deepEqual(chooseJobUser(undefined, root, { first: 5000, last: 5999 }), { user: undefined, uids: { first: 5000, last: 5999 } });
  const shared = chooseJobUser('nobody', root);
  assert.equal(shared.user?.uid, 65534, 'RUNNER_JOB_USER keeps one user for all jobs');
  assert.equal(shared.uids, undefined);

  assert.match(problemOf(() => chooseJobUser(undefined, root, { first: 1000, last: 1999 })), /RUNNER_JOB_UIDS 1000-1999 must belong to Drover's jobs alone, but it holds user builder \(1000\), group builder \(1000\); choose a range no user or group has/);
  assert.match(problemOf(() => chooseJobUser(undefined, root, { first: 2990, last: 3010 })), /holds group ci \(3000\)/);
  assert.match(problemOf(() => chooseJobUser(undefined, root, { first: 60000, last: 70000 })), /holds user nobody \(65534\), group nogroup \(65534\)/);

  // A user namespace that maps 0-65535 only (rootless containers, Kubernetes with hostUsers: false).
  const userns = users(t, ROOT, { uid: '         0     100000      65536\n', gid: '0 100000 65536\n' });
  assert.match(problemOf(() => chooseJobUser(undefined, userns)), /the default job uids 2000000000-2000099999 \(RUNNER_JOB_UIDS\) lies outside the uids this user namespace maps \(.*uid_map: 0-65535\); set RUNNER_JOB_UIDS to a mapped range, or RUNNER_JOB_USER/);
  assert.deepEqual(chooseJobUser(undefined, userns, { first: 40000, last: 40999 }).uids, { first: 40000, last: 40999 });
  assert.match(problemOf(() => chooseJobUser(undefined, users(t, ROOT, { uid: '0 0 4294967295', gid: '0 0 1000' }), { first: 5000, last: 5999 })), /outside the gids this user namespace maps/);
  const split = users(t, ROOT, { uid: '0 0 1000\n1000 200000 10000\n', gid: '0 0 4294967295' });
  assert.deepEqual(chooseJobUser(undefined, split, { first: 4000, last: 10999 }).uids, { first: 4000, last: 10999 }, 'adjacent map lines make one range');

  const unprivileged = users(t, { uid: 1000, missingCaps: ['CAP_SETUID', 'CAP_SETGID'] });
  assert.match(problemOf(() => chooseJobUser(undefined, unprivileged, { first: 5000, last: 5999 })), /RUNNER_JOB_UIDS is set, but this runner \(uid 1000\) cannot run jobs as another user \(it lacks CAP_SETUID, CAP_SETGID\)/);
  assert.equal(chooseJobUser(undefined, unprivileged).uids, undefined, 'not root: its own user, with the warning');
  assert.match(problemOf(() => chooseJobUser(undefined, users(t, { uid: 0, missingCaps: ['CAP_KILL'] }))), /runs as root but cannot run jobs as another user \(it lacks CAP_KILL\)/);
});

/** Locks of one pretend host, shared by the pools (runners) made with it. */
function fakeHost(): { locked: Set<number>; lock: (uid: number) => Promise<UidLock | undefined> } {
  const locked = new Set<number>();
  return {
    locked,
    lock: async (uid) => {
      if (locked.has(uid)) return undefined;
      locked.add(uid);
      return { release: () => void locked.delete(uid) };
    },
  };
}

function pool(range: UidRange, host: ReturnType<typeof fakeHost>, calls: string[] = [], runnerId = 'r1'): JobUidPool {
  return new JobUidPool({ range, runnerId, lock: host.lock, killAll: async (uid) => void calls.push(`kill ${uid}`), onRetired: (uid) => void calls.push(`retired ${uid}`) });
}

describe('the uid pool', () => {
  test('never hands one uid to two jobs at once, frees it once cleaned up, and goes round the range', async () => {
    const host = fakeHost();
    const p = pool({ first: 5000, last: 5003 }, host);
    const leases = await Promise.all([p.acquire(), p.acquire(), p.acquire(), p.acquire()]);
    assert.deepEqual(leases.map((l) => l.uid).sort(), [5000, 5001, 5002, 5003], 'four jobs starting at once: four uids');
    await assert.rejects(p.acquire(), /no free uid in RUNNER_JOB_UIDS 5000-5003: this runner holds 4, other runners of this host the rest/);
    await leases[2].release();
    assert.equal((await p.acquire()).uid, leases[2].uid, 'the freed uid, the only one');

    const q = pool({ first: 6000, last: 6002 }, host);
    const seen: number[] = [];
    for (let i = 0; i < 6; i++) {
      const l = await q.acquire();
      seen.push(l.uid);
      await l.release();
    }
    assert.deepEqual(seen.slice(3), seen.slice(0, 3), 'round the range');
    assert.equal(new Set(seen.slice(0, 3)).size, 3, 'every uid before one comes back');
  });

  test('kills what runs as a uid before handing it out and again after its job, before its files go', async () => {
    const host = fakeHost();
    const calls: string[] = [];
    const p = pool({ first: 5000, last: 5000 }, host, calls);
    const lease = await p.acquire();
    assert.deepEqual(calls, ['kill 5000'], 'cleared before the job gets it');
    await lease.release(async () => void calls.push('remove files'));
    assert.deepEqual(calls, ['kill 5000', 'kill 5000', 'remove files']);
    assert.equal(host.locked.size, 0, 'released on the host');
    await lease.release();
    assert.equal(calls.length, 3, 'releasing twice does nothing');
  });

  test('prepared ahead: the next uid is locked and cleared before a job asks, never given twice, and freed at close', async () => {
    const host = fakeHost();
    const calls: string[] = [];
    const p = new JobUidPool({ range: { first: 5000, last: 5004 }, runnerId: 'r1', lock: host.lock, prepareAhead: true, killAll: async (uid) => void calls.push(`kill ${uid}`) });
    const a = await p.acquire();
    await new Promise((r) => setImmediate(r));
    assert.equal(calls.length, 2, 'its own uid cleared, and the next one');
    assert.equal(host.locked.size, 2);
    const next = Number(calls[1]!.split(' ')[1]);
    const b = await p.acquire();
    assert.equal(b.uid, next, 'the prepared uid');
    assert.ok(calls.indexOf(`kill ${b.uid}`) >= 0 && calls.indexOf(`kill ${b.uid}`) < calls.length - 1, 'cleared before it was handed out');
    // Jobs starting together: distinct uids, one prepared at a time, none left locked once all are released.
    const more = await Promise.all([p.acquire(), p.acquire()]);
    const uids = [a, b, ...more].map((l) => l.uid);
    assert.equal(new Set(uids).size, 4);
    await Promise.all([a, b, ...more].map((l) => l.release()));
    await new Promise((r) => setImmediate(r));
    assert.equal(host.locked.size, 1, 'only the prepared one');
    await p.close();
    assert.equal(host.locked.size, 0, 'close frees it');
    const after = await p.acquire();
    await after.release();
    assert.equal(host.locked.size, 0, 'a closed pool prepares nothing more');
  });

  test('a uid whose cleanup failed stays out of use; a uid that cannot be cleared is not handed out', async () => {
    const host = fakeHost();
    const calls: string[] = [];
    const p = pool({ first: 5000, last: 5001 }, host, calls);
    const a = await p.acquire();
    await a.release(() => Promise.reject(new Error('EBUSY')));
    assert.ok(calls.includes(`retired ${a.uid}`));
    assert.ok(host.locked.has(a.uid), 'still locked: no other runner takes it either');
    const b = await p.acquire();
    assert.notEqual(b.uid, a.uid);
    await assert.rejects(p.acquire(), /no free uid/, 'the retired uid is never handed out again');

    let failKill = true;
    const c = new JobUidPool({
      range: { first: 7000, last: 7000 }, runnerId: 'r', lock: host.lock,
      killAll: async () => {
        if (failKill) throw new Error('EPERM');
      },
    });
    await assert.rejects(c.acquire(), /could not clear uid 7000 for the job: EPERM/);
    assert.ok(!host.locked.has(7000), 'the lock is given back');
    failKill = false;
    const d = await c.acquire();
    failKill = true;
    let removed = false;
    await d.release(async () => void (removed = true));
    assert.ok(removed, 'the files go even when the kill after the job failed');
    assert.ok(host.locked.has(7000), 'and the uid stays out of use');
  });

  test('runners of one host never share a uid: the lock is an abstract socket, freed by the kernel when its holder dies', async (t) => {
    const first = 2_100_000_000 + randomInt(1_000_000) * 2;
    const range = { first, last: first + 1 };
    const killAll = async (): Promise<void> => undefined;
    const a = new JobUidPool({ range, runnerId: 'a', killAll });
    const b = new JobUidPool({ range, runnerId: 'b', killAll });
    const held = [await a.acquire(), await a.acquire()];
    await assert.rejects(b.acquire(), /no free uid in RUNNER_JOB_UIDS/);
    await held[1]!.release();
    const taken = await b.acquire();
    assert.equal(taken.uid, held[1]!.uid, 'the other runner gets the uid once it is free');
    await Promise.all([held[0]!.release(), taken.release()]);

    // Another process holds a uid, then dies without a word (kill -9): the uid is free at once.
    const path = JSON.stringify(hostLockPath(`job-uid-${first}`));
    const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen({ path: ${path} }, () => console.log('held'))`], { stdio: ['ignore', 'pipe', 'inherit'] });
    t.after(() => holder.kill('SIGKILL'));
    await new Promise((resolve) => holder.stdout.once('data', resolve));
    const one = new JobUidPool({ range: { first, last: first }, runnerId: 'c', killAll });
    await assert.rejects(one.acquire(), /no free uid/);
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    const after = await one.acquire();
    assert.equal(after.uid, first);
    await after.release();

    const lock = await hostUidLock(first);
    assert.ok(lock);
    assert.equal(await hostUidLock(first), undefined, 'one holder per uid');
    lock.release();
  });
});

/** A uid no one else uses: from a range of its own, and locked as a runner would for the test's length. */
async function privateUid(t: TestContext): Promise<number> {
  for (;;) {
    const uid = 2_110_000_000 + randomInt(1_000_000);
    const lock = await hostUidLock(uid);
    if (!lock) continue;
    t.after(() => lock.release());
    return uid;
  }
}

function startAs(t: TestContext, uid: number, command: string): ChildProcess {
  const child = spawn('/bin/sh', ['-c', command], { uid, gid: uid, detached: true, stdio: 'ignore' });
  t.after(() => {
    if (child.pid && alive(child.pid)) process.kill(child.pid, 'SIGKILL');
  });
  return child;
}


for (const [name, make] of EXECUTORS) {
  test(`${name}: killUid kills every process of the uid, in its own session or not, and nothing of any other uid`, async (t) => {
    const ex = await make();
    t.after(() => ex.close());
    const [uid, other] = [await privateUid(t), await privateUid(t)];
    const victims = [startAs(t, uid, 'sleep 300'), startAs(t, uid, 'setsid sleep 300 & wait')];
    const bystander = startAs(t, other, 'sleep 300');
    const pids = await until('the processes', () => {
      const all = [...victims, bystander].map((c) => c.pid);
      return all.every((p) => p && alive(p)) && (all as number[]);
    });
    await ex.killUid(uid);
    await until('every process of the uid gone', () => pids.slice(0, 2).every((p) => !alive(p)), 5000);
    assert.ok(alive(pids[2]!), 'a process of another uid lives on');
    await ex.killUid(uid);
    await assert.rejects(ex.killUid(0), /refusing to kill the processes of uid 0: not a job uid/);
    await assert.rejects(ex.killUid(999), /not a job uid/);
  });
}

/** A range of `n` uids nobody else uses, for a whole runner. */
async function privateRange(t: TestContext, n: number): Promise<UidRange> {
  for (;;) {
    const first = 2_120_000_000 + randomInt(1_000_000) * 8;
    const locks = await Promise.all(Array.from({ length: n }, (_, i) => hostUidLock(first + i)));
    for (const l of locks) l?.release();
    if (locks.every(Boolean)) return { first, last: first + n - 1 };
  }
}

for (const executor of ['spawner', 'child_process'] as const) {
  test(`${executor}: jobs running side by side run as uids of their own, with that gid, no other group, their directory as HOME`, async (t) => {
    const range = await privateRange(t, 3);
    const s = await startStack(t, { env: { RUNNER_EXECUTOR: executor, RUNNER_CONCURRENCY: '3', RUNNER_JOB_UIDS: `${range.first}-${range.last}` } });
    const dir = jobTempDir(t, 'drover-uids-');
    // Each waits until all three are running, so they hold their uids at once.
    const command = `touch ${dir}/$DROVER_JOB_ID; until [ "$(ls ${dir} | wc -l)" -ge 3 ]; do sleep 0.05; done; ` +
      'echo "ids $(id -u) $(id -g) $(id -G)"; grep "^Groups:" /proc/self/status; echo "login $HOME $USER $LOGNAME"; stat -c "dir %u %g %a" "$DROVER_JOB_DIR"; echo "jobdir $DROVER_JOB_DIR"';
    const jobs = await Promise.all([0, 1, 2].map(() => s.run({ command })));
    const uids = new Set<number>();
    for (const job of jobs) {
      assert.equal(job.status, 'succeeded', job.error ?? '');
      const out = (await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${job.id}/logs`)).body.items.map((i) => i.line).join('\n');
      const [, uid, gid, groups] = /^ids (\d+) (\d+) (.*)$/m.exec(out) ?? [];
      const jobDir = /^jobdir (.*)$/m.exec(out)?.[1];
      assert.ok(Number(uid) >= range.first && Number(uid) <= range.last, `uid ${uid} from RUNNER_JOB_UIDS`);
      assert.equal(gid, uid, 'its group is the same number');
      assert.equal(groups, uid, 'and no other group');
      assert.match(out, /^Groups:\s*$/m, 'no supplementary groups at all');
      assert.match(out, new RegExp(`^login ${jobDir} drover-${uid} drover-${uid}$`, 'm'), 'HOME is its own directory; USER and LOGNAME name the uid');
      assert.match(out, new RegExp(`^dir ${uid} ${uid} 700$`, 'm'), 'its directory is its own, mode 0700');
      uids.add(Number(uid));
    }
    assert.equal(uids.size, 3, 'three jobs at once, three uids');
  });

  test(`${executor}: a job's leftovers die with it, and stray processes of a uid die before a job gets that uid`, async (t) => {
    const range = await privateRange(t, 1);
    const uid = range.first;
    const s = await startStack(t, { env: { RUNNER_EXECUTOR: executor, RUNNER_CONCURRENCY: '1', RUNNER_JOB_UIDS: `${uid}-${uid}` } });
    const dir = jobTempDir(t, 'drover-strays-');
    // As a runner that crashed would leave it: a process of the uid, in a session of its own.
    const planted = startAs(t, uid, 'exec sleep 300');
    await until('the planted process', () => planted.pid && alive(planted.pid));

    const first = await s.run({
      // A zombie (killed, not yet reaped by this test process) is gone: only a live process counts.
      command: `st=$(cut -d")" -f2 /proc/${planted.pid}/stat 2>/dev/null | cut -d" " -f2); [ -n "$st" ] && [ "$st" != Z ] && echo planted-alive || echo planted-gone; setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > ${dir}/stray; echo "uid $(id -u)"`,
    });
    assert.equal(first.status, 'succeeded', first.error ?? '');
    const firstOut = (await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${first.id}/logs`)).body.items.map((i) => i.line);
    assert.deepEqual(firstOut, ['planted-gone', `uid ${uid}`], 'the stray was killed before the job started, as its uid');
    const stray = Number(readFileSync(join(dir, 'stray'), 'utf8'));
    t.after(() => {
      if (alive(stray)) process.kill(stray, 'SIGKILL');
    });
    assert.ok(stray > 0);
    assert.equal(alive(stray), false, 'what the job left in a session of its own died with the job');

    // Every live process of its uid outside its own session (the job's shell leads it) would be a leftover. (A
    // zombie is no process: the killed stray stays one here, where PID 1 reaps no orphans.)
    const second = await s.run({
      command: 'me=$(id -u); for d in /proc/[0-9]*; do grep -q "^Uid:[[:space:]]*$me[[:space:]]" $d/status 2>/dev/null || continue; ' +
        'set -- $(cut -d")" -f2 $d/stat 2>/dev/null); [ -n "$4" ] && [ "$1" != Z ] && [ "$4" != "$$" ] && echo "foreign ${d#/proc/}"; done; echo "uid $me"',
    });
    const secondOut = (await s.request<{ items: { line: string }[] }>('GET', `/v1/jobs/${second.id}/logs`)).body.items.map((i) => i.line);
    assert.deepEqual(secondOut, [`uid ${uid}`], 'the same uid again, and no process of it but the job\'s own');
  });
}
