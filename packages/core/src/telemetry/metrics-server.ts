import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { coerceError } from '../errors.js';
import type { DroverMetrics } from './metrics.js';

export interface ProbeChecks {
  /** Liveness: false means restart me (a stuck consumer, say). */
  live: () => boolean;
  /** Readiness: false while starting or draining. */
  ready: () => boolean;
  /** Facts shown beside the readiness status (a runner's job containment, say). */
  details?: () => Record<string, unknown>;
}

export interface MetricsServer {
  /** The bound port (useful with DROVER_METRICS_PORT=0). */
  port: number;
  close(): Promise<void>;
}

/**
 * A process's own `/metrics` (Prometheus text), `/healthz` and `/readyz`, on DROVER_METRICS_HOST:PORT. The scheduler
 * and runners have no other HTTP server, so this is also where Kubernetes probes them. Unauthenticated: bind it to
 * loopback or a network only Prometheus and the kubelet reach.
 */
export async function serveMetrics(
  metrics: DroverMetrics,
  where: { host: string; port: number },
  checks: ProbeChecks,
  log: Logger,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      metrics.render().then(
        ({ contentType, body }) => res.writeHead(200, { 'content-type': contentType }).end(body),
        (err: unknown) => {
          log.error({ err: coerceError(err) }, 'collecting metrics failed');
          res.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n');
        },
      );
      return;
    }
    const probe = path === '/healthz' ? checks.live : path === '/readyz' ? checks.ready : undefined;
    if (!probe) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics, /healthz or /readyz\n');
      return;
    }
    const ok = probe();
    const details = probe === checks.ready ? checks.details?.() : undefined;
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ status: ok ? 'ok' : 'unavailable', ...(details ? { details } : {}) }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(where.port, where.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info({ host: where.host, port }, 'metrics and probes listening');
  return {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/**
 * For entry points: serve when DROVER_METRICS_PORT is not `off`. A port already taken (two runners on one host
 * with the default) is logged and skipped rather than stopping the service: its jobs matter more than its metrics.
 */
export async function maybeServeMetrics(
  metrics: DroverMetrics,
  where: { host: string; port: number | null },
  checks: ProbeChecks,
  log: Logger,
): Promise<MetricsServer | undefined> {
  if (where.port === null) return undefined;
  try {
    return await serveMetrics(metrics, { host: where.host, port: where.port }, checks, log);
  } catch (err) {
    log.error({ err: coerceError(err), host: where.host, port: where.port }, 'cannot serve /metrics (set DROVER_METRICS_PORT to a free port, 0 for any, or off); continuing without');
    return undefined;
  }
}
