import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { KEY_SCHEMA, luaKeyBuilders, type KeyKind } from './key-schema.js';

/**
 * The store's Lua lives in files under packages/core/src/store/lua/, as BullMQ keeps its commands: one file per
 * script (`<name>.lua`) and shared functions in `lib/<name>.lua`. Each opens with a header saying what it takes
 * (KEYS, ARGV) and returns; a line `--!include lib/<name>` pulls a shared file in ahead of the body, itself with
 * its includes first, each file once. Constants the scripts share with TypeScript (`EVENTS_MAX_LEN`, `TERMINAL`) are
 * not spelled in Lua: the loader puts those a script names at its top as locals, from the values given here. Nor
 * are key names: a script writes `K.job(id)`, `K.outbox()`, and the loader adds those functions, built from the
 * key schema (key-schema.ts) and `base`, the deployment's hash tag, taken from KEYS[1] (`{prefix}:routing`), by which
 * a cluster client routes the call to the slot every key of the deployment is in.
 *
 * Read from the sources in both the source and the compiled layout (dist/store/ and src/store/ are two levels below
 * the package), so there is no copy step to forget.
 */
export const LUA_DIR = fileURLToPath(new URL('../../src/store/lua/', import.meta.url));

const INCLUDE = /^--!include\s+(\S+)\s*$/;

/** A value a script may name: a number, a string, or a set of names (a Lua table of name = true). */
export type LuaConstant = number | string | readonly string[];

export class LuaLoadError extends Error {}

function luaValue(v: LuaConstant): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  return `{ ${v.map((name) => `[${JSON.stringify(name)}] = true`).join(', ')} }`;
}

/**
 * Assembles a script from its file: the shebang line (script flags) first, then the constants it names, then its
 * includes in dependency order, then its own body. Fails on an unknown include or a cycle, naming the chain.
 */
export function assembleLua(name: string, constants: Readonly<Record<string, LuaConstant>>, read: (file: string) => string = readLuaFile): string {
  const done = new Set<string>();
  const parts: string[] = [];
  let shebang = '';
  const visit = (file: string, chain: string[]): void => {
    if (done.has(file)) return;
    if (chain.includes(file)) throw new LuaLoadError(`Lua include cycle: ${[...chain, file].join(' -> ')}`);
    let text: string;
    try {
      text = read(file);
    } catch {
      throw new LuaLoadError(chain.length === 0 ? `no Lua script ${file}` : `unknown Lua include ${file} (in ${chain[chain.length - 1]})`);
    }
    const body: string[] = [];
    for (const line of text.split('\n')) {
      const inc = INCLUDE.exec(line);
      if (inc) visit(inc[1]!, [...chain, file]);
      else if (line.startsWith('#!lua')) {
        if (chain.length > 0) throw new LuaLoadError(`${file}: only a script, not an include, may carry script flags (#!lua)`);
        shebang = line;
      } else body.push(line);
    }
    done.add(file);
    parts.push(body.join('\n'));
  };
  visit(name, []);
  const text = parts.join('\n');
  const named = Object.entries(constants).filter(([k]) => new RegExp(`\\b${k}\\b`).test(text));
  const head = named.map(([k, v]) => `local ${k} = ${luaValue(v)}`).join('\n');
  return [shebang, head, keysPrologue(name, text), text].filter((p) => p !== '').join('\n');
}

/** `base` and the key functions a script names (`K.<kind>`); an unknown kind fails the load. */
function keysPrologue(name: string, text: string): string {
  const kinds = new Set<KeyKind>();
  for (const m of text.matchAll(/\bK\.(\w+)/g)) {
    if (!(m[1]! in KEY_SCHEMA)) throw new LuaLoadError(`${name}: K.${m[1]} is no key of the schema (key-schema.ts)`);
    kinds.add(m[1] as KeyKind);
  }
  if (kinds.size === 0 && !/\bbase\b/.test(text)) return '';
  // KEYS[1] is the routing key, `{prefix}:routing`: the hash tag is what comes before its kind.
  const strip = KEY_SCHEMA.routing.name.length + 2;
  return [`local base = string.sub(KEYS[1], 1, -${strip})`, luaKeyBuilders(kinds)].filter((p) => p !== '').join('\n');
}

function readLuaFile(file: string): string {
  return readFileSync(`${LUA_DIR}${file}.lua`, 'utf8');
}

/** Loads (once) a script by name, assembled with the given constants. */
export function luaLoader(constants: Readonly<Record<string, LuaConstant>>): (name: string) => string {
  const cache = new Map<string, string>();
  return (name) => {
    let s = cache.get(name);
    if (s === undefined) {
      s = assembleLua(name, constants);
      cache.set(name, s);
    }
    return s;
  };
}
