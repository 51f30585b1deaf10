/**
 * The API as the dashboard uses it: the token lives in sessionStorage only (never in a URL or a cookie); the
 * namespace chosen is remembered in localStorage (it is no secret) and sent as a header on every request.
 */

const TOKEN_KEY = 'drover.token';
const NAMESPACE_KEY = 'drover.namespace';
/** The header that names a request's namespace; the API also takes `?namespace=`, which no call here needs (all go through fetch). */
const NAMESPACE_HEADER = 'drover-namespace';

export type Scope = 'read' | 'submit' | 'admin';
export interface Principal {
  name: string;
  scope: Scope;
  queues?: string[];
  /** The namespace of the request (absent from APIs before namespaces). */
  namespace?: string;
  /** The namespaces the token works in; `*`: every one. */
  namespaces?: string[] | '*';
}

/** GET /v1/namespaces: one the token works in (createdAt: ms since epoch, null for default). */
export interface NamespaceInfo {
  name: string;
  description: string | null;
  createdAt: number | null;
}

export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export const getToken = (): string | null => sessionStorage.getItem(TOKEN_KEY);
export const setToken = (t: string | null): void => (t ? sessionStorage.setItem(TOKEN_KEY, t) : sessionStorage.removeItem(TOKEN_KEY));

/** What a scope allows, so the pages show no button that would answer 403. */
export const can = (p: Principal | null, needed: Scope): boolean => {
  const rank: Record<Scope, number> = { read: 0, submit: 1, admin: 2 };
  return p !== null && rank[p.scope] >= rank[needed];
};

/**
 * This tab's namespace: every request names it once chosen (null: none named, the API picks). Kept per tab, so a
 * switch in another tab (which rewrites localStorage) does not move this one's requests under its feet.
 */
let namespace: string | null = null;

/** The namespace remembered from an earlier visit (this tab's choice once made). */
export const storedNamespace = (): string | null => localStorage.getItem(NAMESPACE_KEY);
export const getNamespace = (): string | null => namespace;
export function setNamespace(ns: string | null): void {
  namespace = ns;
  if (ns) localStorage.setItem(NAMESPACE_KEY, ns);
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const t = getToken();
  return { ...(t ? { authorization: `Bearer ${t}` } : {}), ...(namespace ? { [NAMESPACE_HEADER]: namespace } : {}), ...extra };
}

/**
 * The namespaces the token works in, and which the API puts a request in that names none: asked without the
 * namespace header, so a remembered namespace the token may not use (another token's) cannot make them fail.
 */
export async function session(): Promise<{ me: Principal; namespaces: NamespaceInfo[] | null }> {
  const me = await bare<Principal>('/v1/whoami');
  // An API from before namespaces has no list: no switch then.
  const namespaces = await bare<{ items: NamespaceInfo[] }>('/v1/namespaces').then((r) => r.items, () => null);
  return { me, namespaces };
}

/** A GET with the token and nothing else. */
async function bare<T>(path: string): Promise<T> {
  const t = getToken();
  return (await result(await fetch(path, { headers: t ? { authorization: `Bearer ${t}` } : {} }))) as T;
}

/**
 * The namespace to work in: the one remembered if the token still works there, else the one the API chose for
 * a request naming none, else the first listed; null without a list (the API picks each time).
 */
export function pickNamespace(me: Principal, list: NamespaceInfo[] | null): string | null {
  if (!list) return null;
  const names = list.map((n) => n.name);
  const remembered = storedNamespace();
  if (remembered && names.includes(remembered)) return remembered;
  if (me.namespace && names.includes(me.namespace)) return me.namespace;
  return names[0] ?? null;
}

/** A response's JSON, or its error as ApiError with the server's message. */
async function result(res: Response): Promise<unknown> {
  const text = await res.text();
  const data: unknown = text ? JSON.parse(text) : undefined;
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(err?.message ?? `HTTP ${res.status}`, err?.code ?? 'HTTP', res.status);
  }
  return data;
}

/** JSON request; errors come back as ApiError with the server's message. */
export async function api<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const h = headers(body !== undefined ? { 'content-type': 'application/json' } : {});
  if (token) h.authorization = `Bearer ${token}`;
  const res = await fetch(path, { method, headers: h, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  return (await result(res)) as T;
}

export interface SseEvent {
  id: string | undefined;
  event: string;
  data: string;
}

/**
 * Server-sent events over fetch: EventSource cannot send the Authorization header, and the token must not go
 * into the URL. Resolves when the stream ends or `signal` aborts.
 */
export async function streamEvents(path: string, onEvent: (e: SseEvent) => void, signal: AbortSignal): Promise<void> {
  const res = await fetch(path, { headers: headers({ accept: 'text/event-stream' }), signal });
  if (!res.ok || !res.body) throw new ApiError(`stream failed: HTTP ${res.status}`, 'HTTP', res.status);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += value;
    let cut: number;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      const e: SseEvent = { id: undefined, event: 'message', data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const v = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') e.event = v;
        else if (field === 'id') e.id = v;
        else if (field === 'data') data.push(v);
      }
      if (data.length === 0) continue;
      e.data = data.join('\n');
      onEvent(e);
    }
  }
}

/** A download of text the API gives only to a token (an object URL, so the token stays out of the link). */
export function downloadText(name: string, text: string | Blob): void {
  const url = URL.createObjectURL(typeof text === 'string' ? new Blob([text], { type: 'text/plain' }) : text);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** A job's whole output as the API's text download (every attempt, byte for byte), saved as `<id>.log`. */
export async function downloadLog(id: string): Promise<void> {
  const res = await fetch(`/v1/jobs/${encodeURIComponent(id)}/logs?format=text`, { headers: headers() });
  if (!res.ok) {
    const err = ((await res.json().catch(() => undefined)) as { error?: { code?: string; message?: string } } | undefined)?.error;
    throw new ApiError(err?.message ?? `HTTP ${res.status}`, err?.code ?? 'HTTP', res.status);
  }
  downloadText(`${id}.log`, await res.blob());
}
