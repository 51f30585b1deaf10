import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { JobRecord, QueueView, RunnerView, ScheduleRecord } from '@drover/core';
import { cli, cliEnv, spawnCli, tempHome, type CliResult } from './helpers/cli.js';
import { freePort } from './helpers/processes.js';
import { startStack } from './helpers/stack.js';
import { until } from './helpers/until.js';

/** The command succeeded; its stderr is shown if not. */
function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

const json = <T>(r: CliResult): T => JSON.parse(ok(r).stdout) as T;
const lines = (s: string): string[] => s.split('\n').filter((l) => l !== '');

test('drover run: streams stdout and stderr apart, exits with the job exit code, 124 on timeout; --env, shell words', async (t) => {
  const s = await startStack(t);
  const env = cliEnv(t, s.url, s.tokens.submit);
  const [mixed, plain, shell, withEnv, timedOut] = await Promise.all([
    cli(t, env, 'run', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7'),
    cli(t, env, 'run', 'echo', 'hello', 'world'),
    cli(t, env, 'run', '--', 'echo one && echo two'),
    cli(t, env, 'run', '--env', 'GREETING=hi there', '-e', 'OTHER=x', '--', 'sh', '-c', 'echo "$GREETING/$OTHER"'),
    cli(t, env, 'run', '--timeout', '300ms', '--', 'sleep', '5'),
  ]);
  assert.equal(mixed.code, 7, mixed.stderr);
  assert.equal(mixed.stdout, 'out\n');
  assert.equal(mixed.stderr, 'err\n', 'a plain non-zero exit adds nothing of ours');
  assert.equal(ok(plain).stdout, 'hello world\n');
  assert.equal(ok(shell).stdout, 'one\ntwo\n', 'one word with shell syntax runs under sh -c');
  assert.equal(ok(withEnv).stdout, 'hi there/x\n');
  assert.equal(timedOut.code, 124, timedOut.stderr);
  assert.match(timedOut.stderr, /^drover: job \w+ timed out after 300ms$/m);

  const recent = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs?limit=10')).body.items;
  assert.deepEqual(recent.find((j) => j.command === 'echo one && echo two')?.argv, null, 'sent as command');
  assert.deepEqual(recent.find((j) => j.argv?.[0] === 'echo')?.argv, ['echo', 'hello', 'world'], 'several words go as argv');
});

test('drover run --detach, status, jobs, logs (-f), retry, submit --delay, cancel', async (t) => {
  const s = await startStack(t);
  const env = cliEnv(t, s.url, s.tokens.submit);

  const id = ok(await cli(t, env, 'run', '--detach', '--label', 'team=cli', '--', 'sh', '-c', 'echo one; echo two >&2; echo three')).stdout.trim();
  assert.match(id, /^[0-9A-Z]{26}$/);
  assert.equal(json<JobRecord>(await cli(t, env, 'status', id, '--json')).id, id);
  await s.waitFor(id);
  const done = json<JobRecord>(await cli(t, env, 'status', id, '--json'));
  assert.equal(done.status, 'succeeded');
  assert.deepEqual(done.labels, { team: 'cli' });
  const human = ok(await cli(t, env, 'status', id)).stdout;
  assert.match(human, /^status: +succeeded \(exit 0\)$/m);
  assert.match(human, /^command: +sh -c 'echo one; echo two >&2; echo three'$/m);

  const listed = json<JobRecord[]>(await cli(t, env, 'jobs', '--status', 'succeeded', '--json'));
  assert.deepEqual(listed.map((j) => j.id), [id]);
  assert.deepEqual(json<JobRecord[]>(await cli(t, env, 'jobs', '--label', 'team=cli', '--json')).map((j) => j.id), [id]);
  const table = lines(ok(await cli(t, env, 'jobs')).stdout);
  assert.match(table[0]!, /^ID +STATUS +QUEUE +EXIT +CREATED +DURATION +COMMAND$/);
  assert.match(table[1]!, new RegExp(`^${id} +succeeded +default +0 +`));

  const logs = ok(await cli(t, env, 'logs', id));
  assert.equal(logs.stdout, 'one\nthree\n');
  assert.equal(logs.stderr, 'two\n');

  const again = ok(await cli(t, env, 'retry', id)).stdout.trim();
  assert.notEqual(again, id);
  const rerun = await s.waitFor(again);
  assert.equal(rerun.status, 'succeeded');
  assert.equal(rerun.labels['drover.retryOf'], id);

  // -f on a running job: prints its lines as they come and ends when the job ends.
  const slow = await s.submit({ command: 'for i in 1 2 3; do echo line$i; sleep 0.3; done' });
  await s.waitFor(slow.id, (j) => j.status !== 'queued');
  const followed = ok(await cli(t, env, 'logs', '-f', slow.id));
  assert.equal(followed.stdout, 'line1\nline2\nline3\n');
  assert.equal((await s.waitFor(slow.id, () => true)).status, 'succeeded', 'logs -f returned only once the job ended');

  const later = ok(await cli(t, env, 'submit', '--delay', '60s', '--name', 'later', '--', 'echo', 'later')).stdout.trim();
  const delayed = json<JobRecord>(await cli(t, env, 'status', later, '--json'));
  assert.equal(delayed.status, 'delayed');
  assert.equal(delayed.name, 'later');
  assert.match(ok(await cli(t, env, 'cancel', later)).stdout, new RegExp(`^${later} cancelled$`, 'm'));
  assert.equal(json<JobRecord>(await cli(t, env, 'status', later, '--json')).status, 'cancelled');
  const again409 = await cli(t, env, 'cancel', later);
  assert.equal(again409.code, 1);
  assert.match(again409.stderr, /already ended as cancelled \(CONFLICT, HTTP 409\)/);
});

test('drover schedules add/ls/disable/enable/trigger/runs/rm and cron', async (t) => {
  const s = await startStack(t);
  const env = cliEnv(t, s.url, s.tokens.submit);

  // Fires on 1 January only: the test triggers it by hand.
  const created = json<ScheduleRecord>(
    await cli(t, env, 'schedules', 'add', 'nightly', '--cron', '0 0 1 1 *', '--tz', 'Europe/Berlin', '--overlap', 'skip', '--json', '--', 'echo', 'from schedule'),
  );
  assert.equal(created.name, 'nightly');
  assert.equal(created.timezone, 'Europe/Berlin');
  assert.equal(created.overlap, 'skip');
  assert.deepEqual(created.job, { argv: ['echo', 'from schedule'] });
  assert.match(ok(await cli(t, env, 'schedules', 'add', 'other', '--cron', '@yearly', '--disabled', 'true')).stdout, /^created schedule other: disabled$/m);

  const ls = json<ScheduleRecord[]>(await cli(t, env, 'schedules', 'ls', '--json'));
  assert.deepEqual(ls.map((x) => [x.name, x.enabled]), [['nightly', true], ['other', false]]);
  const table = lines(ok(await cli(t, env, 'schedules', 'ls')).stdout);
  assert.match(table[0]!, /^NAME +STATE +CRON +TZ +NEXT +LAST +COMMAND$/);
  assert.match(table[1]!, /^nightly +enabled +0 0 1 1 \* +Europe\/Berlin +in \d+[smhd] +- +echo 'from schedule'$/);
  assert.match(table[2]!, /^other +disabled +@yearly +UTC +- +- +true$/);

  assert.equal(json<ScheduleRecord>(await cli(t, env, 'schedules', 'disable', 'nightly', '--json')).enabled, false);
  assert.match(ok(await cli(t, env, 'schedules', 'enable', 'nightly')).stdout, /^schedule nightly enabled: next run \S+ \(in \d+[smhd]\)$/m);

  const jobId = ok(await cli(t, env, 'schedules', 'trigger', 'nightly')).stdout.trim();
  const fired = await s.waitFor(jobId);
  assert.equal(fired.status, 'succeeded');
  assert.equal(fired.schedule, 'nightly');
  // This run only: other arguments and env, a delay.
  const custom = json<JobRecord>(await cli(t, env, 'schedules', 'trigger', 'nightly', '--arg', 'custom', '-e', 'RUN_KIND=manual', '--delay', '1s', '--json'));
  assert.equal(custom.status, 'delayed');
  assert.deepEqual([custom.args, custom.envKeys], [['custom'], ['RUN_KIND']]);
  assert.equal((await s.waitFor(custom.id)).status, 'succeeded');
  assert.match((await cli(t, env, 'schedules', 'trigger', 'nightly', '--delay', 'soon')).stderr, /--delay/);
  assert.deepEqual(json<JobRecord[]>(await cli(t, env, 'schedules', 'runs', 'nightly', '--json')).map((j) => j.id), [custom.id, jobId]);
  assert.match(ok(await cli(t, env, 'schedules', 'show', 'nightly')).stdout, /^upcoming:\n {2}\d{4}-01-01 00:00:00 Europe\/Berlin$/m);

  assert.match(ok(await cli(t, env, 'schedules', 'rm', 'nightly')).stdout, /^deleted schedule nightly$/m);
  assert.deepEqual(json<{ deleted: string }>(await cli(t, env, 'schedules', 'rm', 'other', '--json')), { deleted: 'other', interrupted: [] });
  assert.deepEqual(json<ScheduleRecord[]>(await cli(t, env, 'schedules', 'ls', '--json')), []);
  const gone = await cli(t, env, 'schedules', 'rm', 'nightly');
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /^drover: no schedule nightly \(NOT_FOUND, HTTP 404\)$/m);

  const preview = lines(ok(await cli(t, env, 'cron', '*/15 * * * *')).stdout);
  assert.equal(preview.length, 5);
  for (const l of preview) assert.match(l, /^\d{4}-\d\d-\d\d \d\d:(00|15|30|45):00 UTC \(UTC\+00:00\) +in \d+[smh]$/);
  // Each fire time with its UTC offset: a DST change shows between two lines (--from previews a far date).
  const dst = lines(ok(await cli(t, env, 'cron', '30 1 * * *', '--tz', 'America/New_York', '--from', '2027-11-06T00:00:00Z', '--count', '3')).stdout);
  assert.deepEqual(dst.map((l) => l.replace(/ +in .*$/, '')), ['2027-11-06 01:30:00 America/New_York (UTC-04:00)', '2027-11-07 01:30:00 America/New_York (UTC-04:00)', '2027-11-08 01:30:00 America/New_York (UTC-05:00)']);
  const zoned = json<{ timezone: string; next: string[] }>(await cli(t, env, 'cron', '0 9 * * *', '--tz', 'Asia/Tokyo', '--count', '2', '--json'));
  assert.equal(zoned.timezone, 'Asia/Tokyo');
  assert.deepEqual(zoned.next.map((n) => new Date(n).getUTCHours()), [0, 0]);
  const invalid = await cli(t, env, 'cron', 'not a cron');
  assert.equal(invalid.code, 1);
  assert.match(invalid.stderr, /^drover: querystring\/cron: expected 5 fields .* \(VALIDATION, HTTP 400\)$/m);
});

