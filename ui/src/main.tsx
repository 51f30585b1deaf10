import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { getToken, pickNamespace, session, setNamespace, setToken, type NamespaceInfo, type Principal } from './api';
import { JobPage } from './pages/job';
import { JobsPage } from './pages/jobs';
import { LoginPage } from './pages/login';
import { QueuesPage } from './pages/queues';
import { RunnersPage } from './pages/runners';
import { SchedulesPage } from './pages/schedules';
import { WorkflowsPage } from './pages/workflows';
import { ErrorBox, Me, Report } from './ui';
import './styles.css';

const PAGES = [
  ['jobs', 'Jobs'],
  ['queues', 'Queues'],
  ['schedules', 'Schedules'],
  ['runners', 'Runners'],
  ['workflows', 'Workflows'],
] as const;

/** Hash routes (#/jobs, #/jobs/<id>, ...): the API serves one static page, no server-side routing needed. */
function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = (): void => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

/** The header's namespace switch, shown when the token works in more than one. */
function NamespaceSwitch({ list, current, onSwitch }: { list: NamespaceInfo[] | null; current: string | null; onSwitch: (ns: string) => void }) {
  if (!list || list.length < 2) return null;
  return (
    <label class="ns">
      Namespace
      <select data-testid="namespace" value={current ?? ''} onChange={(e) => onSwitch(e.currentTarget.value)}>
        {list.map((n) => <option key={n.name} value={n.name} title={n.description ?? undefined}>{n.name}</option>)}
      </select>
    </label>
  );
}

function App() {
  const [me, setMe] = useState<Principal | null>(null);
  const [namespaces, setNamespaces] = useState<NamespaceInfo[] | null>(null);
  const [ns, setNs] = useState<string | null>(null);
  const [checked, setChecked] = useState(false);
  const [actionError, setActionError] = useState<unknown>(null);
  const hash = useHash();
  /** Who the token is and where it works; the namespace is chosen before any page asks for data. */
  const begin = async (): Promise<void> => {
    const s = await session();
    const chosen = pickNamespace(s.me, s.namespaces);
    setNamespace(chosen);
    setNamespaces(s.namespaces);
    setNs(chosen);
    setMe(s.me);
  };
  useEffect(() => {
    // A token from earlier in this tab: still valid?
    if (!getToken()) return setChecked(true);
    begin().catch(() => setToken(null)).finally(() => setChecked(true));
  }, []);
  useEffect(() => setActionError(null), [hash]);
  if (!checked) return null;
  if (!me) return <LoginPage onLogin={() => void begin().catch(() => setToken(null))} />;
  const go = (h: string): void => void (location.hash = h);
  const [path = '', query = ''] = hash.replace(/^#\/?/, '').split('?');
  const [page = 'jobs', id] = path.split('/');
  const params = new URLSearchParams(query);
  const switchTo = (next: string): void => {
    setNamespace(next);
    setNs(next);
    setActionError(null);
    // A job's id names it in one namespace only: its page would be a 404 in the next; the list is the same page there.
    if (page === 'jobs' && id) go('#/jobs');
  };
  const body =
    page === 'jobs' && id ? <JobPage id={id} go={go} />
    : page === 'queues' ? <QueuesPage />
    : page === 'schedules' ? <SchedulesPage />
    : page === 'runners' ? <RunnersPage />
    : page === 'workflows' ? <WorkflowsPage />
    : <JobsPage go={go} initialQueue={params.get('queue') ?? ''} />;
  return (
    <Me.Provider value={me}>
      <Report.Provider value={setActionError}>
        <header>
          <strong>Drover</strong>
          <nav>{PAGES.map(([p, label]) => <a key={p} href={`#/${p}`} class={p === page ? 'active' : ''}>{label}</a>)}</nav>
          <NamespaceSwitch list={namespaces} current={ns} onSwitch={switchTo} />
          <span class="who" data-testid="who">{me.name} · {me.scope}{me.queues ? ` · ${me.queues.join(', ')}` : ''}</span>
          <button type="button" onClick={() => { setToken(null); setNamespace(null); setMe(null); }}>Log out</button>
        </header>
        {/* Keyed by the namespace: a switch mounts the page afresh, so it loads its data and opens its streams there. */}
        <main key={ns ?? ''}>
          <ErrorBox error={actionError} />
          {body}
        </main>
      </Report.Provider>
    </Me.Provider>
  );
}

render(<App />, document.getElementById('app')!);
