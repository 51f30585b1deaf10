// The dashboard in a real browser: Debian's Chromium driven by playwright-core. Screenshots of each page go to
// test/artifacts/ (git-ignored) for a person to look at.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { Page } from 'playwright-core';
import type { JobRecord } from '@drover/core';
import { ARTIFACTS, DESKTOP, PHONE, login, newPage, openBrowser } from './helpers/browser.js';
import { startStack } from './helpers/stack.js';
import { until } from './helpers/until.js';

/**
 * Screenshots of the page as it is, at desktop width and at phone width (420 px), for a person to look at; at phone
 * width nothing may be wider than the screen (no table or chart that scrolls the page sideways).
 */
async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
  await page.setViewportSize(PHONE);
  try {
    const wide = await until(`${name} fits 420 px`, () => page.evaluate(() => document.documentElement.scrollWidth <= 420), 5000).catch(async () => {
      const culprits = await page.evaluate(() =>
        [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 421).slice(0, 5).map((e) => `${e.tagName}.${e.className}`));
      throw new Error(`${name}: wider than 420 px at phone width: ${culprits.join(', ')}`);
    });
    assert.ok(wide);
    await page.screenshot({ path: `${ARTIFACTS}/${name}-420.png`, fullPage: true });
  } finally {
    await page.setViewportSize(DESKTOP);
  }
}

/** Whether a canvas has pixels of this colour (a chart drew data in it, not just axes). */
async function canvasHas(page: Page, selector: string, rgb: [number, number, number]): Promise<boolean> {
  return page.evaluate(({ selector, rgb }) => {
    const canvases = [...document.querySelectorAll<HTMLCanvasElement>(selector)];
    return canvases.some((c) => {
      const d = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4) if (Math.abs(d[i]! - rgb[0]) < 6 && Math.abs(d[i + 1]! - rgb[1]) < 6 && Math.abs(d[i + 2]! - rgb[2]) < 6 && d[i + 3]! > 200) return true;
      return false;
    });
  }, { selector, rgb });
}

const GREEN: [number, number, number] = [23, 128, 61];
const RED: [number, number, number] = [194, 54, 43];

/** Every edge of the drawn DAG against every box it does not start or end at: how many segments cross one. */
async function edgesThroughBoxes(page: Page, selector: string): Promise<string[]> {
  return page.evaluate((selector) => {
    const svg = document.querySelector(selector)!;
    const boxes = [...svg.querySelectorAll<SVGGElement>('g.node')].map((g) => {
      const m = /translate\(([-\d.]+),\s*([-\d.]+)\)/.exec(g.getAttribute('transform') ?? '')!;
      const r = g.querySelector('rect')!;
      return { name: g.dataset.step!, x: Number(m[1]), y: Number(m[2]), w: Number(r.getAttribute('width')), h: Number(r.getAttribute('height')) };
    });
    const crossing: string[] = [];
    for (const e of svg.querySelectorAll<SVGPathElement>('path.edge')) {
      const pts = [...(e.getAttribute('d') ?? '').matchAll(/[ML]\s*([-\d.]+)\s+([-\d.]+)/g)].map((m) => ({ x: Number(m[1]), y: Number(m[2]) }));
      for (const b of boxes) {
        if (b.name === e.dataset.from || b.name === e.dataset.to) continue;
        // Sample each segment finely: a point inside the box (shrunk by 1 px) means the edge runs through it.
        for (let i = 0; i + 1 < pts.length; i++) {
          const a = pts[i]!;
          const c = pts[i + 1]!;
          for (let k = 0; k <= 50; k++) {
            const x = a.x + ((c.x - a.x) * k) / 50;
            const y = a.y + ((c.y - a.y) * k) / 50;
            if (x > b.x + 1 && x < b.x + b.w - 1 && y > b.y + 1 && y < b.y + b.h - 1) {
              crossing.push(`${e.dataset.from}->${e.dataset.to} through ${b.name}`);
              k = 51;
              i = pts.length;
            }
          }
        }
      }
    }
    return crossing;
  }, selector);
}

