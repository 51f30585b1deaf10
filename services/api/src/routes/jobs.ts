import {
  DroverError, JobSpecInput, unknownDependency, unknownDependencyOf, idTimeBound, checkJobSpec, filesBytes, isJobId, isStoreFull, isTerminal, newJobId, normalizeJobSpec, policyViolation, type JobSpec, type SpecProblem,
  SpanKind, failSpan, mergeNewestFirst, passes, startSpan, traceparentOf, type ArchiveFilter, type Context, type ArchivedJob, type Created, type CreateOptions, type JobRecord, type JobStatus, type NewJob,
  type Replay,
} from '@drover/core';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { assertQueueAllowed, type Principal } from '../auth.js';
import type { ApiContext } from '../context.js';
import { canSee, guards } from '../queue-scope.js';
import { groupOf, stopJobs, stopped, untilEnded } from '../job-actions.js';
import { assertUnderQuota, recordOwned } from '../job-quota.js';
import { followLogs } from './log-follow.js';
import { logText, sendLogText, type LogPager } from './log-text.js';
import { IdempotencyHeaders, claimOf, markReplayed, priorResult, replayedJobs, storedNotPublished } from '../idempotency.js';
import { SubmitWarnings, announcerFor, submitWarnings, withWarnings } from '../queue-consumers.js';
import { CancelQuery, ErrorResponse, GroupCancelled, JobIdParams, JobListQuery, JobPage, JobRecordSchema, JobsAffected, LogPage, LogQuery, errorResponses } from '../schemas.js';

/** Largest batch accepted by POST /v1/jobs/batch. */
export const MAX_BATCH = 1000;

const errors = errorResponses(400, 401, 403, 404, 429, 503);

/** A submitted job's record, with the warnings of its submission (its queue has no runner, say). */
export const SubmittedJob = withWarnings(JobRecordSchema);

/** The token may use the job's queue, and the queue's command policy lets the command run (403 otherwise). */
export function assertSubmittable(ctx: ApiContext, principal: Principal | undefined, spec: JobSpec, field: string): void {
  assertQueueAllowed(principal, spec.queue);
  const at = (name: string): string => (field ? `${field}/${name}` : name);
  const { maxScriptBytes, maxFilesBytes, interpreters } = ctx.scripts;
  if (spec.script !== undefined) {
    const problems: SpecProblem[] = [];
    const bytes = Buffer.byteLength(spec.script);
    if (bytes > maxScriptBytes) problems.push({ field: 'script', message: `is ${bytes} bytes; the limit is ${maxScriptBytes} (DROVER_MAX_SCRIPT_BYTES)` });
    if (!interpreters.includes(spec.interpreter ?? 'sh')) {
      problems.push({ field: 'interpreter', message: `"${spec.interpreter}" is not allowed; use one of ${interpreters.join(', ')} (DROVER_SCRIPT_INTERPRETERS)` });
    }
    throwProblems(problems, field);
  }
  if (spec.files !== undefined && filesBytes(spec.files) > maxFilesBytes) {
    throwProblems([{ field: 'files', message: `hold ${filesBytes(spec.files)} bytes; the limit is ${maxFilesBytes} (DROVER_MAX_FILES_BYTES)` }], field);
  }
  if (spec.stdin !== undefined) {
    const bytes = filesBytes({ stdin: spec.stdin }) + (spec.files ? filesBytes(spec.files) : 0);
    if (bytes > maxFilesBytes) throwProblems([{ field: 'stdin', message: `holds ${bytes} bytes with the files; the limit is ${maxFilesBytes} (DROVER_MAX_FILES_BYTES)` }], field);
  }
  const violation = policyViolation(ctx.policy, spec);
  if (violation) throw new DroverError('FORBIDDEN', `${field ? `${field}: ` : ''}refused by policy: ${violation}`, { field: field || 'command', rule: violation });
  // Checked here against the same lists the runners use, so a refusal is a 403 now rather than a failure later.
  if (spec.user !== undefined && !ctx.identities.users.includes(spec.user)) {
    throw new DroverError('FORBIDDEN', `${at('user')}: user "${spec.user}" is not allowed (RUNNER_ALLOWED_USERS)`, { field: at('user') });
  }
  if (spec.group !== undefined && !ctx.identities.groups.includes(spec.group)) {
    throw new DroverError('FORBIDDEN', `${at('group')}: group "${spec.group}" is not allowed (RUNNER_ALLOWED_GROUPS)`, { field: at('group') });
  }
}

