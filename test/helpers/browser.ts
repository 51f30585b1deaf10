// The dashboard in a real browser: Debian's Chromium driven by playwright-core (no browser download).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Stack } from './stack.js';

export const ROOT = new URL('../..', import.meta.url).pathname;
/** Screenshots go here (git-ignored) for a person to look at. */
export const ARTIFACTS = `${ROOT}test/artifacts`;
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export const PHONE = { width: 420, height: 900 };
export const DESKTOP = { width: 1400, height: 900 };

/** A headless Chromium, closed after the test; builds the dashboard's bundle first if it is not built. */
export async function openBrowser(t: { after: (fn: () => Promise<void>) => void }): Promise<Browser> {
  if (!existsSync(`${ROOT}ui/dist/index.html`)) execFileSync('npm', ['run', 'build', '--silent', '-w', 'ui'], { cwd: ROOT, stdio: 'inherit' });
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-dev-shm-usage'],
  });
  t.after(() => browser.close());
  return browser;
}

/** A page that records every script error or CSP violation the dashboard causes in `problems`. */
export async function newPage(browser: Browser, problems: string[]): Promise<Page> {
  const page = await browser.newPage({ viewport: DESKTOP });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource: the server responded with a status of 40[0134]/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  page.setDefaultTimeout(15_000);
  return page;
}

/** Logs in with `token` on the dashboard's login form. */
export async function login(page: Page, s: Stack, token: string): Promise<void> {
  await page.goto(`${s.url}/ui/`);
  await page.fill('input[name=token]', token);
  await page.click('button[type=submit]');
  await page.waitForSelector('[data-testid=who]');
}
