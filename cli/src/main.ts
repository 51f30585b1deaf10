#!/usr/bin/env node

const USAGE = `usage: drover <command>

  start       API + scheduler + runner in one process (starts a local Redis if needed)
  api         the REST API only
  scheduler   the scheduler only (delayed jobs, lost-job recovery)
  runner      a runner only (RUNNER_QUEUES, RUNNER_CONCURRENCY)

Configuration is read from the environment; see README.md.`;

// Loaded on demand: a runner must not carry the API's modules, since every spawn copies the runner's memory.
const commands: Record<string, (env: NodeJS.ProcessEnv) => Promise<void>> = {
  start: async (env) => (await import('./start.js')).startAllInOne(env),
  api: async (env) => (await import('@drover/api')).main(env),
  scheduler: async (env) => (await import('@drover/scheduler')).main(env),
  runner: async (env) => (await import('@drover/runner')).main(env),
};

const name = process.argv[2];
const command = name ? commands[name] : undefined;
if (!command) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(name === undefined || name === 'help' || name === '--help' ? 0 : 2);
}
command(process.env).catch((err: unknown) => {
  process.stderr.write(`drover ${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
