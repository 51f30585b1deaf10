import { DroverError, QueueName, compareEventIds, eventPatternsHint, isEventId, isJobId, matches, unknownEventPatterns, type DroverEvent, type EventFilter } from '@drover/core';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { assertQueueAllowed, type Principal } from '../auth.js';
import type { ApiContext } from '../context.js';
import { callerKey } from '../request-guard.js';
import { EventSchema, errorResponses, pageOf } from '../schemas.js';

const PAGE = 1000;

/**
 * How many stored events one JSON page reads at most while looking for `limit` matching ones: a filter that matches
 * rarely answers fewer (or none) with the cursor where it stopped, rather than reading the whole stream at once.
 */
const MAX_SCANNED = 20 * PAGE;

/**
 * Up to `limit` events matching the filter after `after`, reading on past those that do not match (within
 * MAX_SCANNED); `nextCursor` is the last event read, so the next page goes on from there.
 */
async function matchingPage(ctx: ApiContext, filter: EventFilter & { queues?: string[] }, after: string, limit: number): Promise<{ items: DroverEvent[]; nextCursor: string }> {
  const items: DroverEvent[] = [];
  let cursor = after;
  for (let scanned = 0; items.length < limit && scanned < MAX_SCANNED; ) {
    const chunk = await ctx.events.read(cursor, PAGE);
    if (chunk.length === 0) break;
    for (const e of chunk) {
      cursor = e.id;
      if (!visible(e, filter)) continue;
      items.push(e);
      if (items.length === limit) break;
    }
    scanned += chunk.length;
    if (chunk.length < PAGE) break;
  }
  return { items, nextCursor: cursor };
}

/** Events a slow SSE client may have waiting before it is disconnected (it resumes with Last-Event-ID). */
const MAX_PENDING = 10_000;

const EventsQuery = Type.Object(
  {
    types: Type.Optional(Type.String({ maxLength: 1024, description: 'Comma-separated types; `job.*` matches a family.' })),
    queue: Type.Optional(QueueName),
    job: Type.Optional(Type.String({ maxLength: 64 })),
    after: Type.Optional(Type.String({ maxLength: 48, description: 'Start after this event id (`0-0`: from the oldest kept).' })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: PAGE, default: 100 })),
  },
  { additionalProperties: false },
);
type EventsQuery = { types?: string; queue?: string; job?: string; after?: string; limit?: number };

function filterOf(q: EventsQuery, principal: Principal | undefined): EventFilter & { queues?: string[] } {
  if (q.job !== undefined && !isJobId(q.job)) throw new DroverError('VALIDATION', 'job: not a job id');
  if (q.queue) assertQueueAllowed(principal, q.queue);
  const f: EventFilter & { queues?: string[] } = {};
  if (q.types) f.types = q.types.split(',').map((t) => t.trim()).filter(Boolean);
  const unknown = unknownEventPatterns(f.types ?? []);
  if (unknown.length > 0) throw new DroverError('VALIDATION', `types: ${unknown.map((u) => `"${u}"`).join(', ')} is no event type: each must be ${eventPatternsHint()}`);
  if (q.queue) f.queue = q.queue;
  if (q.job) f.jobId = q.job;
  // A token limited to some queues sees only their events.
  if (principal?.queues) f.queues = principal.queues;
  return f;
}

const visible = (e: DroverEvent, f: EventFilter & { queues?: string[] }): boolean => matches(e, f) && (!f.queues || (e.queue !== null && f.queues.includes(e.queue)));

/**
 * `GET /v1/events`: with `Accept: text/event-stream`, a live SSE stream (resumable with `Last-Event-ID` or `after`,
 * without gaps or repeats); otherwise a JSON page of stored events after a cursor.
 */
export function eventRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: EventsQuery }>(
    '/v1/events',
    {
      sse: 'dual',
      config: { scope: 'read', queues: 'handler' },
      schema: {
        operationId: 'listEvents',
        tags: ['events'],
        summary: 'Lifecycle events: SSE stream (Accept: text/event-stream; resume with Last-Event-ID) or a JSON page',
        description:
          'With `Accept: text/event-stream`: a live Server-Sent Events stream, one event per lifecycle event (SSE `id` = event id, ' +
          '`event` = its type, `data` = the event as JSON; a `gap` event when events were trimmed since `Last-Event-ID`). ' +
          'Otherwise a JSON page of stored events after `after`.',
        querystring: EventsQuery,
        response: { 200: pageOf(EventSchema), ...errorResponses(400, 401, 403, 429, 503) },
      },
    },
    async (request, reply) => {
      const q = request.query;
      if (q.after !== undefined && !isEventId(q.after)) throw new DroverError('BAD_CURSOR', 'after: not an event id');
      const filter = filterOf(q, request.principal);
      if (!reply.sse) return matchingPage(ctx, filter, q.after ?? '0-0', q.limit ?? 100);
      const resumeFrom = reply.sse.lastEventId ?? q.after;
      if (resumeFrom !== undefined && !isEventId(resumeFrom)) throw new DroverError('BAD_CURSOR', 'Last-Event-ID: not an event id');
      await stream(ctx, reply, filter, resumeFrom);
    },
  );
}

async function stream(ctx: ApiContext, reply: FastifyReply, filter: EventFilter & { queues?: string[] }, resumeFrom: string | undefined): Promise<void> {
  await ctx.streams.open(callerKey(reply.request), reply);
  const sse = reply.sse;
  let last = '0-0';
  let live = false;
  let pending = 0;
  let chain = Promise.resolve();
  const buffered: DroverEvent[] = [];
  const send = (e: DroverEvent): void => {
    if (compareEventIds(e.id, last) <= 0) return;
    last = e.id;
    if (!visible(e, filter)) return;
    if (++pending > MAX_PENDING) {
      sse.close();
      return;
    }
    chain = chain.then(async () => {
      pending--;
      if (sse.isConnected) await sse.send({ id: e.id, event: e.type, data: e });
    });
  };
  // Subscribe first, then read the backlog: everything after the backlog's end arrives through the hub.
  const unsubscribe = await ctx.hub.subscribe({ event: (e) => (live ? send(e) : buffered.push(e)), end: () => sse.close() });
  sse.onClose(unsubscribe);
  sse.keepAlive();
  // Commit the response as a stream now: a quiet stream must stay open after the handler returns.
  sse.sendHeaders();
  if (resumeFrom === undefined) {
    last = ctx.hub.position;
  } else {
    last = resumeFrom;
    const oldest = await ctx.events.oldestId();
    if (resumeFrom !== '0-0' && oldest && compareEventIds(oldest, resumeFrom) > 0) {
      // Trimmed meanwhile: say so rather than pretend the stream is whole.
      await sse.send({ event: 'gap', data: { after: resumeFrom, oldestKept: oldest } });
    }
    for (let page = await ctx.events.read(last, PAGE); page.length > 0; page = await ctx.events.read(last, PAGE)) {
      for (const e of page) send(e);
      await chain;
      if (!sse.isConnected) return;
    }
  }
  for (const e of buffered) send(e);
  buffered.length = 0;
  live = true;
  await chain;
}
