import { useState } from 'preact/hooks';
import { api } from '../api';
import { ago, between, commandOf, duration, TERMINAL } from '../format';
import type { Job, Page } from '../types';
import { Act, Empty, ErrorBox, Status, useCan, useLiveEvents, useLoad } from '../ui';

const STATUSES = ['', 'waiting', 'delayed', 'queued', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'lost', 'expired'];

/** Cancel for an unfinished job, run-again for a finished one. */
export function JobActions({ job, onDone }: { job: Job; onDone: (next?: Job) => void }) {
  return TERMINAL.has(job.status) ? (
    <Act need="submit" testid="retry" onClick={async () => onDone(await api<Job>('POST', `/v1/jobs/${job.id}/retry`))}>Run again</Act>
  ) : (
    <Act need="submit" danger testid="cancel" onClick={async () => onDone(await api<Job>('POST', `/v1/jobs/${job.id}/cancel`))}>Cancel</Act>
  );
}

function NewJob({ onCreated }: { onCreated: (j: Job) => void }) {
  const [command, setCommand] = useState('');
  const [queue, setQueue] = useState('default');
  const [timeout, setTimeoutS] = useState('');
  const [error, setError] = useState<unknown>(null);
  if (!useCan('submit')) return null;
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    try {
      const spec: Record<string, unknown> = { command, queue };
      if (timeout) spec.timeoutMs = Math.round(Number(timeout) * 1000);
      onCreated(await api<Job>('POST', '/v1/jobs', spec));
      setCommand('');
      setError(null);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="inline" onSubmit={(e) => void submit(e)}>
      <input name="command" placeholder="shell command, e.g. make test" value={command} onInput={(e) => setCommand(e.currentTarget.value)} required size={40} />
      <input name="queue" placeholder="queue" value={queue} onInput={(e) => setQueue(e.currentTarget.value)} size={10} />
      <input name="timeout" placeholder="timeout s" value={timeout} onInput={(e) => setTimeoutS(e.currentTarget.value)} size={8} inputMode="decimal" />
      <button type="submit">Run</button>
      <ErrorBox error={error} />
    </form>
  );
}

export function JobsPage({ go, initialQueue }: { go: (hash: string) => void; initialQueue: string }) {
  const [queue, setQueue] = useState(initialQueue);
  const [status, setStatus] = useState('');
  const [label, setLabel] = useState('');
  const [cursor, setCursor] = useState<string | null>(null);
  const qs = new URLSearchParams({ limit: '50' });
  if (queue) qs.set('queue', queue);
  if (status) qs.set('status', status);
  if (label.includes('=')) qs.set('label', label);
  if (cursor) qs.set('cursor', cursor);
  const { data, error, reload } = useLoad(() => api<Page<Job>>('GET', `/v1/jobs?${qs.toString()}`), [qs.toString()]);
  useLiveEvents('job.*', reload, queue ? `&queue=${encodeURIComponent(queue)}` : '');
  const filter = (set: (v: string) => void) => (e: { currentTarget: { value: string } }) => {
    set(e.currentTarget.value);
    setCursor(null);
  };
  return (
    <section>
      <h1>Jobs</h1>
      <NewJob onCreated={(j) => go(`#/jobs/${j.id}`)} />
      <div class="filters">
        <input placeholder="queue" value={queue} onChange={filter(setQueue)} aria-label="queue filter" />
        <select value={status} onChange={filter(setStatus)} aria-label="status filter">
          {STATUSES.map((s) => <option value={s}>{s || 'any status'}</option>)}
        </select>
        <input placeholder="label key=value" value={label} onChange={filter(setLabel)} aria-label="label filter" />
      </div>
      <ErrorBox error={error} />
      {data && data.items.length === 0 ? <Empty>No jobs match.</Empty> : null}
      <table class="rows">
        <thead>
          <tr><th>id · status</th><th>command</th><th>queue</th><th>exit</th><th>created</th><th>ran</th><th /></tr>
        </thead>
        <tbody>
          {(data?.items ?? []).map((j) => (
            <tr key={j.id} data-job={j.id}>
              <td class="title"><a href={`#/jobs/${j.id}`} class="mono">{j.id.slice(-8)}</a> <Status status={j.status} /></td>
              <td data-label="command" class="cmd" title={commandOf(j)}>{j.name ? <b>{j.name} </b> : null}{commandOf(j)}</td>
              <td data-label="queue">{j.queue}</td>
              <td data-label="exit">{j.exitCode ?? ''}</td>
              <td data-label="created" title={j.createdAt}>{ago(j.createdAt)}</td>
              <td data-label="ran">{duration(between(j.startedAt, j.finishedAt))}</td>
              <td class="actions"><JobActions job={j} onDone={reload} /></td>
            </tr>
          ))}
        </tbody>
      </table>
      <div class="pager">
        {cursor ? <button type="button" onClick={() => setCursor(null)}>Newest</button> : null}
        {data?.nextCursor ? <button type="button" onClick={() => setCursor(data.nextCursor)}>Older</button> : null}
      </div>
    </section>
  );
}
