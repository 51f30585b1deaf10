import { useEffect, useState } from 'preact/hooks';
import dagre, { type EdgeLabel, type GraphLabel, type NodeLabel } from '@dagrejs/dagre';
import { api } from '../api';
import { ago } from '../format';
import { statusOf, type Page, type Workflow, type WorkflowStep } from '../types';
import { Empty, ErrorBox, Status, useLiveEvents, useLoad } from '../ui';

const BOX_W = 150;
const BOX_H = 44;

interface Placed {
  nodes: Map<string, { x: number; y: number }>;
  edges: { from: string; to: string; points: { x: number; y: number }[] }[];
  width: number;
  height: number;
}

/**
 * Steps laid out by dagre (layered, crossings minimised), edges routed through the points dagre gives, which pass
 * between the boxes of other ranks rather than through them. Left to right; top to bottom on a phone.
 */
export function layout(steps: WorkflowStep[], rankdir: 'LR' | 'TB' = 'LR'): Placed {
  const g = new dagre.graphlib.Graph<GraphLabel, NodeLabel, EdgeLabel>();
  g.setGraph({ rankdir, nodesep: 18, ranksep: 56, edgesep: 12, marginx: 2, marginy: 2 });
  g.setDefaultEdgeLabel(() => ({}));
  const names = new Set(steps.map((s) => s.name));
  for (const s of steps) g.setNode(s.name, { width: BOX_W, height: BOX_H });
  for (const s of steps) for (const p of s.dependsOn) if (names.has(p)) g.setEdge(p, s.name);
  dagre.layout(g);
  const nodes = new Map<string, { x: number; y: number }>();
  // dagre gives centres; the drawing wants top-left corners.
  for (const name of g.nodes()) {
    const n = g.node(name);
    nodes.set(name, { x: (n.x ?? 0) - BOX_W / 2, y: (n.y ?? 0) - BOX_H / 2 });
  }
  const edges = g.edges().map((e) => ({ from: e.v, to: e.w, points: g.edge(e).points ?? [] }));
  const graph = g.graph();
  return { nodes, edges, width: Math.ceil(graph.width ?? BOX_W) + 4, height: Math.ceil(graph.height ?? BOX_H) + 4 };
}

/** True while the screen is phone-narrow (follows rotation and resizing). */
function useNarrow(): boolean {
  const query = '(max-width: 700px)';
  const [narrow, setNarrow] = useState(() => matchMedia(query).matches);
  useEffect(() => {
    const m = matchMedia(query);
    const on = (): void => setNarrow(m.matches);
    m.addEventListener('change', on);
    return () => m.removeEventListener('change', on);
  }, []);
  return narrow;
}

export function WorkflowDag({ wf }: { wf: Workflow }) {
  const { nodes, edges, width, height } = layout(wf.steps, useNarrow() ? 'TB' : 'LR');
  return (
    <div class="dag-wrap">
      <svg class="dag" width={width} height={height} viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`steps of ${wf.name}`}>
        <defs>
          <marker id="dag-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">
            <path d="M 0 0 L 10 5 L 0 10 z" class="arrow" />
          </marker>
        </defs>
        {edges.map((e) => (
          <path
            key={`${e.from}->${e.to}`}
            class="edge"
            data-from={e.from}
            data-to={e.to}
            marker-end="url(#dag-arrow)"
            d={e.points.map((p, i) => `${i === 0 ? 'M' : 'L'} ${p.x.toFixed(1)} ${p.y.toFixed(1)}`).join(' ')}
          />
        ))}
        {wf.steps.map((s) => {
          const p = nodes.get(s.name)!;
          return (
            <a key={s.name} href={s.jobId ? `#/jobs/${s.jobId}` : undefined}>
              <g transform={`translate(${p.x},${p.y})`} class={`node s-${statusOf(s)}`} data-step={s.name}>
                <rect width={BOX_W} height={BOX_H} rx={6} />
                <text x={8} y={18}>{s.name.length > 18 ? `${s.name.slice(0, 17)}…` : s.name}</text>
                <text x={8} y={35} class="state">{statusOf(s)}{s.exitCode !== null ? ` (${s.exitCode})` : ''}</text>
              </g>
            </a>
          );
        })}
      </svg>
    </div>
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
          <div class="row"><h2>{wf.name}</h2><Status status={statusOf(wf)} /><span class="muted mono">{wf.id}</span><span class="muted">{ago(wf.createdAt)}</span></div>
          <WorkflowDag wf={wf} />
        </div>
      ))}
    </section>
  );
}
