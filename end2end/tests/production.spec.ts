import { test, expect, type APIRequestContext } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { addUser, adminKey, createPrompt, expectAccessible, screenshot, signIn, unique, watchErrors, visit } from './helpers';

/** An `app` key, as a running application has, made with the real CLI. */
function appKey(): string {
  const out = execFileSync(process.env.PROMPTLEDGER_BIN!, ['--db', process.env.E2E_DB!, 'apikey', 'create', '--name', unique('app'), '--scope', 'app']);
  return out.toString().trim().split('\n').pop()!;
}

async function send(request: APIRequestContext, key: string, items: Record<string, unknown>[]) {
  const res = await request.post('/api/v1/generations', { headers: { authorization: `Bearer ${key}` }, data: { items } });
  expect(res.status(), await res.text()).toBe(202);
}

test('a support lead pastes a request id from a complaint and sees exactly what the assistant saw and said', async ({ page, request }, testInfo) => {
  const key = adminKey();
  const name = `support/${unique('refunds')}`;
  const path = encodeURIComponent(name);
  await createPrompt(request, key, { name, template: 'You are kind. The customer {{ customer }} asks about {{ topic }}.' });
  const stable = await request.put(`/api/v1/prompts/${path}/labels/stable`, { headers: { authorization: `Bearer ${key}` }, data: { version: 1 } });
  expect(stable.status()).toBe(200);
  await new Promise((done) => setTimeout(done, 50));
  const id = unique('complaint');
  await send(request, appKey(), [{
    id, prompt: name, version: 1, label: 'stable', status: 'ok', started_at: new Date().toISOString(),
    model: 'openai/gpt-4o-mini', latency_ms: 812, input_tokens: 120, output_tokens: 31, cost: 0.00012,
    variables: { customer: 'Ada', topic: 'a late refund' }, output: 'Dear Ada, refunds take 14 days.', user: 'u-42',
  }]);
  await request.post(`/api/v1/generations/${id}/scores`, { headers: { authorization: `Bearer ${appKey()}` }, data: { name: 'thumbs_up', value: false, comment: 'rude' } });

  const lead = addUser('editor');
  const errors = watchErrors(page);
  await signIn(page, lead);
  await page.getByLabel('Request id of a call').fill(id);
  await page.getByRole('button', { name: 'Look up' }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Call ${id}`);
  const told = page.getByRole('region', { name: 'What the assistant was told' });
  await expect(told.getByText('You are kind. The customer Ada asks about a late refund.', { exact: true })).toBeVisible();
  await expect(page.getByRole('region', { name: 'What it answered' })).toContainText('Dear Ada, refunds take 14 days.');
  await expect(page.locator('dl.facts')).toContainText('stable served version 1 when the call started.');
  await expect(page.locator('dl.facts')).toContainText('812 ms');
  await expect(page.getByRole('region', { name: 'Feedback and scores' })).toContainText('rude');
  await expectAccessible(page);
  await screenshot(page, testInfo, 'support-lead-call');

  expect(errors).toEqual([]);

  // An id that matches nothing says so in plain words, with what to check (the browser
  // logs the page's 404 itself).
  await page.getByLabel('Request id of a call').fill('no-such-call');
  await page.getByRole('button', { name: 'Look up' }).click();
  await expect(page.getByRole('alert')).toContainText('No call has the request id');
  await expectAccessible(page);
  expect(errors.filter((e) => !e.includes('status of 404'))).toEqual([]);
});

test('a product manager compares two versions in production and sets a budget', async ({ page, request }, testInfo) => {
  const key = adminKey();
  const auth = { authorization: `Bearer ${key}` };
  const name = `sales/${unique('followup')}`;
  const path = encodeURIComponent(name);
  await createPrompt(request, key, { name, template: 'Follow up with {{ lead }}.' });
  expect((await request.post(`/api/v1/prompts/${path}/versions`, { headers: auth, data: { base_version: 1, template: 'Follow up warmly with {{ lead }}.' } })).status()).toBe(201);
  expect((await request.put(`/api/v1/prompts/${path}/labels/stable`, { headers: auth, data: { version: 1 } })).status()).toBe(200);
  // Version 1 (stable): fast, no errors. Version 2: slower, one call in four fails.
  const app = appKey();
  const items = [];
  for (let i = 0; i < 40; i++) {
    const v2 = i % 2 === 1;
    items.push({
      id: unique(`call-${i}`), prompt: name, version: v2 ? 2 : 1, status: v2 && i % 4 === 1 ? 'error' : 'ok',
      started_at: new Date(Date.now() - (i + 1) * 60_000).toISOString(), latency_ms: v2 ? 1500 : 600,
      input_tokens: 100, output_tokens: 20, cost: 0.001,
    });
  }
  await send(request, app, items);

  const pm = addUser('publisher');
  const errors = watchErrors(page);
  await signIn(page, pm);
  await visit(page, `/prompts/${name}`);
  await page.getByRole('link', { name: 'Production', exact: true }).click();
  await expect(page.getByRole('heading', { level: 1 })).toHaveText(`Production: ${name}`);
  await page.locator('div.app[data-hydrated="true"]').waitFor();
  const table = page.getByRole('region', { name: 'Versions side by side' }).locator('table');
  await expect(table.locator('thead th')).toHaveText(['Figure', 'Version 1 (stable)', 'Version 2']);
  const row = (figure: string) => table.locator('tbody tr').filter({ has: page.getByRole('rowheader', { name: figure, exact: true }) });
  await expect(row('Calls').locator('td')).toHaveText(['20', '20']);
  await expect(row('Error rate').locator('td')).toHaveText(['0.0%', '50.0%']);
  await expect(row('Latency p95').locator('td').nth(1)).toContainText('% worse');
  await expect(page.locator('figure.chart-card figcaption')).toHaveText(['Calls', 'Error rate', 'Latency, 95th percentile', 'Cost per call']);
  await expectAccessible(page);
  await screenshot(page, testInfo, 'pm-production');

  // Only failed calls of version 2.
  await page.getByLabel('Version', { exact: true }).selectOption('2');
  await page.getByLabel('Outcome').selectOption('error');
  await page.getByRole('button', { name: 'Show' }).click();
  await expect(page.getByRole('region', { name: 'Recent calls' }).locator('tbody tr')).toHaveCount(10);

  expect(errors).toEqual([]);

  // A budget: a bar with what was spent, the limit and the forecast. A mistake is
  // explained (the browser logs the refused request's 422 itself).
  await page.getByLabel('Limit in dollars').fill('ten');
  await page.getByRole('button', { name: 'Save the budget' }).click();
  await expect(page.getByRole('alert')).toContainText('The limit must be a number of dollars');
  await page.getByLabel('Limit in dollars').fill('10');
  await page.getByLabel('Per', { exact: true }).selectOption('month');
  await page.getByRole('button', { name: 'Save the budget' }).click();
  await expect(page.getByRole('region', { name: 'Budget' })).toContainText('of $10.00 spent this month');
  await expect(page.getByRole('img', { name: /spent this month/ })).toBeVisible();
  await expectAccessible(page);
  const audit = await (await request.get(`/api/v1/audit?prompt=${path}&action=budget.set`, { headers: auth })).json();
  expect(audit.items[0].actor).toBe(pm);
  expect(errors.filter((e) => !e.includes('status of 422'))).toEqual([]);
});
