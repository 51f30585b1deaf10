import { useEffect, useRef, useState } from 'preact/hooks';
import { api, downloadText, streamEvents } from '../api';
import { between, commandOf, duration, time, TERMINAL } from '../format';
import type { Job, LogLine, LogPage } from '../types';
import { ErrorBox, Status, useLiveEvents, useLoad } from '../ui';
import { JobActions } from './jobs';

const MAX_SHOWN = 5000;

/** All stored output, page by page (for the download). */
async function fullLog(id: string): Promise<LogLine[]> {
  const out: LogLine[] = [];
  let cursor: string | null = null;
  for (;;) {
    const page: LogPage = await api<LogPage>('GET', `/v1/jobs/${id}/logs?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    out.push(...page.items);
    // A finished job's last page has no cursor; a running one's output is read up to now.
    if (page.items.length === 0 || !page.nextCursor) return out;
    cursor = page.nextCursor;
  }
}

/** The output, live: the stored lines, then the follow stream (SSE) until the job ends. */
function LogTail({ job }: { job: Job }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [ended, setEnded] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const box = useRef<HTMLPreElement>(null);
  useEffect(() => {
    const ctrl = new AbortController();
    setLines([]);
    setEnded(false);
    // The follow stream sends the stored lines first, so one stream covers history and live output.
    streamEvents(`/v1/jobs/${job.id}/logs?follow=1`, (e) => {
      if (e.event === 'line') setLines((prev) => [...prev, JSON.parse(e.data) as LogLine].slice(-MAX_SHOWN));
      if (e.event === 'end') setEnded(true);
    }, ctrl.signal).catch((err: unknown) => !ctrl.signal.aborted && setError(err));
    return () => ctrl.abort();
  }, [job.id]);
  useEffect(() => {
    const el = box.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [lines.length]);
  return (
    <div>
      <div class="row">
        <h2>Output</h2>
        <span class="muted">{ended ? 'ended' : 'live'}{job.truncated ? ', truncated at the output cap' : ''}</span>
        <button type="button" onClick={() => void fullLog(job.id).then((all) => downloadText(`${job.id}.log`, all.map((l) => `${l.ts} ${l.stream} ${l.line}`).join('\n') + '\n'), setError)}>
          Download full log
        </button>
      </div>
      <ErrorBox error={error} />
      <pre class="log" ref={box} data-testid="log">
        {lines.map((l) => <div key={l.id} class={`l-${l.stream}`}>{l.line}</div>)}
      </pre>
    </div>
  );
}

export function JobPage({ id, go }: { id: string; go: (hash: string) => void }) {
  const { data: job, error, reload } = useLoad(() => api<Job>('GET', `/v1/jobs/${id}`), [id]);
  useLiveEvents('job.*', reload, `&job=${encodeURIComponent(id)}`);
  if (!job) return <section><ErrorBox error={error} /><p class="muted">Loading…</p></section>;
  const rows: [string, preact.ComponentChildren][] = [
    ['status', <Status status={job.status} />],
    ['command', <code>{commandOf(job)}</code>],
    ['queue', job.queue],
    ['exit code', job.exitCode ?? (job.signal ? `signal ${job.signal}` : '–')],
    ['error', job.error ?? '–'],
    ['environment (names only)', job.envKeys.length ? job.envKeys.join(', ') : '–'],
    ['labels', Object.entries(job.labels).map(([k, v]) => `${k}=${v}`).join(', ') || '–'],
    ['attempts', `${job.attempts} (retries allowed: ${job.retries})`],
    ['runner', job.runnerId ?? '–'],
    ['created', time(job.createdAt)],
    ['queued → started', duration(between(job.queuedAt, job.startedAt))],
    ['ran for', duration(between(job.startedAt, job.finishedAt))],
    ['timeout', job.timeoutMs ? duration(job.timeoutMs) : '–'],
    ['schedule', job.schedule ?? '–'],
  ];
  return (
    <section>
      <div class="row">
        <h1 class="mono">{job.id}</h1>
        <JobActions job={job} onDone={(next) => (next && next.id !== job.id ? go(`#/jobs/${next.id}`) : reload())} />
      </div>
      <ErrorBox error={error} />
      <dl class="facts">{rows.map(([k, v]) => <><dt>{k}</dt><dd>{v}</dd></>)}</dl>
      {job.attemptHistory && job.attemptHistory.length > 0 ? (
        <>
          <h2>Attempts</h2>
          <table>
            <thead><tr><th>#</th><th>status</th><th>exit</th><th>runner</th><th>started</th><th>ran</th><th>error</th></tr></thead>
            <tbody>
              {job.attemptHistory.map((a) => (
                <tr key={a.attempt}><td>{a.attempt}</td><td><Status status={a.status} /></td><td>{a.exitCode ?? a.signal ?? ''}</td><td>{a.runnerId}</td><td>{time(a.startedAt)}</td><td>{duration(between(a.startedAt, a.finishedAt))}</td><td>{a.error ?? ''}</td></tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
      <LogTail job={job} />
      {TERMINAL.has(job.status) ? null : <p class="muted">Updates live.</p>}
    </section>
  );
}
