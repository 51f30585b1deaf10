import { closeOnSignals, createLogger, exitOnConfigError, loadConfigOrExit, startServiceTelemetry } from '@drover/core';
import { NamespacedRunner } from './namespaced.js';

/** `drover runner`: one runner process for the namespaces of RUNNER_NAMESPACE, configured from the environment. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfigOrExit(env);
  const logger = createLogger(config.logLevel, 'runner', { format: config.logFormat });
  const telemetry = await startServiceTelemetry('drover-runner', config, env, logger);
  let runner: NamespacedRunner;
  try {
    runner = new NamespacedRunner({ config, logger, env, metrics: telemetry.metrics });
  } catch (err) {
    exitOnConfigError(err); // RUNNER_JOB_USER that cannot be honoured, an unreadable policy file
  }
  closeOnSignals(async () => {
    await runner.close();
    await telemetry.close();
  }, logger);
  await telemetry.serve({ live: () => runner.isLive(), ready: () => runner.state === 'running', details: () => runner.readinessDetails() });
  await runner.start();
}
