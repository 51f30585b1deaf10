// The dashboard's namespace switch, in Debian's Chromium driven by playwright-core (as test/ui.browser.test.ts).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import type { Page, Request } from 'playwright-core';
import type { JobRecord } from '@drover/core';
import { ARTIFACTS, DESKTOP, PHONE, login, newPage, openBrowser } from './helpers/browser.js';
import { startStack, type Stack } from './helpers/stack.js';
import { until } from './helpers/until.js';

/** POST /v1/jobs in a namespace, named by the header as the dashboard names it. */
async function submitIn(s: Stack, ns: string, command: string): Promise<JobRecord> {
  const res = await fetch(`${s.url}/v1/jobs`, {
    method: 'POST',
    headers: { authorization: `Bearer ${s.tokens.admin}`, 'content-type': 'application/json', 'drover-namespace': ns },
    body: JSON.stringify({ command }),
  });
  assert.equal(res.status, 201, await res.clone().text());
  return (await res.json()) as JobRecord;
}

/** The job ids the jobs table shows. */
const rows = (page: Page): Promise<string[]> => page.locator('table.rows tbody tr').evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).dataset.job ?? ''));

test('dashboard: the namespace switch lists namespaces, sends Drover-Namespace on every call (streams too), is remembered and reloads the page', async (t) => {
  // Browser first: after-hooks run in order, and the stack's checks for leftover child processes must not see it.
  const browser = await openBrowser(t);
  // No runner: the jobs stay queued, so each list shows exactly what was submitted where.
  const s = await startStack(t, { runner: false });
  const created = await s.request<{ name: string }>('POST', '/v1/namespaces', { name: 'team-q', description: 'the q team' });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const inTeam = await submitIn(s, 'team-q', 'echo in team-q');
  const inDefault = await s.submit({ command: 'echo in default' });

  const problems: string[] = [];
  const page = await newPage(browser, problems);
  const sent: Request[] = [];
  page.on('request', (r) => {
    if (new URL(r.url()).pathname.startsWith('/v1/')) sent.push(r);
  });

  await login(page, s, s.tokens.admin);
  const select = page.getByLabel('Namespace');
  await select.waitFor();
  assert.equal(await select.evaluate((e) => e.tagName), 'SELECT', 'the accessible name "Namespace" is the select\'s');
  assert.deepEqual(await select.locator('option').allTextContents(), ['default', 'team-q']);
  // Nothing remembered yet: the namespace the API picks for this token (default).
  assert.equal(await select.inputValue(), 'default');
  await until('the default job listed', async () => (await rows(page)).includes(inDefault.id));
  assert.deepEqual(await rows(page), [inDefault.id], 'default shows its own job only');

  // Switch: the list reloads in team-q, every call from now on names it, and the choice is remembered.
  const switchedAt = sent.length;
  await select.selectOption('team-q');
  await until('the team-q job listed', async () => (await rows(page)).includes(inTeam.id));
  assert.deepEqual(await rows(page), [inTeam.id], 'team-q shows its own job only');
  assert.equal(await page.evaluate(() => localStorage.getItem('drover.namespace')), 'team-q');
  await until('the live event stream reopened', () => sent.slice(switchedAt).some((r) => new URL(r.url()).pathname === '/v1/events'));
  const after = sent.slice(switchedAt);
  assert.ok(after.some((r) => new URL(r.url()).pathname === '/v1/jobs'), 'the jobs list was asked again');
  for (const r of after) assert.equal(r.headers()['drover-namespace'], 'team-q', `${r.method()} ${r.url()} names the namespace`);

  // A reload keeps the namespace (localStorage; the token is in this tab's sessionStorage).
  await page.reload();
  await page.waitForSelector('[data-testid=who]');
  assert.equal(await page.getByLabel('Namespace').inputValue(), 'team-q');
  await until('the team-q job listed after a reload', async () => (await rows(page)).includes(inTeam.id));
  assert.deepEqual(await rows(page), [inTeam.id]);

  // A job's page, then a switch: its id is in team-q only, so the dashboard goes to the other namespace's job list.
  await page.click(`tr[data-job="${inTeam.id}"] a`);
  await page.waitForURL(new RegExp(`#/jobs/${inTeam.id}$`));
  await page.waitForSelector('dl.facts .status.s-queued');
  await page.getByLabel('Namespace').selectOption('default');
  await page.waitForURL(/#\/jobs$/);
  await until('the default job listed again', async () => (await rows(page)).includes(inDefault.id));
  assert.deepEqual(await rows(page), [inDefault.id]);
  await page.screenshot({ path: `${ARTIFACTS}/namespaces.png`, fullPage: true });
  // At phone width the header, switch included, wraps rather than scrolling the page sideways.
  await page.setViewportSize(PHONE);
  await until('the header fits 420 px', () => page.evaluate(() => document.documentElement.scrollWidth <= 420), 5000);
  assert.ok(await page.getByLabel('Namespace').isVisible());
  await page.screenshot({ path: `${ARTIFACTS}/namespaces-420.png`, fullPage: true });
  await page.setViewportSize(DESKTOP);

  // A token of one namespace sees no switch and works there, though another namespace is remembered in this browser.
  const teamToken = randomBytes(24).toString('base64url');
  s.registry.add(teamToken, { name: 'team', scope: 'submit', namespaces: ['team-q'] });
  await page.click('header button:has-text("Log out")');
  await login(page, s, teamToken);
  await until('the team token\'s job listed', async () => (await rows(page)).includes(inTeam.id));
  assert.deepEqual(await rows(page), [inTeam.id]);
  assert.equal(await page.getByLabel('Namespace').count(), 0, 'no switch for a token of one namespace');

  // The control: a token of default only (the stack's submit token) sees no switch either, and default's job.
  await page.click('header button:has-text("Log out")');
  await login(page, s, s.tokens.submit);
  await until('the default job listed for the submit token', async () => (await rows(page)).includes(inDefault.id));
  assert.deepEqual(await rows(page), [inDefault.id]);
  assert.equal(await page.getByLabel('Namespace').count(), 0);
  assert.deepEqual(problems, []);
});
