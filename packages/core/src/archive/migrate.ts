import { readFileSync, readdirSync } from 'node:fs';
import type { Pool } from 'pg';

/** Versioned SQL files, applied in name order: `NNN_name.sql` next to src/ and dist/. */
const DIR = new URL('../../migrations/', import.meta.url);

/**
 * Applies the migrations a database lacks, each in its own transaction, recorded in `drover_migrations`. An
 * advisory lock makes concurrent starts (several schedulers and APIs) apply each file once.
 */
export async function migrate(pool: Pool): Promise<string[]> {
  const files = readdirSync(DIR).filter((f) => /^\d{3}_.+\.sql$/.test(f)).sort();
  const client = await pool.connect();
  const applied: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock(hashtext($1))', ['drover_migrations']);
    await client.query('CREATE TABLE IF NOT EXISTS drover_migrations (version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    const done = new Set((await client.query<{ version: string }>('SELECT version FROM drover_migrations')).rows.map((r) => r.version));
    for (const file of files.filter((f) => !done.has(f))) {
      await client.query('BEGIN');
      try {
        await client.query(readFileSync(new URL(file, DIR), 'utf8'));
        await client.query('INSERT INTO drover_migrations (version) VALUES ($1)', [file]);
        await client.query('COMMIT');
        applied.push(file);
      } catch (err) {
        await client.query('ROLLBACK');
        throw new Error(`migration ${file} failed: ${(err as Error).message}`);
      }
    }
  } finally {
    await client.query('SELECT pg_advisory_unlock(hashtext($1))', ['drover_migrations']).catch(() => undefined);
    client.release();
  }
  return applied;
}
