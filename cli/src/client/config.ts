import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CliError, UsageError } from './errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:8606';

export interface ClientConfig {
  url: string;
  token: string | undefined;
  /** The namespace to send (`Drover-Namespace`); undefined: the API picks (the token's only one, else default). */
  namespace: string | undefined;
  /** The config file consulted (it may not exist): named in hints. */
  file: string;
}

/** `$XDG_CONFIG_HOME/drover/config.json`, else `~/.config/drover/config.json`. */
export function configPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'drover', 'config.json');
}

function readFile(path: string): { url?: string; token?: string; namespace?: string } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new CliError(`${path} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new CliError(`${path}: expected {"url": "...", "token": "..."}`);
  const { url, token, namespace } = parsed as Record<string, unknown>;
  if ([url, token, namespace].some((v) => v !== undefined && typeof v !== 'string')) {
    throw new CliError(`${path}: "url", "token" and "namespace" must be strings`);
  }
  const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
  const [u, tok, ns] = [str(url), str(token), str(namespace)];
  return { ...(u ? { url: u } : {}), ...(tok ? { token: tok } : {}), ...(ns ? { namespace: ns } : {}) };
}

/** 1 to 40 lower-case letters, digits and inner dashes: the API's rule, checked here so a typo is a usage error. */
const NAMESPACE_NAME = /^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$/;

/** Why `name` cannot be a namespace, or undefined when it can. */
export function namespaceProblem(name: string): string | undefined {
  return NAMESPACE_NAME.test(name) ? undefined : `"${name}" is no namespace name (1 to 40 lower-case letters, digits and inner dashes)`;
}

/**
 * Where the API is, which token to send and in which namespace: DROVER_URL / DROVER_TOKEN / DROVER_NAMESPACE, else
 * the config file, else the local default (and no namespace: the API's choice). `namespace` (the --namespace option)
 * wins over both. The token is never taken from the command line, where `ps` would show it.
 */
export function loadClientConfig(env: NodeJS.ProcessEnv, namespace?: string): ClientConfig {
  const file = configPath(env);
  // The file is only read when the environment leaves something open.
  const fromFile = env.DROVER_URL && env.DROVER_TOKEN ? {} : readFile(file);
  const url = (env.DROVER_URL || fromFile.url || DEFAULT_URL).replace(/\/+$/, '');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CliError(`the API address "${url}" is not a URL (DROVER_URL or "url" in ${file})`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new CliError(`the API address "${url}" must start with http:// or https://`);
  const ns = namespace ?? (env.DROVER_NAMESPACE || fromFile.namespace);
  const problem = ns === undefined ? undefined : namespaceProblem(ns);
  if (problem && namespace !== undefined) throw new UsageError(`--namespace: ${problem}`);
  if (problem) throw new CliError(`${env.DROVER_NAMESPACE ? 'DROVER_NAMESPACE' : `"namespace" in ${file}`}: ${problem}`);
  return { url, token: env.DROVER_TOKEN || fromFile.token, namespace: ns, file };
}

/** What to tell someone who has no token yet. */
export function tokenHint(file: string): string {
  return [
    'no API token configured. Set one with',
    '  export DROVER_TOKEN=<token>',
    `or put {"url": "http://127.0.0.1:8606", "token": "<token>"} in ${file} (chmod 600).`,
    '`npm start` prints an admin token and stores it in .drover/admin-token:',
    '  export DROVER_TOKEN=$(cat .drover/admin-token)',
  ].join('\n');
}
