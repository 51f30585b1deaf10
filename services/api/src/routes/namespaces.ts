import { DroverError, namespaceProblem, selectionHas, type NamespaceInfo } from '@drover/core';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { namespacesOf } from '../auth.js';
import type { ApiContext } from '../context.js';
import { errorResponses } from '../schemas.js';

const Namespace = Type.Object({
  name: Type.String(),
  description: Type.Union([Type.String(), Type.Null()]),
  createdAt: Type.Union([Type.Integer(), Type.Null()], { description: 'ms since epoch; null for default, which always exists' }),
});
const CreateBody = Type.Object({
  name: Type.String({ minLength: 1, maxLength: 40, description: 'Lower-case letters, digits and inner dashes' }),
  description: Type.Optional(Type.String({ maxLength: 500 })),
}, { additionalProperties: false });

/**
 * The deployment's namespaces. Listing shows the ones the token works in; creating one takes an admin token of every
 * namespace (`*`), and the scheduler and the runners of RUNNER_NAMESPACE=* serve it within seconds.
 */
export function namespaceRoutes(app: FastifyInstance, ctx: ApiContext): void {
  const tags = ['namespaces'];
  app.get('/v1/namespaces', {
    config: { scope: 'read', queues: 'none' },
    schema: {
      operationId: 'listNamespaces', tags, summary: 'The namespaces this token works in',
      response: { 200: Type.Object({ items: Type.Array(Namespace) }), ...errorResponses(401, 429, 503) },
    },
  }, async (request) => {
    const mine = namespacesOf(request.principal!);
    return { items: (await ctx.namespaces.list()).filter((n) => selectionHas(mine, n.name)) };
  });

  app.post<{ Body: { name: string; description?: string } }>('/v1/namespaces', {
    config: { scope: 'admin', queues: 'global' },
    schema: {
      operationId: 'createNamespace', tags, summary: 'Create a namespace (admin token of every namespace)',
      body: CreateBody,
      response: { 201: Namespace, ...errorResponses(400, 401, 403, 409, 429, 503) },
    },
  }, async (request, reply): Promise<NamespaceInfo> => {
    if (namespacesOf(request.principal!) !== '*') throw new DroverError('FORBIDDEN', 'creating a namespace takes an admin token of every namespace ("namespaces": "*")');
    const problem = namespaceProblem(request.body.name);
    if (problem) throw new DroverError('VALIDATION', `body/name: ${problem}`);
    const { created, namespace } = await ctx.namespaces.create(request.body.name, request.body.description ?? null);
    if (!created) throw new DroverError('CONFLICT', `namespace "${request.body.name}" exists already`);
    ctx.log.info({ namespace: namespace.name }, 'namespace created');
    return reply.status(201).send(namespace);
  });
}
