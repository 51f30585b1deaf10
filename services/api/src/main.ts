import { closeOnSignals, createLogger, exitOnConfigError, loadConfigOrExit, startServiceTelemetry } from '@drover/core';
import { loadTokens, type TokenRegistry } from './auth.js';
import { startApiServer } from './server.js';

/** `drover api`: one API process, configured from the environment. Refuses to start without a token. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfigOrExit(env);
  let tokens: TokenRegistry;
  try {
    tokens = loadTokens(config);
  } catch (err) {
    exitOnConfigError(err);
  }
  const logger = createLogger(config.logLevel, 'api', { format: config.logFormat });
  const telemetry = await startServiceTelemetry('drover-api', config, env, logger);
  const server = await startApiServer({ config, logger, tokens, metrics: telemetry.metrics });
  closeOnSignals(async () => {
    await server.close();
    await telemetry.close();
  }, logger);
  await telemetry.serve({ live: () => true, ready: () => server.isReady() });
  logger.info({ url: server.url }, 'api listening');
}
