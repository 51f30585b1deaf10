// A stand-in for a test file (test/suite.process-groups.test.ts): starts a shell that leaves two sleeps in its
// process group, writes their pids to argv[2], then waits to be killed.
import { writeFileSync } from 'node:fs';
import { spawnTracked } from './process-groups.js';

const out = process.argv[2]!;
const child = spawnTracked('/bin/sh', ['-c', 'sleep 300 & a=$!; sleep 301 & b=$!; echo "$$ $a $b"; wait'], { stdio: ['ignore', 'pipe', 'inherit'] });
child.stdout!.once('data', (c: Buffer) => {
  writeFileSync(out, c.toString().trim());
  process.stdout.write('ready\n');
});
setInterval(() => undefined, 60_000);
