/**
 * Writes docs/configuration.md from the config loader itself (packages/core/src/config.ts), so the reference cannot
 * drift from what the services read:
 *   - the variables, their defaults, ranges and allowed values come from the `r.<kind>('NAME', ...)` calls of
 *     loadConfig (and `env.NAME` reads), found with the TypeScript parser;
 *   - what each one means comes from the TSDoc of the DroverConfig field that first names it in backticks.
 * A variable the loader reads but no TSDoc names, or a TSDoc "default N" that differs from the loader's, is an error.
 *
 *   node --import tsx scripts/gen-config-docs.ts           rewrite docs/configuration.md   (npm run docs:config)
 *   node --import tsx scripts/gen-config-docs.ts --check   exit 1 when it is stale
 *   --doc PATH   check or write another file than docs/configuration.md
 *
 * Only node: modules and the TypeScript parser are imported, so Node's own type stripping runs it too.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';

const ROOT = resolve(new URL('..', import.meta.url).pathname);
export const CONFIG_SOURCE = 'packages/core/src/config.ts';
export const CONFIG_DOC = 'docs/configuration.md';

/** The EnvReader methods and what they read. `secret` also reads NAME_FILE. */
type Kind = 'string' | 'optional' | 'secret' | 'int' | 'oneOf' | 'bool' | 'list' | 'env';
const READER_KINDS = new Set<string>(['string', 'optional', 'secret', 'int', 'oneOf', 'bool', 'list']);
const ENV_NAME = /^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$/;

export interface ConfigVariable {
  name: string;
  kind: Kind;
  /** The default as written in the loader (evaluated when it is plain arithmetic), or undefined for none. */
  fallback?: { text: string; computed: boolean };
  min?: number;
  max?: number;
  allowed?: string[];
}

export interface ConfigRow {
  /** `runner`, `scheduler`, ...: the DroverConfig object the field sits in; `general` at the top. */
  group: string;
  names: string[];
  description: string;
}

export interface ConfigModel {
  variables: Map<string, ConfigVariable>;
  rows: ConfigRow[];
  otel: string[];
  problems: string[];
}

function stringValue(node: ts.Node | undefined): string | undefined {
  return node && (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) ? node.text : undefined;
}

/** Plain arithmetic on numeric literals (`30 * 86_400_000`); anything else is not evaluated. */
function numberValue(node: ts.Node | undefined): number | undefined {
  if (!node) return undefined;
  if (ts.isNumericLiteral(node)) return Number(node.text);
  if (ts.isParenthesizedExpression(node)) return numberValue(node.expression);
  if (ts.isPrefixUnaryExpression(node) && node.operator === ts.SyntaxKind.MinusToken) {
    const v = numberValue(node.operand);
    return v === undefined ? undefined : -v;
  }
  if (ts.isBinaryExpression(node)) {
    const [a, b] = [numberValue(node.left), numberValue(node.right)];
    if (a === undefined || b === undefined) return undefined;
    switch (node.operatorToken.kind) {
      case ts.SyntaxKind.AsteriskToken: return a * b;
      case ts.SyntaxKind.PlusToken: return a + b;
      case ts.SyntaxKind.MinusToken: return a - b;
      default: return undefined;
    }
  }
  return undefined;
}

/** Top-level `const NAME = 'text'` of the file, so `r.list('X', DEFAULT_LIST)` shows the list. */
function stringConstants(file: ts.SourceFile): Map<string, string> {
  const out = new Map<string, string>();
  for (const st of file.statements) {
    if (!ts.isVariableStatement(st)) continue;
    for (const d of st.declarationList.declarations) {
      const v = stringValue(d.initializer);
      if (ts.isIdentifier(d.name) && v !== undefined) out.set(d.name.text, v);
    }
  }
  return out;
}

