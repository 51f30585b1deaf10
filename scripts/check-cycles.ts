/**
 * Fails when source files import each other in a cycle. Builds the import graph with the TypeScript compiler's
 * own resolver (so workspace packages and `.js` specifiers resolve as tsc sees them) and reports every
 * strongly connected component of more than one file. `import type` edges are ignored: they vanish at runtime.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';

const ROOT = resolve(new URL('..', import.meta.url).pathname);
const SOURCE_DIRS = ['packages/core/src', 'services/api/src', 'services/scheduler/src', 'services/runner/src', 'cli/src'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  });
}

const config = ts.getParsedCommandLineOfConfigFile(join(ROOT, 'tsconfig.base.json'), {}, {
  ...ts.sys,
  onUnRecoverableConfigFileDiagnostic: (d) => {
    throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  },
});
if (!config) throw new Error('cannot read tsconfig.base.json');
const files = SOURCE_DIRS.flatMap((d) => sources(join(ROOT, d)));
const known = new Set(files);

const graph = new Map<string, string[]>();
for (const file of files) {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false);
  const edges: string[] = [];
  for (const stmt of sf.statements) {
    const isTypeOnly =
      (ts.isImportDeclaration(stmt) && stmt.importClause?.isTypeOnly === true) || (ts.isExportDeclaration(stmt) && stmt.isTypeOnly);
    if (isTypeOnly || !(ts.isImportDeclaration(stmt) || ts.isExportDeclaration(stmt)) || !stmt.moduleSpecifier) continue;
    const spec = (stmt.moduleSpecifier as ts.StringLiteral).text;
    const hit = ts.resolveModuleName(spec, file, config.options, ts.sys).resolvedModule?.resolvedFileName;
    if (hit && known.has(hit)) edges.push(hit);
  }
  graph.set(file, edges);
}

// Tarjan's strongly connected components.
let index = 0;
const stack: string[] = [];
const onStack = new Set<string>();
const idx = new Map<string, number>();
const low = new Map<string, number>();
const cycles: string[][] = [];
function visit(v: string): void {
  idx.set(v, index);
  low.set(v, index++);
  stack.push(v);
  onStack.add(v);
  for (const w of graph.get(v) ?? []) {
    if (!idx.has(w)) {
      visit(w);
      low.set(v, Math.min(low.get(v)!, low.get(w)!));
    } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
  }
  if (low.get(v) === idx.get(v)) {
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1) cycles.push(scc);
  }
}
for (const f of files) if (!idx.has(f)) visit(f);

if (cycles.length > 0) {
  for (const c of cycles) process.stderr.write(`import cycle: ${c.map((f) => relative(ROOT, f)).join(' <-> ')}\n`);
  process.exit(1);
}
process.stdout.write(`no import cycles in ${files.length} files\n`);
