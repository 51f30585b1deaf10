import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';

const ROOT = new URL('..', import.meta.url).pathname;
const read = (path: string): string => readFileSync(join(ROOT, path), 'utf8');

/** The shell lines of the README's ```sh blocks. */
function shellLines(markdown: string): string[] {
  return [...markdown.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) => (m[1] ?? '').split('\n').map((l) => l.trim()).filter(Boolean));
}

/** The Node.js majors a `node` engines range admits, as [lowest major, whether every later major is in]. */
function enginesMajors(range: string): { majors: Set<number>; openFrom: number | undefined } {
  const majors = new Set<number>();
  let openFrom: number | undefined;
  for (const part of range.split('||').map((p) => p.trim())) {
    const caret = /^\^(\d+)\.\d+\.\d+$/.exec(part);
    const atLeast = /^>=\s*(\d+)(?:\.\d+){0,2}$/.exec(part);
    if (caret) majors.add(Number(caret[1]));
    else if (atLeast) openFrom = Math.min(openFrom ?? Infinity, Number(atLeast[1]));
    else assert.fail(`engines.node part "${part}" is neither ^X.Y.Z nor >=X.Y.Z`);
  }
  return { majors, openFrom };
}
const admits = (e: ReturnType<typeof enginesMajors>, major: number): boolean => e.majors.has(major) || (e.openFrom !== undefined && major >= e.openFrom);

test("README's two commands are the ones .ci/run runs: npm ci to install, npm test for the suite", () => {
  const lines = shellLines(read('README.md'));
  assert.ok(lines.includes('npm ci && npm start'), 'README shows `npm ci && npm start`');
  assert.ok(lines.includes('npm test'), 'README shows `npm test`');
  const ci = read('.ci/run').split('\n').map((l) => l.trim()).filter((l) => !l.startsWith('#'));
  assert.ok(ci.some((l) => /^(?:DROVER_REQUIRE_SPAWNER=1 )?npm ci\b/.test(l)), '.ci/run installs with npm ci');
  assert.ok(ci.some((l) => /^(?:timeout \d+ )?npm test$/.test(l)), '.ci/run runs the test command as README documents it');
  // And `npm test` is the runner the README describes (one summary line over both phases).
  assert.equal((JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts.test, 'node scripts/test.mjs');
});

test('the Node.js lines claimed in engines are the ones CI runs and the image is built on; Node 20 is not claimed', () => {
  const pkg = JSON.parse(read('package.json')) as { engines: { node: string } };
  const engines = enginesMajors(pkg.engines.node);
  const ci = read('.ci/run');
  const lts = Number(/^NODE_LTS=(\d+)$/m.exec(ci)?.[1]);
  const oldest = Number(/^NODE_OLDEST=(\d+)$/m.exec(ci)?.[1]);
  assert.ok(lts > 0 && oldest > 0, '.ci/run names NODE_LTS and NODE_OLDEST');
  assert.equal(Math.min(...engines.majors, engines.openFrom ?? Infinity), oldest, 'the oldest claimed line is the one CI smoke-tests');
  assert.ok(admits(engines, lts), `engines admits Node ${lts}`);
  assert.equal(admits(engines, 20), false, 'Node 20 (end of life) is not claimed');
  // The smoke run on the oldest line really runs tests on it.
  assert.match(ci, /OLDEST_BIN[\s\S]*npm ci[\s\S]*npm run build[\s\S]*--test /);
  for (const from of read('Dockerfile').matchAll(/^FROM node:(\d+)[-\w.]*/gm)) {
    assert.equal(Number(from[1]), lts, `Dockerfile ${from[0]} is on the LTS CI runs`);
  }
  // The lockfile's copy of the root engines follows package.json (npm writes it; a hand edit must too).
  const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { engines?: { node?: string } }> };
  assert.equal(lock.packages['']?.engines?.node, pkg.engines.node);
  // The README says which Node.js it needs, as engines does.
  const min = /(\d+\.\d+)(?:\.\d+)?/.exec(pkg.engines.node)?.[1] ?? '';
  assert.match(read('README.md'), new RegExp(`Node\\.js ${min.replace('.', '\\.')}`));
});

test('control: the engines reading tells claimed lines from unclaimed ones', () => {
  const e = enginesMajors('^22.13.0 || >=24.11.0');
  assert.deepEqual([admits(e, 20), admits(e, 22), admits(e, 23), admits(e, 24), admits(e, 26)], [false, true, false, true, true]);
  assert.equal(admits(enginesMajors('>=20.9'), 20), true);
  assert.throws(() => enginesMajors('20.x'));
});

const DOC_FILES = (): string[] => ['README.md', 'SECURITY.md', ...readdirSync(join(ROOT, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** Relative link targets of a Markdown file (anchors and URLs left out), resolved from the file's directory. */
function relativeLinks(path: string): string[] {
  const text = read(path).replace(/```[\s\S]*?```/g, '');
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1] ?? '')
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith('#'))
    .map((target) => normalize(join(dirname(path), target.split('#')[0] ?? '')));
}

test('docs: every page is linked from README.md or docs/index.md, and every relative link leads to a file', () => {
  const linked = new Set([...relativeLinks('README.md'), ...relativeLinks('docs/index.md')]);
  for (const page of DOC_FILES().filter((f) => f.startsWith('docs/') && f !== 'docs/index.md')) {
    assert.ok(linked.has(page), `${page} is linked from README.md or docs/index.md`);
  }
  for (const file of DOC_FILES()) {
    for (const target of relativeLinks(file)) assert.ok(existsSync(join(ROOT, target)), `${file} links to ${target}, which exists`);
  }
  assert.ok(read('README.md').length < 12_000, 'README.md stays short: topics go to docs/');
});

test('docs: every test a promise names exists', () => {
  let named = 0;
  for (const file of DOC_FILES()) {
    for (const m of read(file).matchAll(/\btest\/[\w./-]+?\.test\.ts\b/g)) {
      named += 1;
      assert.ok(existsSync(join(ROOT, m[0])), `${file} names ${m[0]}, which exists`);
    }
  }
  assert.ok(named > 5, `the docs name the tests behind their promises (${named} found)`);
});

test('control: the link reader finds relative links and skips URLs, anchors and code', () => {
  const dir = mkdtempSync(join(tmpdir(), 'drover-links-'));
  try {
    writeFileSync(join(dir, 'x.md'), '[a](b.md#c) [u](https://e.org) [h](#top)\n```\n[not](code.md)\n```\n[up](../SECURITY.md)\n');
    const rel = relative(ROOT, join(dir, 'x.md'));
    assert.deepEqual(relativeLinks(rel), [normalize(join(dirname(rel), 'b.md')), normalize(join(dirname(rel), '../SECURITY.md'))]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
