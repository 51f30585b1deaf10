import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A secret the all-in-one keeps in its data directory when none is configured: generated once into
 * `<dataDir>/<name>` (mode 0600, directory 0700) so it survives restarts, and read back on later starts. A file
 * that others may read is refused rather than used: the secret would already be out.
 */
export function ensureSecretFile(dataDir: string, name: string, generate: () => string): { value: string; path: string; created: boolean } {
  const path = join(dataDir, name);
  if (existsSync(path)) {
    if ((statSync(path).mode & 0o077) !== 0) throw new Error(`${path} may be read by other users; chmod 600 it (or delete it to have a new one made)`);
    const value = readFileSync(path, 'utf8').trim();
    if (value === '') throw new Error(`${path} is empty; delete it to have a new one made`);
    return { value, path, created: false };
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const value = generate();
  // 'wx': if another start created it meanwhile, fail instead of overwriting the one it handed out.
  writeFileSync(path, `${value}\n`, { mode: 0o600, flag: 'wx' });
  return { value, path, created: true };
}
