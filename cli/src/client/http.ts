import { ApiError, CliError } from './errors.js';

/** Longest a plain request may take: cancel and drain wait for the runner on the server, a few seconds at most. */
const REQUEST_TIMEOUT_MS = 60_000;

/** A query string's parameters; a list repeats its parameter (`label=a=1&label=b=2`). */
export type Query = Record<string, string | number | boolean | string[] | undefined>;

/** `/v1/jobs/a b` → `/v1/jobs/a%20b`: every name and id the user typed goes through here. */
export const seg = (s: string): string => encodeURIComponent(s);

function withQuery(path: string, query: Query | undefined): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) for (const one of v === undefined ? [] : [v].flat()) params.append(k, String(one));
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

/** fetch's "fetch failed" hides the reason in `cause` (ECONNREFUSED, ENOTFOUND, ...). */
function reasonOf(err: unknown): string {
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof Error && cause.message) return cause.message;
  return err instanceof Error ? err.message : String(err);
}

/** Turns an error response into ApiError; bodies without the envelope (a proxy's page) keep the HTTP status. */
async function errorOf(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  try {
    const { error } = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    if (error && typeof error.message === 'string') return new ApiError(res.status, typeof error.code === 'string' ? error.code : 'ERROR', error.message, error.details);
  } catch {
    // not JSON: fall through
  }
  return new ApiError(res.status, 'HTTP', `${res.status} ${res.statusText}`.trim());
}

/** The header that names a request's namespace (the API also takes `?namespace=`). */
export const NAMESPACE_HEADER = 'drover-namespace';

/**
 * The REST API over fetch, with the bearer token (and the namespace, when one is chosen) on every request, event
 * streams included, and the error envelope turned into exceptions.
 */
export class Api {
  constructor(
    readonly url: string,
    private readonly token: string,
    /** Undefined: the API's choice (the token's only namespace, else default). */
    readonly namespace?: string,
  ) {}

  private async send(method: string, path: string, init: { body?: unknown; headers?: Record<string, string>; signal?: AbortSignal }): Promise<Response> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, accept: 'application/json', ...init.headers };
    if (this.namespace !== undefined) headers[NAMESPACE_HEADER] = this.namespace;
    if (init.body !== undefined) headers['content-type'] = 'application/json';
    let res: Response;
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers,
        ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
        signal: init.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (err) {
      if (init.signal?.aborted) throw err;
      if ((err as Error).name === 'TimeoutError') throw new CliError(`the API at ${this.url} did not answer within ${REQUEST_TIMEOUT_MS / 1000}s`);
      throw new CliError(`cannot reach the API at ${this.url}: ${reasonOf(err)}`);
    }
    if (!res.ok) throw await errorOf(res);
    return res;
  }

  async request<T>(method: string, path: string, opts: { query?: Query; body?: unknown } = {}): Promise<T> {
    const res = await this.send(method, withQuery(path, opts.query), opts.body !== undefined ? { body: opts.body } : {});
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  get<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('GET', path, query ? { query } : {});
  }

  /** POST with a JSON body; routes without one still get `{}` (an empty JSON body is a 400). */
  post<T>(path: string, body: unknown = {}, query?: Query): Promise<T> {
    return this.request<T>('POST', path, { body, ...(query ? { query } : {}) });
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, { body });
  }

  delete<T>(path: string, query?: Query): Promise<T> {
    return this.request<T>('DELETE', path, query ? { query } : {});
  }

  /** Opens a server-sent event stream; `lastEventId` resumes after that event. */
  async events(path: string, query: Query, lastEventId: string | undefined, signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const headers: Record<string, string> = { accept: 'text/event-stream' };
    if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
    const res = await this.send('GET', withQuery(path, query), { headers, signal });
    if (!res.body || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
      await res.body?.cancel();
      throw new CliError(`the API at ${this.url} did not answer ${path} with an event stream`);
    }
    return res.body;
  }
}
