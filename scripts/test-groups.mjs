// The process groups test helpers register (test/helpers/processes.ts, one file per group in DROVER_TEST_PGROUPS),
// killed by `npm test` after each phase and on signals.
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

/** Process group and session of a pid, from /proc (undefined once it is gone). */
function groupOf(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { pgrp: Number(f[2]), sid: Number(f[3]) };
  } catch {
    return undefined;
  }
}

/** Kills every registered group that still has a process in it (its own session: a reused id is left alone). */
export function killLeftGroups(dir) {
  const left = [];
  const alive = new Set();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const g = groupOf(entry);
    if (g && g.pgrp === g.sid) alive.add(g.pgrp);
  }
  for (const f of readdirSync(dir)) {
    const pgid = Number(f);
    const what = readFileSync(join(dir, f), 'utf8').trim();
    rmSync(join(dir, f), { force: true });
    if (!alive.has(pgid)) continue;
    try {
      process.kill(-pgid, 'SIGKILL');
      left.push(`${pgid} (${what})`);
    } catch {
      // gone meanwhile
    }
  }
  return left;
}
