import type { RunnerView } from '@drover/core';
import { about, listCommand, type CommandDef, type Group } from './command.js';
import { ApiError } from './errors.js';
import { relative, status, table } from './format.js';
import { seg } from './http.js';

function runnerTable(items: RunnerView[], color: boolean): string {
  if (items.length === 0) return 'no runners';
  const now = Date.now();
  return table(
    ['ID', 'STATE', 'HOST', 'QUEUES', 'RUNNING', 'HEARTBEAT', 'VERSION'],
    items.map((r) => [
      r.id,
      status(r.state),
      r.host ?? '-',
      r.queues.join(',') || '-',
      `${r.running.length}/${r.concurrency ?? '-'}`,
      relative(r.lastHeartbeatAt, now),
      r.version ?? '-',
    ]),
    color,
  );
}

/** drain and resume: both answer with the runner once it acted (or as it stands after a short wait). */
function drainOrResume(action: 'drain' | 'resume'): CommandDef {
  const drain = action === 'drain';
  return about({
    arg: 'id',
    usage: drain ? '<id> [--force] [--json]' : '<id> [--json]',
    summary: drain ? 'stop a runner taking jobs; its running jobs finish (--force: even the last runner of a queue)' : 'let a drained runner take jobs again',
    ...(drain ? { options: { force: { type: 'boolean', desc: 'drain even the last runner taking jobs from a queue' } } } : {}),
    call: (ctx, id, p) =>
      ctx
        .api()
        .post<RunnerView | undefined>(`/v1/runners/${seg(id)}/${action}`, {}, { force: p.opts.flag('force') ? 1 : undefined })
        // Empty when the runner vanished meanwhile.
        .then((r) => r ?? null)
        .catch((err: unknown) => {
          // The API's advice names its query parameter; here it is a flag.
          throw err instanceof ApiError ? new ApiError(err.status, err.code, err.message.replace('pass force=1', 'use --force'), err.details) : err;
        }),
    human: (r, _ctx, id) => `runner ${id}: ${r?.state ?? `${action} requested`}`,
  });
}

export const runners: Group = {
  summary: 'runners: who is up, drain and resume',
  commands: {
    ls: listCommand<RunnerView>('runners seen in the last hour: state, queues, running jobs, last heartbeat', '/v1/runners', (items, ctx) => runnerTable(items, ctx.color)),
    drain: drainOrResume('drain'),
    resume: drainOrResume('resume'),
  },
};
