import { optionWords, optionsHelp, parseCommandLine, type Options } from './args.js';
import { createCtx, type CommandDef, type Ctx, type Globals, type Group } from './command.js';
import { configPath } from './config.js';
import { ApiError, CliError, UsageError } from './errors.js';
import { cancel, jobs, logs, promote, retry, statusCommand, submit } from './jobs.js';
import { namespaces } from './namespaces.js';
import { queues } from './queues.js';
import { rm } from './rm.js';
import { run } from './run.js';
import { runners } from './runners.js';
import { cron, schedules } from './schedules.js';
import { whoami } from './whoami.js';

/** The commands that talk to a running API over HTTP. They load none of the server packages. */
const COMMANDS: Record<string, CommandDef | Group> = {
  run,
  submit,
  jobs,
  status: statusCommand,
  logs,
  cancel,
  retry,
  promote,
  rm,
  schedules,
  cron,
  queues,
  runners,
  namespaces,
  whoami,
};

/** Options of every command, after its own in `--help`. */
const GLOBAL_OPTIONS: Options = {
  namespace: { type: 'string', arg: 'name', desc: 'work in this namespace (default: DROVER_NAMESPACE, "namespace" in the config file, else the token\'s only one or default)' },
  help: { type: 'boolean', short: 'h', desc: 'show this help' },
};
const ALIASES: Record<string, string> = { list: 'ls', delete: 'rm', remove: 'rm' };

const isGroup = (c: CommandDef | Group): c is Group => 'commands' in c;

/** A last argument named `name...` takes one or more words (`drover rm <id>...`); its name in messages is `<name>`. */
const takesMore = (def: CommandDef): boolean => def.args?.at(-1)?.endsWith('...') === true;
const argName = (arg: string): string => arg.replace(/\.\.\.$/, '');

function commandHelp(path: string, def: CommandDef): string {
  const options = optionsHelp({ ...def.options, ...GLOBAL_OPTIONS });
  return [`usage: drover ${path} ${def.usage}`, '', `${def.summary[0]!.toUpperCase()}${def.summary.slice(1)}.`, ...(def.help ? ['', def.help] : []), '', 'options:', options].join('\n');
}

function groupHelp(name: string, group: Group): string {
  const width = Math.max(...Object.keys(group.commands).map((s) => s.length));
  const lines = Object.entries(group.commands).map(([sub, def]) => `  ${name} ${sub.padEnd(width)}  ${def.summary}`);
  const usage = group.default ? `usage: drover ${name} [<command>] [options]` : `usage: drover ${name} <command> [options]`;
  const alone = group.default ? [`drover ${name} alone runs drover ${name} ${group.default}.`] : [];
  return [usage, '', `${group.summary[0]!.toUpperCase()}${group.summary.slice(1)}.`, '', ...lines, '', ...alone, `drover ${name} <command> --help shows a command's options.`].join('\n');
}

/** Exit codes: 0 done, 1 the API refused or could not be reached, 2 wrong usage; `run` passes on the job's own. */
function report(ctx: Ctx, err: unknown, path: string, def: CommandDef | undefined): number {
  if (err instanceof UsageError) {
    ctx.err(`drover ${path}: ${err.message}`);
    if (def) ctx.err(`usage: drover ${path} ${def.usage}  (drover ${path} --help for more)`);
    return 2;
  }
  if (err instanceof ApiError) {
    ctx.err(`drover: ${err.message} (${err.code}, HTTP ${err.status})`);
    if (err.status === 401) ctx.err(`drover: check the token in ${ctx.env.DROVER_TOKEN ? 'DROVER_TOKEN' : configPath(ctx.env)}`);
    return 1;
  }
  if (err instanceof CliError) {
    ctx.err(`drover: ${err.message}`);
    return err.exitCode;
  }
  ctx.err(`drover ${path}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return 1;
}

/**
 * Runs one client command; resolves with the exit code (nothing is printed after it). `globals`: options given
 * before the command's name (`drover --namespace x jobs`); the same options after it win.
 */
export async function runClient(name: string, argv: string[], env: NodeJS.ProcessEnv, globals: Globals = {}): Promise<number> {
  const given: Globals = { ...globals };
  const ctx = createCtx(env, given);
  let path = name;
  let def: CommandDef | undefined;
  try {
    const entry = COMMANDS[name];
    if (!entry) throw new UsageError(`unknown command "${name}"`);
    if (isGroup(entry)) {
      const sub = argv[0];
      if (sub === '--help' || sub === '-h' || sub === 'help') {
        ctx.out(groupHelp(name, entry));
        return 0;
      }
      // `drover namespaces` and `drover namespaces --json`: the group's default subcommand.
      const implied = entry.default !== undefined && (sub === undefined || sub.startsWith('-')) ? entry.default : undefined;
      def = implied !== undefined ? entry.commands[implied] : sub === undefined ? undefined : entry.commands[ALIASES[sub] ?? sub];
      if (!def) {
        ctx.err(`drover ${name}: ${sub === undefined ? 'which command?' : `unknown command "${sub}"`}\n${groupHelp(name, entry)}`);
        return 2;
      }
      path = `${name} ${implied ?? sub}`;
      if (implied === undefined) argv = argv.slice(1);
    } else {
      def = entry;
    }
    const options = { ...def.options, ...GLOBAL_OPTIONS };
    const leading = def.args?.length ?? 0;
    if (optionWords(argv, options, def.command === true, leading).some((w) => w === '--help' || w === '-h')) {
      ctx.out(commandHelp(path, def));
      return 0;
    }
    const parsed = parseCommandLine(argv, options, def.command === true, leading);
    const missing = def.args?.[parsed.args.length];
    if (missing !== undefined) throw new UsageError(`missing <${argName(missing)}>`);
    if (parsed.args.length > leading && !takesMore(def)) throw new UsageError(`unexpected argument "${parsed.args[leading]}"`);
    if (def.command === true && parsed.command.length === 0) throw new UsageError('missing the command to run (after --)');
    given.namespace = parsed.opts.str('namespace') ?? given.namespace;
    return (await def.run(ctx, parsed)) ?? 0;
  } catch (err) {
    return report(ctx, err, path, def);
  }
}
