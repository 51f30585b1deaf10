import { DroverError } from '@drover/core';
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { errorResponses } from '../schemas.js';
import { namespacesOf } from '../auth.js';

/** Who the token is: the dashboard and CLI use it to offer only what the token may do. */
export function whoamiRoutes(app: FastifyInstance, namespace: string): void {
  app.get(
    '/v1/whoami',
    {
      config: { scope: 'read', queues: 'none' },
      schema: {
        operationId: 'whoami',
        tags: ['health'],
        summary: "The calling token's name, scope, queue restriction and namespaces, and the namespace this request is in",
        response: {
          200: Type.Object({
            name: Type.String(),
            scope: Type.Union([Type.Literal('read'), Type.Literal('submit'), Type.Literal('admin')]),
            queues: Type.Optional(Type.Array(Type.String())),
            namespace: Type.String({ description: 'The namespace of this request' }),
            namespaces: Type.Union([Type.Array(Type.String()), Type.Literal('*')], { description: 'The namespaces the token works in; `*`: every one' }),
          }),
          ...errorResponses(401, 429, 503),
        },
      },
    },
    async (request) => {
      const p = request.principal;
      if (!p) throw new DroverError('UNAUTHORIZED', 'a bearer token is required');
      return { name: p.name, scope: p.scope, ...(p.queues ? { queues: p.queues } : {}), namespace, namespaces: namespacesOf(p) };
    },
  );
}
