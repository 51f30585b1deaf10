import { closeOnSignals, createLogger, exitOnConfigError, loadConfigOrExit } from '@drover/core';
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
  const logger = createLogger(config.logLevel, 'api');
  const server = await startApiServer({ config, logger, tokens });
  closeOnSignals(() => server.close(), logger);
  logger.info({ url: server.url }, 'api listening');
}
