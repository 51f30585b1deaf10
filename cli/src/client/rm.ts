import { JSON_OPTION, type CommandDef, type Ctx } from './command.js';
import { ApiError } from './errors.js';
import { jobPath } from './jobs.js';

/** What `DELETE /v1/jobs/:id` answers when it deleted: the ids it removed (from Redis and the archive). */
interface Deleted {
  count: number;
  ids: string[];
  idsTruncated: boolean;
}

/** One id's outcome as --json prints it: the HTTP status and the API's answer (its record or its error envelope). */
interface Removal {
  id: string;
  status: number;
  answer: Deleted | { error: { code: string; message: string; details?: unknown } };
}

/** DELETE one job; a refusal is this id's outcome, not the command's end (the other ids still get their turn). */
async function removeOne(ctx: Ctx, id: string): Promise<Removal> {
  try {
    return { id, status: 200, answer: await ctx.api().delete<Deleted>(jobPath(id)) };
  } catch (err) {
    // A token the API does not know fails every id alike: stop, so the usual token hint is printed once.
    if (!(err instanceof ApiError) || err.status === 401) throw err;
    const error = { code: err.code, message: err.message, ...(err.details !== undefined ? { details: err.details } : {}) };
    return { id, status: err.status, answer: { error } };
  }
}

/** Deleted means the API says it removed this id; a 200 that removed nothing (another rm got there first) is not. */
const wasDeleted = (r: Removal): boolean => r.status === 200 && 'ids' in r.answer && r.answer.ids.includes(r.id);

/** The line for one id: `<id> deleted` on stdout, or why not on stderr (as drover prints an API's refusal). */
function printRemoval(ctx: Ctx, r: Removal): void {
  if (wasDeleted(r)) {
    ctx.out(`${r.id} deleted`);
    return;
  }
  const why = 'error' in r.answer ? `${r.answer.error.message} (${r.answer.error.code}, HTTP ${r.status})` : 'the API deleted nothing (already deleted?)';
  ctx.err(`drover: ${r.id} not deleted: ${why}`);
}

export const rm: CommandDef = {
  usage: '<id>... [--json]',
  summary: "delete finished jobs' records (output, attempts and archived copy included); unfinished jobs are refused",
  help: [
    'Each id is deleted on its own, in order: one line per id, "<id> deleted" on stdout or why not on stderr.',
    'A job that has not finished (waiting, delayed, queued, running) is refused; cancel it first (drover cancel).',
    'Exits 1 if any id was not deleted. --json prints, per id, the HTTP status and the API\'s answer.',
  ].join('\n'),
  args: ['id...'],
  options: JSON_OPTION,
  async run(ctx, p) {
    const removals: Removal[] = [];
    for (const id of p.args) {
      const r = await removeOne(ctx, id);
      removals.push(r);
      if (!p.opts.flag('json')) printRemoval(ctx, r);
    }
    if (p.opts.flag('json')) ctx.out(JSON.stringify(removals, null, 2));
    return removals.every(wasDeleted) ? 0 : 1;
  },
};
