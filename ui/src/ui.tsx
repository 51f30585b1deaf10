import { createContext, type ComponentChildren } from 'preact';
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, can, streamEvents, type Principal, type Scope } from './api';

/** Who is logged in; pages read it to hide what the token may not do. */
export const Me = createContext<Principal | null>(null);

export function useCan(needed: Scope): boolean {
  return can(useContext(Me), needed);
}

/** A button shown only to tokens whose scope allows the action (a read token sees none that would 403). */
export function Act(props: { need: Scope; onClick: () => Promise<unknown> | void; children: ComponentChildren; danger?: boolean; title?: string; testid?: string }) {
  const allowed = useCan(props.need);
  const [busy, setBusy] = useState(false);
  const report = useContext(Report);
  if (!allowed) return null;
  const click = async (): Promise<void> => {
    setBusy(true);
    try {
      await props.onClick();
    } catch (err) {
      report(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <button type="button" class={props.danger ? 'danger' : ''} disabled={busy} title={props.title} data-testid={props.testid} onClick={() => void click()}>
      {props.children}
    </button>
  );
}

/** Where actions report failures: the page's error banner. */
export const Report = createContext<(err: unknown) => void>(() => undefined);

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const e = error instanceof ApiError ? `${error.message} (${error.code})` : error instanceof Error ? error.message : JSON.stringify(error);
  return <p class="error" role="alert">{e}</p>;
}

export function Status({ status }: { status: string }) {
  return <span class={`status s-${status}`}>{status.replace('_', ' ')}</span>;
}

/** Loads data and reloads it on demand (and every `everyMs` when given); keeps the last good value on failure. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[], everyMs?: number): { data: T | undefined; error: unknown; reload: () => void } {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const seq = useRef(0);
  const reload = useCallback(() => {
    const n = ++seq.current;
    load().then(
      (d) => {
        if (n !== seq.current) return;
        setData(d);
        setError(null);
      },
      (err: unknown) => n === seq.current && setError(err),
    );
  }, deps);
  useEffect(() => {
    reload();
    if (!everyMs) return;
    const t = setInterval(reload, everyMs);
    return () => clearInterval(t);
  }, [reload, everyMs]);
  return { data, error, reload };
}

/**
 * Live updates: subscribes to /v1/events (SSE) for `types` and calls `onChange` (throttled) when one arrives.
 * Reconnects after a drop; the page reloads its data then too, so nothing is missed.
 */
export function useLiveEvents(types: string, onChange: () => void, query = ''): void {
  const latest = useRef(onChange);
  latest.current = onChange;
  useEffect(() => {
    const ctrl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poke = (): void => {
      timer ??= setTimeout(() => {
        timer = undefined;
        latest.current();
      }, 250);
    };
    void (async () => {
      while (!ctrl.signal.aborted) {
        try {
          await streamEvents(`/v1/events?types=${encodeURIComponent(types)}${query}`, (e) => e.event !== 'gap' && poke(), ctrl.signal);
        } catch {
          // dropped: try again shortly
        }
        if (ctrl.signal.aborted) return;
        poke();
        await new Promise((r) => setTimeout(r, 2000));
      }
    })();
    return () => {
      ctrl.abort();
      clearTimeout(timer);
    };
  }, [types, query]);
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}