function fallbackOf(node: ts.Expression | undefined, file: ts.SourceFile, consts: Map<string, string>): ConfigVariable['fallback'] {
  if (!node) return undefined;
  const s = stringValue(node) ?? (ts.isIdentifier(node) ? consts.get(node.text) : undefined);
  if (s !== undefined) return { text: s, computed: false };
  const n = numberValue(node);
  if (n !== undefined) return { text: String(n), computed: false };
  if (node.kind === ts.SyntaxKind.TrueKeyword) return { text: '1', computed: false };
  if (node.kind === ts.SyntaxKind.FalseKeyword) return { text: '0', computed: false };
  return { text: node.getText(file), computed: true };
}

/** Every variable the file reads through the EnvReader `r`, through `env.NAME`, or hands to a helper by name. */
function readVariables(file: ts.SourceFile): Map<string, ConfigVariable> {
  const consts = stringConstants(file);
  const found = new Map<string, ConfigVariable>();
  // One variable may be looked at twice (`optional` to test for a word, then `int`): keep the richer reading.
  const richer = (had: ConfigVariable, v: ConfigVariable): boolean =>
    v.kind !== 'optional' && (had.kind === 'optional' || (had.fallback === undefined && v.fallback !== undefined));
  const add = (v: ConfigVariable): void => {
    const had = found.get(v.name);
    if (!had || richer(had, v)) found.set(v.name, v);
  };
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node) && ts.isPropertyAccessExpression(node.expression)) {
      const { expression: target, name: method } = node.expression;
      const name = stringValue(node.arguments[0]);
      if (ts.isIdentifier(target) && target.text === 'r' && READER_KINDS.has(method.text) && name !== undefined) {
        const kind = method.text as Kind;
        const v: ConfigVariable = { name, kind };
        if (kind === 'int') {
          v.fallback = fallbackOf(node.arguments[1], file, consts);
          v.min = numberValue(node.arguments[2]);
          v.max = numberValue(node.arguments[3]);
        } else if (kind === 'oneOf') {
          let list = node.arguments[1];
          while (list && (ts.isAsExpression(list) || ts.isParenthesizedExpression(list))) list = list.expression;
          if (list && ts.isArrayLiteralExpression(list)) v.allowed = list.elements.map((e) => stringValue(e) ?? e.getText(file));
          v.fallback = fallbackOf(node.arguments[2], file, consts);
        } else if (kind === 'secret') {
          // `r.secret('X') ?? 'default'`
          const parent = node.parent;
          if (ts.isBinaryExpression(parent) && parent.operatorToken.kind === ts.SyntaxKind.QuestionQuestionToken && parent.left === node) {
            v.fallback = fallbackOf(parent.right, file, consts);
          }
        } else if (kind !== 'optional') {
          v.fallback = fallbackOf(node.arguments[1], file, consts);
        }
        add(v);
      }
    } else if (ts.isCallExpression(node)) {
      // A helper that reads a variable it is given by name (`read('cpus', 'RUNNER_MAX_JOB_CPUS')`).
      for (const a of node.arguments) {
        const s = stringValue(a);
        if (s !== undefined && ENV_NAME.test(s) && !found.has(s)) add({ name: s, kind: 'optional' });
      }
    } else if (ts.isPropertyAccessExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'env' && ENV_NAME.test(node.name.text)) {
      add({ name: node.name.text, kind: 'env' });
    }
    ts.forEachChild(node, visit);
  };
  // Only the loader's own functions: configEnvNames and its seed list are about the loader, not read by it.
  for (const st of file.statements) {
    if (ts.isFunctionDeclaration(st) && st.name?.text !== 'configEnvNames') visit(st);
  }
  return found;
}

function docText(node: ts.Node): string {
  return ts
    .getJSDocCommentsAndTags(node)
    .filter(ts.isJSDoc)
    .map((d) => ts.getTextOfJSDocComment(d.comment) ?? '')
    .join(' ')
    .replace(/\s+/g, ' ')
    .trim();
}

