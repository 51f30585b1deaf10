#!/usr/bin/env node
// Builds the runner's spawner helper (services/runner/native/spawner.c). Runs on `npm ci` (prepare) and
// `npm run build`. Without a C compiler the runner still works, on child_process, and says so when it starts;
// set DROVER_REQUIRE_SPAWNER=1 to make a failed build an error instead (CI and the Docker image do).
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const src = fileURLToPath(new URL('../services/runner/native/spawner.c', import.meta.url));
const outDir = fileURLToPath(new URL('../services/runner/native/build/', import.meta.url));
const out = `${outDir}drover-spawner`;
const required = process.env.DROVER_REQUIRE_SPAWNER === '1';

try {
  if (statSync(out).mtimeMs >= statSync(src).mtimeMs) process.exit(0); // up to date
} catch {
  // not built yet
}
mkdirSync(outDir, { recursive: true });
const cc = ['cc', 'gcc', 'clang'].find((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0);
const result = cc
  ? spawnSync(cc, ['-O2', '-Wall', '-Wextra', '-Werror', '-o', out, src], { stdio: 'inherit' })
  : { status: 1 };
if (result.status !== 0) {
  const why = cc ? `${cc} failed` : 'no C compiler (cc, gcc or clang) found';
  process.stderr.write(`drover: could not build the spawner helper: ${why}. Runners will use child_process.\n`);
  process.exit(required ? 1 : 0);
}