test('dashboard: log in, run a job and watch it live, read its log, pause a queue, create and trigger a schedule, see runners and a workflow DAG', async (t) => {
  // Browser first: after-hooks run in order, and the stack's checks for leftover child processes must not see it.
  const browser = await openBrowser(t);
  // One queue served, so another can show that nobody serves it.
  const s = await startStack(t, { env: { RUNNER_QUEUES: 'default', RUNNER_CONCURRENCY: '4' } });
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
  assert.match((await log.locator('[data-testid=attempt-head]').textContent()) ?? '', /Attempt 1.*failed.*exit 3/);
  const download = page.waitForEvent('download');
  await page.click('text=Download full log');
  const file = await download;
  assert.equal(file.suggestedFilename(), `${jobId}.log`);
  // The API's text download: the output as the job wrote it, under its attempt's separator line.
  const saved = readFileSync(await file.path(), 'utf8').split('\n');
  assert.equal(saved[0], '--- attempt 1: failed (exit 3) ---');
  assert.deepEqual(saved.slice(1).sort(), ['', 'hello from the browser', 'to stderr']);
  await shot(page, 'job');

  // Run again from the job page: a new job, labelled as a retry.
  await page.click('[data-testid=retry]');
  await page.waitForURL((u) => !u.toString().endsWith(jobId));
  const retried = await s.waitFor(page.url().split('/').pop()!);
  assert.equal(retried.labels['drover.retryOf'], jobId);

  // Terminal output: colours rendered, a progress line shows its last state, each attempt apart with its outcome.
  const tty = await s.submit({
    command: String.raw`printf '\033[1;31mred alert\033[0m plain\n'; printf 'progress 10%%\rprogress 50%%\rprogress 100%%\n'; test "$DROVER_ATTEMPT" -ge 2`,
    retries: 1,
    backoff: { type: 'fixed', delayMs: 100 },
  });
  assert.equal((await s.waitFor(tty.id)).status, 'succeeded');
  await page.goto(`${s.url}/ui/#/jobs/${tty.id}`);
  const attempts = page.locator('[data-testid=log] section.attempt');
  await until('both attempts\' output', async () => (await attempts.count()) === 2 && (await attempts.nth(1).locator('.l-stdout').count()) === 2);
  const heads = page.locator('[data-testid=attempt-head]');
  await until('the first attempt\'s outcome', async () => /failed/.test((await heads.nth(0).textContent()) ?? ''));
  assert.match((await heads.nth(0).textContent()) ?? '', /Attempt 1 of 2.*failed.*exit 1/);
  assert.match((await heads.nth(1).textContent()) ?? '', /Attempt 2 of 2.*succeeded.*exit 0/);
  const ttyText = (await log.textContent()) ?? '';
  assert.ok(!ttyText.includes('\u001b') && !ttyText.includes('[1;31m') && !ttyText.includes('[0m'), `no raw escape codes: ${JSON.stringify(ttyText)}`);
  const red = attempts.nth(0).locator('.l-stdout span', { hasText: 'red alert' });
  assert.equal(await red.count(), 1);
  assert.equal(await red.evaluate((e) => getComputedStyle(e).color), 'rgb(187, 0, 0)');
  assert.equal(await red.evaluate((e) => getComputedStyle(e).fontWeight), '700');
  // Control: the uncoloured rest of the line is not red.
  assert.notEqual(await attempts.nth(0).locator('.l-stdout').first().evaluate((e) => getComputedStyle(e).color), 'rgb(187, 0, 0)');
  assert.equal(await attempts.nth(0).locator('.l-stdout').first().textContent(), 'red alert plain');
  assert.equal(await attempts.nth(0).locator('.l-stdout').nth(1).textContent(), 'progress 100%');
  await shot(page, 'job-attempts');

  // A job that reports its progress and a result: a progress bar and the result's JSON on its page.
  assert.equal(await page.locator('[data-testid=job-progress]').count(), 0, 'the control: a job that reported nothing has no bar');
  const reporting = await s.run({ command: `echo '::drover progress 60'; echo '::drover result {"rows":12}'` });
  await page.goto(`${s.url}/ui/#/jobs/${reporting.id}`);
  const bar = page.locator('[data-testid=job-progress] progress');
  await bar.waitFor();
  assert.equal(await bar.evaluate((e) => (e as HTMLProgressElement).value), 60);
  assert.match((await page.locator('[data-testid=job-progress]').textContent()) ?? '', /60%/);
  assert.deepEqual(JSON.parse((await page.locator('[data-testid=job-result]').textContent()) ?? 'null'), { rows: 12 });
  await shot(page, 'job-progress');

  // Jobs list, filtered, with live status.
  await page.goto(`${s.url}/ui/#/jobs`);
  await page.waitForSelector(`tr[data-job="${jobId}"] .status.s-failed`);
  await page.selectOption('select[aria-label="status filter"]', 'failed');
  await page.waitForSelector(`tr[data-job="${jobId}"]`);
  await shot(page, 'jobs');

  // A job for a queue no runner serves (only when the API names each queue's consumers).
  const orphan = await s.submit({ command: 'true', queue: 'nobody-serves' });

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
  const orphanQueue = await s.request<{ consumers?: unknown[] }>('GET', `/v1/queues/${orphan.queue}`);
  if (Array.isArray(orphanQueue.body.consumers)) {
    await page.locator(`tr[data-queue="${orphan.queue}"] [data-testid=no-runner]`).waitFor();
    assert.equal(await page.locator('tr[data-queue=default] [data-testid=no-runner]').count(), 0, 'the served queue says nothing of the kind');
  }

  // Pictures from the API's own aggregates: jobs ended per minute (green ok, red failed) and queue waits.
  const chart = '[data-queue-stats=default] [data-testid=throughput-chart] canvas';
  await until('the throughput chart drew the jobs', async () => (await canvasHas(page, chart, GREEN)) && canvasHas(page, chart, RED), 25_000);
  assert.equal(await page.locator('[data-queue-stats=default] [data-testid=wait-chart] canvas').count(), 1);
  assert.match((await page.textContent('[data-queue-stats=default] [data-testid=totals]')) ?? '', /ended · \d+ ok · \d+ failed/);
  // Control: a queue where nothing started or ended says so instead of drawing empty axes.
  await page.locator(`[data-queue-stats="${orphan.queue}"] [data-testid=idle]`).waitFor();
  assert.equal(await page.locator(`[data-queue-stats="${orphan.queue}"] canvas`).count(), 0);
  await shot(page, 'queues-charts');
  await page.click('[data-testid=range-day]');
  await until('the day chart drew the jobs', async () => canvasHas(page, chart, GREEN), 15_000);

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
  // A failing run next: the history strip shows one cell per run, coloured by outcome, oldest first.
  assert.equal((await s.request('PUT', '/v1/schedules/ui-every-5', { job: { command: 'exit 1' } })).status, 200);
  await sched.locator('[data-testid=trigger]').click();
  const failedRun = await until('the failing run', async () => {
    const r = await s.request<{ items: JobRecord[] }>('GET', '/v1/schedules/ui-every-5/runs');
    return r.body.items.length === 2 && r.body.items[0];
  });
  await s.waitFor(failedRun.id);
  const cells = sched.locator('[data-testid=run-strip] .cell');
  await until('two cells', async () => (await cells.count()) === 2 && (await cells.nth(1).getAttribute('data-status')) === 'failed');
  assert.equal(await cells.nth(0).getAttribute('data-status'), 'succeeded');
  assert.equal(await cells.nth(0).evaluate((e) => getComputedStyle(e).backgroundColor), `rgb(${GREEN.join(', ')})`);
  assert.equal(await cells.nth(1).evaluate((e) => getComputedStyle(e).backgroundColor), `rgb(${RED.join(', ')})`);
  assert.equal(await cells.nth(1).getAttribute('href'), `#/jobs/${failedRun.id}`);
  await sched.locator('[data-testid=disable]').click();
  await until('disabled', async () => (await sched.locator('[data-testid=enabled]').textContent()) === 'no');
  await sched.locator('button.link').click();
  await page.waitForSelector(`a[href="#/jobs/${runs[0]!.id}"]`);
  await shot(page, 'schedules');

  // Runners: the stack's runner, with its load.
  await page.goto(`${s.url}/ui/#/runners`);
  await page.waitForSelector(`tr[data-runner="${s.runner!.id}"] .s-running`);
  // Its load over time: sampled every 10 s, so the first sample may take a moment.
  await page.waitForSelector('[data-testid=runner-load-chart] canvas', { timeout: 25_000 });
  // The runner's line (the first colour) and the slots line are drawn.
  await until('the runner\'s load drawn', async () => (await canvasHas(page, '[data-testid=runner-load-chart] canvas', [47, 95, 208])) && canvasHas(page, '[data-testid=runner-load-chart] canvas', [154, 163, 178]), 15_000);
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
  // A long edge (fetch -> report) that a column layout would draw straight through the box between.
  const skip = await s.request<{ id: string }>('POST', '/v1/workflows', {
    name: 'ui-skip',
    steps: [
      { name: 'fetch', job: { command: 'true' } },
      { name: 'transform', job: { command: 'true' }, dependsOn: ['fetch'] },
      { name: 'load', job: { command: 'true' }, dependsOn: ['transform'] },
      { name: 'report', job: { command: 'true' }, dependsOn: ['fetch', 'load'] },
    ],
  });
  assert.equal(skip.status, 201);
  await page.goto(`${s.url}/ui/#/workflows`);
  const dag = page.locator(`[data-workflow="${wf.body.id}"]`);
  await dag.locator('g.node.s-succeeded[data-step=test]').waitFor({ timeout: 20_000 });
  await dag.locator('g.node.s-failed[data-step=lint]').waitFor();
  assert.equal(await dag.locator('g.node').count(), 4);
  assert.equal(await dag.locator('path.edge').count(), 4);
  await page.locator(`[data-workflow="${skip.body.id}"] g.node[data-step=report]`).waitFor();
  assert.deepEqual(await edgesThroughBoxes(page, `[data-workflow="${wf.body.id}"] svg.dag`), []);
  assert.deepEqual(await edgesThroughBoxes(page, `[data-workflow="${skip.body.id}"] svg.dag`), []);
  // Control: the check sees an edge drawn straight through a box in between.
  await page.evaluate(() => {
    const probe = document.createElement('div');
    probe.id = 'probe';
    probe.innerHTML = '<svg class="dag"><g class="node" data-step="a" transform="translate(0,0)"><rect width="150" height="44"/></g>'
      + '<g class="node" data-step="b" transform="translate(210,0)"><rect width="150" height="44"/></g>'
      + '<g class="node" data-step="c" transform="translate(420,0)"><rect width="150" height="44"/></g>'
      + '<path class="edge" data-from="a" data-to="c" d="M 150 22 L 420 22"/></svg>';
    document.body.append(probe);
  });
  assert.deepEqual(await edgesThroughBoxes(page, '#probe svg.dag'), ['a->c through b']);
  await page.evaluate(() => document.getElementById('probe')?.remove());
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
  assert.equal(await log.locator('[data-testid=log-lines]').textContent(), payload);
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
