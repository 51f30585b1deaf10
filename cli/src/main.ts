#!/usr/bin/env node

const USAGE = `usage: drover <command> [options]

Services:
  start       API + scheduler + runner in one process (starts a local Redis if needed)
  api         the REST API only
  scheduler   the scheduler only (delayed jobs, lost-job recovery)
  runner      a runner only (RUNNER_QUEUES, RUNNER_CONCURRENCY)

Client (talks to a running API):
  run         run a command as a job, stream its output, exit with its exit code
  submit      submit a job without waiting (--delay, --at, --replicas); prints its id
  jobs        list and search jobs (--status, --queue, --label, --runner, --name, --command, --since, --until)
  status      one job: state, exit code, times, attempts
  logs        a job's output; -f follows it until the job ends
  cancel      cancel a job (--group: every copy of a replicas job)
  retry       run a finished job again as a new job
  promote     start a delayed job now
  rm          delete finished jobs' records (unfinished ones are refused)
  schedules   cron schedules: add, ls, show, rm, kill, enable, disable, trigger, runs
  cron        the next fire times of a cron expression
  queues      queues: ls, set, pause, resume, retry, cancel, clean
  runners     runners: ls, drain, resume
  namespaces  the namespaces this token works in; create adds one
  whoami      the token's name, scope, queues and namespaces

drover help <command> or drover <command> --help shows a command's options; --json prints the API's JSON.
Exit codes: 0 done, 1 the API refused or could not be reached, 2 wrong usage; drover run exits with the
job's own code (124 timed out, 130 cancelled or Ctrl-C, 128+N killed by signal N, 1 failed without a code).
The services read their configuration from the environment (see docs/configuration.md). The client reads DROVER_URL
(default http://127.0.0.1:8606) and DROVER_TOKEN, or else ~/.config/drover/config.json: {"url": ..., "token": ...}.
--namespace <name> (before or after the command; else DROVER_NAMESPACE, or "namespace" in the config file) sends
every request to that namespace; without one, a token of one namespace works there and any other in default.`;

// Loaded on demand: a runner must not carry the API's modules, since every spawn copies the runner's memory.
const services: Record<string, (env: NodeJS.ProcessEnv) => Promise<void>> = {
  start: async (env) => (await import('./start.js')).startAllInOne(env),
  api: async (env) => (await import('@drover/api')).main(env),
  scheduler: async (env) => (await import('@drover/scheduler')).main(env),
  runner: async (env) => (await import('@drover/runner')).main(env),
};

// The client commands load ./client only, never the server packages.
const CLIENT = new Set(['run', 'submit', 'jobs', 'status', 'logs', 'cancel', 'retry', 'promote', 'rm', 'schedules', 'cron', 'queues', 'runners', 'namespaces', 'whoami']);

/** `drover --namespace x <command> ...`: the client's one option before the command's name (it holds for that command). */
function leadingNamespace(argv: string[]): { namespace?: string; rest: string[] } {
  const [first, second] = argv;
  if (first === '--namespace' && second !== undefined) return { namespace: second, rest: argv.slice(2) };
  if (first?.startsWith('--namespace=')) return { namespace: first.slice('--namespace='.length), rest: argv.slice(1) };
  return { rest: argv };
}

/** Exits once stdout and stderr are flushed, so piped output is not cut off (open keep-alive sockets would delay a natural exit). */
function exitFlushed(code: number): void {
  let pending = 2;
  const done = (): void => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}

// `drover logs <id> | head`: the reader left; stop quietly, as a shell pipeline expects (128 + SIGPIPE).
process.stdout.on('error', (err: NodeJS.ErrnoException) => process.exit(err.code === 'EPIPE' ? 141 : 1));

const { namespace, rest } = leadingNamespace(process.argv.slice(2));
const globals = namespace === undefined ? {} : { namespace };
const [name, ...args] = rest;
const service = name ? services[name] : undefined;
if (service && namespace !== undefined) {
  // The services read RUNNER_NAMESPACE and the request's header; a client option would be silently ignored.
  process.stderr.write(`drover ${name}: --namespace is an option of the client commands (a runner serves RUNNER_NAMESPACE)\n`);
  process.exit(2);
} else if (service) {
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  service(process.env).catch((err: unknown) => {
    process.stderr.write(`drover ${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
} else if (name !== undefined && CLIENT.has(name)) {
  const { runClient } = await import('./client/index.js');
  exitFlushed(await runClient(name, args, process.env, globals));
} else if (name === 'help' && args[0] !== undefined && CLIENT.has(args[0])) {
  const { runClient } = await import('./client/index.js');
  exitFlushed(await runClient(args[0], ['--help'], process.env, globals));
} else if (name === 'help' || name === '--help' || name === '-h') {
  process.stdout.write(`${USAGE}\n`);
} else {
  process.stderr.write(name === undefined ? `${USAGE}\n` : `drover: unknown command "${name}"\nusage: drover <command> [options]   (drover help lists the commands)\n`);
  process.exit(2);
}
