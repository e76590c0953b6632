import { test, expect, type APIRequestContext } from '@playwright/test';
import { addUser, adminKey, appKey, createPrompt, expectAccessible, hydrated, reviewMove, screenshot, signIn, unique, visit, watchErrors } from './helpers';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** `YYYY-MM-DDTHH:MM:SS` in UTC, as a datetime-local input takes it. */
const utc = (d: Date) => d.toISOString().slice(0, 19);

async function send(request: APIRequestContext, key: string, items: Record<string, unknown>[]) {
  const res = await request.post('/api/v1/generations', { headers: { authorization: `Bearer ${key}` }, data: { items } });
  expect(res.status(), await res.text()).toBe(202);
}

test('a product manager rolls a version out gradually and watches it take itself back when its errors rise', async ({ page, request }, testInfo) => {
  const key = adminKey();
  const auth = { authorization: `Bearer ${key}` };
  const name = `support/${unique('greeting')}`;
  const path = encodeURIComponent(name);
  await createPrompt(request, key, { name, template: 'Hello {{ customer }}, how can I help?' });
  expect((await request.post(`/api/v1/prompts/${path}/versions`, { headers: auth, data: { base_version: 1, template: 'Hi {{ customer }}! What can I do for you today?', message: 'friendlier' } })).status()).toBe(201);
  expect((await request.put(`/api/v1/prompts/${path}/labels/stable`, { headers: auth, data: { version: 1 } })).status()).toBe(200);

  // The product manager reviews promoting v2 and takes the gradual way, with the defaults.
  const pm = addUser('publisher');
  const errors = watchErrors(page);
  await signIn(page, pm);
  await visit(page, `/history/${name}`);
  const review = await reviewMove(page, { pick: 'stable' }, '2');
  await expect(review.locator('.gradual')).toContainText('v2 goes to 5 % of users first, then 25 %, 50 %, then everyone.');
  await expect(review.locator('.gradual')).toContainText('It goes back to v1 by itself if errors rise by more than 2 points, if it gets 25 % slower, or if it costs 10 % more per call.');
  await expectAccessible(page);
  await screenshot(page, testInfo, 'rollout-review');
  await review.getByLabel('Why?').fill('Friendlier greeting');
  await review.getByRole('button', { name: 'Roll out gradually' }).click();

  // Its page: running at 5 %, with both versions side by side.
  await expect(page).toHaveURL(/\/rollouts\/ro_/);
  const id = new URL(page.url()).pathname.split('/').pop()!;
  await hydrated(page);
  await expect(page.getByRole('heading', { level: 1 })).toHaveText('Gradual rollout of stable: v1 → v2');
  const state = page.locator('.state-headline');
  await expect(state).toHaveText('Running: v2 serves 5 % of users, v1 the rest (step 1 of 4).');
  await expect(page.getByRole('button', { name: 'Pause' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Stop and go back to v1' })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Resume' })).toHaveCount(0);
  await expectAccessible(page);
  let polls = 0;
  page.on('request', (r) => { if (r.url().includes('/api/console/get_rollout')) polls++; });
  // The prompt's page says who gets what, and links here.
  const promptPage = await page.context().newPage();
  await visit(promptPage, `/prompts/${name}`);
  await expect(promptPage.getByRole('link', { name: 'stable: v1 for 95 %, v2 for 5 %' })).toHaveAttribute('href', `/rollouts/${id}`);
  await expectAccessible(promptPage);
  await screenshot(promptPage, testInfo, 'rollout-prompt-page');
  await promptPage.close();

  // An instant while it ran, for "what was live at" later: the next whole second (the
  // picker takes seconds), which has passed before any call is reported.
  const during = new Date(Math.ceil(Date.now() / 1000) * 1000);
  await sleep(during.getTime() - Date.now() + 200);

  // Production reports its calls: v2 fails every other call, v1 never does.
  await page.evaluate(() => { (window as unknown as { stayed: boolean }).stayed = true; });
  const items = [];
  const now = new Date().toISOString();
  for (let i = 0; i < 250; i++) {
    for (const arm of ['base', 'candidate']) {
      const candidate = arm === 'candidate';
      items.push({
        id: unique(`${arm}-${i}`), prompt: name, version: candidate ? 2 : 1, label: 'stable', rollout: id, arm,
        status: candidate && i % 2 === 0 ? 'error' : 'ok', started_at: now, latency_ms: 700, cost: 0.001,
      });
    }
  }
  await send(request, appKey(), items);

  // Without a reload, the page shows it went back, and why.
  await expect(state).toHaveText('Rolled back automatically: stable serves v1 to everyone again.', { timeout: 15_000 });
  await expect(page.locator('.state-note')).toContainText('error rate');
  expect(await page.evaluate(() => (window as unknown as { stayed?: boolean }).stayed)).toBe(true);
  // It asked every two seconds while running, and stops once the rollout has ended.
  expect(polls).toBeGreaterThan(0);
  const asked = polls;
  await sleep(4500);
  expect(polls - asked).toBeLessThanOrEqual(1);
  const timeline = page.getByRole('region', { name: 'What happened, newest first' });
  await expect(timeline.locator('li').first()).toContainText('rolled back automatically');
  await expect(timeline.locator('li').filter({ hasText: 'worse than allowed' }).first()).toContainText('error rate');
  const arms = page.getByRole('region', { name: 'Both versions side by side' }).locator('table');
  const row = (figure: string) => arms.locator('tbody tr').filter({ has: page.getByRole('rowheader', { name: figure, exact: true }) });
  await expect(row('Calls').locator('td')).toHaveText(['250', '250']);
  await expect(row('Error rate').locator('td')).toHaveText(['0.0%', '50.0%']);
  await expect(page.locator('figure.chart-card figcaption')).toHaveCount(3);
  await expect(page.getByRole('button', { name: 'Pause' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: 'Stop and go back to v1' })).toBeHidden();
  await expectAccessible(page);
  await screenshot(page, testInfo, 'rollout-rolled-back');

  // The label never left v1; the History page tells the story.
  expect((await (await request.get(`/api/v1/prompts/${path}/labels`, { headers: auth })).json()).labels.stable).toBe(1);
  await visit(page, `/history/${name}`);
  const history = page.getByRole('region', { name: 'Label history' });
  await expect(history).toContainText('v1, with v2 at 5 %');
  await expect(history).toContainText('v1 for everyone again');
  await expect(page.getByRole('region', { name: 'Gradual rollouts' })).toContainText('rolled back automatically');
  await expectAccessible(page);
  await screenshot(page, testInfo, 'rollout-history');

  // "What was live at" an instant during the rollout names both versions.
  await visit(page, `/audit?prompt=${path}&action=rollout.rolled_back`);
  await expect(page.locator('tr.audit-row')).toHaveCount(1);
  const live = page.locator('#live-at');
  await live.getByLabel('Prompt name').fill(name);
  await live.getByLabel('At (UTC)').fill(utc(during));
  await live.getByRole('button', { name: 'Show' }).click();
  await expect(live.locator('.live-heading')).toContainText(`stable served version 1, with version 2 at 5 % (rollout ${id})`);
  await expect(live.locator('pre.prompt-text')).toHaveText(['Hello {{ customer }}, how can I help?', 'Hi {{ customer }}! What can I do for you today?']);
  await expectAccessible(page);
  expect(errors).toEqual([]);
});

