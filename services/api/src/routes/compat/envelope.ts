import { ERROR_CODES } from '@drover/core';
import type { FastifyInstance } from 'fastify';
import { describeError } from '../../errors.js';

/**
 * Error answers for a compatibility adapter in the envelope its clients parse. The HTTP status stays the
 * meaningful 4xx/5xx (every bad input is a 4xx), only the body's shape is the legacy system's.
 */
export function legacyErrors(app: FastifyInstance, envelope: (status: number, message: string) => unknown): void {
  app.setErrorHandler((thrown, request, reply) => {
    const body = describeError(thrown, request);
    const status = ERROR_CODES[body.code].status;
    void reply.status(status).send(envelope(status, body.message));
  });
}
