import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import type { JobRecord } from '@drover/core';
import { freePort, startService, startServiceReady } from './helpers/processes.js';
import { brokerTest, startStack } from './helpers/stack.js';
import { until } from './helpers/until.js';

interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpAttr {
  key: string;
  value: OtlpValue;
}
interface OtlpBody {
  resourceSpans?: {
    resource?: { attributes?: OtlpAttr[] };
    scopeSpans?: { spans?: { traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number; attributes?: OtlpAttr[] }[] }[];
  }[];
}

const attrs = (list: OtlpAttr[] | undefined): Record<string, unknown> =>
  Object.fromEntries((list ?? []).map((a) => [a.key, a.value.stringValue ?? (a.value.intValue !== undefined ? Number(a.value.intValue) : (a.value.boolValue ?? a.value.doubleValue))]));

/** Ids arrive as hex in OTLP/JSON; accept base64 too, so the check does not depend on the exporter's choice. */
const hexId = (id: string | undefined): string => (!id ? '' : /^[0-9a-f]+$/.test(id) ? id : Buffer.from(id, 'base64').toString('hex'));

/** A minimal OTLP/HTTP (JSON) trace receiver on loopback: what a collector would get. */
async function otlpReceiver(t: TestContext): Promise<{ url: string; spans: ReceivedSpan[] }> {
  const spans: ReceivedSpan[] = [];
  const read = async (req: IncomingMessage): Promise<string> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return Buffer.concat(chunks).toString();
  };
  const srv = createServer((req, res) => {
    void read(req).then((text) => {
      if (req.url === '/v1/traces' && (req.headers['content-type'] ?? '').includes('json')) {
        const body = JSON.parse(text) as OtlpBody;
        for (const rs of body.resourceSpans ?? []) {
          const service = String(attrs(rs.resource?.attributes)['service.name']);
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              spans.push({ service, traceId: hexId(s.traceId), spanId: hexId(s.spanId), parentSpanId: hexId(s.parentSpanId), name: s.name, kind: s.kind, attributes: attrs(s.attributes) });
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  t.after(() => new Promise((r) => srv.close(r)));
  return { url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`, spans };
}


brokerTest('one trace runs from POST /v1/jobs through the broker to the runner and the command itself', async (t, broker) => {
  // The stack gives the prefix and its cleanup; the traced API and runner are processes of their own.
  const s = await startStack(t, { broker, runner: false, scheduler: false });
  const otlp = await otlpReceiver(t);
  const queue = 'traced';
  const traceEnv = { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: '100', DROVER_BROKER: broker };
  const port = await freePort();
  startService(t, 'api', s.prefix, { ...traceEnv, DROVER_PORT: String(port), DROVER_ADMIN_TOKEN: s.tokens.admin });
  // At debug: a successful job's 'job finished' line is a debug line (the default level logs a summary instead).
  const runner = await startServiceReady(t, 'runner', s.prefix, { ...traceEnv, RUNNER_QUEUES: queue, DROVER_LOG_LEVEL: 'debug' });
  let runnerLog = '';
  runner.stdout!.on('data', (c: Buffer) => (runnerLog += c.toString()));
  const api = `http://127.0.0.1:${port}`;
  await until('the traced API', () => fetch(`${api}/readyz`).then((r) => r.ok, () => false));

  const headers = { authorization: `Bearer ${s.tokens.admin}`, 'content-type': 'application/json' };
  const res = await fetch(`${api}/v1/jobs`, { method: 'POST', headers, body: JSON.stringify({ queue, command: 'echo "tp=$TRACEPARENT"' }) });
  assert.equal(res.status, 201);
  const job = (await res.json()) as JobRecord;
  const done = await until('the job to finish', async () => {
    const r = (await (await fetch(`${api}/v1/jobs/${job.id}`, { headers })).json()) as JobRecord;
    return r.status === 'succeeded' && r;
  });
  assert.equal(done.status, 'succeeded');

  const exec = await until('the process span', () => otlp.spans.find((x) => x.name === 'job.exec' && x.attributes['drover.job.id'] === job.id));
  const { traceId } = exec;
  const inTrace = (): ReceivedSpan[] => otlp.spans.filter((x) => x.traceId === traceId);
  await until('the API spans', () => inTrace().some((x) => x.service === 'drover-api' && x.name === 'POST /v1/jobs'));
  const server = inTrace().find((x) => x.name === 'POST /v1/jobs')!;
  const publish = inTrace().find((x) => x.name === `publish ${queue}`)!;
  const consume = inTrace().find((x) => x.name === `process ${queue}`)!;
  assert.ok(publish && consume, JSON.stringify(inTrace().map((x) => x.name)));

  // API → broker → runner → process, parent by parent, one trace id, two services.
  assert.equal(server.service, 'drover-api');
  assert.equal(server.parentSpanId, '', 'a request without traceparent starts the trace');
  assert.equal(server.attributes['http.response.status_code'], 201);
  assert.equal(publish.service, 'drover-api');
  assert.equal(publish.parentSpanId, server.spanId);
  assert.equal(publish.attributes['messaging.system'], broker);
  assert.equal(consume.service, 'drover-runner');
  assert.equal(consume.parentSpanId, publish.spanId);
  assert.equal(consume.attributes['messaging.destination.name'], queue);
  assert.equal(consume.attributes['drover.job.id'], job.id);
  assert.equal(exec.service, 'drover-runner');
  assert.equal(exec.parentSpanId, consume.spanId);
  assert.equal(exec.attributes['process.exit.code'], 0);
  assert.equal(typeof exec.attributes['drover.job.duration_ms'], 'number');

  // The command received the process span as TRACEPARENT, so what it traces joins the same trace.
  const logs = (await (await fetch(`${api}/v1/jobs/${job.id}/logs`, { headers })).text());
  assert.ok(logs.includes(`tp=00-${traceId}-${exec.spanId}-01`), logs);

  // The runner's log lines about the job carry the trace id next to the job id.
  await until('the runner log line', () => runnerLog.includes('"msg":"job finished"'));
  const line = runnerLog.split('\n').find((l) => l.includes('"msg":"job finished"'))!;
  const parsed = JSON.parse(line) as Record<string, unknown>;
  assert.equal(parsed.jobId, job.id);
  assert.equal(parsed.trace_id, traceId);
});

brokerTest('a caller\'s traceparent is continued, and without an OTLP endpoint nothing is traced', async (t, broker) => {
  const s = await startStack(t, { broker, runner: false, scheduler: false });
  const otlp = await otlpReceiver(t);
  const port = await freePort();
  startService(t, 'api', s.prefix, { OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url, OTEL_BSP_SCHEDULE_DELAY: '100', DROVER_BROKER: broker, DROVER_PORT: String(port), DROVER_ADMIN_TOKEN: s.tokens.admin });
  const api = `http://127.0.0.1:${port}`;
  await until('the traced API', () => fetch(`${api}/readyz`).then((r) => r.ok, () => false));
  const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
  const res = await fetch(`${api}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${s.tokens.admin}`, 'content-type': 'application/json', traceparent: `00-${callerTrace}-00f067aa0ba902b7-01` },
    body: JSON.stringify({ queue: 'nobody-runs-this', command: 'true' }),
  });
  assert.equal(res.status, 201);
  const server = await until('the server span', () => otlp.spans.find((x) => x.name === 'POST /v1/jobs'));
  assert.equal(server.traceId, callerTrace);
  assert.equal(server.parentSpanId, '00f067aa0ba902b7');

  // The in-process stack has no endpoint configured: its requests produce no spans at all.
  const before = otlp.spans.length;
  assert.equal((await s.request('POST', '/v1/jobs', { queue: 'nobody-runs-this', command: 'true' })).status, 201);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(otlp.spans.length, before);
});
