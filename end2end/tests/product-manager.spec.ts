import { test, expect } from '@playwright/test';
import { addUser, adminKey, createPrompt, expectAccessible, reviewMove, screenshot, signIn, unique, watchErrors, visit } from './helpers';

test('a product manager compares versions side by side, promotes version 2 to stable, sees the API serve it, then rolls back', async ({ page, request }, testInfo) => {
  const key = adminKey();
  const auth = { authorization: `Bearer ${key}` };
  const name = `billing/${unique('refund')}`;
  const path = encodeURIComponent(name);
  await createPrompt(request, key, { name, template: 'We can refund you within 14 days.\nRegards, {{ agent }}' });
  const v2 = await request.post(`/api/v1/prompts/${path}/versions`, {
    headers: auth, data: { base_version: 1, template: 'We can refund you within 30 days.\nRegards, {{ agent }}', message: 'Longer refund window' },
  });
  expect(v2.status()).toBe(201);
  const v1Stable = await request.put(`/api/v1/prompts/${path}/labels/stable`, { headers: auth, data: { version: 1, reason: 'first release' } });
  expect(v1Stable.status()).toBe(200);

  const pm = addUser('publisher');
  const errors = watchErrors(page);
  await signIn(page, pm);
  await visit(page, `/history/${name}`);
  await expect(page.getByRole('heading', { name: 'History and releases' })).toBeVisible();

  // Side by side: the changed word is marked on each side.
  await page.getByLabel('From', { exact: true }).selectOption('1');
  await page.getByLabel('To', { exact: true }).selectOption('2');
  await page.getByRole('button', { name: 'Compare', exact: true }).click();
  const compare = page.locator('table.side-by-side').first();
  await expect(compare.locator('del')).toHaveText(['14']);
  await expect(compare.locator('ins')).toHaveText(['30']);
  await expectAccessible(page);
  await screenshot(page, testInfo, 'pm-compare');

  // Promote: the confirmation shows what stable serves now against what it will serve.
  const review = await reviewMove(page, { pick: 'stable' }, '2');
  await expect(review.locator('.review-headline')).toHaveText('stable serves version 1 now; after this it will serve version 2.');
  await expect(review.locator('ins')).toHaveText(['30']);
  await review.getByLabel('Why?').fill('Policy update approved');
  await screenshot(page, testInfo, 'pm-promote-review');
  await review.getByRole('button', { name: 'Promote stable to v2' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'stable now serves version 2.' })).toBeVisible();

  // The very next API request serves it.
  let served = await (await request.get(`/api/v1/prompts/${path}`, { headers: auth })).json();
  expect(served.version).toBe(2);
  expect(served.template).toContain('30 days');

  // The label history says who, when and why; roll back from there.
  const history = page.locator('table.label-history');
  await expect(history.locator('tbody tr').first()).toContainText('v1 → v2');
  await expect(history.locator('tbody tr').first()).toContainText(pm);
  await expect(history.locator('tbody tr').first()).toContainText('Policy update approved');
  await history.getByRole('link', { name: 'Roll back to v1' }).first().click();
  await expect(review.locator('.review-headline')).toHaveText('stable serves version 2 now; after this it will serve version 1.');
  await review.getByLabel('Why?').fill('Legal asked to wait');
  await review.getByRole('button', { name: 'Roll back stable to v1' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'stable now serves version 1.' })).toBeVisible();
  served = await (await request.get(`/api/v1/prompts/${path}`, { headers: auth })).json();
  expect(served.version).toBe(1);
  await expect(history.locator('tbody tr').first()).toContainText('Legal asked to wait');
  await expectAccessible(page);
  await screenshot(page, testInfo, 'pm-rolled-back');
  expect(errors).toEqual([]);
});

test('an editor cannot promote to stable: the control is hidden and the server refuses', async ({ page, request }) => {
  const key = adminKey();
  const name = `billing/${unique('terms')}`;
  await createPrompt(request, key, { name, template: 'Terms v1' });
  const editor = addUser('editor');
  await signIn(page, editor);
  await visit(page, `/history/${name}`);
  await expect(page.getByRole('heading', { name: 'Promote or roll back' })).toBeVisible();
  await expect(page.getByLabel('Label', { exact: true }).locator('option', { hasText: 'stable' })).toHaveCount(0);
  // Typing the label anyway is refused by the service, in plain words.
  await page.getByLabel('or a new label').fill('stable');
  await page.getByRole('button', { name: 'Review the change' }).click();
  await page.getByRole('button', { name: 'Promote stable to v1' }).click();
  await expect(page.getByRole('alert')).toContainText('You are not allowed to do this');
  const res = await request.get(`/api/v1/prompts/${encodeURIComponent(name)}/labels`, { headers: { authorization: `Bearer ${key}` } });
  expect((await res.json()).labels.stable).toBeUndefined();
});
