import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';

export const COLORS = {
  ok: '#17803d',
  bad: '#c2362b',
  timeout: '#e07b00',
  idle: '#9aa3b2',
  accent: '#2f5fd0',
  p50: '#2f5fd0',
  p90: '#a56a00',
  p99: '#c2362b',
};
/** A runner's line: distinct colours that read on white, repeated past eight runners. */
export const PALETTE = ['#2f5fd0', '#17803d', '#a56a00', '#8b3fc2', '#c2362b', '#00838f', '#6d4c41', '#5f6b7a'];

export interface SeriesSpec {
  label: string;
  color: string;
  /** Bars (counts per bucket) or a line (a level such as a percentile). */
  kind: 'bars' | 'line';
  dash?: number[];
  /** What the legend shows for a point (stacked bars show their own count, not the running sum). */
  value?: (i: number) => string;
}

export interface ChartProps {
  /** Bucket start times, epoch ms. */
  times: number[];
  series: SeriesSpec[];
  data: (number | null)[][];
  height?: number;
  /** The y axis' unit, shown in its values. */
  format?: (v: number) => string;
  testid?: string;
  title: string;
}

const bars = uPlot.paths.bars!({ size: [0.8, 40], gap: 1 });

/**
 * A uPlot chart that fills its container's width (and follows it: phones, a resized window). Created once per
 * series layout; new data goes to setData, so a refresh keeps the cursor and legend where they are.
 */
export function Chart(props: ChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const layout = JSON.stringify(props.series.map((s) => [s.label, s.kind, s.color]));
  const data = (): uPlot.AlignedData => [props.times.map((t) => t / 1000), ...props.data] as uPlot.AlignedData;
  const latest = useRef(props);
  latest.current = props;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const fmt = props.format ?? ((v: number) => String(v));
    const half = (): number => {
      const t = latest.current.times;
      return t.length > 1 ? (t[1]! - t[0]!) / 2000 : 30;
    };
    const opts: uPlot.Options = {
      width: Math.max(200, el.clientWidth),
      height: props.height ?? 160,
      legend: { live: true },
      cursor: { points: { show: false } },
      // Half a bucket of room at each end, so the first and last bars are whole.
      scales: { x: { time: true, range: (_u, min, max) => [min - half(), max + half()] }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [
        { stroke: '#6b7280', grid: { stroke: '#eef0f3' }, ticks: { stroke: '#dde1e7' } },
        { stroke: '#6b7280', grid: { stroke: '#eef0f3' }, ticks: { stroke: '#dde1e7' }, size: 64, values: (_u, vals) => vals.map((v) => fmt(v)) },
      ],
      series: [
        { label: 'time' },
        ...props.series.map((s): uPlot.Series => ({
          label: s.label,
          stroke: s.color,
          width: s.kind === 'bars' ? 0 : 2,
          ...(s.kind === 'bars' ? { fill: s.color, paths: bars } : {}),
          ...(s.dash ? { dash: s.dash } : {}),
          spanGaps: false,
          // A lone bucket has no neighbour to draw a line to: a dot shows it.
          points: { show: s.kind === 'line', size: 5, fill: s.color },
          value: (_u, v, _si, i) => {
            const own = i === null ? undefined : latest.current.series.find((x) => x.label === s.label)?.value?.(i);
            return own ?? (v === null || v === undefined ? '–' : fmt(v));
          },
        })),
      ],
    };
    const u = new uPlot(opts, data(), el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(200, el.clientWidth), height: props.height ?? 160 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [layout]);

  useEffect(() => {
    plot.current?.setData(data());
  }, [props.times, props.data]);

  return (
    <figure class="chart" data-testid={props.testid}>
      <figcaption>{props.title}</figcaption>
      <div ref={box} />
    </figure>
  );
}

/**
 * Stacked bars from counts: uPlot draws series in order, so each bar is drawn as the running sum of its own and
 * the ones below it, the tallest first; the legend shows each series' own count.
 */
export function stacked(times: number[], layers: { label: string; color: string; counts: number[] }[]): { series: SeriesSpec[]; data: number[][] } {
  const sums = layers.map((_, li) => times.map((_t, i) => layers.slice(0, li + 1).reduce((a, l) => a + (l.counts[i] ?? 0), 0)));
  const order = layers.map((_, i) => i).reverse();
  return {
    series: order.map((li) => ({ label: layers[li]!.label, color: layers[li]!.color, kind: 'bars' as const, value: (i: number) => String(layers[li]!.counts[i] ?? 0) })),
    data: order.map((li) => sums[li]!),
  };
}

export function ms(v: number): string {
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60_000) return `${(v / 1000).toFixed(v < 10_000 ? 1 : 0)} s`;
  if (v < 3600_000) return `${(v / 60_000).toFixed(v < 600_000 ? 1 : 0)} min`;
  return `${(v / 3600_000).toFixed(1)} h`;
}
