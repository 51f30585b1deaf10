#!/usr/bin/env node
// The `drover` command (npx drover, npm install -g ./cli): the built CLI. A fresh checkout has none yet (npm ci
// compiles no TypeScript), so the first run compiles it (tsc -b, some seconds), its output on stderr.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/main.js', import.meta.url);
if (!existsSync(main)) {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  process.stderr.write(`drover: not built yet; compiling it in ${root} (once)\n`);
  let tsc;
  try {
    tsc = createRequire(`${root}package.json`).resolve('typescript/bin/tsc');
  } catch {
    process.stderr.write(`drover: TypeScript is not installed there; run npm ci and npm run build in ${root}\n`);
    process.exit(1);
  }
  const built = spawnSync(process.execPath, [tsc, '-b'], { cwd: root, stdio: ['ignore', 2, 2] });
  if (built.status !== 0 || !existsSync(main)) {
    process.stderr.write(`drover: the build failed; run npm run build in ${root} and try again\n`);
    process.exit(1);
  }
}
await import(main.href);
