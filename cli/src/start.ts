import { loadTokens, startApiServer } from '@drover/api';
import { closeOnSignals, coerceError, createLogger, loadConfigOrExit, orExitOnConfigError, startServiceTelemetry } from '@drover/core';
import { NamespacedRunner, chooseJobUser } from '@drover/runner';
import { NamespacedScheduler } from '@drover/scheduler';
import { ensureAdminToken } from './admin-token.js';
import { ensureCallbackSecret } from './callback-secret.js';
import { ensureRedis } from './local-redis.js';

/** `drover start`: API, scheduler and runner in one process, plus a local Redis if none is reachable. */
export async function startAllInOne(env: NodeJS.ProcessEnv): Promise<void> {
  // One box runs every queue of every namespace: a job nobody serves would otherwise wait forever (RUNNER_QUEUES and
  // RUNNER_NAMESPACE override).
  const config = loadConfigOrExit({ ...env, RUNNER_QUEUES: env.RUNNER_QUEUES ?? '*', RUNNER_NAMESPACE: env.RUNNER_NAMESPACE ?? '*' });
  const logger = createLogger(config.logLevel, 'drover', { format: config.logFormat });
  const say = (msg: string): void => void process.stderr.write(`drover: ${msg}\n`);

  let adminToken = config.adminToken;
  if (adminToken === undefined && config.tokensFile === undefined) {
    const t = orExitOnConfigError(() => ensureAdminToken(config.dataDir));
    adminToken = t.token;
    say(`${t.created ? 'generated an admin token' : 'using the admin token'} stored in ${t.path}:`);
    say(`  export TOKEN=${t.token}`);
  }
  let callbackSecret = config.scheduler.callbackSecret;
  if (callbackSecret === undefined) {
    const c = orExitOnConfigError(() => ensureCallbackSecret(config.dataDir));
    callbackSecret = c.secret;
    say(`${c.created ? 'generated the key that signs job callbacks' : 'signing job callbacks with the key'} in ${c.path} (docs/webhooks.md)`);
  }
  const tokens = orExitOnConfigError(() => loadTokens({ adminToken, tokensFile: config.tokensFile }));
  // Checked before a local Redis is started, as the runner will again.
  orExitOnConfigError(() => chooseJobUser(config.runner.jobUser, undefined, config.runner.jobUids));

  let redis;
  try {
    redis = await ensureRedis(config.redisUrl, config.dataDir, say);
  } catch (err) {
    say(coerceError(err).message);
    process.exit(1);
  }
  // One registry for the three services: /metrics on the API port (read token) and on the metrics port show it all.
  const telemetry = await startServiceTelemetry('drover', config, env, logger);
  const { metrics } = telemetry;
  const scheduler = new NamespacedScheduler({ config: { ...config, scheduler: { ...config.scheduler, callbackSecret } }, logger: logger.child({ service: 'scheduler' }), metrics });
  const runner = new NamespacedRunner({ config, logger: logger.child({ service: 'runner' }), env, metrics });
  let api: Awaited<ReturnType<typeof startApiServer>> | undefined;
  const close = async (): Promise<void> => {
    // Stop accepting requests, drain the runner, stop firing, then the Redis we own.
    await api?.close();
    await runner.close();
    await scheduler.close();
    await telemetry.close();
    await redis.stop();
  };
  closeOnSignals(close, logger);
  try {
    await scheduler.start();
    await runner.start();
    api = await startApiServer({ config, logger: logger.child({ service: 'api' }), tokens, metrics });
    const started = api;
    await telemetry.serve({ live: () => runner.isLive() && scheduler.isLive(), ready: () => started.isReady() && scheduler.isReady() && runner.state === 'running', details: () => runner.readinessDetails() });
  } catch (err) {
    logger.fatal({ err: coerceError(err) }, 'start failed');
    await close().catch(() => undefined);
    process.exit(1);
  }
  say(`listening on ${api.url}  (API docs: ${api.url}/docs)`);
}
