import { api } from './api';
import { ago, duration, between } from './format';
import { isUnfired, type Page, type ScheduleRun } from './types';
import { useLoad } from './ui';

/** How many runs a strip shows: enough to see a pattern, few enough for a phone. */
export const STRIP_RUNS = 30;

/**
 * A schedule's run history at a glance, as Cronicle draws it: one cell per run, oldest left, coloured by how it
 * ended (running ones pulse). Reloaded when the schedule's last run changes; each cell links to its job.
 */
export function RunStrip({ name, version }: { name: string; version: string }) {
  const { data, error } = useLoad(() => api<Page<ScheduleRun>>('GET', `/v1/schedules/${encodeURIComponent(name)}/runs?limit=${STRIP_RUNS}`), [name, version]);
  if (error) return <span class="muted">–</span>;
  if (!data) return <span class="strip" />;
  const runs = [...data.items].reverse();
  return (
    <span class="strip" data-testid="run-strip" aria-label={`last ${runs.length} runs of ${name}`}>
      {runs.length === 0 ? <span class="muted">no runs yet</span> : null}
      {runs.map((j) => isUnfired(j) ? (
        <span
          key={`${j.status}-${j.scheduledFor}`}
          class={`cell s-${j.status}`}
          data-status={j.status}
          title={`${j.status}: no job for ${ago(j.scheduledFor)}${j.missed !== undefined ? ` (${j.missed} fire times missed)` : ''}`}
        />
      ) : (
        <a
          key={j.id}
          href={`#/jobs/${j.id}`}
          class={`cell s-${j.status}`}
          data-status={j.status}
          title={`${j.status.replace('_', ' ')}${j.exitCode !== null ? ` (exit ${j.exitCode})` : ''} · ${ago(j.createdAt)}${j.finishedAt ? ` · ran ${duration(between(j.startedAt, j.finishedAt))}` : ''}`}
        />
      ))}
    </span>
  );
}
