import { appendFileSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { JobRecord } from '@drover/core';
import { jobTempDir } from './job-dir.js';
import type { Stack } from './stack.js';

const SUMMARY = new URL('../artifacts/faults-summary.jsonl', import.meta.url).pathname;

/**
 * A directory where every job run leaves a marker: a file of its own per execution, named `<job id>.<random>`.
 * Never one file per job: each attempt may run as a uid of its own, and could not add to a file an earlier one made.
 */
export function markerDir(t: TestContext): { dir: string; command: (extra?: string) => string } {
  const dir = jobTempDir(t, 'drover-markers-');
  return { dir, command: (extra = '') => `echo "$DROVER_ATTEMPT" > "$(mktemp ${dir}/$DROVER_JOB_ID.XXXXXXXX)"${extra ? `; ${extra}` : ''}` };
}

/** How many times each job ran, by job id, from the markers of markerDir. */
export function executions(dir: string): Map<string, number> {
  const runs = new Map<string, number>();
  for (const f of readdirSync(dir)) {
    const id = f.slice(0, f.lastIndexOf('.'));
    runs.set(id, (runs.get(id) ?? 0) + 1);
  }
  return runs;
}

export interface Audit {
  scenario: string;
  accepted: number;
  succeeded: number;
  /** Attempts recorded as lost (their runner died or shut down mid-run). */
  lost: number;
  /** Executions beyond one per job that no lost attempt accounts for. */
  duplicated: number;
  /** Accepted jobs that never ran at all. */
  missing: number;
  notEnded: string[];
}

/** Waits for every accepted job to end, then counts outcomes against the markers. */
export async function audit(s: Stack, scenario: string, ids: string[], dir: string, timeoutMs = 120_000): Promise<Audit> {
  const jobs: (JobRecord & { attemptHistory?: { status: string }[] })[] = [];
  const notEnded: string[] = [];
  for (const id of ids) {
    try {
      await s.waitFor(id, undefined, timeoutMs);
    } catch {
      notEnded.push(id);
    }
    jobs.push((await s.request<JobRecord & { attemptHistory: { status: string }[] }>('GET', `/v1/jobs/${id}`)).body);
  }
  let lost = 0;
  let duplicated = 0;
  let missing = 0;
  const ran = executions(dir);
  for (const j of jobs) {
    const lostAttempts = (j.attemptHistory ?? []).filter((a) => a.status === 'lost').length;
    lost += lostAttempts;
    const runs = ran.get(j.id) ?? 0;
    if (runs === 0) missing++;
    duplicated += Math.max(0, runs - 1 - lostAttempts);
  }
  const result: Audit = {
    scenario,
    accepted: ids.length,
    succeeded: jobs.filter((j) => j.status === 'succeeded').length,
    lost,
    duplicated,
    missing,
    notEnded,
  };
  record(result);
  return result;
}

/** Appends a row to the fault summary that `npm test` prints at the end. */
export function record(row: Omit<Audit, 'notEnded'> & { notEnded?: string[] }): void {
  mkdirSync(join(SUMMARY, '..'), { recursive: true });
  const { notEnded, ...rest } = row;
  appendFileSync(SUMMARY, `${JSON.stringify({ ...rest, notEnded: notEnded?.length ?? 0 })}\n`);
}

export interface SubmissionLoad {
  accepted: string[];
  /** HTTP status (or 'timeout' / 'network') -> count. */
  statuses: Map<number | string, number>;
  done: Promise<void>;
}

/**
 * `total` single-job submissions from `clients` concurrent clients; each request is bounded (a hang counts as
 * 'timeout'), refused ones are retried later as a client would, until `total` were accepted.
 */
export function submitLoad(s: Stack, total: number, clients: number, command: string, requestTimeoutMs = 10_000): SubmissionLoad {
  const load: SubmissionLoad = { accepted: [], statuses: new Map(), done: Promise.resolve() };
  const count = (k: number | string): void => void load.statuses.set(k, (load.statuses.get(k) ?? 0) + 1);
  let started = 0;
  const client = async (): Promise<void> => {
    while (started < total) {
      started++;
      let ok = false;
      try {
        const res = await fetch(`${s.url}/v1/jobs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${s.tokens.submit}`, 'content-type': 'application/json' },
          body: JSON.stringify({ command }),
          signal: AbortSignal.timeout(requestTimeoutMs),
        });
        count(res.status);
        if (res.status === 201) {
          load.accepted.push(((await res.json()) as { id: string }).id);
          ok = true;
        } else await res.text();
      } catch (err) {
        count((err as Error).name === 'TimeoutError' ? 'timeout' : 'network');
      }
      if (!ok) {
        started--;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  };
  load.done = Promise.all(Array.from({ length: clients }, client)).then(() => undefined);
  return load;
}

/** During an outage the API must answer 503 at once: no other status, no hang (a hang shows as 'timeout'). */
export function assertOnly201And503(load: SubmissionLoad): void {
  const statuses = JSON.stringify(Object.fromEntries(load.statuses));
  if (!((load.statuses.get(503) ?? 0) > 0)) throw new Error(`submissions during the outage should have got 503: ${statuses}`);
  const other = [...load.statuses.keys()].filter((k) => k !== 201 && k !== 503);
  if (other.length > 0) throw new Error(`only 201 and 503 expected, no 500, no hang: ${statuses}`);
}