test('drover queues set/pause/resume/ls, runners ls/drain/resume, whoami per token', async (t) => {
  const s = await startStack(t);
  const admin = cliEnv(t, s.url, s.tokens.admin);

  const set = json<QueueView>(await cli(t, admin, 'queues', 'set', 'cliq', '--concurrency', '2', '--rate', '10/1s', '--timeout', '30s', '--dedupe', '--json'));
  assert.deepEqual(set.settings, { concurrency: 2, rateLimit: { max: 10, perMs: 1000 }, dedupe: true, paused: false, defaultTimeoutMs: 30_000 });
  ok(await cli(t, admin, 'queues', 'pause', 'cliq'));
  assert.equal(json<QueueView[]>(await cli(t, admin, 'queues', 'ls', '--json')).find((q) => q.name === 'cliq')?.settings.paused, true);
  const table = lines(ok(await cli(t, admin, 'queues', 'ls')).stdout);
  assert.match(table[0]!, /^NAME +STATE +QUEUED +DELAYED +WAITING +RUNNING +HELD +CONCURRENCY +RATE +TIMEOUT +DEDUPE +RUNNERS$/);
  // The stack's runner serves only default: cliq has none, and the table says so.
  assert.ok(table.some((l) => /^cliq +paused +0 +0 +0 +0 +0 +2 +10\/1s +30s +yes +none$/.test(l)), table.join('\n'));
  assert.ok(table.includes('queue cliq: no runner serves this queue; its jobs wait until a runner with it in RUNNER_QUEUES (or RUNNER_QUEUES=*) starts'), table.join('\n'));
  ok(await cli(t, admin, 'queues', 'set', 'default', '--timeout', '1h'));
  const served = lines(ok(await cli(t, admin, 'queues', 'ls')).stdout);
  assert.ok(served.some((l) => /^default +active( +\S+){9} +1$/.test(l)), served.join('\n'));
  assert.equal(served.some((l) => l.startsWith('queue default:')), false, 'a served queue gets no note');
  assert.equal(json<QueueView>(await cli(t, admin, 'queues', 'resume', 'cliq', '--json')).settings.paused, false);
  const cleared = json<QueueView>(await cli(t, admin, 'queues', 'set', 'cliq', '--concurrency', 'none', '--rate', 'none', '--timeout', 'none', '--no-dedupe', '--json'));
  assert.deepEqual(cleared.settings, { concurrency: null, rateLimit: null, dedupe: false, paused: false, defaultTimeoutMs: null });
  const nothing = await cli(t, admin, 'queues', 'set', 'cliq');
  assert.equal(nothing.code, 2);
  assert.match(nothing.stderr, /^drover queues set: nothing to change/m);

  const runnerId = s.runner!.id;
  assert.deepEqual(json<RunnerView[]>(await cli(t, admin, 'runners', 'ls', '--json')).map((r) => [r.id, r.state]), [[runnerId, 'running']]);
  assert.match(ok(await cli(t, admin, 'runners', 'ls')).stdout, new RegExp(`^${runnerId} +running +`, 'm'));
  const last = await cli(t, admin, 'runners', 'drain', runnerId);
  assert.equal(last.code, 1);
  assert.match(last.stderr, /last one taking jobs from default; use --force .*\(CONFLICT, HTTP 409\)/);
  assert.match(ok(await cli(t, admin, 'runners', 'drain', runnerId, '--force')).stdout, new RegExp(`^runner ${runnerId}: draining$`, 'm'));
  assert.match(ok(await cli(t, admin, 'runners', 'resume', runnerId)).stdout, new RegExp(`^runner ${runnerId}: running$`, 'm'));

  const who = await Promise.all((['admin', 'submit', 'read'] as const).map((k) => cli(t, cliEnv(t, s.url, s.tokens[k]), 'whoami', '--json')));
  assert.deepEqual(who.map((r) => json<{ name: string; scope: string }>(r)), [
    { name: 'admin', scope: 'admin', namespace: 'default', namespaces: '*' },
    { name: 'submit', scope: 'submit', namespace: 'default', namespaces: ['default'] },
    { name: 'read', scope: 'read', namespace: 'default', namespaces: ['default'] },
  ]);
  assert.match(ok(await cli(t, cliEnv(t, s.url, s.tokens.read), 'whoami')).stdout, /^scope: +read$/m);
});

