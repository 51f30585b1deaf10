import { useState } from 'preact/hooks';
import { api, ApiError } from '../api';
import { ago } from '../format';
import { RangePicker, RunnerLoadChart, useStats } from '../stats';
import type { Runner, StatsRange } from '../types';
import { Act, Empty, ErrorBox, useLiveEvents, useLoad } from '../ui';

export function RunnersPage() {
  const { data, error, reload } = useLoad(() => api<{ items: Runner[] }>('GET', '/v1/runners'), [], 5000);
  useLiveEvents('runner.*,job.started,job.succeeded,job.failed,job.timed_out,job.cancelled,job.lost', reload);
  const [range, setRange] = useState<StatsRange>('hour');
  const stats = useStats(range);
  const post = (id: string, path: string) => async () => {
    await api('POST', `/v1/runners/${encodeURIComponent(id)}/${path}`);
    reload();
  };
  // The API refuses to drain the last runner of a queue (409); the operator may insist.
  const drain = (id: string) => async () => {
    try {
      await post(id, 'drain')();
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 409) || !confirm(`${err.message}\n\nDrain anyway?`)) throw err;
      await post(id, 'drain?force=1')();
    }
  };
  return (
    <section>
      <h1>Runners</h1>
      <ErrorBox error={error} />
      {data && data.items.length === 0 ? <Empty>No runner has registered.</Empty> : null}
      <table class="rows">
        <thead><tr><th>runner</th><th>state</th><th>load</th><th>queues</th><th>host / pid</th><th>heartbeat</th><th>up since</th><th>running jobs</th><th /></tr></thead>
        <tbody>
          {(data?.items ?? []).map((r) => (
            <tr key={r.id} data-runner={r.id}>
              <td class="mono title">{r.id}</td>
              <td data-label="state"><span class={`status s-${r.state}`}>{r.state}</span></td>
              <td data-label="load">
                <meter min={0} max={r.concurrency ?? 1} value={r.running.length} /> {r.running.length} / {r.concurrency ?? '?'}
              </td>
              <td data-label="queues">{r.queues.join(', ')}</td>
              <td data-label="host / pid">{r.host ?? '?'} / {r.pid ?? '?'}</td>
              <td data-label="heartbeat">{ago(r.lastHeartbeatAt)}</td>
              <td data-label="up since">{ago(r.startedAt)}</td>
              <td data-label="running jobs">{r.running.map((id) => <a key={id} href={`#/jobs/${id}`} class="mono">{id.slice(-8)} </a>)}</td>
              <td class="actions">
                {r.state === 'offline' ? null : r.drainRequested || r.state === 'draining'
                  ? <Act need="admin" testid="resume" onClick={post(r.id, 'resume')}>Resume</Act>
                  : <Act need="admin" testid="drain" title="Take no more jobs; running ones finish" onClick={drain(r.id)}>Drain</Act>}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {/* A token restricted to some queues gets no load of the shared runners (null). */}
      {stats.data?.runners === null ? null : (
        <>
          <div class="row">
            <h2>Load over time</h2>
            <RangePicker range={range} onChange={setRange} />
          </div>
          <ErrorBox error={stats.error} />
          {stats.data ? <div class="card"><RunnerLoadChart stats={stats.data} /></div> : null}
        </>
      )}
    </section>
  );
}
