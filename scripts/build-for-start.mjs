#!/usr/bin/env node
// What `npm start` runs first: builds what is out of date and says what it is doing, so the first start does not
// sit silent for a minute and later starts do not rebuild the dashboard for nothing. `npm run build` builds all.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const say = (line) => process.stderr.write(`drover: ${line}\n`);

/** Newest modification time under the given paths (files or directories), 0 if none exists. */
function newest(paths) {
  let latest = 0;
  const visit = (p) => {
    let st;
    try {
      st = statSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) for (const e of readdirSync(p)) visit(join(p, e));
    else latest = Math.max(latest, st.mtimeMs);
  };
  for (const p of paths) visit(join(root, p));
  return latest;
}

function run(what, cmd, args) {
  const started = Date.now();
  say(`${what}…`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    say(`${what} failed`);
    process.exit(r.status ?? 1);
  }
  say(`${what}: done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

// tsc -b is incremental: it compiles only what changed, and says nothing when nothing did.
run('compiling TypeScript (tsc -b)', process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-b']);
run('building the spawner helper', process.execPath, [join(root, 'scripts/build-spawner.mjs')]);
const uiSources = newest(['ui/src', 'ui/index.html', 'ui/vite.config.ts', 'ui/package.json', 'package-lock.json']);
const uiBuilt = newest(['ui/dist/index.html']);
if (uiBuilt > 0 && uiBuilt >= uiSources) say('dashboard: up to date');
else run('building the dashboard (vite)', 'npm', ['run', 'build', '--silent', '-w', 'ui']);
