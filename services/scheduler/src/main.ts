import { closeOnSignals, createLogger, loadConfigOrExit } from '@drover/core';
import { Scheduler } from './scheduler.js';

/** `drover scheduler`: one scheduler process, configured from the environment. */
export async function main(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfigOrExit(env);
  const logger = createLogger(config.logLevel, 'scheduler');
  const scheduler = new Scheduler({ config, logger });
  closeOnSignals(() => scheduler.close(), logger);
  await scheduler.start();
}
