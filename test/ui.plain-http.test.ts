// The dashboard opens over plain HTTP through any host name (a LAN name, a compose service, a NodePort).
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { test } from 'node:test';
import { startStack } from './helpers/stack.js';

/** GET with a Host header of our choosing, as a browser reaching the API by another name sends it. */
function get(url: string, path: string, host: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined> }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port, path, headers: { host } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('over plain HTTP by a host name: no upgrade-insecure-requests in the CSP and no HSTS, on the page and its assets', async (t) => {
  const s = await startStack(t, { runner: false, scheduler: false });
  for (const path of ['/ui/', '/docs/', '/healthz']) {
    const res = await get(s.url, path, 'drover.lan:8606');
    assert.ok(res.status < 400, `${path} answered ${res.status}`);
    const csp = String(res.headers['content-security-policy'] ?? '');
    assert.ok(csp.includes("default-src 'self'"), `${path} still has a CSP: ${csp}`);
    assert.ok(!/upgrade-insecure-requests/i.test(csp), `${path}: ${csp}`);
    assert.equal(res.headers['strict-transport-security'], undefined, `${path} sent HSTS over plain HTTP`);
  }
});
