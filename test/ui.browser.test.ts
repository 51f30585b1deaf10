// The dashboard in a real browser: Debian's Chromium driven by playwright-core. Screenshots of each page go to
// test/artifacts/ (git-ignored) for a person to look at.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { test } from 'node:test';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { JobRecord } from '@drover/core';
import { startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

const ROOT = new URL('..', import.meta.url).pathname;
const ARTIFACTS = `${ROOT}test/artifacts`;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

async function openBrowser(t: { after: (fn: () => Promise<void>) => void }): Promise<Browser> {
  if (!existsSync(`${ROOT}ui/dist/index.html`)) execFileSync('npm', ['run', 'build', '--silent', '-w', 'ui'], { cwd: ROOT, stdio: 'inherit' });
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
  });
  t.after(() => browser.close());
  return browser;
}

/** A page that fails the test on any script error or CSP violation the dashboard causes. */
async function newPage(browser: Browser, problems: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource: the server responded with a status of 40[0134]/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  page.setDefaultTimeout(15_000);
  return page;
}

async function login(page: Page, s: Stack, token: string): Promise<void> {
  await page.goto(`${s.url}/ui/`);
  await page.fill('input[name=token]', token);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=who]');
}

const shot = (page: Page, name: string): Promise<Buffer> => page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });

test('dashboard: log in, run a job and watch it live, read its log, pause a queue, create and trigger a schedule, see runners and a workflow DAG', async (t) => {
  // Browser first: after-hooks run in order, and the stack's checks for leftover child processes must not see it.
  const browser = await openBrowser(t);
  const s = await startStack(t);
  const problems: string[] = [];
  const page = await newPage(browser, problems);

  // Static files are open and locked down by CSP: no inline script is allowed, and none is needed.
  const res = await fetch(`${s.url}/ui/`);
  assert.equal(res.status, 200);
  const csp = res.headers.get('content-security-policy') ?? '';
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.doesNotMatch(await res.text(), /<script>(?!<\/script>)/, 'no inline script in index.html');
  assert.equal((await fetch(`${s.url}/`, { redirect: 'manual' })).headers.get('location'), '/ui/');

  // A wrong token is refused on the login page.
  await page.goto(`${s.url}/ui/`);
  await shot(page, 'login');
  await page.fill('input[name=token]', 'not-a-token-at-all');
  await page.click('button[type=submit]');
  await page.waitForSelector('.error');
  await login(page, s, s.tokens.admin);
  assert.equal(await page.textContent('[data-testid=who]'), 'admin · admin');
  assert.ok(!page.url().includes(s.tokens.admin), 'the token never goes into the URL');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('drover.token')), s.tokens.admin);

  // Submit from the jobs page: the job page opens and shows it finish without a reload.
  await page.fill('input[name=command]', 'echo hello from the browser; sleep 1; echo to stderr >&2; exit 3');
  await page.click('form.inline button[type=submit]');
  await page.waitForURL(/#\/jobs\/[0-9A-Z]{26}$/);
  const jobId = page.url().split('/').pop()!;
  await page.waitForSelector('.status.s-running, .status.s-queued');
  await page.waitForSelector('dl.facts .status.s-failed', { timeout: 20_000 });
  assert.equal(await page.textContent('dl.facts dd:nth-of-type(4)'), '3', 'exit code shown');
  const log = page.locator('[data-testid=log]');
  await until('both lines in the log tail', async () => (await log.textContent())?.includes('to stderr'));
  assert.equal(await log.locator('.l-stdout').first().textContent(), 'hello from the browser');
  assert.equal(await log.locator('.l-stderr').first().textContent(), 'to stderr');
  const download = page.waitForEvent('download');
  await page.click('text=Download full log');
  const file = await download;
  assert.equal(file.suggestedFilename(), `${jobId}.log`);
  await shot(page, 'job');

  // Run again from the job page: a new job, labelled as a retry.
  await page.click('[data-testid=retry]');
  await page.waitForURL((u) => !u.toString().endsWith(jobId));
  const retried = await s.waitFor(page.url().split('/').pop()!);
  assert.equal(retried.labels['drover.retryOf'], jobId);

  // Jobs list, filtered, with live status.
  await page.goto(`${s.url}/ui/#/jobs`);
  await page.waitForSelector(`tr[data-job="${jobId}"] .status.s-failed`);
  await page.selectOption('select[aria-label="status filter"]', 'failed');
  await page.waitForSelector(`tr[data-job="${jobId}"]`);
  await shot(page, 'jobs');

  // Queues: pause, then resume; the API agrees each time.
  await page.goto(`${s.url}/ui/#/queues`);
  const row = page.locator('tr[data-queue=default]');
  await row.locator('[data-testid=pause]').click();
  await until('paused', async () => (await row.locator('[data-testid=queue-state]').textContent()) === 'paused');
  assert.equal((await s.request<{ settings: { paused: boolean } }>('GET', '/v1/queues/default')).body.settings.paused, true);
  await shot(page, 'queues');
  await row.locator('[data-testid=resume]').click();
  await until('resumed', async () => (await row.locator('[data-testid=queue-state]').textContent()) === 'active');
  assert.equal((await s.request<{ settings: { paused: boolean } }>('GET', '/v1/queues/default')).body.settings.paused, false);
  // Concurrency: set, then cleared by an empty field.
  await row.locator('input[aria-label="concurrency of default"]').fill('3');
  await row.locator('[data-testid=save-concurrency]').click();
  await until('concurrency 3', async () => (await s.request<{ settings: { concurrency: number | null } }>('GET', '/v1/queues/default')).body.settings.concurrency === 3);
  await row.locator('input[aria-label="concurrency of default"]').fill('');
  await row.locator('[data-testid=save-concurrency]').click();
  await until('concurrency cleared', async () => (await s.request<{ settings: { concurrency: number | null } }>('GET', '/v1/queues/default')).body.settings.concurrency === null);

  // Schedules: the cron preview follows the typing, then create, trigger and disable.
  await page.goto(`${s.url}/ui/#/schedules`);
  await page.fill('input[name=name]', 'ui-every-5');
  await page.fill('input[name=cron]', 'not a cron');
  await page.waitForSelector('p.error[data-testid=cron-preview]');
  await page.fill('input[name=cron]', '*/5 * * * *');
  await until('5 fire times', async () => (await page.locator('[data-testid=cron-preview] li').count()) === 5);
  await page.fill('form.card input[name=command]', 'echo scheduled');
  await page.click('form.card button[type=submit]');
  const sched = page.locator('tr[data-schedule=ui-every-5]');
  await sched.waitFor();
  await sched.locator('[data-testid=trigger]').click();
  const runs = await until('a triggered run', async () => {
    const r = await s.request<{ items: JobRecord[] }>('GET', '/v1/schedules/ui-every-5/runs');
    return r.body.items.length === 1 && r.body.items;
  });
  await s.waitFor(runs[0]!.id);
  await sched.locator('[data-testid=disable]').click();
  await until('disabled', async () => (await sched.locator('[data-testid=enabled]').textContent()) === 'no');
  await sched.locator('button.link').click();
  await page.waitForSelector(`a[href="#/jobs/${runs[0]!.id}"]`);
  await shot(page, 'schedules');

  // Runners: the stack's runner, with its load.
  await page.goto(`${s.url}/ui/#/runners`);
  await page.waitForSelector(`tr[data-runner="${s.runner!.id}"] .s-running`);
  await shot(page, 'runners');

  // Workflows: the DAG drawn with each step's state.
  const wf = await s.request<{ id: string }>('POST', '/v1/workflows', {
    name: 'ui-dag',
    steps: [
      { name: 'build', job: { command: 'true' } },
      { name: 'test', job: { command: 'true' }, dependsOn: ['build'] },
      { name: 'lint', job: { command: 'exit 1' }, dependsOn: ['build'] },
      { name: 'ship', job: { command: 'true' }, dependsOn: ['test', 'lint'] },
    ],
  });
  assert.equal(wf.status, 201);
  await page.goto(`${s.url}/ui/#/workflows`);
  const dag = page.locator(`[data-workflow="${wf.body.id}"]`);
  await dag.locator('g.node.s-succeeded[data-step=test]').waitFor({ timeout: 20_000 });
  await dag.locator('g.node.s-failed[data-step=lint]').waitFor();
  assert.equal(await dag.locator('g.node').count(), 4);
  assert.equal(await dag.locator('line.edge').count(), 4);
  await shot(page, 'workflows');

  assert.deepEqual(problems, []);
});