test('a product manager pauses, resumes, advances and stops a rollout from its page', async ({ page, request }) => {
  const key = adminKey();
  const auth = { authorization: `Bearer ${key}` };
  const name = `sales/${unique('pitch')}`;
  const path = encodeURIComponent(name);
  await createPrompt(request, key, { name, template: 'Pitch {{ product }}.' });
  expect((await request.post(`/api/v1/prompts/${path}/versions`, { headers: auth, data: { base_version: 1, template: 'Pitch {{ product }} briefly.' } })).status()).toBe(201);
  expect((await request.put(`/api/v1/prompts/${path}/labels/stable`, { headers: auth, data: { version: 1 } })).status()).toBe(200);
  const started = await request.post(`/api/v1/prompts/${path}/rollouts`, { headers: auth, data: { version: 2, reason: 'shorter' } });
  expect(started.status(), await started.text()).toBe(201);
  const { id } = await started.json();

  const pm = addUser('publisher');
  const errors = watchErrors(page);
  await signIn(page, pm);
  await visit(page, `/rollouts/${id}`);
  const state = page.locator('.state-headline');
  await page.getByLabel('Why?').fill('Waiting for the sales review');
  await page.getByRole('button', { name: 'Pause' }).click();
  await expect(state).toHaveText('Paused, waiting for a person: v2 still serves 5 % of users, v1 the rest (step 1 of 4).');
  await expect(page.locator('.state-note')).toContainText('Waiting for the sales review');
  await page.getByRole('button', { name: 'Resume' }).click();
  await expect(state).toHaveText('Running: v2 serves 5 % of users, v1 the rest (step 1 of 4).');
  await page.getByRole('button', { name: 'Go to the next step now (25 %)' }).click();
  await expect(state).toHaveText('Running: v2 serves 25 % of users, v1 the rest (step 2 of 4).');
  await page.getByRole('button', { name: 'Stop and go back to v1' }).click();
  await expect(state).toHaveText('Aborted: stable serves v1 to everyone again.');
  await expect(page.getByRole('button', { name: /Pause|Resume|Go to the next step/ })).toHaveCount(0);
  await expectAccessible(page);
  const audit = await (await request.get(`/api/v1/audit?prompt=${path}`, { headers: auth })).json();
  const actions = audit.items.filter((e: { actor: string }) => e.actor === pm).map((e: { action: string }) => e.action);
  expect(actions).toEqual(['rollout.aborted', 'rollout.advanced', 'rollout.resumed', 'rollout.paused']);
  expect(errors).toEqual([]);
});

