import { createRequire } from 'node:module';

/** Drover's version, from the core package's manifest (one level above both src/ and dist/). */
export const VERSION: string = (createRequire(import.meta.url)('../package.json') as { version: string }).version;
