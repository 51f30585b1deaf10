import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { JobRecord } from '@drover/core';
import { cli, cliEnv, type CliResult } from './helpers/cli.js';
import { startStack } from './helpers/stack.js';

/*
 * The CLI's namespaces: `--namespace` (before or after the command), DROVER_NAMESPACE and the config file's
 * "namespace" put every request in that namespace, the log stream included; `drover namespaces` lists and creates.
 * No runner: the jobs stay queued, so each list shows exactly what was submitted where.
 */

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

const json = <T>(r: CliResult): T => JSON.parse(ok(r).stdout) as T;
const ids = (r: CliResult): string[] => json<JobRecord[]>(r).map((j) => j.id).sort();
const idOf = (r: CliResult): string => ok(r).stdout.trim();

test('drover namespaces: create and list; jobs, logs -f and whoami follow --namespace, DROVER_NAMESPACE and the config file', async (t) => {
  const s = await startStack(t, { runner: false });
  const admin = cliEnv(t, s.url, s.tokens.admin);

  // Create, list (table and --json), and the refusals.
  assert.equal(ok(await cli(t, admin, 'namespaces', 'create', 'team-x', '--description', 'the x team')).stdout, 'namespace team-x created\n');
  const listed = ok(await cli(t, admin, 'namespaces')).stdout;
  assert.match(listed, /^NAME +DESCRIPTION +CREATED$/m);
  assert.match(listed, /^default +- +-$/m);
  assert.match(listed, /^team-x +the x team +(now|\d+s ago)$/m);
  const asJson = json<{ name: string; description: string | null }[]>(await cli(t, admin, 'namespaces', '--json'));
  assert.deepEqual(asJson.map((n) => [n.name, n.description]), [['default', null], ['team-x', 'the x team']]);
  assert.match(ok(await cli(t, admin, 'namespaces', 'ls')).stdout, /^team-x /m, 'ls names the default subcommand');
  const again = await cli(t, admin, 'namespaces', 'create', 'team-x');
  assert.equal(again.code, 1);
  assert.match(again.stderr, /namespace "team-x" exists already \(CONFLICT, HTTP 409\)/);
  const notAll = await cli(t, cliEnv(t, s.url, s.tokens.submit), 'namespaces', 'create', 'team-y');
  assert.equal(notAll.code, 1);
  assert.match(notAll.stderr, /\(FORBIDDEN, HTTP 403\)/);
  const badName = await cli(t, admin, 'namespaces', 'create', 'Team_Y');
  assert.equal(badName.code, 2, badName.stderr);
  assert.deepEqual(json<{ name: string }[]>(await cli(t, admin, 'namespaces', '--json')).map((n) => n.name), ['default', 'team-x'], 'nothing else was created');

  // One job in default, one by --namespace, one by a leading --namespace, one by DROVER_NAMESPACE.
  const inDefault = idOf(await cli(t, admin, 'submit', '--', 'echo', 'default'));
  const byOption = idOf(await cli(t, admin, 'submit', '--namespace', 'team-x', '--', 'echo', 'option'));
  const byLeading = idOf(await cli(t, admin, '--namespace', 'team-x', 'submit', '--', 'echo', 'leading'));
  const byEnv = idOf(await cli(t, { ...admin, DROVER_NAMESPACE: 'team-x' }, 'submit', '--', 'echo', 'env'));
  const teamJobs = [byOption, byLeading, byEnv].sort();

  assert.deepEqual(ids(await cli(t, admin, 'jobs', '--namespace', 'team-x', '--json')), teamJobs);
  assert.deepEqual(ids(await cli(t, admin, 'jobs', '--json')), [inDefault], 'without a namespace: default only');
  assert.deepEqual(ids(await cli(t, { ...admin, DROVER_NAMESPACE: 'team-x' }, 'jobs', '--json')), teamJobs);
  assert.deepEqual(ids(await cli(t, admin, '--namespace=team-x', 'jobs', '--json')), teamJobs);
  assert.deepEqual(ids(await cli(t, { ...admin, DROVER_NAMESPACE: 'team-x' }, 'jobs', '--namespace', 'default', '--json')), [inDefault], '--namespace wins over DROVER_NAMESPACE');
  const table = ok(await cli(t, admin, 'jobs', '--namespace', 'team-x')).stdout;
  for (const id of teamJobs) assert.match(table, new RegExp(`^${id} +queued `, 'm'));
  assert.equal(table.includes(inDefault), false);
  // By id too: the job lives in team-x only.
  assert.equal((await s.request('GET', `/v1/jobs/${byEnv}`)).status, 404);

  // An unknown namespace: the API's 404, exit 1; a malformed one is a usage error before any request.
  const nope = await cli(t, admin, 'jobs', '--namespace', 'nope');
  assert.equal(nope.code, 1);
  assert.equal(nope.stdout, '');
  assert.match(nope.stderr, /^drover: no namespace "nope" \(or this token may not use it\) \(NOT_FOUND, HTTP 404\)$/m);
  const nopeEnv = await cli(t, { ...admin, DROVER_NAMESPACE: 'nope' }, 'jobs');
  assert.equal(nopeEnv.code, 1);
  assert.match(nopeEnv.stderr, /no namespace "nope"/);
  const malformed = await cli(t, admin, 'jobs', '--namespace', 'No Such');
  assert.equal(malformed.code, 2, malformed.stderr);
  assert.match(malformed.stderr, /^drover jobs: --namespace: "No Such" is no namespace name/m);
  // A token of default only may not use team-x: the same 404 as for a namespace that does not exist.
  const foreign = await cli(t, cliEnv(t, s.url, s.tokens.submit), 'jobs', '--namespace', 'team-x');
  assert.equal(foreign.code, 1);
  assert.match(foreign.stderr, /no namespace "team-x" \(or this token may not use it\) \(NOT_FOUND, HTTP 404\)/);

  // The event stream carries the namespace too: logs -f of a cancelled job there ends with the job (130, cancelled).
  ok(await cli(t, admin, 'cancel', '--namespace', 'team-x', byOption));
  const followed = await cli(t, admin, 'logs', '-f', '--namespace', 'team-x', byOption);
  assert.equal(followed.code, 130, followed.stderr);
  const followedElsewhere = await cli(t, admin, 'logs', '-f', byOption);
  assert.equal(followedElsewhere.code, 1);
  assert.match(followedElsewhere.stderr, /NOT_FOUND, HTTP 404/);

  // whoami: the namespace of the request and the token's namespaces.
  const me = ok(await cli(t, admin, 'whoami', '--namespace', 'team-x')).stdout;
  assert.match(me, /^namespace: +team-x$/m);
  assert.match(me, /^namespaces: +all$/m);
  assert.match(ok(await cli(t, admin, 'whoami')).stdout, /^namespace: +default$/m);
  assert.deepEqual(json<{ namespace: string; namespaces: unknown }>(await cli(t, { ...admin, DROVER_NAMESPACE: 'team-x' }, 'whoami', '--json')), {
    name: 'admin', scope: 'admin', namespace: 'team-x', namespaces: '*',
  });
  assert.match(ok(await cli(t, cliEnv(t, s.url, s.tokens.submit), 'whoami')).stdout, /^namespaces: +default$/m);

  // The config file's "namespace", used when the environment names none.
  const fromFile = cliEnv(t, undefined, undefined);
  const dir = join(fromFile.HOME!, '.config', 'drover');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ url: s.url, token: s.tokens.admin, namespace: 'team-x' }), { mode: 0o600 });
  assert.deepEqual(ids(await cli(t, fromFile, 'jobs', '--json')), teamJobs);
  assert.deepEqual(ids(await cli(t, { ...fromFile, DROVER_NAMESPACE: 'default' }, 'jobs', '--json')), [inDefault], 'DROVER_NAMESPACE wins over the file');

  // Help names the option.
  assert.match(ok(await cli(t, admin, 'jobs', '--help')).stdout, /^ +--namespace <name> +work in this namespace/m);
  assert.match(ok(await cli(t, admin, 'help')).stdout, /^ {2}namespaces +the namespaces this token works in/m);
  assert.match(ok(await cli(t, admin, 'namespaces', '--help')).stdout, /^ {2}namespaces create +create a namespace/m);
});
