/**
 * Event throughput: while `jobs` /bin/true jobs flow through Drover as fast as one runner takes them, count what
 * `sse` SSE consumers of /v1/events receive (every job event must arrive), and measure the lag of webhook
 * deliveries (job.succeeded, to a receiver in this process): receipt time minus the event's own time.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';

export interface EventsBenchTarget {
  url: string;
  token: string;
  /** Submits the jobs and resolves when all succeeded; returns jobs/s. */
  run(jobs: number): Promise<number>;
}

interface Consumer {
  counts: Map<string, number>;
  close(): void;
}

/** An SSE consumer that counts job events per type. */
async function consume(url: string, token: string): Promise<Consumer> {
  const ctrl = new AbortController();
  const res = await fetch(url, { headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` }, signal: ctrl.signal });
  const counts = new Map<string, number>();
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += decoder.decode(value, { stream: true });
        let cut: number;
        while ((cut = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, cut);
          buf = buf.slice(cut + 2);
          const type = /^event: (.+)$/m.exec(frame)?.[1];
          if (type) counts.set(type, (counts.get(type) ?? 0) + 1);
        }
      }
    } catch {
      // aborted
    }
  })();
  return { counts, close: () => ctrl.abort() };
}

const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

export async function runEventsBench(target: EventsBenchTarget, opts: { jobs: number; sse: number }): Promise<[string, string][]> {
  // The same load with nobody listening, for comparison.
  const quiet = await target.run(opts.jobs);
  const lags: number[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const { event } = JSON.parse(body) as { event: { id: string } };
      lags.push(Date.now() - Number(event.id.split('-')[0]));
      res.writeHead(204).end();
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const hook = await fetch(`${target.url}/v1/webhooks`, {
    method: 'POST',
    headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url: `http://127.0.0.1:${port}/hook`, events: ['job.succeeded'] }),
  });
  if (hook.status !== 201) throw new Error(`creating the webhook: ${hook.status}`);
  const consumers = await Promise.all(Array.from({ length: opts.sse }, () => consume(`${target.url}/v1/events?types=job.*`, target.token)));
  try {
    const rate = await target.run(opts.jobs);
    const deadline = Date.now() + 60_000;
    while (lags.length < opts.jobs && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 500));
    const sorted = [...lags].sort((a, b) => a - b);
    const rows: [string, string][] = [
      [`jobs/s with no consumer (${opts.jobs} jobs)`, quiet.toFixed(0)],
      [`jobs/s with ${opts.sse} SSE consumers and a webhook (3 job events each)`, rate.toFixed(0)],
      ['    ratio', (rate / quiet).toFixed(2)],
      ['    job events/s', (rate * 3).toFixed(0)],
    ];
    consumers.forEach((c, i) => {
      const seen = ['job.submitted', 'job.started', 'job.succeeded'].map((t) => c.counts.get(t) ?? 0);
      rows.push([`SSE consumer ${i + 1}: submitted / started / succeeded seen (of ${opts.jobs} each)`, seen.join(' / ')]);
    });
    rows.push([`webhook deliveries received (of ${opts.jobs})`, String(lags.length)]);
    rows.push(['webhook lag p50 / p99 / max, ms (event recorded -> received)', `${pct(sorted, 50)} / ${pct(sorted, 99)} / ${sorted[sorted.length - 1]}`]);
    return rows;
  } finally {
    for (const c of consumers) c.close();
    server.close();
  }
}