/**
 * A restricted token depending on another queue's job gets the answer an unknown id gets (the store's own words),
 * so dependsOn cannot be used to probe for jobs elsewhere.
 */
async function assertDependenciesVisible(ctx: ApiContext, principal: Principal | undefined, jobs: NewJob[]): Promise<void> {
  if (!principal?.queues) return;
  const ids = [...new Set(jobs.flatMap((j) => (j.spec.dependsOn ?? []).filter(isJobId)))];
  const own = new Set(jobs.map((j) => j.id));
  const foreign = ids.filter((id) => !own.has(id));
  const { jobQueue } = guards(ctx);
  const queues = await Promise.all(foreign.map(jobQueue));
  const hidden = foreign.find((_, i) => queues[i] !== null && !canSee(principal, [queues[i]!]));
  if (hidden !== undefined) throw unknownDependency(hidden);
}

type ListQuery = {
  queue?: string; status?: JobStatus; label?: string | string[]; schedule?: string; exitCode?: number; runner?: string; name?: string; command?: string;
  from?: string; to?: string; createdAfter?: string; createdBefore?: string; cursor?: string; limit?: number;
};

function listFilter(q: ListQuery): ArchiveFilter {
  const f: ArchiveFilter = {};
  if (q.queue) f.queue = q.queue;
  if (q.status) f.status = q.status;
  if (q.schedule) f.schedule = q.schedule;
  if (q.exitCode !== undefined) f.exitCode = q.exitCode;
  if (q.runner) f.runner = q.runner;
  if (q.name) f.name = q.name;
  if (q.command) f.command = q.command;
  const labels = q.label === undefined ? [] : [q.label].flat();
  if (labels.length > 0) {
    f.labels = labels.map((l) => {
      const eq = l.indexOf('=');
      return { key: l.slice(0, eq), value: l.slice(eq + 1) };
    });
  }
  // Both names of a bound given: the narrower one holds.
  const after = [q.from, q.createdAfter].filter((x): x is string => x !== undefined).sort((a, b) => Date.parse(b) - Date.parse(a))[0];
  const before = [q.to, q.createdBefore].filter((x): x is string => x !== undefined).sort((a, b) => Date.parse(a) - Date.parse(b))[0];
  if (after) f.from = after;
  if (before) f.to = before;
  return f;
}

/** Index pages of Redis a filtered list reads at most per request; the cursor then continues where it stopped. */
const SCAN_PAGES = 10;
const SCAN_PAGE = 200;

/**
 * A list over Redis (the index for queue/status, other filters applied to the records) and the archive (its indexes
 * for queue, status, schedule and labels; the other filters applied to a bounded window of rows), merged newest first.
 * Both sides take ids below the cursor, so one cursor pages through both. Ids sort by creation time, so a creation
 * time range narrows the scan to its ids. When either scan stops at its bound, the page ends at the higher of the
 * boundaries and the cursor continues from there: a filter that matches nothing answers an empty page with a cursor.
 */