test('dashboard: job output and names are shown as text, never run; a read-only token sees no buttons that would 403', async (t) => {
  // Browser first: after-hooks run in order, and the stack's checks for leftover child processes must not see it.
  const browser = await openBrowser(t);
  const s = await startStack(t);
  const problems: string[] = [];
  const page = await newPage(browser, problems);
  const payload = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';
  const evil = await s.run({ command: `printf '%s\\n' '${payload}' # <b>bold</b>`, labels: { note: '<i>hi</i>' } });
  assert.equal(evil.status, 'succeeded');

  await login(page, s, s.tokens.read);
  assert.equal(await page.textContent('[data-testid=who]'), 'read · read');
  await page.goto(`${s.url}/ui/#/jobs/${evil.id}`);
  const log = page.locator('[data-testid=log]');
  await until('the output', async () => (await log.textContent())?.includes('</script>'));
  assert.equal(await log.textContent(), payload);
  assert.equal(await log.locator('script, img').count(), 0);
  assert.equal(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), undefined);
  assert.ok((await page.textContent('dl.facts'))?.includes('note=<i>hi</i>'));
  await shot(page, 'job-escaped');

  // Read scope: nothing that changes state is offered.
  assert.equal(await page.locator('[data-testid=retry], [data-testid=cancel]').count(), 0);
  await page.goto(`${s.url}/ui/#/jobs`);
  await page.waitForSelector(`tr[data-job="${evil.id}"]`);
  assert.ok((await page.textContent(`tr[data-job="${evil.id}"]`))?.includes('# <b>bold</b>'), 'the command is text');
  assert.equal(await page.locator(`tr[data-job="${evil.id}"] b, tr[data-job="${evil.id}"] script`).count(), 0);
  assert.equal(await page.locator('input[name=command], [data-testid=retry], [data-testid=cancel]').count(), 0);
  await page.goto(`${s.url}/ui/#/queues`);
  await page.waitForSelector('tr[data-queue=default]');
  assert.equal(await page.locator('[data-testid=pause], [data-testid=cancel-queued], [data-testid=save-concurrency]').count(), 0);
  await page.goto(`${s.url}/ui/#/runners`);
  await page.waitForSelector(`tr[data-runner="${s.runner!.id}"]`);
  assert.equal(await page.locator('[data-testid=drain]').count(), 0);
  await page.goto(`${s.url}/ui/#/schedules`);
  await page.waitForSelector('h1');
  assert.equal(await page.locator('form.card, [data-testid=trigger]').count(), 0);

  // Logging out forgets the token.
  await page.click('text=Log out');
  await page.waitForSelector('input[name=token]');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('drover.token')), null);
  assert.deepEqual(problems, []);
});
