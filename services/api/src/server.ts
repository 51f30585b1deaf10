import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import {
  DEFAULT_NAMESPACE, Keys, NamespaceStore, coerceError, namespacePrefix, type Transport,
  ArchiveStore, DEFAULT_SPEC_DEFAULTS, EnvCipher, OutboundPolicy, type Resolver, DroverMetrics, EventStore, QueueStore, WebhookStore, WorkflowStore, RunnerRegistry, checkRedisDurability, loadPolicy, JobStore, LogStore, ScheduleStore, connectRedis, createRedis, createTransport, logBrokerEvents, type DroverConfig, type TransportConfig, type Logger,
} from '@drover/core';
import type { FastifyInstance, FastifyServerFactory } from 'fastify';
import { namespaceRouter } from './namespace-router.js';
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

/** One namespace's app and what only it uses. */
interface Space {
  app: FastifyInstance;
  transport: Transport;
  /** Ends the namespace's event streams (SSE): the server's close waits for every open connection. */
  endStreams(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The API process: connections, one app per namespace behind one HTTP server (namespace-router.ts), listen,
 * ordered close. The default namespace's app is built at start and owns the server; another namespace's on its
 * first request.
 */
export async function startApiServer(opts: ApiServerOptions): Promise<ApiServer> {
  const { config, logger } = opts;
  const policy = loadPolicy(config.policyFile);
  const redis = createRedis(config.redisUrl, 'producer', 'drover-api');
  redis.on('error', (err) => logger.warn({ err: err.message }, 'redis connection error'));
  // Env values are sealed by the stores when they are written, so no route can forget to.
  const envCipher = config.envKey ? new EnvCipher(config.envKey) : undefined;
  const metrics = opts.metrics ?? new DroverMetrics({ defaultMetrics: false });
  await connectRedis(redis, 10_000);
  await checkRedisDurability(redis, logger);
  const deploymentKeys = new Keys(config.prefix);
  const namespaces = new NamespaceStore(redis, config.prefix);
  const streams = new StreamSlots(redis, deploymentKeys.name('streams'), config.maxStreamsPerToken, logger);
  const outbound = new OutboundPolicy(config.outbound.allow, opts.resolver);
  const beforePublish = config.faults?.publishDelayMs ? faultDelay(config.faults.publishDelayMs, logger) : undefined;

  const openSpace = async (namespace: string, serverFactory?: FastifyServerFactory): Promise<Space> => {
    const prefix = namespacePrefix(config.prefix, namespace);
    const log = namespace === DEFAULT_NAMESPACE ? logger : logger.child({ namespace });
    const nsMetrics = metrics.forNamespace(namespace);
    const store = new JobStore(redis, prefix, envCipher);
    const transport = createTransport({ ...config, prefix }, logBrokerEvents(log, config.broker, nsMetrics), (m) => log.warn(m));
    await transport.ready();
    const events = new EventStore(redis, store.keys);
    const archive = config.databaseUrl ? new ArchiveStore(config.databaseUrl, prefix) : undefined;
    await archive?.migrate();
    const hub = new EventHub(events, log);
    const app = await buildApp(
      {
        namespace,
        namespaces,
        deploymentKeys,
        store,
        logs: new LogStore(redis, store.keys),
        schedules: new ScheduleStore(redis, store.keys, envCipher),
        queues: new QueueStore(store),
        events,
        hub,
        outbound,
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
        ...(beforePublish ? { beforePublish } : {}),
        killGraceMs: config.killGraceMs,
        metrics: nsMetrics,
        log,
      },
      {
        bodyLimitBytes: config.bodyLimitBytes, rateLimitPerMinute: config.rateLimitPerMinute, authFailLimitPerMinute: config.authFailLimitPerMinute,
        requestTimeoutMs: config.requestTimeoutMs, logger: log, ...(config.publicUrl ? { publicUrl: config.publicUrl } : {}), ...(serverFactory ? { serverFactory } : {}),
      },
    );
    // The app that owns the server is readied by listen; the others answer through routing() once ready.
    if (!serverFactory) await app.ready();
    return {
      app,
      transport,
      endStreams: () => hub.close(),
      close: async () => {
        if (!serverFactory) await app.close().catch((err: unknown) => log.error({ err }, 'closing namespace app failed'));
        await transport.close().catch((err: unknown) => log.error({ err }, 'closing transport failed'));
        await archive?.close().catch(() => undefined);
      },
    };
  };

  const others = new Map<string, Promise<Space>>();
  const handlerFor = async (ns: string): Promise<(req: IncomingMessage, res: ServerResponse) => void> => {
    let space = others.get(ns);
    if (!space) {
      space = openSpace(ns);
      others.set(ns, space);
      // A namespace that could not be opened (broker down) is tried again by its next request.
      space.catch(() => others.delete(ns));
    }
    const { app } = await space;
    return (req, res) => app.routing(req, res);
  };
  const serverFactory: FastifyServerFactory = (handler, o) => {
    const route = namespaceRouter({
      tokens: opts.tokens, registry: namespaces, handlerFor,
      onError: (err, namespace) => logger.error({ err: coerceError(err), namespace }, 'cannot serve namespace'),
    }, handler);
    // What Fastify sets on a server of its own.
    const server = createServer(route);
    server.keepAliveTimeout = Number(o.keepAliveTimeout ?? 72_000);
    server.requestTimeout = Number(o.requestTimeout ?? 0);
    server.setTimeout(Number(o.connectionTimeout ?? 0));
    return server;
  };
  const main = await openSpace(DEFAULT_NAMESPACE, serverFactory);
  const url = await main.app.listen({ host: config.host, port: config.port });
  let closing: Promise<void> | undefined;
  const opened = async (): Promise<Space[]> => (await Promise.allSettled(others.values())).flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  return {
    app: main.app,
    url,
    isReady: () => closing === undefined && main.transport.isConnected(),
    close: () => {
      closing ??= (async () => {
        streams.close();
        const spaces = await opened();
        for (const space of [main, ...spaces]) await space.endStreams();
        // Then the server: no request reaches a namespace being closed.
        await main.app.close().catch((err: unknown) => logger.error({ err }, 'closing http server failed'));
        for (const space of spaces) {
          await space.app.close().catch(() => undefined);
          await space.close();
        }
        await main.close();
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
