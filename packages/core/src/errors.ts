/**
 * One base error with a stable `code`. Services throw these; only the API's error handler turns them
 * into HTTP answers, so the status lives here next to the code that implies it.
 */
export const ERROR_CODES = {
  VALIDATION: { status: 400, doc: 'The request body, query or path failed validation.' },
  INVALID_JSON: { status: 400, doc: 'The request body is not valid JSON.' },
  BAD_CURSOR: { status: 400, doc: 'The pagination cursor is malformed.' },
  UNAUTHORIZED: { status: 401, doc: 'No bearer token, or an unknown one.' },
  FORBIDDEN: { status: 403, doc: 'The token lacks the scope this route needs.' },
  NOT_FOUND: { status: 404, doc: 'No such resource.' },
  METHOD_NOT_ALLOWED: { status: 405, doc: 'The route exists but not with this method.' },
  CONFLICT: { status: 409, doc: 'The resource is in a state that does not allow this action.' },
  IDEMPOTENCY_KEY_REUSED: { status: 409, doc: 'The Idempotency-Key came before with another request (another body or route); nothing was created.' },
  BODY_TOO_LARGE: { status: 413, doc: 'The request body exceeds the configured limit.' },
  URI_TOO_LONG: { status: 414, doc: 'A path parameter is longer than any valid value.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, doc: 'The request body has a content type the API does not read.' },
  RATE_LIMITED: { status: 429, doc: 'Too many requests.' },
  QUOTA: { status: 429, doc: 'The token has as many unfinished jobs as its maxUnfinished allows; submit again once some ended.' },
  INTERNAL: { status: 500, doc: 'An unexpected failure; details are in the server log.' },
  UNAVAILABLE: { status: 503, doc: 'A dependency (Redis, the broker) is unreachable; retry later.' },
  STORE_FULL: { status: 503, doc: 'Redis reached its maxmemory (noeviction): nothing was changed; retry once an operator freed memory.' },
  CONFIG: { status: 500, doc: 'The service configuration is invalid (startup only).' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class DroverError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = 'DroverError';
    this.code = code;
    this.details = details;
  }

  get status(): number {
    return ERROR_CODES[this.code].status;
  }
}

/** Normalises anything thrown into an Error, so logs always have a message and a stack. */
export function coerceError(thrown: unknown): Error {
  if (thrown instanceof Error) return thrown;
  return new Error(typeof thrown === 'string' ? thrown : JSON.stringify(thrown));
}
