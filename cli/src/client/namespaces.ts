import { JSON_OPTION, listCommand, show, type CommandDef, type Group } from './command.js';
import { namespaceProblem } from './config.js';
import { UsageError } from './errors.js';
import { relative, table } from './format.js';

/** A namespace as GET /v1/namespaces lists it (createdAt: ms since epoch; null for default, which always exists). */
export interface NamespaceView {
  name: string;
  description: string | null;
  createdAt: number | null;
}

const created = (ms: number | null, now: number): string => (ms === null ? '-' : relative(new Date(ms).toISOString(), now));

function namespaceTable(items: NamespaceView[], color: boolean): string {
  if (items.length === 0) return 'no namespaces';
  const now = Date.now();
  return table(['NAME', 'DESCRIPTION', 'CREATED'], items.map((n) => [n.name, n.description ?? '-', created(n.createdAt, now)]), color);
}

const create: CommandDef = {
  usage: '<name> [--description <text>] [--json]',
  summary: 'create a namespace (an admin token of every namespace); its jobs, queues and schedules are its own',
  help: 'A name is 1 to 40 lower-case letters, digits and inner dashes. Namespaces are never deleted.',
  args: ['name'],
  options: { description: { type: 'string', arg: 'text', desc: 'what the namespace is for (up to 500 characters)' }, ...JSON_OPTION },
  async run(ctx, p) {
    const name = p.args[0]!;
    const problem = namespaceProblem(name);
    if (problem) throw new UsageError(problem);
    const description = p.opts.str('description');
    const ns = await ctx.api().post<NamespaceView>('/v1/namespaces', { name, ...(description !== undefined ? { description } : {}) });
    return show(ctx, p, ns, (n) => `namespace ${n.name} created`);
  },
};

export const namespaces: Group = {
  summary: 'namespaces: the ones this token works in, and creating one',
  default: 'ls',
  commands: {
    ls: listCommand<NamespaceView>('the namespaces this token works in', '/v1/namespaces', (items, ctx) => namespaceTable(items, ctx.color)),
    create,
  },
};
