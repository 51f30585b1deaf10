import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { KEY_SCHEMA, LUA_CONSTANTS, LUA_DIR, LuaLoadError, STORE_SCRIPTS, assembleLua, keyName, keyParts, lua, luaKeyBuilders, type KeyKind } from '@drover/core';
import { REDIS_URL } from './helpers/stack.js';

// What Lua and Redis give every script; anything else a script calls must be defined in it (an include missing).
const GLOBALS = new Set(['redis', 'cjson', 'string', 'table', 'math', 'tonumber', 'tostring', 'ipairs', 'pairs', 'type', 'error', 'pcall', 'next', 'select', 'unpack']);

/** Names a script calls as plain functions, and the names it defines (locals, local functions, forward declarations). */
function callsAndDefinitions(text: string): { calls: Set<string>; defined: Set<string> } {
  // Comments and string literals out first: 'its deadline (expiresAt)' calls nothing.
  const code = text.split('\n').map((l) => l.replace(/'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"/g, "''").replace(/--.*$/, '')).join('\n');
  const defined = new Set<string>();
  for (const m of code.matchAll(/\blocal\s+function\s+([A-Za-z_]\w*)|\blocal\s+([A-Za-z_][\w, ]*?)\s*(?:=|\n)/g)) {
    for (const n of (m[1] ?? m[2] ?? '').split(',')) defined.add(n.trim());
  }
  const calls = new Set<string>();
  for (const m of code.matchAll(/(?<![.:\w])([A-Za-z_]\w*)\s*\(/g)) {
    const before = code.slice(Math.max(0, m.index - 9), m.index);
    if (!before.endsWith('function ') && !GLOBALS.has(m[1]!) && !['function', 'if', 'and', 'or', 'not', 'return', 'elseif', 'until', 'in'].includes(m[1]!)) calls.add(m[1]!);
  }
  return { calls, defined };
}

test('every store script loads into Redis on its own (SCRIPT LOAD: no syntax error waits for a first call)', async (t) => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  t.after(() => redis.quit());
  await redis.connect();
  for (const name of STORE_SCRIPTS) {
    const sha = (await redis.script('LOAD', lua(name))) as string;
    assert.match(sha, /^[0-9a-f]{40}$/, name);
  }
});

test('every function a store script calls is defined in it: no include is missing', () => {
  for (const name of STORE_SCRIPTS) {
    const { calls, defined } = callsAndDefinitions(lua(name));
    const missing = [...calls].filter((c) => !defined.has(c));
    assert.deepEqual(missing, [], `${name} calls what it does not define`);
  }
});

test('every script file has a header saying what it takes and returns; every file under lua/ is a listed script or a lib', () => {
  const files = readdirSync(LUA_DIR).filter((f) => f.endsWith('.lua')).map((f) => f.slice(0, -4)).sort();
  assert.deepEqual(files, [...STORE_SCRIPTS].sort(), 'STORE_SCRIPTS lists every script file (the SCRIPT LOAD test reads it)');
  for (const name of STORE_SCRIPTS) {
    const text = readFileSync(`${LUA_DIR}${name}.lua`, 'utf8');
    const header = text.split('\n').filter((l) => !l.startsWith('#!lua')).slice(0, 3).join('\n');
    assert.match(header, /^-- /, `${name}.lua opens with its header`);
    assert.match(text.split('\n--!include')[0]!.split('\nlocal ')[0]!, /ARGV|KEYS/, `${name}.lua: the header names its arguments`);
  }
});

test('the loader: includes first and once each, script flags on top, only the constants a script names; unknown includes and cycles fail', () => {
  const files: Record<string, string> = {
    main: '#!lua flags=allow-oom\n-- ARGV: none\n--!include lib/a\n--!include lib/b\nreturn a() + b() + EVENTS_MAX_LEN',
    'lib/a': '--!include lib/c\nlocal function a() return c() end',
    'lib/b': '--!include lib/c\nlocal function b() return c() end',
    'lib/c': 'local function c() return 1 end',
    lost: '--!include lib/nowhere\nreturn 1',
    loop: '--!include lib/x\nreturn 1',
    'lib/x': '--!include lib/y\nlocal x = 1',
    'lib/y': '--!include lib/x\nlocal y = 1',
    flagged: '--!include lib/flags\nreturn 1',
    'lib/flags': '#!lua flags=no-writes\nlocal f = 1',
  };
  const read = (f: string): string => {
    const text = files[f];
    if (text === undefined) throw new Error('ENOENT');
    return text;
  };
  const out = assembleLua('main', { EVENTS_MAX_LEN: 7, UNUSED: 1, TERMINAL: ['succeeded'] }, read);
  const lines = out.split('\n');
  assert.equal(lines[0], '#!lua flags=allow-oom', 'the flags stay the first line');
  assert.equal(lines[1], 'local EVENTS_MAX_LEN = 7');
  assert.ok(!out.includes('UNUSED') && !out.includes('TERMINAL'), 'constants it does not name are left out');
  assert.equal(out.match(/local function c\(\)/g)?.length, 1, 'an include shared by two is there once');
  assert.ok(out.indexOf('function c()') < out.indexOf('function a()') && out.indexOf('function a()') < out.indexOf('function b()'), 'dependencies first');
  assert.throws(() => assembleLua('lost', {}, read), (e: unknown) => e instanceof LuaLoadError && /unknown Lua include lib\/nowhere \(in lost\)/.test(e.message));
  assert.throws(() => assembleLua('loop', {}, read), (e: unknown) => e instanceof LuaLoadError && /cycle: loop -> lib\/x -> lib\/y -> lib\/x/.test(e.message));
  assert.throws(() => assembleLua('flagged', {}, read), /only a script, not an include/);
  assert.throws(() => assembleLua('missing', {}, read), /no Lua script missing/);
});

test('status names come from TypeScript: the Lua TERMINAL set is the terminal statuses, not spelled again in Lua', async (t) => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  t.after(() => redis.quit());
  await redis.connect();
  const script = assembleLua('check', LUA_CONSTANTS, (f) => (f === 'check' ? 'local out = {}\nfor k in pairs(TERMINAL) do out[#out + 1] = k end\ntable.sort(out)\nreturn out' : ''));
  assert.deepEqual(await redis.eval(script, 0), [...LUA_CONSTANTS.TERMINAL].sort());
  for (const name of STORE_SCRIPTS) assert.ok(!/succeeded = true/.test(readFileSync(`${LUA_DIR}${name}.lua`, 'utf8')), `${name}.lua spells no status set`);
});

test('one key registry: Lua and TypeScript build the same name for every kind of key, from key-schema.ts', async (t) => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  t.after(() => redis.quit());
  await redis.connect();
  const kinds = Object.keys(KEY_SCHEMA) as KeyKind[];
  const script = `local base = ARGV[1]\n${luaKeyBuilders(kinds)}\nlocal out = {}\n${kinds.map((k) => `out[#out + 1] = K.${k}(${keyParts(k).map((_, i) => `'p${i}'`).join(', ')})`).join('\n')}\nreturn out`;
  const fromLua = (await redis.eval(script, 0, '{t}')) as string[];
  assert.deepEqual(fromLua, kinds.map((k) => keyName('{t}', k, ...keyParts(k).map((_, i) => `p${i}`))));
  assert.equal(keyName('{drover}', 'indexQueueStatus', 'mail', 'queued'), '{drover}:idx:qs:mail:queued');
  assert.throws(() => keyName('{drover}', 'job'), /job takes 1 part/);
  assert.throws(() => assembleLua('x', {}, () => 'return K.nope()'), /K\.nope is no key of the schema/);
});

test('no key name is built by hand: not in the Lua files (K.<kind> instead), not in TypeScript outside the registry', () => {
  for (const file of [...readdirSync(LUA_DIR), ...readdirSync(`${LUA_DIR}lib`).map((f) => `lib/${f}`)].filter((f) => f.endsWith('.lua'))) {
    const code = readFileSync(`${LUA_DIR}${file}`, 'utf8').split('\n').filter((l) => !l.trimStart().startsWith('--')).join('\n');
    assert.doesNotMatch(code, /\bbase \.\.|\.\. ':[a-z]/, `${file} builds a key name by hand`);
  }
  const ts = (dir: string): string[] => readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts')).map((f) => `${dir}/${f}`);
  const root = new URL('..', import.meta.url).pathname;
  for (const file of ['packages/core/src', 'services/api/src', 'services/scheduler/src', 'services/runner/src'].flatMap((d) => ts(`${root}${d}`))) {
    assert.doesNotMatch(readFileSync(file, 'utf8'), /\.base\}:/, `${file} builds a key name by hand (use keys.name(kind, ...))`);
  }
});
