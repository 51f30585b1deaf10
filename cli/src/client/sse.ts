/** One server-sent event. EventSource is not used: it cannot send the Authorization header. */
export interface SseEvent {
  id?: string;
  event: string;
  data: string;
}

/** Parses an event stream (text/event-stream) into events until the stream ends; comments (heartbeats) are skipped. */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buf = '';
  let ev: { id?: string; event?: string; data: string[] } = { data: [] };
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += decoder.decode(value, { stream: true });
      // Lines end with \n, \r\n or \r; a trailing \r may still be half of \r\n, so it waits for more.
      let m: RegExpExecArray | null;
      while ((m = /\r\n|\n|\r(?=[^\n])/.exec(buf))) {
        const line = buf.slice(0, m.index);
        buf = buf.slice(m.index + m[0].length);
        if (line === '') {
          if (ev.data.length > 0 || ev.event !== undefined) yield { ...(ev.id !== undefined ? { id: ev.id } : {}), event: ev.event ?? 'message', data: ev.data.join('\n') };
          ev = { data: [] };
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'data') ev.data.push(val);
        else if (field === 'event') ev.event = val;
        else if (field === 'id') ev.id = val;
      }
    }
  } finally {
    reader.releaseLock();
    await body.cancel().catch(() => undefined);
  }
}
