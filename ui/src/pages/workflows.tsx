import { api } from '../api';
import { ago } from '../format';
import type { Page, Workflow, WorkflowStep } from '../types';
import { Empty, ErrorBox, Status, useLiveEvents, useLoad } from '../ui';

const BOX_W = 150;
const BOX_H = 44;
const GAP_X = 60;
const GAP_Y = 18;

/** Steps placed in columns by depth (longest dependency chain), so every edge points right. */
function layout(steps: WorkflowStep[]): Map<string, { x: number; y: number }> {
  const byName = new Map(steps.map((s) => [s.name, s]));
  const depth = new Map<string, number>();
  const depthOf = (name: string, seen: Set<string>): number => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    if (seen.has(name)) return 0; // a cycle cannot be stored; guard anyway
    seen.add(name);
    const deps = byName.get(name)?.dependsOn ?? [];
    const d = deps.length === 0 ? 0 : 1 + Math.max(...deps.map((p) => depthOf(p, seen)));
    depth.set(name, d);
    return d;
  };
  const rows = new Map<number, number>();
  const at = new Map<string, { x: number; y: number }>();
  for (const s of steps) {
    const d = depthOf(s.name, new Set());
    const row = rows.get(d) ?? 0;
    rows.set(d, row + 1);
    at.set(s.name, { x: d * (BOX_W + GAP_X), y: row * (BOX_H + GAP_Y) });
  }
  return at;
}

export function WorkflowDag({ wf }: { wf: Workflow }) {
  const at = layout(wf.steps);
  const width = Math.max(...[...at.values()].map((p) => p.x)) + BOX_W + 2;
  const height = Math.max(...[...at.values()].map((p) => p.y)) + BOX_H + 2;
  return (
    <svg class="dag" width={width} height={height} viewBox={`-1 -1 ${width} ${height}`} role="img" aria-label={`steps of ${wf.name}`}>
      {wf.steps.flatMap((s) => s.dependsOn.map((p) => {
        const a = at.get(p);
        const b = at.get(s.name);
        if (!a || !b) return null;
        return <line key={`${p}->${s.name}`} x1={a.x + BOX_W} y1={a.y + BOX_H / 2} x2={b.x} y2={b.y + BOX_H / 2} class="edge" />;
      }))}
      {wf.steps.map((s) => {
        const p = at.get(s.name)!;
        return (
          <a key={s.name} href={s.jobId ? `#/jobs/${s.jobId}` : undefined}>
            <g transform={`translate(${p.x},${p.y})`} class={`node s-${s.state}`} data-step={s.name}>
              <rect width={BOX_W} height={BOX_H} rx={6} />
              <text x={8} y={18}>{s.name.length > 18 ? `${s.name.slice(0, 17)}…` : s.name}</text>
              <text x={8} y={35} class="state">{s.state}{s.exitCode !== null ? ` (${s.exitCode})` : ''}</text>
            </g>
          </a>
        );
      })}
    </svg>
  );
}

export function WorkflowsPage() {
  const { data, error, reload } = useLoad(() => api<Page<Workflow>>('GET', '/v1/workflows?limit=20'), [], 10_000);
  useLiveEvents('job.*', reload);
  return (
    <section>
      <h1>Workflows</h1>
      <ErrorBox error={error} />
      {data && data.items.length === 0 ? <Empty>No workflow runs.</Empty> : null}
      {(data?.items ?? []).map((wf) => (
        <div class="card" key={wf.id} data-workflow={wf.id}>
          <div class="row"><h2>{wf.name}</h2><Status status={wf.state} /><span class="muted mono">{wf.id}</span><span class="muted">{ago(wf.createdAt)}</span></div>
          <WorkflowDag wf={wf} />
        </div>
      ))}
    </section>
  );
}