async function listMerged(ctx: ApiContext, f: ArchiveFilter, cursor: string | undefined, limit: number): Promise<{ items: JobRecord[]; nextCursor: string | null }> {
  if (cursor !== undefined && !isJobId(cursor)) throw new DroverError('BAD_CURSOR', 'cursor is not one this API issued');
  // Ids below the first id of createdBefore's millisecond; ids from createdAfter's millisecond on.
  const top = f.to ? idTimeBound(Date.parse(f.to)) : undefined;
  const start = top !== undefined && (cursor === undefined || top < cursor) ? top : cursor;
  const floor = f.from ? idTimeBound(Date.parse(f.from)) : undefined;
  const live: JobRecord[] = [];
  let scanned: string | undefined = start;
  let exhausted = false;
  for (let i = 0; i < SCAN_PAGES && live.length <= limit; i++) {
    const page = await ctx.store.list({ ...(f.queue ? { queue: f.queue } : {}), ...(f.status ? { status: f.status as JobStatus } : {}) }, scanned, SCAN_PAGE);
    live.push(...page.items.filter((j) => passes(j, f)));
    const last = page.items[page.items.length - 1]?.id;
    if (!page.nextCursor || (floor !== undefined && last !== undefined && last < floor)) {
      exhausted = true;
      break;
    }
    scanned = page.nextCursor;
  }
  const fromArchive = ctx.archive ? await ctx.archive.listScan(f, start, limit + 1, SCAN_PAGES * SCAN_PAGE) : { items: [], boundary: null };
  const boundaries = [exhausted ? null : (scanned ?? null), fromArchive.boundary].filter((b): b is string => b !== null).sort();
  return mergeNewestFirst(live, boundaries[boundaries.length - 1] ?? null, fromArchive.items, limit);
}

/** A batch's unknown dependency, named by the item and place that holds it (`jobs/3/dependsOn/0: no job ...`). */
async function namingDependency<T>(inputs: JobSpecInput[], submit: () => Promise<T>): Promise<T> {
  try {
    return await submit();
  } catch (err) {
    const id = unknownDependencyOf(err);
    const item = id === null ? -1 : inputs.findIndex((input) => (input.dependsOn ?? []).includes(id));
    if (id === null || item < 0) throw err;
    throw unknownDependency(id, `jobs/${item}/dependsOn/${(inputs[item]!.dependsOn ?? []).indexOf(id)}`);
  }
}

/** A finished job's spec to run once more: labelled drover.retryOf; its dependencies were met (or not) for the original, and no dedupe key holds it back. */
export function rerunSpec(id: string, spec: JobSpec): JobSpec {
  const again: JobSpec = { ...spec, labels: { ...spec.labels, 'drover.retryOf': id } };
  delete again.dependsOn;
  delete again.dedupeKey;
  return again;
}

/** One job per copy: a spec with `replicas: N` becomes N jobs sharing the spec, told apart by their index. */
export function expandReplicas(job: NewJob, now: number): NewJob[] {
  const n = job.spec.replicas ?? 1;
  if (n <= 1) return [job];
  const copies: NewJob[] = [{ ...job, replica: { index: 0, of: job.id } }];
  for (let i = 1; i < n; i++) copies.push({ ...job, id: newJobId(now), replica: { index: i, of: job.id } });
  return copies;
}

/** What a submission answers for one job: its record, the ids of all its copies, whether it was a duplicate. */
export function submittedRecord(created: Created[], first: number): JobRecord & { replicaJobs?: string[]; deduplicated?: boolean } {
  const head = created[first]!;
  const n = head.record.replicas;
  const out: JobRecord & { replicaJobs?: string[]; deduplicated?: boolean } = { ...head.record };
  if (n > 1) out.replicaJobs = created.slice(first, first + n).map((c) => c.record.id);
  if (head.duplicate) out.deduplicated = true;
  return out;
}

/**
 * Persist, publish, answer. If the broker refuses, the new records are removed again and the client gets 503.
 * Only jobs created `queued` are published: delayed ones go when due (scheduler), waiting ones when their
 * dependencies end, duplicates not at all. Used by every route that submits jobs (jobs, compatibility adapters).
 */
/**
 * 400 when one request would create more than DROVER_MAX_JOBS_PER_REQUEST jobs (batch items × replicas, workflow
 * steps × replicas, a schedule's fire), so a few kilobytes of JSON cannot turn into tens of thousands of jobs.
 */
