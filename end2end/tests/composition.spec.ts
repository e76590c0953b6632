import { test, expect } from '@playwright/test';
import { addUser, adminKey, createPrompt, expectAccessible, reviewMove, screenshot, signIn, unique, visit, watchErrors } from './helpers';

test('a support lead edits a shared snippet and sees which assistants it changes, and how they do, before promoting it', async ({ page, request }, testInfo) => {
  const key = adminKey();
  const auth = { authorization: `Bearer ${key}` };
  // The local provider answers with the prompt it is sent, so the suite checks the composed text.
  const provider = await request.put('/api/v1/providers/mock', { headers: auth, data: { kind: 'openai', base_url: process.env.MOCK_PROVIDER_BASE } });
  expect(provider.status()).toBe(200);
  const tone = `shared/${unique('tone')}`;
  await createPrompt(request, key, { name: tone, template: 'Thanks for waiting. ' });
  expect((await request.put(`/api/v1/prompts/${encodeURIComponent(tone)}/labels/stable`, { headers: auth, data: { version: 1 } })).status()).toBe(200);
  const bots = [`support/${unique('billing-bot')}`, `support/${unique('shipping-bot')}`];
  const suite = { cases: [{ vars: { question: 'Where is my parcel?' }, assert: [{ type: 'not-icontains', value: 'sorry' }] }] };
  for (const bot of bots) {
    const path = encodeURIComponent(bot);
    await createPrompt(request, key, { name: bot, template: `{% include "${tone}@stable" %}{{ question }}`, config: { model: 'mock/m' } });
    expect((await request.put(`/api/v1/prompts/${path}/labels/stable`, { headers: auth, data: { version: 1 } })).status()).toBe(200);
    expect((await request.put(`/api/v1/prompts/${path}/suites/smoke`, { headers: auth, data: suite })).status()).toBe(200);
  }

  const lead = addUser('publisher');
  const errors = watchErrors(page);
  await signIn(page, lead);

  // The snippet's page says who uses it.
  await visit(page, `/prompts/${tone}`);
  const usedBy = page.getByRole('region', { name: 'Used by' });
  for (const bot of bots) {
    await expect(usedBy.getByRole('row', { name: new RegExp(bot) })).toContainText('stable');
  }
  await expectAccessible(page);

  // An edit that apologises: saved as version 2, nothing served changes yet.
  await page.getByLabel('Prompt text').fill('Sorry for the wait. ');
  await page.getByRole('button', { name: /Save/ }).click();
  await expect(page.getByRole('status').filter({ hasText: 'version 2' })).toBeVisible();

  // Before promoting: the review names both assistants, and the impact check runs their suites.
  await visit(page, `/history/${tone}`);
  const review = await reviewMove(page, { pick: 'stable' }, '2');
  const affected = review.getByRole('region', { name: 'Prompts this move changes' });
  await expect(affected).toContainText('This also changes what 2 other prompts serve');
  for (const bot of bots) {
    await expect(affected.getByRole('link', { name: bot })).toBeVisible();
  }
  await affected.getByRole('button', { name: 'Check the impact: run their evaluations with version 2' }).click();
  await expect(affected.locator('.impact')).toContainText('Some prompts do worse with version 2', { timeout: 30_000 });
  const rows = affected.locator('table.impact-table tbody tr');
  await expect(rows).toHaveCount(2);
  await expect(rows.first()).toContainText('Worse');
  await expect(rows.first()).toContainText('100% (passed)');
  await expect(rows.first()).toContainText('0% (failed)');
  await expectAccessible(page);
  await screenshot(page, testInfo, 'impact');

  // A better wording passes; promoting it changes what both assistants serve on the next request.
  await review.getByRole('button', { name: 'Cancel' }).click();
  await visit(page, `/prompts/${tone}`);
  await page.getByLabel('Prompt text').fill('Thank you for your patience. ');
  await page.getByRole('button', { name: /Save/ }).click();
  await expect(page.getByRole('status').filter({ hasText: 'version 3' })).toBeVisible();
  await visit(page, `/history/${tone}`);
  const second = await reviewMove(page, { pick: 'stable' }, '3');
  const region = second.getByRole('region', { name: 'Prompts this move changes' });
  await region.getByRole('button', { name: /Check the impact/ }).click();
  await expect(region.locator('.impact')).toContainText('Every prompt that includes it passes with version 3', { timeout: 30_000 });
  await second.getByRole('button', { name: 'Promote stable to v3' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'stable now serves version 3.' })).toBeVisible();
  for (const bot of bots) {
    const served = await (await request.get(`/api/v1/prompts/${encodeURIComponent(bot)}`, { headers: auth })).json();
    expect(served.version).toBe(1);
    expect(served.template).toBe('Thank you for your patience. {{ question }}');
    expect(served.includes[0]).toMatchObject({ name: tone, ref: 'stable', version: 3 });
  }

  // In an assistant's editor, typing an include suggests the shared prompts; the preview composes.
  await visit(page, `/prompts/${bots[0]}`);
  const text = page.getByLabel('Prompt text');
  await text.fill(`{{ question }} `);
  await text.press('End');
  await text.pressSequentially(`{% include "${tone.slice(0, 12)}`);
  await page.getByRole('button', { name: `${tone}@stable` }).click();
  await expect(text).toHaveValue(`{{ question }} {% include "${tone}@stable" %}`);
  await expect(page.locator('.preview')).toContainText('Thank you for your patience.');
  await expectAccessible(page);
  expect(errors).toEqual([]);
});

