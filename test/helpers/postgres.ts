import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { TestContext } from 'node:test';

/** The PostgreSQL server tests use (trust auth on loopback); each test run gets a database of its own. */
export const PG_ADMIN_URL = process.env.TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * Creates a fresh database and returns its URL and the function that drops it. After-hooks run in the order they
 * were added: register `drop` after everything that holds connections to it.
 */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `drover_test_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const drop = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: PG_ADMIN_URL });
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  };
  const url = new URL(PG_ADMIN_URL);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop };
}

/**
 * A connection pool to a fresh database, closed and then the database dropped after the test: call it after
 * starting the services that use the database, so their teardown runs first.
 */
export function poolThenDrop(t: TestContext, db: { url: string; drop: () => Promise<void> }): pg.Pool {
  const sql = new pg.Pool({ connectionString: db.url });
  // pool.end() resolves once its clients are told to end, not once they have: a forced DROP DATABASE right after
  // can terminate a backend that has not read the Terminate yet, and the pool re-emits that server error.
  // Count connections until each one's end has completed, and keep late server errors from becoming uncaught.
  let open = 0;
  let closed: (() => void) | undefined;
  sql.on('connect', () => void open++);
  sql.on('remove', () => {
    open--;
    if (open === 0) closed?.();
  });
  sql.on('error', () => undefined);
  t.after(async () => {
    const allClosed = new Promise<void>((resolve) => (closed = resolve));
    await sql.end();
    if (open > 0) await allClosed;
  });
  t.after(db.drop);
  return sql;
}
