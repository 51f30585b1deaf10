import { closeOnSignals, createLogger, exitOnConfigError, loadConfigOrExit, startServiceTelemetry } from '@drover/core';
import { NamespacedScheduler } from './namespaced.js';

/** `drover scheduler`: one scheduler process for every namespace, configured from the environment. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfigOrExit(env);
  const logger = createLogger(config.logLevel, 'scheduler', { format: config.logFormat });
  const telemetry = await startServiceTelemetry('drover-scheduler', config, env, logger);
  let scheduler: NamespacedScheduler;
  try {
    scheduler = new NamespacedScheduler({ config, logger, metrics: telemetry.metrics });
  } catch (err) {
    exitOnConfigError(err);
  }
  closeOnSignals(async () => {
    await scheduler.close();
    await telemetry.close();
  }, logger);
  await telemetry.serve({ live: () => scheduler.isLive(), ready: () => scheduler.isReady() });
  await scheduler.start();
}