test('a gradual rollout of a label that needs approval starts when a second product manager approves it', async ({ page, request, browser }) => {
  const key = adminKey();
  const auth = { authorization: `Bearer ${key}` };
  const name = `billing/${unique('reminder')}`;
  const path = encodeURIComponent(name);
  const label = unique('prod');
  await createPrompt(request, key, { name, template: 'Your invoice is due.' });
  expect((await request.post(`/api/v1/prompts/${path}/versions`, { headers: auth, data: { base_version: 1, template: 'Your invoice is due soon.' } })).status()).toBe(201);
  expect((await request.put(`/api/v1/prompts/${path}/labels/${label}`, { headers: auth, data: { version: 1 } })).status()).toBe(200);
  expect((await request.put(`/api/v1/labels/${label}/policy`, { headers: auth, data: { protected: true, require_approval: true } })).status()).toBe(200);

  const first = addUser('publisher');
  const errors = watchErrors(page);
  await signIn(page, first);
  await visit(page, `/history/${name}`);
  const review = await reviewMove(page, { type: label }, '2');
  await review.getByRole('button', { name: 'Ask for approval to roll out gradually' }).click();
  await expect(page.getByRole('status').filter({ hasText: `Rolling out version 2 on ${label} gradually needs approval` })).toBeVisible();
  expect((await (await request.get(`/api/v1/prompts/${path}/rollouts`, { headers: auth })).json()).items).toEqual([]);

  const second = addUser('publisher');
  const other = await (await browser.newContext()).newPage();
  await signIn(other, second);
  await visit(other, '/approvals');
  const card = other.getByRole('region', { name: `${name} · ${label} → v2` });
  await expect(card).toContainText('approving starts a gradual rollout: version 2 goes to 5 % of users first');
  await card.getByRole('button', { name: 'Approve' }).click();
  await expect(other.getByRole('status').filter({ hasText: `Approved: the gradual rollout of ${name} started.` })).toBeVisible();
  await hydrated(other);
  await visit(other, `/prompts/${name}`);
  await other.getByRole('link', { name: `${label}: v1 for 95 %, v2 for 5 %` }).click();
  await expect(other.getByRole('heading', { level: 1 })).toHaveText(`Gradual rollout of ${label}: v1 → v2`);
  await expect(other.locator('.state-headline')).toHaveText('Running: v2 serves 5 % of users, v1 the rest (step 1 of 4).');
  expect(errors).toEqual([]);
});
