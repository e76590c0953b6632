import { test, expect } from '@playwright/test';
import { addUser, adminKey, createPrompt, expectAccessible, hydrated, reviewMove, screenshot, signIn, unique, visit, watchErrors } from './helpers';

test('a product manager asks to promote a version, a second one approves it from the inbox, and the API serves it', async ({ page, request, browser }, testInfo) => {
  const key = adminKey();
  const auth = { authorization: `Bearer ${key}` };
  const name = `billing/${unique('terms')}`;
  const path = encodeURIComponent(name);
  await createPrompt(request, key, { name, template: 'Terms: 14 days.' });
  const v2 = await request.post(`/api/v1/prompts/${path}/versions`, { headers: auth, data: { base_version: 1, template: 'Terms: 30 days.' } });
  expect(v2.status()).toBe(201);
  const label = unique('prod');

  // An admin sets the label's rules on the Label rules page.
  const admin = addUser('admin');
  const adminPage = await (await browser.newContext()).newPage();
  await signIn(adminPage, admin);
  await visit(adminPage, '/rules');
  await adminPage.getByLabel('Label', { exact: true }).fill(label);
  await adminPage.getByLabel('Protected: only publishers and admins move it').check();
  await adminPage.getByLabel('Needs a second publisher or admin to approve each move').check();
  await adminPage.getByRole('button', { name: 'Save the rules' }).click();
  await expect(adminPage.locator('tr').filter({ hasText: label })).toContainText('a second publisher or admin');
  await expectAccessible(adminPage);

  // The first product manager asks: the review says approval is needed.
  const first = addUser('publisher');
  const errors = watchErrors(page);
  await signIn(page, first);
  await visit(page, `/history/${name}`);
  const review = await reviewMove(page, { type: label }, '2');
  await expect(review.locator('.policy-rules')).toContainText('another publisher or admin must approve the move');
  await review.getByLabel('Why?').fill('Longer window approved by legal');
  await review.getByRole('button', { name: `Ask for approval to promote ${label} to v2` }).click();
  await expect(page.getByRole('status').filter({ hasText: 'needs approval' })).toBeVisible();
  const before = await request.get(`/api/v1/prompts/${path}/labels`, { headers: auth });
  expect((await before.json()).labels[label]).toBeUndefined();
  // The requester sees it in the inbox but cannot decide it.
  await visit(page, '/approvals');
  const mine = page.getByRole('region', { name: `${name} · ${label} → v2` });
  await expect(mine).toContainText('You asked for this move');
  await expect(mine.getByRole('button', { name: 'Approve' })).toHaveCount(0);

  // A second product manager approves it from the inbox.
  const second = addUser('publisher');
  const other = await (await browser.newContext()).newPage();
  await signIn(other, second);
  await visit(other, '/approvals');
  const card = other.getByRole('region', { name: `${name} · ${label} → v2` });
  await expect(card).toContainText(`Asked by ${first}`);
  await expect(card).toContainText('Longer window approved by legal');
  await expectAccessible(other);
  await screenshot(other, testInfo, 'approvals-inbox');
  await card.getByLabel(/Comment on/).fill('Checked with legal');
  await card.getByRole('button', { name: 'Approve' }).click();
  await expect(other.getByRole('status').filter({ hasText: `Approved: the label of ${name} moved.` })).toBeVisible();
  await hydrated(other);

  // The API serves version 2 on the label at once; the history records who asked and who approved.
  const served = await request.get(`/api/v1/prompts/${path}?label=${label}`, { headers: auth });
  expect((await served.json()).version).toBe(2);
  const labels = await (await request.get(`/api/v1/prompts/${path}/labels`, { headers: auth })).json();
  expect(labels.history[0].actor).toBe(second);
  expect(labels.history[0].reason).toContain(`requested by ${first}`);
  expect(errors).toEqual([]);
});

test('the release review says why a move is blocked by an eval gate and what unblocks it', async ({ page, request }) => {
  const key = adminKey();
  const auth = { authorization: `Bearer ${key}` };
  const name = `billing/${unique('gated')}`;
  await createPrompt(request, key, { name, template: 'Terms apply.' });
  const label = unique('gated');
  const policy = await request.put(`/api/v1/labels/${label}/policy`, { headers: auth, data: { require_eval: { suite: 'smoke', min_pass_rate: 0.9 } } });
  expect(policy.status()).toBe(200);
  const pm = addUser('publisher');
  await signIn(page, pm);
  await visit(page, `/history/${name}`);
  const review = await reviewMove(page, { type: label });
  await expect(review.locator('.policy-rules')).toContainText('the suite smoke must pass at 90% or more');
  await expect(review.getByRole('alert')).toContainText('This move is blocked');
  await expect(review.getByRole('alert')).toContainText('has no such suite');
  await expect(review.getByRole('link', { name: 'Open the evaluations' })).toBeVisible();
  await expect(review.getByRole('button', { name: /Promote/ })).toHaveCount(0);
  await expectAccessible(page);
});
