import { DroverError, MAX_VARIABLE_BYTES, MAX_VARIABLES, VariableStore } from '@drover/core';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import type { ApiContext } from '../context.js';
import { errorResponses } from '../schemas.js';

const NameParams = Type.Object(
  { name: Type.String({ maxLength: 128, description: 'An environment variable name (not DROVER_*, nor one that changes what a program runs, such as LD_PRELOAD or PATH).' }) },
  { additionalProperties: false },
);
const ValueBody = Type.Object({ value: Type.String({ description: `At most ${MAX_VARIABLE_BYTES} bytes.` }) }, { additionalProperties: false });
const errors = errorResponses(400, 401, 403, 404, 409, 429, 503);
type Named = { Params: { name: string } };

/** The operator variables of this API's prefix (sealed with DROVER_ENV_KEY like jobs' env). */
export const variablesOf = (ctx: ApiContext): VariableStore => new VariableStore(ctx.store.redis, ctx.store.keys, ctx.store.envCipher);

/**
 * Operator variables: environment of every job started after a change, under the job's own env (a job's own value
 * wins). Admin only, shared by every queue; values are never returned, as no env value is.
 */
export function variableRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const variables = variablesOf(ctx);
  const config = { scope: 'admin', queues: 'global' } as const;
  const tags = ['variables'];

  app.put<Named & { Body: { value: string } }>(
    '/v1/variables/:name',
    {
      config,
      schema: {
        operationId: 'setVariable', tags, summary: 'Set an operator variable: env of every job started from now on (the job\'s own env wins)',
        params: NameParams, body: ValueBody, response: { 200: Type.Object({ name: Type.String() }), ...errors },
      },
    },
    async (request) => {
      await variables.set(request.params.name, request.body.value);
      return { name: request.params.name };
    },
  );

  app.get(
    '/v1/variables',
    {
      config,
      schema: {
        operationId: 'listVariables', tags, summary: `The operator variables' names (never their values), at most ${MAX_VARIABLES}`,
        response: { 200: Type.Object({ names: Type.Array(Type.String(), { maxItems: MAX_VARIABLES }) }), ...errors },
      },
    },
    async () => ({ names: await variables.names() }),
  );

  app.delete<Named>(
    '/v1/variables/:name',
    {
      config,
      schema: { operationId: 'deleteVariable', tags, summary: 'Delete an operator variable: jobs started from now on no longer get it', params: NameParams, response: { 200: Type.Object({ deleted: Type.String() }), ...errors } },
    },
    async (request) => {
      if (!(await variables.delete(request.params.name))) throw new DroverError('NOT_FOUND', `no variable ${request.params.name}`);
      return { deleted: request.params.name };
    },
  );
}
