import { test, expect } from '@playwright/test';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PASSWORD, addUser, adminKey, createPrompt, signIn, unique, visit } from './helpers';

/** Serves one HTML page from another site (`localhost` is a different site from `127.0.0.1`). */
async function attackerSite(html: string): Promise<{ url: string; close: () => void }> {
  const server = http.createServer((_, res) => { res.setHeader('content-type', 'text/html'); res.end(html); });
  await new Promise<void>((resolve) => server.listen(0, 'localhost', resolve));
  return { url: `http://localhost:${(server.address() as AddressInfo).port}/`, close: () => server.close() };
}

test('a cross-site form post is refused and changes nothing', async ({ page, request, baseURL }) => {
  const key = adminKey();
  const name = `legal/${unique('notice')}`;
  await createPrompt(request, key, { name, template: 'v1' });
  const admin = addUser('admin');
  await signIn(page, admin);

  // A page elsewhere posts a label move to the console's server function.
  const site = await attackerSite(`<!DOCTYPE html><html><body>
    <form id="f" method="POST" action="${baseURL}/api/console/move_label">
      <input name="name" value="${name}"><input name="label" value="hacked">
      <input name="version" value="1"><input name="reason" value="csrf">
    </form><script>document.getElementById('f').submit()</script></body></html>`);
  try {
    const refused = page.waitForResponse((r) => r.url().endsWith('/api/console/move_label'));
    await page.goto(site.url);
    const response = await refused;
    expect(response.status()).toBe(403);
    expect((await response.json()).error.code).toBe('cross_site');
  } finally {
    site.close();
  }
  const labels = await (await request.get(`/api/v1/prompts/${encodeURIComponent(name)}/labels`, { headers: { authorization: `Bearer ${key}` } })).json();
  expect(labels.labels.hacked).toBeUndefined();
});

test("a viewer's forged server-function calls are refused and change nothing", async ({ page, request }) => {
  const key = adminKey();
  const name = `legal/${unique('terms')}`;
  await createPrompt(request, key, { name, template: 'Terms v1' });
  const viewer = addUser('viewer');
  await signIn(page, viewer);

  // The viewer sees no edit or promote controls...
  await visit(page, `/prompts/${name}`);
  await expect(page.getByRole('heading', { level: 1, name })).toBeVisible();
  await expect(page.getByLabel('Prompt text')).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Save as a new version' })).toHaveCount(0);

  // ...and calls made by hand from the same (signed-in, same-origin) page are refused.
  const results = await page.evaluate(async (prompt) => {
    const form = (body: Record<string, string>) => ({
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams(body).toString(),
    });
    const move = await fetch('/api/console/move_label', form({ name: prompt, label: 'stable', version: '1', reason: 'forged' }));
    const save = await fetch('/api/console/save_version', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: prompt, draft: { base_version: 1, prompt_type: 'text', template: 'Forged', messages: [], config: '{}', message: 'forged' } }),
    });
    const key = await fetch('/api/console/create_key', form({ name: 'forged', scope: 'admin' }));
    return [move.status, save.status, key.status];
  }, name);
  expect(results).toEqual([403, 403, 403]);

  const auth = { authorization: `Bearer ${key}` };
  const latest = await (await request.get(`/api/v1/prompts/${encodeURIComponent(name)}?label=latest`, { headers: auth })).json();
  expect(latest.version).toBe(1);
  const labels = await (await request.get(`/api/v1/prompts/${encodeURIComponent(name)}/labels`, { headers: auth })).json();
  expect(labels.labels.stable).toBeUndefined();
  const keys = await (await request.get('/api/v1/keys', { headers: auth })).json();
  expect(keys.items.map((k: { name: string }) => k.name)).not.toContain('forged');
});

test('sign-in: wrong passwords are refused in plain words, then rate limited; the session cookie is HttpOnly and SameSite=Strict', async ({ page, request }) => {
  const user = addUser('viewer');
  const wrong = { username: user, password: 'not the password' };
  for (let i = 0; i < 5; i++) {
    const res = await request.post('/api/console/login', { form: wrong });
    expect(res.status()).toBe(401);
  }
  // Locked now, even with the right password.
  const locked = await request.post('/api/console/login', { form: { username: user, password: PASSWORD } });
  expect(locked.status()).toBe(429);

  const other = addUser('viewer');
  const ok = await request.post('/api/console/login', { form: { username: other, password: PASSWORD } });
  expect(ok.status()).toBe(200);
  const cookie = ok.headers()['set-cookie'];
  expect(cookie).toMatch(/^promptledger_session=[0-9a-f]{64}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/);

  // Pages carry a CSP with a nonce that allows the wasm, and the other security headers.
  const res = await request.get('/');
  const csp = res.headers()['content-security-policy'];
  expect(csp).toMatch(/script-src 'self' 'nonce-[A-Za-z0-9+/=_-]+' 'wasm-unsafe-eval'/);
  expect(csp).not.toContain("'unsafe-eval'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(res.headers()['x-content-type-options']).toBe('nosniff');
  expect(res.headers()['referrer-policy']).toBe('same-origin');
  const nonce = csp.match(/'nonce-([^']+)'/)![1];
  expect(await res.text()).toContain(`nonce="${nonce}"`);

  // Signing out ends the session on the server, not just in the browser.
  await signIn(page, other);
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === 'promptledger_session')!;
  expect(session.httpOnly).toBe(true);
  expect(session.sameSite).toBe('Strict');
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('heading', { name: 'Sign in to promptledger' })).toBeVisible();
  const replay = await request.post('/api/console/list_prompts', {
    headers: { cookie: `promptledger_session=${session.value}` }, form: {},
  });
  expect(replay.status()).toBe(401);
});
