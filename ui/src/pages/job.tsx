import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { api, downloadLog, streamEvents } from '../api';
import { between, commandOf, duration, time, TERMINAL } from '../format';
import type { Job, LogLine } from '../types';
import { ErrorBox, Status, useLiveEvents, useLoad } from '../ui';
import { AnsiLines, AttemptHeader, byAttempt } from '../log-view';
import { JobActions } from './jobs';

const MAX_SHOWN = 5000;

/** The output, live: the stored lines, then the follow stream (SSE) until the job ends; one block per attempt. */
function LogTail({ job }: { job: Job }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const [ended, setEnded] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const box = useRef<HTMLDivElement>(null);
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
  // Colour state runs through the lines in order: rendered once per line list, not per re-render.
  const html = useMemo(() => {
    const ansi = new AnsiLines();
    return new Map(lines.map((l) => [l.id, ansi.html(l)]));
  }, [lines]);
  const groups = byAttempt(lines, job.attemptHistory);
  return (
    <div>
      <div class="row">
        <h2>Output</h2>
        <span class="muted">{ended ? 'ended' : 'live'}{job.truncated ? ', truncated at the output cap' : ''}</span>
        <button type="button" onClick={() => void downloadLog(job.id).catch(setError)}>
          Download full log
        </button>
      </div>
      <ErrorBox error={error} />
      <div class="log" ref={box} data-testid="log">
        {groups.length === 0 ? <p class="muted">{ended ? 'No output.' : 'No output yet.'}</p> : null}
        {groups.map((g) => (
          <section class="attempt" key={g.attempt} data-attempt={g.attempt}>
            <AttemptHeader group={g} job={job} total={job.attempts} />
            <pre class="log" data-testid="log-lines">
              {/* ansi_up escapes the text itself: output is never markup (see the browser test). */}
              {g.lines.map((l) => <div key={l.id} class={`l-${l.stream}`} dangerouslySetInnerHTML={{ __html: html.get(l.id) ?? '' }} />)}
            </pre>
          </section>
        ))}
      </div>
    </div>
  );
}

/** The job's own report of how far it is; the page reloads on its job.progress events (about one a second). */
function JobProgress({ value }: { value: number }) {
  return (
    <span class="progress" data-testid="job-progress">
      <progress max={100} value={value} aria-label="progress" /> {Math.round(value)}%
    </span>
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
    // Only for a job that reports them (`::drover progress`, `::drover result`, or their files).
    ...(job.progress != null ? [['progress', <JobProgress value={job.progress} />] as [string, preact.ComponentChildren]] : []),
    ...(job.result != null ? [['result', <pre class="result" data-testid="job-result">{JSON.stringify(job.result, null, 2)}</pre>] as [string, preact.ComponentChildren]] : []),
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
          <table class="rows">
            <thead><tr><th># · status</th><th>exit</th><th>runner</th><th>started</th><th>ran</th><th>error</th></tr></thead>
            <tbody>
              {job.attemptHistory.map((a) => (
                <tr key={a.attempt}><td class="title">{a.attempt} <Status status={a.status} /></td><td data-label="exit">{a.exitCode ?? a.signal ?? ''}</td><td data-label="runner">{a.runnerId}</td><td data-label="started">{time(a.startedAt)}</td><td data-label="ran">{duration(between(a.startedAt, a.finishedAt))}</td><td data-label="error">{a.error ?? ''}</td></tr>
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
