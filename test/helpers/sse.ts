/** A minimal SSE client for tests: connects with fetch and yields parsed frames until closed. */
export interface SseFrame {
  id?: string;
  event?: string;
  data: string;
}

export interface SseClient {
  status: number;
  /** The next frame, or undefined when the stream ended or `timeoutMs` passed. */
  next(timeoutMs?: number): Promise<SseFrame | undefined>;
  close(): void;
}

export async function connectSse(url: string, headers: Record<string, string>): Promise<SseClient> {
  const ctrl = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', ...headers }, signal: ctrl.signal });
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  const frames: SseFrame[] = [];
  let ended = false;
  let reading: Promise<void> | undefined;
  const pump = async (): Promise<void> => {
    try {
      const { value, done } = await reader.read();
      if (done) {
        ended = true;
        return;
      }
      buf += decoder.decode(value, { stream: true });
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const raw = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const frame: SseFrame = { data: '' };
        const data: string[] = [];
        for (const line of raw.split('\n')) {
          if (line.startsWith(':')) continue; // comment (heartbeat)
          const i = line.indexOf(':');
          const field = i < 0 ? line : line.slice(0, i);
          const value = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
          if (field === 'id') frame.id = value;
          else if (field === 'event') frame.event = value;
          else if (field === 'data') data.push(value);
        }
        frame.data = data.join('\n');
        if (frame.id !== undefined || frame.event !== undefined || data.length > 0) frames.push(frame);
      }
    } catch {
      ended = true;
    }
  };
  return {
    status: res.status,
    async next(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      while (frames.length === 0 && !ended && Date.now() < deadline) {
        reading ??= pump().finally(() => (reading = undefined));
        await Promise.race([reading, new Promise((r) => setTimeout(r, Math.max(1, deadline - Date.now())))]);
      }
      return frames.shift();
    },
    close() {
      ctrl.abort();
    },
  };
}
