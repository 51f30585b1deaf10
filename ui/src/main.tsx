import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, getToken, setToken, type Principal } from './api';
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

function App() {
  const [me, setMe] = useState<Principal | null>(null);
  const [checked, setChecked] = useState(false);
  const [actionError, setActionError] = useState<unknown>(null);
  const hash = useHash();
  useEffect(() => {
    // A token from earlier in this tab: still valid?
    if (!getToken()) return setChecked(true);
    api<Principal>('GET', '/v1/whoami').then(setMe, () => setToken(null)).finally(() => setChecked(true));
  }, []);
  useEffect(() => setActionError(null), [hash]);
  if (!checked) return null;
  if (!me) return <LoginPage onLogin={setMe} />;
  const go = (h: string): void => void (location.hash = h);
  const [path = '', query = ''] = hash.replace(/^#\/?/, '').split('?');
  const [page = 'jobs', id] = path.split('/');
  const params = new URLSearchParams(query);
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
          <span class="who" data-testid="who">{me.name} · {me.scope}{me.queues ? ` · ${me.queues.join(', ')}` : ''}</span>
          <button type="button" onClick={() => { setToken(null); setMe(null); }}>Log out</button>
        </header>
        <main>
          <ErrorBox error={actionError} />
          {body}
        </main>
      </Report.Provider>
    </Me.Provider>
  );
}

render(<App />, document.getElementById('app')!);
