import type { Options, Parsed } from './args.js';
import { loadClientConfig, tokenHint } from './config.js';
import { CliError } from './errors.js';
import { colorEnabled } from './format.js';
import { Api } from './http.js';

/** What a command gets besides its arguments: the API (configured on first use) and the two output streams. */
export interface Ctx {
  readonly env: NodeJS.ProcessEnv;
  /** The API client. Configured lazily, so `--help` and usage errors work without a token. */
  api(): Api;
  /** A line (or lines) to stdout. */
  out(text: string): void;
  /** A line (or lines) to stderr. */
  err(text: string): void;
  /** Bytes as they are (no newline added): a job's own output. */
  write(stream: 'stdout' | 'stderr', text: string): void;
  /** Colours on stdout. */
  readonly color: boolean;
  /** stderr is a terminal: progress lines go there. */
  readonly errTTY: boolean;
}

/** Options every command takes, filled in once the command line is parsed (before the API is first used). */
export interface Globals {
  /** --namespace: wins over DROVER_NAMESPACE and the config file. */
  namespace?: string | undefined;
}

export function createCtx(env: NodeJS.ProcessEnv, globals: Globals = {}): Ctx {
  let api: Api | undefined;
  return {
    env,
    api() {
      if (api) return api;
      const config = loadClientConfig(env, globals.namespace);
      if (!config.token) throw new CliError(tokenHint(config.file));
      api = new Api(config.url, config.token, config.namespace);
      return api;
    },
    out: (text) => void process.stdout.write(`${text}\n`),
    err: (text) => void process.stderr.write(`${text}\n`),
    write: (stream, text) => void (stream === 'stdout' ? process.stdout : process.stderr).write(text),
    color: colorEnabled(process.stdout, env),
    errTTY: process.stderr.isTTY === true,
  };
}

/** One command (`drover jobs`) or subcommand (`drover schedules add`). */
export interface CommandDef {
  /** Arguments after the command's name, for the usage line: `[options] <id>`. */
  usage: string;
  /** One line for lists of commands. */
  summary: string;
  /** More for `--help`: examples, rules. */
  help?: string;
  options?: Options;
  /** Names of required positional arguments, in order. */
  args?: string[];
  /** Takes a command to run after the arguments: `-- <command...>`. */
  command?: boolean;
  /** Returns the exit code (0 when nothing is returned). */
  run(ctx: Ctx, p: Parsed): Promise<number | undefined>;
}

/** A command with subcommands (`drover schedules ls`). */
export interface Group {
  summary: string;
  commands: Record<string, CommandDef>;
  /** The subcommand run when none is named (`drover namespaces` lists them); without one, a subcommand is required. */
  default?: string;
}

export const JSON_OPTION: Options = { json: { type: 'boolean', desc: "print the API's JSON instead of text" } };

/** `--json`: the API's answer as it came; otherwise the human form. */
export function show<T>(ctx: Ctx, p: Parsed, value: T, human: (v: T) => string): undefined {
  ctx.out(p.opts.flag('json') ? JSON.stringify(value, null, 2) : human(value));
  return undefined;
}

/**
 * `drover <command> <arg> [--json]`: one call about one thing (a job, a schedule, a queue, a runner), its answer
 * shown as JSON or as `human` renders it.
 */
export function about<T>(def: {
  arg: string;
  summary: string;
  usage?: string;
  help?: string;
  options?: Options;
  call(ctx: Ctx, arg: string, p: Parsed): Promise<T>;
  human(value: T, ctx: Ctx, arg: string): string;
}): CommandDef {
  return {
    usage: def.usage ?? `<${def.arg}> [--json]`,
    summary: def.summary,
    ...(def.help ? { help: def.help } : {}),
    args: [def.arg],
    options: { ...def.options, ...JSON_OPTION },
    async run(ctx, p) {
      const arg = p.args[0]!;
      return show(ctx, p, await def.call(ctx, arg, p), (v) => def.human(v, ctx, arg));
    },
  };
}

/** `drover <group> ls [--json]` for a list the API answers whole, `{items}`: --json prints the items. */
export function listCommand<T>(summary: string, path: string, human: (items: T[], ctx: Ctx) => string): CommandDef {
  return {
    usage: '[--json]',
    summary,
    options: JSON_OPTION,
    async run(ctx, p) {
      const { items } = await ctx.api().get<{ items: T[] }>(path);
      return show(ctx, p, items, (v) => human(v, ctx));
    },
  };
}
