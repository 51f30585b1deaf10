import { JSON_OPTION, show, type CommandDef } from './command.js';
import { fields } from './format.js';

export const whoami: CommandDef = {
  usage: '[--json]',
  summary: "the token's name, scope and queues",
  options: JSON_OPTION,
  async run(ctx, p) {
    const me = await ctx.api().get<{ name: string; scope: string; queues?: string[] }>('/v1/whoami');
    const url = ctx.api().url;
    return show(ctx, p, me, (m) => fields([['name', m.name], ['scope', m.scope], ['queues', m.queues ? m.queues.join(', ') : 'all'], ['api', url]], ctx.color));
  },
};
