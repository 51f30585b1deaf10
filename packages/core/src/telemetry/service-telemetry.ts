import type { Logger } from 'pino';
import type { DroverConfig } from '../config.js';
import { DroverMetrics } from './metrics.js';
import { maybeServeMetrics, type ProbeChecks } from './metrics-server.js';
import { startTracing } from './tracing.js';

export interface ServiceTelemetry {
  metrics: DroverMetrics;
  /** Starts the metrics/probe server once the service can answer its checks. */
  serve(checks: ProbeChecks): Promise<void>;
  /** Stops the metrics server and flushes pending spans. */
  close(): Promise<void>;
}

/**
 * What every entry point sets up first: tracing (before any span is started) and the process's metrics registry.
 * `service` names the OTel resource (`drover-api`, ...) unless OTEL_SERVICE_NAME says otherwise.
 */
export async function startServiceTelemetry(
  service: string,
  config: Pick<DroverConfig, 'metrics'>,
  env: Readonly<Record<string, string | undefined>>,
  log: Logger,
): Promise<ServiceTelemetry> {
  const stopTracing = await startTracing(service, env, log);
  const metrics = new DroverMetrics();
  let server: Awaited<ReturnType<typeof maybeServeMetrics>>;
  return {
    metrics,
    serve: async (checks) => {
      server = await maybeServeMetrics(metrics, config.metrics, checks, log);
    },
    close: async () => {
      await server?.close();
      await stopTracing();
    },
  };
}
