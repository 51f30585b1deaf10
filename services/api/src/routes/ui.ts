import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { DroverError } from '@drover/core';
import type { FastifyInstance } from 'fastify';

export const UI_PREFIX = '/ui';

/** The dashboard's built files (ui/dist, made by `npm ci` / `npm run build`), the same path from src/ and dist/. */
const UI_DIR = fileURLToPath(new URL('../../../../ui/dist/', import.meta.url));

/**
 * The dashboard at /ui/: static files, open (they hold no data; every API call they make needs a token).
 * Hashed assets are cached for good; index.html is revalidated so a new build shows at once.
 */
export async function uiRoutes(app: FastifyInstance, dir = UI_DIR): Promise<void> {
  app.get('/', { config: { scope: null, queues: 'none' }, schema: { hide: true } }, async (_req, reply) => reply.redirect(`${UI_PREFIX}/`));
  if (!existsSync(join(dir, 'index.html'))) {
    app.get(`${UI_PREFIX}/*`, { config: { scope: null, queues: 'none' }, schema: { hide: true } }, async () => {
      throw new DroverError('UNAVAILABLE', 'the dashboard is not built: run npm run build');
    });
    return;
  }
  // The page itself: the router ignores trailing slashes, so /ui and /ui/ both land here (not on the wildcard).
  const index = readFileSync(join(dir, 'index.html'));
  app.get(UI_PREFIX, { config: { scope: null, queues: 'none' }, schema: { hide: true } }, async (_req, reply) =>
    reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(index));
  await app.register(fastifyStatic, {
    root: dir,
    prefix: `${UI_PREFIX}/`,
    decorateReply: false,
    index: false,
    cacheControl: false,
    setHeaders: (res, path) => {
      res.setHeader('cache-control', path.endsWith('.html') ? 'no-cache' : 'public, max-age=31536000, immutable');
    },
  });
}
