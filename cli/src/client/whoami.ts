import { JSON_OPTION, show, type CommandDef } from './command.js';
import { fields } from './format.js';

interface Me {
  name: string;
  scope: string;
  queues?: string[];
  /** The namespace of this request (absent from APIs before namespaces). */
  namespace?: string;
  /** The namespaces the token works in; `*`: every one. */
  namespaces?: string[] | '*';
}

const namespaceList = (ns: Me['namespaces']): string | undefined => (ns === undefined ? undefined : ns === '*' ? 'all' : ns.join(', '));

export const whoami: CommandDef = {
  usage: '[--json]',
  summary: "the token's name, scope, queues and namespaces, and the namespace this command works in",
  options: JSON_OPTION,
  async run(ctx, p) {
    const me = await ctx.api().get<Me>('/v1/whoami');
    const url = ctx.api().url;
    return show(ctx, p, me, (m) =>
      fields([['name', m.name], ['scope', m.scope], ['queues', m.queues ? m.queues.join(', ') : 'all'], ['namespace', m.namespace], ['namespaces', namespaceList(m.namespaces)], ['api', url]], ctx.color),
    );
  },
};
