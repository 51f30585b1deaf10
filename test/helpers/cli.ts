import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { spawnDrover } from './processes.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliProcess {
  child: ChildProcess;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process exited. */
  done: Promise<CliResult>;
}

/** A home directory of the test's own (the CLI looks for ~/.config/drover/config.json there), removed after the test. */
export function tempHome(t: TestContext): string {
  const home = mkdtempSync(join(tmpdir(), 'drover-cli-home-'));
  t.after(() => rmSync(home, { recursive: true, force: true }));
  return home;
}

/** The environment a CLI process gets: nothing of ours but PATH, no colours, an empty home. */
export function cliEnv(t: TestContext, url: string | undefined, token: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: tempHome(t), NO_COLOR: '1', ...extra };
  if (url !== undefined) env.DROVER_URL = url;
  if (token !== undefined) env.DROVER_TOKEN = token;
  return env;
}

/** `drover <args>` from source as a real process; killed after the test if it is still running. */
export function spawnCli(t: TestContext, env: Record<string, string>, args: string[]): CliProcess {
  const child = spawnDrover(t, args, env, ['ignore', 'pipe', 'pipe']);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const done = new Promise<CliResult>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, stdout: () => stdout, stderr: () => stderr, done };
}

/** Runs `drover <args>` to its end. */
export function cli(t: TestContext, env: Record<string, string>, ...args: string[]): Promise<CliResult> {
  return spawnCli(t, env, args).done;
}
