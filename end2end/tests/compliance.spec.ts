import { test, expect } from '@playwright/test';
import * as fs from 'node:fs';
import { hydrated, addUser, adminKey, createPrompt, expectAccessible, screenshot, signIn, unique, watchErrors, visit } from './helpers';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** `YYYY-MM-DDTHH:MM:SS` in UTC, as a datetime-local input takes it. */
const utc = (d: Date) => d.toISOString().slice(0, 19);

test('a compliance viewer filters the audit log, exports CSV, sees the chain intact, uses "what was live at", and finds no edit controls', async ({ page, request }, testInfo) => {
  const key = adminKey();
  const auth = { authorization: `Bearer ${key}` };
  const name = `compliance/${unique('disclaimer')}`;
  const path = encodeURIComponent(name);
  await createPrompt(request, key, { name, template: 'Investments can lose value.' });
  expect((await request.put(`/api/v1/prompts/${path}/labels/stable`, { headers: auth, data: { version: 1, reason: 'launch' } })).status()).toBe(200);
  await sleep(1500);
  const between = new Date();
  await sleep(1500);
  expect((await request.post(`/api/v1/prompts/${path}/versions`, { headers: auth, data: { base_version: 1, template: 'Investments can go down as well as up.', message: 'FCA wording' } })).status()).toBe(201);
  expect((await request.put(`/api/v1/prompts/${path}/labels/stable`, { headers: auth, data: { version: 2, reason: 'legal sign-off' } })).status()).toBe(200);
  // Noise from another prompt, which the filter must leave out.
  await createPrompt(request, key, { name: `compliance/${unique('other')}`, template: 'Other' });

  const viewer = addUser('viewer');
  const errors = watchErrors(page);
  await signIn(page, viewer);
  await expect(page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users and keys' })).toHaveCount(0);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Audit' }).click();

  // Filter to one prompt: its creation, two versions, two label moves.
  await page.getByLabel('Prompt (exact name)').fill(name);
  await page.getByRole('button', { name: 'Show events' }).click();
  const rows = page.locator('tr.audit-row');
  await expect(rows).toHaveCount(4);
  await expect(rows.filter({ hasText: 'label.moved' })).toHaveCount(2);
  await expect(rows.first()).toContainText('legal sign-off');
  await page.getByLabel('Action').selectOption('label.moved');
  await page.getByRole('button', { name: 'Show events' }).click();
  await expect(rows).toHaveCount(2);

  // Export the filtered log as CSV: a real file with the header and both moves.
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Export CSV' }).click();
  const file = await (await download).path();
  const csv = fs.readFileSync(file, 'utf8').trim().split(/\r?\n/);
  expect(csv[0]).toBe('seq,at,actor,action,prompt,version,label,detail,hash,prev_hash');
  expect(csv.length).toBe(3);
  expect(csv.slice(1).every((line) => line.includes(name) && line.includes('label.moved'))).toBe(true);
  fs.copyFileSync(file, testInfo.outputPath('audit-export.csv'));

  await hydrated(page);
  // The chain verifies.
  await expect(page.locator('#verify .verify-ok')).toContainText('intact');

  // What was live between the two releases: version 1's text.
  const live = page.locator('#live-at');
  await live.getByLabel('Prompt name').fill(name);
  await live.getByLabel('Label').fill('stable');
  await live.getByLabel('At (UTC)').fill(utc(between));
  await live.getByRole('button', { name: 'Show' }).click();
  await expect(live.locator('.live-heading')).toContainText('stable served version 1');
  await expect(live.locator('pre.prompt-text')).toHaveText('Investments can lose value.');
  await expectAccessible(page);
  await screenshot(page, testInfo, 'compliance-audit');

  // No edit or promote controls anywhere for a viewer.
  await visit(page, `/prompts/${name}`);
  await expect(page.getByRole('heading', { level: 1, name })).toBeVisible();
  await expect(page.locator('textarea')).toHaveCount(0);
  await expect(page.getByRole('button', { name: /Save/ })).toHaveCount(0);
  await visit(page, `/history/${name}`);
  await expect(page.getByRole('heading', { name: 'History and releases' })).toBeVisible();
  await expect(page.getByRole('heading', { name: 'Promote or roll back' })).toHaveCount(0);
  await expect(page.getByRole('button', { name: /Roll back|Promote/ })).toHaveCount(0);
  await expect(page.getByRole('link', { name: /Roll back/ })).toHaveCount(0);
  await expectAccessible(page);
  await screenshot(page, testInfo, 'compliance-history');
  expect(errors).toEqual([]);
});
