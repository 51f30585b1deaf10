import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { ago, commandOf, time } from '../format';
import { RunStrip } from '../strip';
import { isUnfired, type Page, type Schedule, type ScheduleRun } from '../types';
import { Act, Empty, ErrorBox, Status, useCan, useLiveEvents, useLoad } from '../ui';

/** The next fire times as the expression is typed, computed by the API (the same parser the scheduler uses). */
function CronPreview({ cron, timezone }: { cron: string; timezone: string }) {
  const [next, setNext] = useState<string[]>([]);
  const [problem, setProblem] = useState<string | null>(null);
  useEffect(() => {
    if (!cron.trim()) {
      setNext([]);
      setProblem(null);
      return;
    }
    const t = setTimeout(() => {
      api<{ next: string[] }>('GET', `/v1/cron/preview?count=5&cron=${encodeURIComponent(cron)}&timezone=${encodeURIComponent(timezone || 'UTC')}`).then(
        (r) => {
          setNext(r.next);
          setProblem(null);
        },
        (err: unknown) => {
          setNext([]);
          setProblem(err instanceof Error ? err.message : String(err));
        },
      );
    }, 250);
    return () => clearTimeout(t);
  }, [cron, timezone]);
  if (problem) return <p class="error" data-testid="cron-preview">{problem}</p>;
  return <ol class="preview" data-testid="cron-preview">{next.map((n) => <li key={n}>{time(n)}</li>)}</ol>;
}

function NewSchedule({ onCreated }: { onCreated: () => void }) {
  const [name, setName] = useState('');
  const [cron, setCron] = useState('');
  const [timezone, setTimezone] = useState('UTC');
  const [command, setCommand] = useState('');
  const [queue, setQueue] = useState('default');
  const [error, setError] = useState<unknown>(null);
  if (!useCan('submit')) return null;
  const submit = async (e: Event): Promise<void> => {
    e.preventDefault();
    try {
      await api('POST', '/v1/schedules', { name, cron, timezone, job: { command, queue } });
      setName('');
      setCron('');
      setCommand('');
      setError(null);
      onCreated();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form class="card" onSubmit={(e) => void submit(e)}>
      <h2>New schedule</h2>
      <div class="inline">
        <input name="name" placeholder="name" value={name} onInput={(e) => setName(e.currentTarget.value)} required />
        <input name="cron" placeholder="cron, e.g. */5 * * * *" value={cron} onInput={(e) => setCron(e.currentTarget.value)} required />
        <input name="timezone" placeholder="time zone" value={timezone} onInput={(e) => setTimezone(e.currentTarget.value)} />
      </div>
      <div class="inline">
        <input name="command" placeholder="command" value={command} onInput={(e) => setCommand(e.currentTarget.value)} required size={40} />
        <input name="queue" placeholder="queue" value={queue} onInput={(e) => setQueue(e.currentTarget.value)} size={10} />
        <button type="submit">Create</button>
      </div>
      <CronPreview cron={cron} timezone={timezone} />
      <ErrorBox error={error} />
    </form>
  );
}

function Runs({ name }: { name: string }) {
  const { data, error } = useLoad(() => api<Page<ScheduleRun>>('GET', `/v1/schedules/${encodeURIComponent(name)}/runs?limit=10`), [name]);
  return (
    <td colSpan={9}>
      <ErrorBox error={error} />
      {data && data.items.length === 0 ? <Empty>No runs yet.</Empty> : null}
      <ul class="runs">
        {(data?.items ?? []).map((j) => isUnfired(j)
          ? <li key={`${j.status}-${j.scheduledFor}`}><span class="mono muted">no job</span> <Status status={j.status} /> {ago(j.scheduledFor)}</li>
          : <li key={j.id}><a href={`#/jobs/${j.id}`} class="mono">{j.id.slice(-8)}</a> <Status status={j.status} /> {ago(j.createdAt)}</li>)}
      </ul>
    </td>
  );
}

export function SchedulesPage() {
  const { data, error, reload } = useLoad(() => api<Page<Schedule>>('GET', '/v1/schedules?limit=200'), [], 10_000);
  useLiveEvents('schedule.*,job.succeeded,job.failed,job.timed_out,job.cancelled,job.lost', reload);
  const [open, setOpen] = useState<string | null>(null);
  const post = (name: string, action: string) => async () => {
    await api('POST', `/v1/schedules/${encodeURIComponent(name)}/${action}`, action === 'trigger' ? {} : undefined);
    reload();
  };
  return (
    <section>
      <h1>Schedules</h1>
      <NewSchedule onCreated={reload} />
      <ErrorBox error={error} />
      {data && data.items.length === 0 ? <Empty>No schedules.</Empty> : null}
      <table class="rows">
        <thead><tr><th>name</th><th>cron</th><th>job</th><th>next</th><th>last</th><th>last state</th><th>history</th><th>enabled</th><th /></tr></thead>
        <tbody>
          {(data?.items ?? []).map((s) => (
            <>
              <tr key={s.name} data-schedule={s.name}>
                <td class="title"><button type="button" class="link" onClick={() => setOpen(open === s.name ? null : s.name)}>{s.name}</button></td>
                <td data-label="cron"><code>{s.cron}</code> <span class="muted">{s.timezone}</span></td>
                <td data-label="job" class="cmd">{s.job ? commandOf(s.job) : 'workflow'}</td>
                <td data-label="next" title={s.nextRunAt ?? ''}>{s.enabled ? ago(s.nextRunAt) : '–'}</td>
                <td data-label="last">{s.lastJobId ? <a href={`#/jobs/${s.lastJobId}`}>{ago(s.lastRunAt)}</a> : '–'}</td>
                <td data-label="last state">{s.lastState ? <Status status={s.lastState} /> : '–'}</td>
                <td data-label="history"><RunStrip name={s.name} version={`${s.lastJobId ?? ''}:${s.lastState ?? ''}`} /></td>
                <td data-label="enabled" data-testid="enabled">{s.enabled ? 'yes' : 'no'}</td>
                <td class="actions">
                  <Act need="submit" testid="trigger" onClick={post(s.name, 'trigger')}>Run now</Act>
                  {s.enabled
                    ? <Act need="submit" testid="disable" onClick={post(s.name, 'disable')}>Disable</Act>
                    : <Act need="submit" testid="enable" onClick={post(s.name, 'enable')}>Enable</Act>}
                  <Act need="submit" danger testid="delete" onClick={async () => {
                    if (!confirm(`Delete schedule ${s.name}?`)) return;
                    await api('DELETE', `/v1/schedules/${encodeURIComponent(s.name)}`);
                    reload();
                  }}>Delete</Act>
                </td>
              </tr>
              {open === s.name ? <tr class="detail"><Runs name={s.name} /></tr> : null}
            </>
          ))}
        </tbody>
      </table>
    </section>
  );
}
