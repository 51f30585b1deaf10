import { api } from './api';
import { Chart, COLORS, PALETTE, ms, stacked } from './charts';
import type { QueueStats, Stats, StatsRange } from './types';
import { useLoad } from './ui';

/** The stats of the last hour or day, refreshed every 10 s (the aggregates move by the minute). */
export function useStats(range: StatsRange, queue?: string) {
  const qs = new URLSearchParams({ range });
  if (queue) qs.set('queue', queue);
  return useLoad(() => api<Stats>('GET', `/v1/stats?${qs.toString()}`), [qs.toString()], 10_000);
}

export function RangePicker({ range, onChange }: { range: StatsRange; onChange: (r: StatsRange) => void }) {
  return (
    <span class="range" role="group" aria-label="time range">
      {(['hour', 'day'] as const).map((r) => (
        <button key={r} type="button" class={r === range ? 'on' : ''} aria-pressed={r === range} data-testid={`range-${r}`} onClick={() => onChange(r)}>
          last {r}
        </button>
      ))}
    </span>
  );
}

const sum = (xs: number[]): number => xs.reduce((a, b) => a + b, 0);
const add = (...rows: number[][]): number[] => (rows[0] ?? []).map((_, i) => sum(rows.map((r) => r[i] ?? 0)));

/** One queue's pictures: jobs ended per bucket by outcome (stacked), and queue-wait percentiles. */
export function QueueCharts({ q, times, range }: { q: QueueStats; times: number[]; range: StatsRange }) {
  const per = range === 'hour' ? 'per minute' : 'per 15 min';
  const failed = add(q.outcomes.failed, q.outcomes.lost);
  const ended = stacked(times, [
    { label: 'succeeded', color: COLORS.ok, counts: q.outcomes.succeeded },
    { label: 'failed / lost', color: COLORS.bad, counts: failed },
    { label: 'timed out', color: COLORS.timeout, counts: q.outcomes.timed_out },
    { label: 'cancelled', color: COLORS.idle, counts: q.outcomes.cancelled },
  ]);
  const t = q.totals;
  const bad = t.failed + t.lost + t.timed_out;
  const done = t.succeeded + bad + t.cancelled;
  if (done === 0 && t.started === 0) {
    return (
      <div class="card queue-stats idle" data-queue-stats={q.name}>
        <div class="row"><h2>{q.name}</h2><span class="muted" data-testid="idle">nothing started or ended in the last {range}</span></div>
      </div>
    );
  }
  return (
    <div class="card queue-stats" data-queue-stats={q.name}>
      <div class="row">
        <h2>{q.name}</h2>
        <span class="muted" data-testid="totals">
          {done} ended · {t.succeeded} ok · <span class={bad ? 'bad' : ''}>{bad} failed{done ? ` (${Math.round((bad / done) * 100)} %)` : ''}</span>
          {q.waitOverall.p50 !== null ? ` · wait p50 ${ms(q.waitOverall.p50)}, p99 ${ms(q.waitOverall.p99 ?? 0)}` : ''}
        </span>
      </div>
      <div class="charts">
        <Chart testid="throughput-chart" title={`Jobs ended ${per}`} times={times} series={ended.series} data={ended.data} format={(v) => String(Math.round(v * 10) / 10)} />
        <Chart
          testid="wait-chart"
          title="Queue wait (queued → started)"
          times={times}
          series={[
            { label: 'p50', color: COLORS.p50, kind: 'line' },
            { label: 'p90', color: COLORS.p90, kind: 'line' },
            { label: 'p99', color: COLORS.p99, kind: 'line', dash: [4, 3] },
          ]}
          data={[q.wait.p50, q.wait.p90, q.wait.p99]}
          format={ms}
        />
      </div>
    </div>
  );
}

/** Running jobs per runner over time (mean of the samples in each bucket), with the fleet's slots dashed. */
export function RunnerLoadChart({ stats }: { stats: Stats }) {
  const runners = stats.runners ?? [];
  if (runners.length === 0) return <p class="empty">No runner load recorded in this range yet (sampled every 10 s).</p>;
  const shown = runners.slice(0, PALETTE.length);
  const slots = stats.times.map((_, i) => {
    const seen = runners.filter((r) => r.slots[i] !== null);
    return seen.length ? sum(seen.map((r) => r.slots[i] ?? 0)) : null;
  });
  return (
    <Chart
      testid="runner-load-chart"
      title={`Running jobs per runner (${stats.range === 'hour' ? 'per minute' : 'per 15 min'})`}
      times={stats.times}
      series={[
        ...shown.map((r, i) => ({ label: r.id, color: PALETTE[i]!, kind: 'line' as const })),
        { label: 'slots (all runners)', color: COLORS.idle, kind: 'line' as const, dash: [5, 4] },
      ]}
      data={[...shown.map((r) => r.running), slots]}
      height={200}
      format={(v) => String(Math.round(v * 10) / 10)}
    />
  );
}