test('a product manager releases two prompts together, then rolls both back in one click', async ({ page, request }, testInfo) => {
  const key = adminKey();
  const auth = { authorization: `Bearer ${key}` };
  const names = [`billing/${unique('refund')}`, `billing/${unique('invoice')}`];
  for (const name of names) {
    const path = encodeURIComponent(name);
    await createPrompt(request, key, { name, template: 'Refunds take 14 days.' });
    expect((await request.put(`/api/v1/prompts/${path}/labels/stable`, { headers: auth, data: { version: 1 } })).status()).toBe(200);
    const v2 = await request.post(`/api/v1/prompts/${path}/versions`, { headers: auth, data: { base_version: 1, template: 'Refunds take 30 days.' } });
    expect(v2.status()).toBe(201);
  }
  const pm = addUser('publisher');
  const errors = watchErrors(page);
  await signIn(page, pm);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Releases' }).click();
  await expect(page.getByRole('heading', { name: 'Releases', level: 1 })).toBeVisible();
  await page.waitForURL('**/releases');
  await visit(page, '/releases');

  for (const name of names) {
    await page.getByLabel(name, { exact: true }).check();
    await expect(page.getByLabel(`Version of ${name}`)).toHaveValue('2');
  }
  await page.getByRole('button', { name: 'Review the release (2 prompts)' }).click();
  const review = page.getByRole('region', { name: 'Review the release' });
  await expect(review.locator('.review-headline')).toHaveText('2 prompts will move stable together, or none will.');
  await expect(review.locator('ins')).toHaveText(['30', '30']);
  await review.getByLabel('Why?').fill('New refund policy');
  await expectAccessible(page);
  await screenshot(page, testInfo, 'release-review');
  await review.getByRole('button', { name: 'Release 2 prompts to stable' }).click();
  await page.waitForURL(/released=rel_/);
  for (const name of names) {
    const served = await (await request.get(`/api/v1/prompts/${encodeURIComponent(name)}`, { headers: auth })).json();
    expect(served.version).toBe(2);
  }
  const first = page.locator('table.releases tbody tr').first();
  await expect(first).toContainText('New refund policy');
  for (const name of names) {
    await expect(first).toContainText(`${name} v2 (was v1)`);
  }

  await visit(page, page.url());
  await first.getByRole('button', { name: 'Roll back (every prompt back on stable)' }).click();
  await page.waitForURL(/rolled_back=rel_/);
  for (const name of names) {
    const served = await (await request.get(`/api/v1/prompts/${encodeURIComponent(name)}`, { headers: auth })).json();
    expect(served.version).toBe(1);
  }
  await expect(page.locator('table.releases tbody tr').nth(1)).toContainText('Rolled back by');
  await expectAccessible(page);
  expect(errors).toEqual([]);
});