export function assertJobCount(ctx: ApiContext, count: number, field = ''): void {
  if (count <= ctx.maxJobsPerRequest) return;
  const message = `would create ${count} jobs (counting replicas); one request may create at most ${ctx.maxJobsPerRequest} (DROVER_MAX_JOBS_PER_REQUEST)`;
  throw new DroverError('VALIDATION', field ? `${field}: ${message}` : message, [{ field: field || 'body', message }]);
}

export async function submitJobs(ctx: ApiContext, jobs: NewJob[], parent?: Context, owner?: Principal): Promise<Created[]> {
  const outcome = await submitJobsOnce(ctx, jobs, {}, parent, owner);
  if (outcome.replayed) throw new Error('a submission without an Idempotency-Key was answered as a replay');
  return outcome.created;
}

/** What a keyed submission came to: jobs created now, or the results of the request that came first with its key. */
export type Submitted = { replayed: false; created: Created[] } | ({ replayed: true } & Replay);

/**
 * submitJobs with an Idempotency-Key claim and/or a workflow record stored with the jobs. A keyed submission whose
 * publish fails keeps its jobs (they are bound to the key; the outbox sweep publishes them) and answers 503 saying
 * so; the client's retry with the same key then gets them. Without a key they are withdrawn as before.
 */
export async function submitJobsOnce(ctx: ApiContext, jobs: NewJob[], opts: CreateOptions, parent?: Context, owner?: Principal): Promise<Submitted> {
  // The checks every submitting route passes through; nothing is stored past a limit.
  assertJobCount(ctx, jobs.length);
  await assertUnderQuota(ctx.store, owner, jobs.length);
  // A producer span around persist + publish; its context is stored with each job, where the runner picks it up.
  const span = parent ? startSpan(`publish ${jobs[0]?.spec.queue ?? ''}`, SpanKind.PRODUCER, parent, {
    'messaging.system': ctx.transport.name,
    'messaging.operation.type': 'send',
    'messaging.destination.name': jobs[0]?.spec.queue ?? '',
    'messaging.batch.message_count': jobs.length,
  }) : undefined;
  const traceparent = span ? traceparentOf(span) : undefined;
  try {
    const outcome = await ctx.store.createOnce(traceparent ? jobs.map((j) => ({ ...j, traceparent })) : jobs, opts);
    if (outcome.replayed) return outcome;
    const { created } = outcome;
    const fresh = created.filter((c) => !c.duplicate).map((c) => c.record);
    const toPublish = fresh.filter((r) => r.status === 'queued');
    if (span && jobs.length === 1) span.setAttribute('messaging.message.id', jobs[0]!.id);
    const owned = (): Promise<void> =>
      recordOwned(ctx.store, owner, fresh.map((r) => r.id)).catch((err: unknown) => ctx.log.warn({ err }, 'recording jobs against the token\'s quota failed'));
    await ctx.beforePublish?.();
    try {
      await ctx.transport.publish(toPublish.map((r) => ({ jobId: r.id, queue: r.queue, priority: r.priority })));
    } catch (err) {
      if (opts.idempotency) {
        // Bound to the key already: withdrawing them would race a retry that found them. They stay in the outbox.
        ctx.log.warn({ err, count: jobs.length }, 'publish failed after persisting a keyed submission; the outbox sweep will publish it');
        await owned();
        throw storedNotPublished();
      }
      ctx.log.warn({ err, count: jobs.length }, 'publish failed after persisting; withdrawing the jobs');
      // If this also fails the jobs stay in the outbox and the scheduler publishes them later.
      await ctx.store.discard(fresh.map((r) => r.id)).catch(() => undefined);
      if (opts.workflow) await ctx.workflows.remove(opts.workflow.id).catch(() => undefined);
      // BullMQ keeps its queues in Redis: a full Redis refuses the publish as it would have refused the records.
      if (isStoreFull(err)) throw err;
      throw new DroverError('UNAVAILABLE', 'the broker is unreachable; nothing was queued, retry later');
    }
    for (const r of fresh) ctx.metrics.jobsSubmitted.inc({ queue: r.queue });
    announcerFor(ctx.control, ctx.store.keys.control, ctx.log).announce(fresh.map((r) => r.queue));
    await owned();
    ctx.store.published(toPublish.map((r) => r.id)).catch((err: unknown) => ctx.log.warn({ err }, 'clearing the outbox failed; jobs may be republished (harmless)'));
    return outcome;
  } catch (err) {
    if (span) failSpan(span, err);
    throw err;
  } finally {
    span?.end();
  }
}

