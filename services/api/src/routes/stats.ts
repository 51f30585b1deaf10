import { DroverError, QueueName, STATS_OUTCOMES, StatsStore, type StatsRange } from '@drover/core';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ApiContext } from '../context.js';
import { canSee } from '../queue-scope.js';
import { ErrorResponse } from '../schemas.js';
import { StatsAggregator } from '../stats-aggregator.js';

/** Most queues one answer covers (the first by name); `queue=` asks for one in particular. */
export const STATS_MAX_QUEUES = 50;

const Num = Type.Number();
const NullableNum = Type.Union([Type.Number(), Type.Null()]);
const Series = Type.Array(Num);
const NullableSeries = Type.Array(NullableNum);
const Outcomes = Type.Object(Object.fromEntries(STATS_OUTCOMES.map((o) => [o, Series])) as Record<(typeof STATS_OUTCOMES)[number], typeof Series>);

const QueueStatsSchema = Type.Object({
  name: Type.String(),
  outcomes: Outcomes,
  started: Series,
  retried: Series,
  wait: Type.Object({ p50: NullableSeries, p90: NullableSeries, p99: NullableSeries }, { description: 'Queue wait (queued to started) per bucket, ms.' }),
  totals: Type.Object({ ...Object.fromEntries(STATS_OUTCOMES.map((o) => [o, Num])), started: Num, retried: Num }),
  waitOverall: Type.Object({ p50: NullableNum, p90: NullableNum, p99: NullableNum, count: Num }),
});

export const StatsResponse = Type.Object({
  range: Type.Union([Type.Literal('hour'), Type.Literal('day')]),
  stepMs: Type.Integer({ description: 'Bucket width: 60000 (hour) or 900000 (day).' }),
  times: Type.Array(Type.Integer(), { description: 'Start of each bucket, epoch ms, oldest first.' }),
  queues: Type.Array(QueueStatsSchema),
  truncated: Type.Boolean({ description: `More queues than ${STATS_MAX_QUEUES} are visible: ask for the others with queue=.` }),
  runners: Type.Union([
    Type.Array(Type.Object({ id: Type.String(), running: NullableSeries, slots: NullableSeries })),
    Type.Null(),
  ], { description: 'Each runner\'s mean running jobs and slots per bucket (sampled); null for a token restricted to some queues.' }),
});

const StatsQuery = Type.Object({
  range: Type.Optional(Type.Union([Type.Literal('hour'), Type.Literal('day')], { description: 'hour: 60 one-minute buckets (default); day: 96 quarter-hour buckets.' })),
  queue: Type.Optional(QueueName),
}, { additionalProperties: false });

/**
 * Throughput, failures, queue-wait percentiles per queue and runner load over the last hour or day, from the
 * aggregates the API keeps itself (the dashboard's charts; no Prometheus needed). Also starts this replica's
 * aggregator, which lives and stops with the app.
 */
export function statsRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const stats = new StatsStore(ctx.store.redis, ctx.store.keys);
  const aggregator = new StatsAggregator({ events: ctx.events, jobs: ctx.store, stats, runners: ctx.runners, log: ctx.log });
  app.addHook('onReady', async () => {
    // Redis down at start: the loop creates the group when it can.
    await aggregator.start().catch((err: unknown) => ctx.log.warn({ err }, 'starting the dashboard statistics failed; retrying'));
  });
  app.addHook('onClose', async () => aggregator.close());

  app.get<{ Querystring: { range?: StatsRange; queue?: string } }>(
    '/v1/stats',
    {
      config: { scope: 'read', queues: 'handler' },
      schema: {
        operationId: 'getStats',
        tags: ['stats'],
        summary: 'Per-queue throughput, failures and queue-wait percentiles, and runner load, over the last hour or day',
        description: 'Requires scope `read`. A token restricted to some queues sees only those queues, and no runner load (runners are shared).',
        querystring: StatsQuery,
        response: { 200: StatsResponse, 400: ErrorResponse, 401: ErrorResponse, 404: ErrorResponse, 429: ErrorResponse, 503: ErrorResponse },
      },
    },
    async (request) => {
      const { range = 'hour', queue } = request.query;
      const visible = (await ctx.queues.names()).filter((n) => canSee(request.principal, [n]));
      let names = visible;
      if (queue !== undefined) {
        // Another queue's name answers what a missing one answers.
        if (!visible.includes(queue)) throw new DroverError('NOT_FOUND', `no queue ${queue}`);
        names = [queue];
      }
      const view = await stats.read(range, names.slice(0, STATS_MAX_QUEUES), { runners: !request.principal?.queues });
      return { ...view, truncated: names.length > STATS_MAX_QUEUES };
    },
  );
}
