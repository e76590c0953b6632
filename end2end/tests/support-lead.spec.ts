import { test, expect } from '@playwright/test';
import { addUser, adminKey, createPrompt, expectAccessible, hydrated, screenshot, signIn, unique, watchErrors } from './helpers';

test('a support lead edits the tone, sees the live preview change before saving, saves, and sees version 2', async ({ page, request }, testInfo) => {
  const name = `support/${unique('greeting')}`;
  await createPrompt(request, adminKey(), {
    name, description: 'First reply to a customer', tags: ['support'],
    template: 'Hello {{ customer }}, thanks for writing.', config: { model: 'gpt-4o-mini', temperature: 0.2 },
  });
  const lead = addUser('editor');
  const errors = watchErrors(page);

  await signIn(page, lead);
  await page.getByLabel('Search prompts by name or description').fill(name);
  await page.getByRole('button', { name: 'Search' }).click();
  await page.getByRole('link', { name }).click();
  await expect(page.getByRole('heading', { level: 1, name })).toBeVisible();
  await hydrated(page);
  await expectAccessible(page);

  // The preview fills variables with sample values, in the browser, as the person types.
  const preview = page.locator('.preview-text');
  await page.getByLabel('customer sample value').fill('Ada');
  await expect(preview).toHaveText('Hello Ada, thanks for writing.');
  const editor = page.getByLabel('Prompt text');
  await editor.fill('Hi {{ customer }}! Warm thanks for reaching out, {{ agent }} here.');
  await expect(preview).toHaveText('Hi Ada! Warm thanks for reaching out, [agent] here.');
  await expect(page.getByLabel('agent sample value')).toBeVisible();

  // A template error is shown at its line before anything is saved.
  await editor.fill('Hi {{ customer }}!\nWarm thanks {{ agent');
  await expect(page.locator('.template-error')).toContainText('Line 2');
  await expect(page.getByRole('button', { name: 'Save as a new version' })).toBeDisabled();
  await editor.fill('Hi {{ customer }}! Warm thanks for reaching out, {{ agent }} here.');
  await expect(page.locator('.template-error')).toHaveCount(0);

  await page.getByLabel('What did you change?').fill('Warmer tone');
  await page.getByRole('button', { name: 'Save as a new version' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Saved as version 2.' })).toBeVisible();
  await screenshot(page, testInfo, 'support-lead-saved');

  // The API serves the new version as latest, authored by the lead.
  const latest = await request.get(`/api/v1/prompts/${encodeURIComponent(name)}?label=latest`, { headers: { authorization: `Bearer ${adminKey()}` } });
  const body = await latest.json();
  expect(body.version).toBe(2);
  expect(body.created_by).toBe(lead);
  expect(body.config).toEqual({ model: 'gpt-4o-mini', temperature: 0.2 });

  await page.getByRole('link', { name: 'History and releases' }).click();
  const rows = page.locator('tr.version-row');
  await expect(rows).toHaveCount(2);
  await expect(rows.first()).toContainText('v2');
  await expect(rows.first()).toContainText('Warmer tone');
  await expect(rows.first()).toContainText(lead);
  await expectAccessible(page);
  await screenshot(page, testInfo, 'support-lead-history');
  expect(errors).toEqual([]);
});
