import { defineConfig } from 'vite';

// Served by the API under /ui/ (see services/api/src/routes/ui.ts). No inline scripts: the API's CSP forbids them.
export default defineConfig({
  base: '/ui/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, modulePreload: { polyfill: false }, sourcemap: false, target: 'es2022' },
});
