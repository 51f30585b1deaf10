#!/usr/bin/env node
// `npm test`: the suite in parallel, then the fault tests one file at a time (they restart brokers of their own,
// kill processes and load the machine, which would disturb tests running beside them). Ends with one line
// `N passed, N failed` over both phases. `npm test -- --faults` or `--no-faults` runs one phase only.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';

// Fault tests append a row each (test/helpers/audit.ts); the table is printed after the run.
const SUMMARY = 'test/artifacts/faults-summary.jsonl';
rmSync(SUMMARY, { force: true });

const args = process.argv.slice(2);
const phases = [];
if (!args.includes('--faults')) phases.push({ dir: 'test', concurrency: 4 });
if (!args.includes('--no-faults')) phases.push({ dir: 'test/faults', concurrency: 1 });

let passed = 0;
let failed = 0;
for (const { dir, concurrency } of phases) {
  const files = readdirSync(dir).filter((f) => f.endsWith('.test.ts')).sort().map((f) => `${dir}/${f}`);
  if (files.length === 0) continue;
  const child = spawn(
    process.execPath,
    ['--conditions=drover-src', '--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=180000', '--test-reporter=tap', ...files],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let tail = '';
  child.stdout.on('data', (chunk) => {
    process.stdout.write(chunk);
    tail = (tail + chunk.toString()).slice(-4000);
  });
  const code = await new Promise((resolve) => child.on('close', resolve));
  const count = (name) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tail)?.[1] ?? 0);
  passed += count('pass');
  failed += count('fail') + count('cancelled');
  if (code !== 0 && count('fail') + count('cancelled') === 0) failed += 1; // crashed without reporting
}
if (existsSync(SUMMARY)) {
  const rows = readFileSync(SUMMARY, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const cols = ['scenario', 'accepted', 'succeeded', 'lost', 'duplicated', 'missing', 'notEnded'];
  const width = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (vals) => vals.map((v, i) => (i === 0 ? String(v).padEnd(width[i]) : String(v).padStart(width[i]))).join('  ');
  process.stdout.write(`\nfault scenarios\n${line(cols)}\n${rows.map((r) => line(cols.map((c) => r[c]))).join('\n')}\n`);
}
process.stdout.write(`\n${passed} passed, ${failed} failed\n`);
process.exit(failed > 0 ? 1 : 0);
