import { closeOnSignals, createLogger, exitOnConfigError, loadConfigOrExit, startServiceTelemetry } from '@drover/core';
import { Runner } from './runner.js';

/** `drover runner`: one runner process, configured from the environment. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfigOrExit(env);
  const logger = createLogger(config.logLevel, 'runner', { format: config.logFormat });
  const telemetry = await startServiceTelemetry('drover-runner', config, env, logger);
  let runner: Runner;
  try {
    runner = new Runner({ config, logger, env, metrics: telemetry.metrics });
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