/** Problems a schema cannot express, reported like schema errors: 400 VALIDATION naming each field. */
export function throwProblems(problems: SpecProblem[], prefix: string): void {
  if (problems.length === 0) return;
  const details = problems.map((p) => ({ field: `${prefix}/${p.field}`.replace(/^\//, ''), message: p.message }));
  throw new DroverError('VALIDATION', details.map((d) => `${d.field}: ${d.message}`).join('; '), details);
}

export function jobRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const guard = guards(ctx);
  /** The answer of a replayed submission: its jobs as they are now, in the shape and with the status of the first. */
  const replayJobs = async (reply: FastifyReply, replay: Replay, firsts: number[], shape: 'one' | 'batch') => {
    const byId = await replayedJobs(ctx, replay, reply.request.principal);
    const created = replay.results.map((r) => ({ record: byId.get(r.id)!, duplicate: r.status === 'duplicate' }));
    markReplayed(reply);
    if (shape === 'batch') return reply.status(201).send({ jobs: firsts.map((first) => submittedRecord(created, first)) });
    const record = submittedRecord(created, 0);
    return reply.status(record.deduplicated ? 200 : 201).send(record);
  };
  const toNewJob = (input: JobSpecInput, field: string, now: number, principal: Principal | undefined): NewJob => {
    const problems = checkJobSpec(input);
    const runAt = input.delayMs !== undefined ? now + input.delayMs : input.runAt !== undefined ? Date.parse(input.runAt) : undefined;
    if (runAt !== undefined && runAt - now > ctx.maxDelayMs) {
      const which = input.delayMs !== undefined ? 'delayMs' : 'runAt';
      problems.push({ field: which, message: `is more than ${ctx.maxDelayMs} ms ahead (DROVER_MAX_DELAY_MS)` });
    }
    const expiresAt = input.expiresAt !== undefined ? Date.parse(input.expiresAt) : undefined;
    if (expiresAt !== undefined && expiresAt <= now) problems.push({ field: 'expiresAt', message: 'is not in the future: the job could never start' });
    throwProblems(problems, field);
    const job: NewJob = { id: newJobId(now), spec: normalizeJobSpec(input, ctx.specDefaults) };
    assertSubmittable(ctx, principal, job.spec, field);
    // A time already past means now.
    if (runAt !== undefined && runAt > now) job.runAt = runAt;
    if (expiresAt !== undefined) job.expiresAt = expiresAt;
    return job;
  };

  app.post<{ Body: JobSpecInput }>(
    '/v1/jobs',
    {
      config: { scope: 'submit', queues: 'handler' },
      schema: {
        operationId: 'submitJob',
        tags: ['jobs'],
        summary: 'Submit a job (200 instead of 201: deduplicated, the unfinished job with the same key is returned)',
        headers: IdempotencyHeaders,
        body: JobSpecInput,
        response: { 200: SubmittedJob, 201: SubmittedJob, 409: ErrorResponse, ...errors },
      },
    },
    async (request, reply) => {
      const claim = claimOf(request, ctx);
      const prior = await priorResult(ctx, claim);
      if (prior) return replayJobs(reply, prior, [0], 'one');
      const now = Date.now();
      const jobs = expandReplicas(toNewJob(request.body, '', now, request.principal), now);
      await assertDependenciesVisible(ctx, request.principal, jobs);
      const outcome = await submitJobsOnce(ctx, jobs, claim ? { idempotency: claim } : {}, request.traceContext, request.principal);
      if (outcome.replayed) return replayJobs(reply, outcome, [0], 'one');
      const record = submittedRecord(outcome.created, 0);
      const warnings = await submitWarnings(ctx.runners, [jobs[0]!.spec], ctx.log);
      return reply.status(record.deduplicated ? 200 : 201).send(warnings.length > 0 ? { ...record, warnings } : record);
    },
  );

  app.post<{ Body: { jobs: JobSpecInput[] } }>(
    '/v1/jobs/batch',
    {
      config: { scope: 'submit', queues: 'handler' },
      schema: {
        operationId: 'submitJobs',
        tags: ['jobs'],
        summary: 'Submit many jobs at once: all are accepted or none',
        headers: IdempotencyHeaders,
        body: Type.Object({ jobs: Type.Array(JobSpecInput, { minItems: 1, maxItems: MAX_BATCH }) }, { additionalProperties: false }),
        response: { 201: Type.Object({ jobs: Type.Array(JobRecordSchema), warnings: Type.Optional(SubmitWarnings) }), 409: ErrorResponse, ...errors },
      },
    },
    async (request, reply) => {
      const claim = claimOf(request, ctx);
      // Where each item's jobs start among all the batch's jobs (copies of one item follow each other).
      const counts = request.body.jobs.map((input) => Math.max(1, input.replicas ?? 1));
      const firsts = counts.map((_, i) => counts.slice(0, i).reduce((n, c) => n + c, 0));
      const prior = await priorResult(ctx, claim);
      if (prior) return replayJobs(reply, prior, firsts, 'batch');
      const now = Date.now();
      // Counted before the copies are made: the limit also bounds what one request makes this process allocate.
      assertJobCount(ctx, request.body.jobs.reduce((n, input) => n + (input.replicas ?? 1), 0), 'jobs');
      const jobs = request.body.jobs.map((input, i) => expandReplicas(toNewJob(input, `jobs/${i}`, now, request.principal), now));
      const outcome = await namingDependency(request.body.jobs, async () => {
        await assertDependenciesVisible(ctx, request.principal, jobs.flat());
        return submitJobsOnce(ctx, jobs.flat(), claim ? { idempotency: claim } : {}, request.traceContext, request.principal);
      });
      if (outcome.replayed) return replayJobs(reply, outcome, firsts, 'batch');
      const warnings = await submitWarnings(ctx.runners, jobs.map((copies) => copies[0]!.spec), ctx.log);
      return reply.status(201).send({ jobs: firsts.map((first) => submittedRecord(outcome.created, first)), ...(warnings.length > 0 ? { warnings } : {}) });
    },
  );

  app.get<{ Querystring: ListQuery }>(
    '/v1/jobs',
    {
      config: { scope: 'read', queues: 'handler' },
      schema: {
        operationId: 'listJobs',
        tags: ['jobs'],
        summary: 'List and search jobs, newest first: filters combine (AND); a page looks at a bounded number of jobs, so it may be short or empty with a nextCursor',
        querystring: JobListQuery,
        response: { 200: JobPage, ...errors },
      },
    },
    async (request) => {
      const { queue, status, cursor, limit = 50 } = request.query;
      if (request.principal?.queues && !queue) throw new DroverError('FORBIDDEN', `this token may only list with queue= one of ${request.principal.queues.join(', ')}`);
      if (queue) assertQueueAllowed(request.principal, queue);
      const filter = listFilter(request.query);
      const narrow = Object.keys(filter).some((k) => k !== 'queue' && k !== 'status');
      if (!ctx.archive && !narrow) return ctx.store.list({ ...(queue ? { queue } : {}), ...(status ? { status } : {}) }, cursor, limit);
      return listMerged(ctx, filter, cursor, limit);
    },
  );

  /** From Redis, or (once retention let it go) from the archive, marked `archived`. */
  const getJob = async (id: string, principal?: Principal): Promise<JobRecord & { archived?: ArchivedJob }> => {
    const live = await ctx.store.get(id);
    const archived = !live && ctx.archive && isJobId(id) ? await ctx.archive.get(id) : null;
    const job = live ?? archived;
    // Another queue's job looks exactly like a missing one (the route's guard already said so; this is the backstop).
    if (!job || !canSee(principal, [job.queue])) throw new DroverError('NOT_FOUND', `no job ${id}`);
    return archived ? { ...archived, archived } : job;
  };

  app.get<{ Params: { id: string } }>(
    '/v1/jobs/:id',
    {
      config: { scope: 'read', queues: guard.job() },
      schema: { operationId: 'getJob', tags: ['jobs'], summary: 'A job, with its attempts', params: JobIdParams, response: { 200: JobRecordSchema, ...errors } },
    },
    async (request) => {
      const [job, attemptHistory] = await Promise.all([getJob(request.params.id, request.principal), ctx.store.attempts(request.params.id)]);
      if (job.archived) return job.archived;
      return { ...job, attemptHistory };
    },
  );

  app.get<{ Params: { id: string }; Querystring: { cursor?: string; limit?: number; follow?: string; format?: 'text' } }>(
    '/v1/jobs/:id/logs',
    {
      sse: 'dual',
      config: { scope: 'read', queues: guard.job() },
      schema: {
        operationId: 'getJobLogs',
        tags: ['jobs'],
        summary: 'Output lines (stdout and stderr), oldest first; pass nextCursor back to continue',
        params: JobIdParams,
        querystring: LogQuery,
        response: {
          200: {
            description: 'A page of lines (JSON); with format=text the whole output of every attempt as text, streamed',
            content: {
              'application/json': { schema: LogPage },
              'text/plain': { schema: Type.String({ description: 'format=text: each attempt under a header line, then its lines' }) },
            },
          },
          ...errors,
        },
      },
    },
    async (request, reply) => {
      const { cursor, limit = 1000, follow, format } = request.query;
      const job = await getJob(request.params.id, request.principal);
      if (format === 'text' && !(reply.sse && (follow === '1' || follow === 'true'))) {
        const archive = job.archived ? ctx.archive : undefined;
        const read: LogPager = archive ? (c, n) => archive.logs(job.id, c, n) : async (c, n) => (await ctx.logs.read(job.id, c, n)).items;
        return sendLogText(reply, job.id, logText(read, job, job.archived?.attemptHistory ?? (await ctx.store.attempts(job.id))));
      }
      if (reply.sse && (follow === '1' || follow === 'true')) {
        const from = reply.sse.lastEventId ?? cursor;
        if (from !== undefined && !/^\d{1,20}-\d{1,20}$/.test(from)) throw new DroverError('BAD_CURSOR', 'cursor is not one this API issued');
        return followLogs(ctx, reply, job.id, from);
      }
      const page = job.archived && ctx.archive ? { items: await ctx.archive.logs(job.id, cursor, limit + 1) } : await ctx.logs.read(job.id, cursor, limit + 1);
      const more = page.items.length > limit;
      const items = page.items.slice(0, limit);
      const last = items[items.length - 1]?.id ?? cursor ?? null;
      const done = isTerminal(job.status) && !more;
      return { items, nextCursor: done ? null : (last ?? '0-0'), done, truncated: job.truncated };
    },
  );

  app.post<{ Params: { id: string } }>(
    '/v1/jobs/:id/retry',
    {
      config: { scope: 'submit', queues: guard.job() },
      schema: {
        operationId: 'retryJob',
        tags: ['jobs'],
        summary: 'Run a finished job again: a new job with the same spec, labelled drover.retryOf (409 while it is unfinished)',
        params: JobIdParams,
        response: { 201: JobRecordSchema, 409: ErrorResponse, ...errors },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const job = await getJob(id, request.principal);
      if (!isTerminal(job.status)) throw new DroverError('CONFLICT', `job ${id} is ${job.status}; only a finished job can be run again`);
      const spec = await ctx.store.spec(id);
      if (!spec) throw new DroverError('NOT_FOUND', `job ${id} is archived; its spec (with env values) is not kept there, so it cannot be run again`);
      const again = rerunSpec(id, spec);
      assertSubmittable(ctx, request.principal, again, '');
      const now = Date.now();
      const created = await submitJobs(ctx, expandReplicas({ id: newJobId(now), spec: again }, now), request.traceContext, request.principal);
      // Marked (if it was not already) so a bulk retry does not run it once more on top of this one.
      await ctx.store.markRetried(id, created[0]!.record.id);
      return reply.status(201).send(submittedRecord(created, 0));
    },
  );

  /**
   * Cancels every copy of the job's group; answers which were cancelled (waiting ones at once, running ones once their
   * runner stopped them, within the kill grace) and which were still stopping when the wait ran out.
   */
  const cancelGroup = async (job: JobRecord) => {
    const copies = await groupOf(ctx, job);
    const r = await stopJobs(ctx, copies.map((c) => c.id));
    const still = new Set(await untilEnded(ctx, r.flagged));
    return { group: job.replicaOf ?? job.id, cancelled: stopped(r).filter((c) => !still.has(c)), stopping: [...still].sort() };
  };

  app.delete<{ Params: { id: string } }>(
    '/v1/jobs/:id',
    {
      config: { scope: 'submit', queues: guard.job() },
      schema: {
        operationId: 'deleteJob',
        tags: ['jobs'],
        summary: 'Delete a finished job: its record, output, attempts and index entries, in Redis and the archive (409 while it is unfinished)',
        params: JobIdParams,
        response: { 200: JobsAffected, 409: ErrorResponse, ...errors },
      },
    },
    async (request) => {
      const { id } = request.params;
      const job = await getJob(id, request.principal);
      if (!isTerminal(job.status)) throw new DroverError('CONFLICT', `job ${id} is ${job.status}; only a finished job can be deleted (cancel it first)`, { status: job.status });
      const deleted = new Set(await ctx.store.deleteFinished([id]));
      for (const a of ctx.archive ? await ctx.archive.delete([id]) : []) deleted.add(a);
      return { count: deleted.size, ids: [...deleted], idsTruncated: false };
    },
  );

  app.post<{ Params: { id: string }; Querystring: { group?: string } }>(
    '/v1/jobs/:id/cancel',
    {
      config: { scope: 'submit', queues: guard.job() },
      schema: {
        operationId: 'cancelJob',
        tags: ['jobs'],
        summary: 'Cancel: a queued job never runs; a running one has its process group stopped (SIGTERM, then SIGKILL). With group=1: every copy of its replicas',
        params: JobIdParams,
        querystring: CancelQuery,
        response: { 200: Type.Union([JobRecordSchema, GroupCancelled]), 202: Type.Union([JobRecordSchema, GroupCancelled]), 409: ErrorResponse, ...errors },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const job = await getJob(id, request.principal);
      if (request.query.group === '1' || request.query.group === 'true') {
        const group = await cancelGroup(job);
        return reply.status(group.stopping.length > 0 ? 202 : 200).send(group);
      }
      const outcome = await ctx.store.cancel(id);
      if (outcome.action === 'missing') throw new DroverError('NOT_FOUND', `no job ${id}`);
      if (outcome.action === 'flagged') {
        await ctx.store.signalCancel([id]);
        // Answer with the final state: wait for the runner to stop the group (bounded by the kill grace).
        const stopping = await untilEnded(ctx, [id]);
        return reply.status(stopping.length > 0 ? 202 : 200).send(await getJob(id));
      }
      if (outcome.action === 'ended') {
        throw new DroverError('CONFLICT', `job ${id} already ended as ${outcome.status}`, { status: outcome.status });
      }
      return reply.status(200).send(await getJob(id));
    },
  );
}