test('drover errors: 403 for a read token, unreachable API, usage errors exit 2, missing token, help', async (t) => {
  const s = await startStack(t);
  const read = cliEnv(t, s.url, s.tokens.read);

  const refused = await cli(t, read, 'run', '--', 'echo', 'hi');
  assert.equal(refused.code, 1);
  assert.equal(refused.stderr, 'drover: this action needs the "submit" scope; the token has "read" (FORBIDDEN, HTTP 403)\n');
  assert.equal(refused.stdout, '');

  const badUrl = `http://127.0.0.1:${await freePort()}`;
  const unreachable = await cli(t, cliEnv(t, badUrl, s.tokens.read), 'jobs');
  assert.equal(unreachable.code, 1);
  assert.match(unreachable.stderr, new RegExp(`^drover: cannot reach the API at ${badUrl}: .*ECONNREFUSED`, 'm'));

  const usage = await Promise.all([
    cli(t, read, 'frobnicate'),
    cli(t, read, 'jobs', '--frobnicate'),
    cli(t, read, 'status'),
    cli(t, read, 'run', '--timeout', 'soon', '--', 'true'),
    cli(t, read, 'run'),
    cli(t, read, 'schedules', 'frobnicate'),
  ]);
  for (const r of usage) assert.equal(r.code, 2, r.stderr);
  assert.match(usage[0].stderr, /^drover: unknown command "frobnicate"\nusage: drover <command>/);
  assert.match(usage[1].stderr, /^drover jobs: Unknown option '--frobnicate'\nusage: drover jobs \[--status s\]/);
  assert.match(usage[2].stderr, /^drover status: missing <id>\nusage: drover status <id>/);
  assert.match(usage[3].stderr, /^drover run: --timeout: "soon" is not a duration/);
  assert.match(usage[4].stderr, /^drover run: missing the command to run/);

  const noToken = await cli(t, cliEnv(t, s.url, undefined), 'whoami');
  assert.equal(noToken.code, 1);
  assert.match(noToken.stderr, /^drover: no API token configured/);
  assert.match(noToken.stderr, /DROVER_TOKEN/);
  assert.match(noToken.stderr, /\.drover\/admin-token/);

  const help = await Promise.all([cli(t, read, 'help'), cli(t, read, 'run', '--help'), cli(t, read, 'help', 'queues'), cli(t, read, 'schedules', 'add', '-h')]);
  for (const r of help) ok(r);
  assert.match(help[0].stdout, /^ {2}schedules +cron schedules/m);
  assert.match(help[1].stdout, /^usage: drover run \[options\] \[--\] <command\.\.\.>/);
  assert.match(help[1].stdout, /124 if the job timed out/);
  assert.match(help[2].stdout, /^ {2}queues set +/m);
  assert.match(help[3].stdout, /--cron <expr>/);
});

