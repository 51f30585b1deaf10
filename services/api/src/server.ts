import {
  ArchiveStore, DEFAULT_SPEC_DEFAULTS, EnvCipher, OutboundPolicy, type Resolver, DroverMetrics, EventStore, QueueStore, WebhookStore, WorkflowStore, RunnerRegistry, checkRedisDurability, loadPolicy, JobStore, LogStore, ScheduleStore, connectRedis, createRedis, createTransport, logBrokerEvents, type DroverConfig, type TransportConfig, type Logger,
} from '@drover/core';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { EventHub } from './event-hub.js';
import { StreamSlots } from './stream-slots.js';
import type { TokenRegistry } from './auth.js';

export interface ApiServer {
  app: FastifyInstance;
  /** The address it listens on, e.g. http://127.0.0.1:8606. */
  url: string;
  /** The broker connection is up (what the metrics port's /readyz reports; /readyz on the API port also pings Redis). */
  isReady(): boolean;
  close(): Promise<void>;
}

export interface ApiServerOptions {
  config: TransportConfig & Pick<DroverConfig, 'host' | 'port' | 'bodyLimitBytes' | 'killGraceMs' | 'maxDelayMs' | 'faults' | 'rateLimitPerMinute' | 'authFailLimitPerMinute' | 'maxJobsPerRequest' | 'maxStreamsPerToken' | 'requestTimeoutMs' | 'policyFile' | 'runner' | 'compat' | 'scripts' | 'outbound'> & Partial<Pick<DroverConfig, 'databaseUrl' | 'envKey' | 'idempotencyTtlMs' | 'publicUrl'>>;
  logger: Logger;
  tokens: TokenRegistry;
  /** The process's metrics registry (shared by the services of `drover start`); default: a private one. */
  metrics?: DroverMetrics;
  /** How submitted callback and webhook URLs are resolved; default the system's (dns.lookup). Tests inject one. */
  resolver?: Resolver;
}

/** The API process: connections, app, listen, ordered close. */
export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const { config, logger } = opts;
  const policy = loadPolicy(config.policyFile);
  const redis = createRedis(config.redisUrl, 'producer', 'drover-api');
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  // Env values are sealed by the stores when they are written, so no route can forget to.
  const envCipher = config.envKey ? new EnvCipher(config.envKey) : undefined;
  const store = new JobStore(redis, config.prefix, envCipher);
  const metrics = opts.metrics ?? new DroverMetrics({ defaultMetrics: false });
  const transport = createTransport(config, logBrokerEvents(logger, config.broker, metrics), (m) => logger.warn(m));
  await connectRedis(redis, 10_000);
  await checkRedisDurability(redis, logger);
  await transport.ready();
  const events = new EventStore(redis, store.keys);
  const archive = config.databaseUrl ? new ArchiveStore(config.databaseUrl, config.prefix) : undefined;
  await archive?.migrate();
  const hub = new EventHub(events, logger);
  const streams = new StreamSlots(redis, store.keys.name('streams'), config.maxStreamsPerToken, logger);
  const app = await buildApp(
    {
      store,
      logs: new LogStore(redis, store.keys),
      schedules: new ScheduleStore(redis, store.keys, envCipher),
      queues: new QueueStore(store),
      events,
      hub,
      outbound: new OutboundPolicy(config.outbound.allow, opts.resolver),
      streams,
      maxJobsPerRequest: config.maxJobsPerRequest,
      webhooks: new WebhookStore(redis, store.keys),
      workflows: new WorkflowStore(redis, store.keys, envCipher),
      ...(archive ? { archive } : {}),
      runners: new RunnerRegistry(redis, store.keys),
      transport,
      control: redis,
      tokens: opts.tokens,
      specDefaults: DEFAULT_SPEC_DEFAULTS,
      maxDelayMs: config.maxDelayMs,
      ...(config.idempotencyTtlMs ? { idempotencyTtlMs: config.idempotencyTtlMs } : {}),
      scripts: config.scripts,
      compatOpen: config.compat.open,
      compatQueue: config.compat.queue,
      identities: { users: config.runner.allowedUsers, groups: config.runner.allowedGroups },
      ...(policy ? { policy } : {}),
      ...(config.faults?.publishDelayMs ? { beforePublish: faultDelay(config.faults.publishDelayMs, logger) } : {}),
      killGraceMs: config.killGraceMs,
      metrics,
      log: logger,
    },
    { bodyLimitBytes: config.bodyLimitBytes, rateLimitPerMinute: config.rateLimitPerMinute, authFailLimitPerMinute: config.authFailLimitPerMinute, requestTimeoutMs: config.requestTimeoutMs, logger, ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}) },
  );
  const url = await app.listen({ host: config.host, port: config.port });
  let closing: Promise<void> | undefined;
  return {
    app,
    url,
    isReady: () => closing === undefined && transport.isConnected(),
    close: () => {
      closing ??= (async () => {
        streams.close();
        await hub.close();
        await app.close().catch((err: unknown) => logger.error({ err }, 'closing http server failed'));
        await transport.close().catch((err: unknown) => logger.error({ err }, 'closing transport failed'));
        await archive?.close().catch(() => undefined);
        await redis.quit().catch(() => redis.disconnect());
      })();
      return closing;
    },
  };
}

function faultDelay(ms: number, logger: Logger): () => Promise<void> {
  logger.warn({ publishDelayMs: ms }, 'FAULT HOOK ACTIVE: submissions are held between persisting and publishing (testing only)');
  return () => new Promise((r) => setTimeout(r, ms));
}
