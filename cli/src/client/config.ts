import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CliError } from './errors.js';

export const DEFAULT_URL = 'http://127.0.0.1:8606';

export interface ClientConfig {
  url: string;
  token: string | undefined;
  /** The config file consulted (it may not exist): named in hints. */
  file: string;
}

/** `$XDG_CONFIG_HOME/drover/config.json`, else `~/.config/drover/config.json`. */
export function configPath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'drover', 'config.json');
}

function readFile(path: string): { url?: string; token?: string } {
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
  const { url, token } = parsed as Record<string, unknown>;
  if ((url !== undefined && typeof url !== 'string') || (token !== undefined && typeof token !== 'string')) {
    throw new CliError(`${path}: "url" and "token" must be strings`);
  }
  return { ...(url ? { url } : {}), ...(token ? { token } : {}) };
}

/**
 * Where the API is and which token to send: DROVER_URL / DROVER_TOKEN, else the config file, else the local default.
 * The token is never taken from the command line, where `ps` would show it.
 */
export function loadClientConfig(env: NodeJS.ProcessEnv): ClientConfig {
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
  return { url, token: env.DROVER_TOKEN || fromFile.token, file };
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
