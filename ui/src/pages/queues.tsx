import { useState } from 'preact/hooks';
import { api } from '../api';
import { ago } from '../format';
import type { QueueView } from '../types';
import { Act, Empty, ErrorBox, useCan, useLiveEvents, useLoad } from '../ui';

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
      <table>
        <thead>
          <tr><th>queue</th><th>waiting</th><th>delayed</th><th>queued</th><th>parked</th><th>running</th><th>oldest queued</th><th>last hour ok / failed</th><th>concurrency</th><th>state</th><th /></tr>
        </thead>
        <tbody>
          {(data?.items ?? []).map((q) => (
            <tr key={q.name} data-queue={q.name}>
              <td><a href={`#/jobs?queue=${encodeURIComponent(q.name)}`}>{q.name}</a></td>
              <td>{q.counts.waiting}</td>
              <td>{q.counts.delayed}</td>
              <td>{q.counts.queued}</td>
              <td>{q.counts.parked}</td>
              <td>{q.counts.running}</td>
              <td>{q.oldestQueuedAt ? ago(q.oldestQueuedAt) : '–'}</td>
              <td>{q.counts.lastHour.succeeded ?? 0} / {(q.counts.lastHour.failed ?? 0) + (q.counts.lastHour.timed_out ?? 0) + (q.counts.lastHour.lost ?? 0)}</td>
              <td><Concurrency q={q} onDone={reload} /></td>
              <td data-testid="queue-state">{q.settings.paused ? 'paused' : 'active'}</td>
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
    </section>
  );
}
