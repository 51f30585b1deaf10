import { useState } from 'preact/hooks';
import { api } from '../api';
import { ago } from '../format';
import { QueueCharts, RangePicker, useStats } from '../stats';
import type { QueueView, StatsRange } from '../types';
import { Act, Empty, ErrorBox, useCan, useLiveEvents, useLoad } from '../ui';

/** The live runners serving a queue, when the API says (older APIs do not: then nothing is claimed). */
function consumersOf(q: QueueView): { id: string; state?: string }[] | null {
  const c: unknown = (q as { consumers?: unknown }).consumers;
  return Array.isArray(c) ? (c as { id: string; state?: string }[]) : null;
}

function Served({ q }: { q: QueueView }) {
  const c = consumersOf(q);
  if (c === null) return null;
  if (c.length === 0) return <span class="warn" data-testid="no-runner" title="Its jobs wait until a runner with this queue in RUNNER_QUEUES starts">no runner serves this queue</span>;
  if (c.every((r) => r.state === 'draining')) return <span class="warn" data-testid="no-runner">only draining runners</span>;
  return <span class="muted" title={c.map((r) => r.id).join(', ')}>{c.length} runner{c.length === 1 ? '' : 's'}</span>;
}

function Concurrency({ q, onDone }: { q: QueueView; onDone: () => void }) {
  const [value, setValue] = useState(q.settings.concurrency === null ? '' : String(q.settings.concurrency));
  const editable = useCan('admin');
  if (!editable) return <>{q.settings.concurrency ?? 'unlimited'}</>;
  return (
    <span class="inline">
      <input aria-label={`concurrency of ${q.name}`} value={value} size={5} placeholder="none" onInput={(e) => setValue(e.currentTarget.value)} />
      <Act need="admin" testid="save-concurrency" onClick={async () => {
        await api('PUT', `/v1/queues/${encodeURIComponent(q.name)}`, { concurrency: value.trim() === '' ? null : Number(value) });
        onDone();
      }}>Save</Act>
    </span>
  );
}

export function QueuesPage() {
  const { data, error, reload } = useLoad(() => api<{ items: QueueView[] }>('GET', '/v1/queues'), [], 5000);
  const [range, setRange] = useState<StatsRange>('hour');
  const stats = useStats(range);
  useLiveEvents('job.*', reload);
  const act = (fn: () => Promise<unknown>) => async () => {
    try {
      await fn();
    } finally {
      reload();
    }
  };
  return (
    <section>
      <h1>Queues</h1>
      <ErrorBox error={error} />
      {data && data.items.length === 0 ? <Empty>No queues yet: a queue appears with its first job or its settings.</Empty> : null}
      <table class="rows">
        <thead>
          <tr><th>queue</th><th>waiting</th><th>delayed</th><th>queued</th><th>parked</th><th>running</th><th>oldest queued</th><th>last hour ok / failed</th><th>concurrency</th><th>state</th><th /></tr>
        </thead>
        <tbody>
          {(data?.items ?? []).map((q) => (
            <tr key={q.name} data-queue={q.name}>
              <td class="title"><a href={`#/jobs?queue=${encodeURIComponent(q.name)}`}>{q.name}</a> <Served q={q} /></td>
              <td data-label="waiting">{q.counts.waiting}</td>
              <td data-label="delayed">{q.counts.delayed}</td>
              <td data-label="queued">{q.counts.queued}</td>
              <td data-label="parked">{q.counts.parked}</td>
              <td data-label="running">{q.counts.running}</td>
              <td data-label="oldest queued">{q.oldestQueuedAt ? ago(q.oldestQueuedAt) : '–'}</td>
              <td data-label="last hour ok / failed">{q.counts.lastHour.succeeded ?? 0} / {(q.counts.lastHour.failed ?? 0) + (q.counts.lastHour.timed_out ?? 0) + (q.counts.lastHour.lost ?? 0)}</td>
              <td data-label="concurrency"><Concurrency q={q} onDone={reload} /></td>
              <td data-label="state" data-testid="queue-state">{q.settings.paused ? 'paused' : 'active'}</td>
              <td class="actions">
                {q.settings.paused ? (
                  <Act need="admin" testid="resume" onClick={act(() => api('POST', `/v1/queues/${encodeURIComponent(q.name)}/resume`))}>Resume</Act>
                ) : (
                  <Act need="admin" testid="pause" onClick={act(() => api('POST', `/v1/queues/${encodeURIComponent(q.name)}/pause`))}>Pause</Act>
                )}
                <Act need="submit" danger testid="cancel-queued" onClick={act(async () => {
                  if (confirm(`Cancel every queued job in ${q.name}?`)) await api('DELETE', `/v1/queues/${encodeURIComponent(q.name)}/jobs?status=queued`);
                })}>Cancel queued</Act>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="row">
        <h2>Throughput and queue wait</h2>
        <RangePicker range={range} onChange={setRange} />
      </div>
      <ErrorBox error={stats.error} />
      {stats.data && stats.data.queues.length === 0 ? <Empty>Nothing to draw yet.</Empty> : null}
      {(stats.data?.queues ?? []).map((q) => <QueueCharts key={q.name} q={q} times={stats.data!.times} range={stats.data!.range} />)}
      {stats.data?.truncated ? <p class="muted">Showing the first {stats.data.queues.length} queues.</p> : null}
    </section>
  );
}