test('drover reads ~/.config/drover/config.json (or $XDG_CONFIG_HOME) when DROVER_URL and DROVER_TOKEN are not set; env wins', async (t) => {
  const s = await startStack(t);
  const env = cliEnv(t, undefined, undefined);
  const dir = join(env.HOME!, '.config', 'drover');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ url: s.url, token: s.tokens.read }), { mode: 0o600 });
  assert.equal(json<{ scope: string }>(await cli(t, env, 'whoami', '--json')).scope, 'read');
  assert.equal(json<{ scope: string }>(await cli(t, { ...env, DROVER_TOKEN: s.tokens.admin }, 'whoami', '--json')).scope, 'admin', 'DROVER_TOKEN wins');

  const xdg = tempHome(t);
  mkdirSync(join(xdg, 'drover'));
  writeFileSync(join(xdg, 'drover', 'config.json'), JSON.stringify({ url: s.url, token: s.tokens.submit }), { mode: 0o600 });
  assert.equal(json<{ scope: string }>(await cli(t, { ...env, XDG_CONFIG_HOME: xdg }, 'whoami', '--json')).scope, 'submit');

  writeFileSync(join(dir, 'config.json'), '{"url": ');
  const broken = await cli(t, env, 'whoami');
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /config\.json is not valid JSON/);
});

test('drover run: Ctrl-C (SIGINT) cancels the job and exits 130', async (t) => {
  const s = await startStack(t);
  const proc = spawnCli(t, cliEnv(t, s.url, s.tokens.submit), ['run', '--', 'sleep', '30']);
  const job = await until(
    'the job to run',
    async () => {
      const { items } = (await s.request<{ items: JobRecord[] }>('GET', '/v1/jobs?status=running')).body;
      return items.find((j) => j.argv?.join(' ') === 'sleep 30');
    },
    60_000,
  );
  proc.child.kill('SIGINT');
  const r = await proc.done;
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, new RegExp(`drover: cancelling job ${job.id}`));
  assert.equal((await s.waitFor(job.id)).status, 'cancelled');
});
