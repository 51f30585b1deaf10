import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import type { FastifyInstance } from 'fastify';

/**
 * Bodies are validated strictly: no type coercion ("5" is not a number), no silently dropped unknown fields,
 * every problem reported. Query strings and path parameters are strings on the wire, so those are coerced.
 */
export function registerValidation(app: FastifyInstance): void {
  // verbose: each error carries its schema, from which the messages list the allowed values (errors.ts).
  const base = { allErrors: true, removeAdditional: false, useDefaults: true, strict: false, verbose: true } as const;
  const strict = new Ajv({ ...base, coerceTypes: false });
  const coercing = new Ajv({ ...base, coerceTypes: 'array' });
  addFormats.default(strict);
  addFormats.default(coercing);
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema));
}