function typeLiteralOf(type: ts.TypeNode | undefined): ts.TypeLiteralNode | undefined {
  if (!type) return undefined;
  if (ts.isTypeLiteralNode(type)) return type;
  if (ts.isUnionTypeNode(type)) return type.types.find(ts.isTypeLiteralNode);
  return undefined;
}

/** The documented fields of DroverConfig in source order, each with the variables its TSDoc names in backticks. */
function readRows(file: ts.SourceFile): { group: string; mentions: string[]; description: string }[] {
  const iface = file.statements.find((s): s is ts.InterfaceDeclaration => ts.isInterfaceDeclaration(s) && s.name.text === 'DroverConfig');
  if (!iface) return [];
  const out: { group: string; mentions: string[]; description: string }[] = [];
  const walk = (members: ts.NodeArray<ts.TypeElement>, group: string): void => {
    for (const m of members) {
      if (!ts.isPropertySignature(m)) continue;
      const literal = typeLiteralOf(m.type);
      const own = literal ? m.name.getText(file) : group;
      const description = docText(m);
      if (description) {
        const mentions = [...description.matchAll(/`([A-Z][A-Z0-9_]*[A-Z0-9])(?:=[^`]*)?`/g)].map((x) => x[1] ?? '');
        out.push({ group: own, mentions, description });
      }
      if (literal) walk(literal.members, own);
    }
  };
  walk(iface.members, 'general');
  return out;
}

function readOtelNames(file: ts.SourceFile): string[] {
  for (const st of file.statements) {
    if (!ts.isVariableStatement(st)) continue;
    for (const d of st.declarationList.declarations) {
      let init = d.initializer;
      while (init && ts.isAsExpression(init)) init = init.expression;
      if (ts.isIdentifier(d.name) && d.name.text === 'OTEL_ENV_NAMES' && init && ts.isArrayLiteralExpression(init)) {
        return init.elements.map((e) => stringValue(e) ?? '').filter(Boolean);
      }
    }
  }
  return [];
}

/** Parses the loader's source into variables and documented rows; problems say what to fix in the source. */
export function readConfigSource(text: string, fileName = CONFIG_SOURCE): ConfigModel {
  const file = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const variables = readVariables(file);
  const problems: string[] = [];
  const placed = new Set<string>();
  const rows: ConfigRow[] = [];
  for (const { group, mentions, description } of readRows(file)) {
    const names = [...new Set(mentions)].filter((n) => variables.has(n) && !placed.has(n));
    for (const n of names) placed.add(n);
    if (names.length > 0) rows.push({ group, names, description });
    // A TSDoc "default N" next to a single whole-number variable must say what the loader does.
    const only = names.length === 1 ? variables.get(names[0] ?? '') : undefined;
    const said = /\bdefault (\d[\d_,]*)(?![\d.]|\s*(?:[a-zA-Z%]))/.exec(description)?.[1];
    if (only?.kind === 'int' && only.fallback && !only.fallback.computed && said !== undefined && Number(said.replace(/[_,]/g, '')) !== Number(only.fallback.text)) {
      problems.push(`${only.name}: its TSDoc says default ${said}, loadConfig uses ${only.fallback.text}`);
    }
  }
  for (const n of variables.keys()) {
    if (!placed.has(n)) problems.push(`${n} is read by loadConfig but no TSDoc of a DroverConfig field names it in backticks`);
  }
  return { variables, rows, otel: readOtelNames(file), problems };
}

const GROUPS: Record<string, string> = {
  general: 'Store, broker and API',
  metrics: 'Metrics endpoint',
  scripts: 'Scripts and files',
  outbound: 'Outbound HTTP (callbacks and webhooks)',
  compat: 'Meproc and Coyotes APIs',
  runner: 'Runners',
  scheduler: 'Scheduler, retention and webhooks',
  faults: 'Fault injection (tests only)',
};

function humanMs(ms: number): string {
  const units: [number, string][] = [[86_400_000, 'day'], [3_600_000, 'h'], [60_000, 'min'], [1000, 's']];
  for (const [size, unit] of units) {
    if (ms >= size && ms % size === 0) {
      const n = ms / size;
      return unit === 'day' ? `${n} day${n === 1 ? '' : 's'}` : `${n} ${unit}`;
    }
  }
  return `${ms} ms`;
}

function humanBytes(b: number): string {
  for (const [size, unit] of [[1024 * 1024 * 1024, 'GiB'], [1024 * 1024, 'MiB'], [1024, 'KiB']] as const) {
    if (b >= size && b % size === 0) return `${b / size} ${unit}`;
  }
  return b === 1 ? '1 byte' : `${b} bytes`;
}

/** A unit for a whole-number variable, from its name: durations end in _MS, sizes in _BYTES (or are caps/limits of bytes). */
function unitOf(name: string): ((n: number) => string) | undefined {
  if (/_MS$|^DROVER_RETENTION_FINISHED$/.test(name)) return humanMs;
  if (/_BYTES$|^DROVER_BODY_LIMIT$|^RUNNER_OUTPUT_CAP$/.test(name)) return humanBytes;
  return undefined;
}

/**
 * The TSDoc without what the row's other columns already show: the leading variable names and a plain
 * ", default X" (a default with a remark in parentheses, or a computed one, stays).
 */
function meaningOf(description: string, vars: ConfigVariable[]): string {
  const name = '`[A-Z][A-Z0-9_]*`(?:\\s*\\(or `[A-Z0-9_]+`\\))?';
  const lead = new RegExp(`^${name}(?:\\s*(?:,|/|or|and)\\s*${name})*`).exec(description);
  if (!lead) return description;
  let rest = description.slice(lead[0].length);
  const plain = vars.length === 1 && vars[0]?.fallback !== undefined && !vars[0].fallback.computed;
  if (plain) rest = rest.replace(/^,\s*default (?:`[^`]*`|[^:(`])*?(?=:\s|\.\s|\.$)/, '');
  if (rest.startsWith(': ') || rest.startsWith(', ')) rest = rest.slice(2);
  else return description;
  return rest === '' ? description : `${rest.charAt(0).toUpperCase()}${rest.slice(1)}`;
}

const code = (s: string): string => (s.includes('`') ? `\`\` ${s} \`\`` : `\`${s}\``);
const cell = (s: string): string => s.replace(/\|/g, '\\|');

function defaultCell(v: ConfigVariable): string {
  if (!v.fallback) return '–';
  if (v.fallback.computed) return 'computed (see meaning)';
  if (v.kind === 'list' && v.fallback.text === '') return '–';
  const unit = v.kind === 'int' ? unitOf(v.name) : undefined;
  const n = Number(v.fallback.text);
  return unit && n > 0 && unit(n) !== `${n} ms` && unit(n) !== `${n} bytes` ? `${code(v.fallback.text)} (${unit(n)})` : code(v.fallback.text);
}

function valuesCell(v: ConfigVariable): string {
  switch (v.kind) {
    case 'int': {
      const unit = unitOf(v.name);
      const range = v.min !== undefined && v.max !== undefined ? `${v.min}..${v.max}` : 'whole number';
      const span = unit && v.min !== undefined && v.max !== undefined ? ` (${v.min === 0 ? '0' : unit(v.min)}..${unit(v.max)})` : '';
      return `${range}${span}`;
    }
    case 'oneOf': return (v.allowed ?? []).map(code).join(', ');
    case 'bool': return '`1` or `0`';
    case 'list': return 'comma-separated';
    case 'secret': return `secret, or a file: ${code(`${v.name}_FILE`)}`;
    default: return 'text';
  }
}

/** The whole of docs/configuration.md. */
export function renderConfigDocs(model: ConfigModel): string {
  const lines: string[] = [
    '# Configuration reference',
    '',
    `<!-- Generated by scripts/gen-config-docs.ts from ${CONFIG_SOURCE}: edit the TSDoc of DroverConfig there, then run`,
    '     `npm run docs:config`. test/docs.config-reference.test.ts fails when this file is stale. -->',
    '',
    'Every Drover process (`drover start`, `api`, `scheduler`, `runner`) reads its configuration from the environment',
    'once, at start. Every problem is reported at once, in words, and the process exits with status 2; configuration',
    'errors never print a secret. Durations are milliseconds, sizes bytes, unless the name says otherwise.',
    '',
  ];
  const secrets = [...model.variables.values()].filter((v) => v.kind === 'secret').map((v) => v.name);
  if (secrets.length > 0) {
    lines.push(
      'Secrets can come from a file instead, as container secrets are mounted: ' +
        `${secrets.map((s) => code(`${s}_FILE`)).join(', ')}. Setting both \`NAME\` and \`NAME_FILE\` is an error; one`,
      'trailing newline of the file is ignored.',
      '',
    );
  }
  // Known groups in their order, a new one before the tests-only faults.
  const known = Object.keys(GROUPS);
  const rank = (g: string): number => (known.includes(g) ? known.indexOf(g) : known.indexOf('faults') - 0.5);
  const order = [...new Set(model.rows.map((r) => r.group))].sort((a, b) => rank(a) - rank(b));
  for (const group of order) {
    lines.push(`## ${GROUPS[group] ?? group}`, '', '| variable | default | values | meaning |', '|---|---|---|---|');
    for (const row of model.rows.filter((r) => r.group === group)) {
      const vars = row.names.map((n) => model.variables.get(n)).filter((v): v is ConfigVariable => v !== undefined);
      const defaults = vars.map(defaultCell);
      const values = [...new Set(vars.map(valuesCell))];
      lines.push(
        `| ${vars.map((v) => code(v.name)).join(', ')} | ${cell(defaults.every((d) => d === defaults[0]) ? defaults[0] ?? '–' : defaults.join('; '))} ` +
          `| ${cell(values.join('; '))} | ${cell(meaningOf(row.description, vars))} |`,
      );
    }
    lines.push('');
  }
  if (model.otel.length > 0) {
    lines.push(
      '## Tracing (OpenTelemetry)',
      '',
      'Read by the OpenTelemetry SDK itself, not by the loader; `OTEL_EXPORTER_OTLP_ENDPOINT` (or',
      '`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns tracing on, over OTLP/HTTP. See [metrics and tracing](metrics-and-tracing.md).',
      '',
      model.otel.map(code).join(', '),
      '',
    );
  }
  return lines.join('\n');
}

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const model = readConfigSource(readFileSync(resolve(ROOT, CONFIG_SOURCE), 'utf8'));
  if (model.problems.length > 0) {
    process.stderr.write(`${CONFIG_SOURCE}:\n  - ${model.problems.join('\n  - ')}\n`);
    return 1;
  }
  const text = renderConfigDocs(model);
  const at = argv.indexOf('--doc');
  const doc = at >= 0 ? argv[at + 1] : undefined;
  if (at >= 0 && doc === undefined) {
    process.stderr.write('--doc needs a path\n');
    return 2;
  }
  const target = resolve(ROOT, doc ?? CONFIG_DOC);
  const shown = doc ?? CONFIG_DOC;
  if (!check) {
    writeFileSync(target, text);
    process.stdout.write(`wrote ${shown} (${model.variables.size} variables)\n`);
    return 0;
  }
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    // A missing file is stale too.
  }
  if (current === text) return 0;
  const a = current.split('\n');
  const b = text.split('\n');
  const first = b.findIndex((l, i) => l !== a[i]);
  const line = first === -1 ? b.length : first;
  process.stderr.write(
    `${shown} is stale: it does not match ${CONFIG_SOURCE}. Run \`npm run docs:config\` and commit the result.\n` +
      `  first difference at line ${line + 1}:\n  - ${a[line] ?? '(end of file)'}\n  + ${b[line] ?? '(end of file)'}\n`,
  );
  return 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = main(process.argv.slice(2));
}
