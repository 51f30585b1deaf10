import { closeOnSignals, createLogger, loadConfigOrExit } from '@drover/core';
import { Runner } from './runner.js';

/** `drover runner`: one runner process, configured from the environment. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfigOrExit(env);
  const logger = createLogger(config.logLevel, 'runner');
  const runner = new Runner({ config, logger, env });
  closeOnSignals(() => runner.close(), logger);
  await runner.start();
}
