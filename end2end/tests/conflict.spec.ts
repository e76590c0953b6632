import { test, expect } from '@playwright/test';
import { addUser, adminKey, createPrompt, expectAccessible, screenshot, signIn, unique, visit } from './helpers';

test('two browsers edit the same prompt; the second save shows the conflict and can rebase', async ({ browser, request }, testInfo) => {
  const key = adminKey();
  const name = `support/${unique('closing')}`;
  await createPrompt(request, key, { name, template: 'Kind regards,\nThe support team' });
  const [alice, bob] = [addUser('editor'), addUser('editor')];
  const first = await (await browser.newContext()).newPage();
  const second = await (await browser.newContext()).newPage();
  await signIn(first, alice);
  await signIn(second, bob);
  for (const page of [first, second]) {
    await visit(page, `/prompts/${name}`);
    await expect(page.getByRole('heading', { level: 1, name })).toBeVisible();
  }

  await first.getByLabel('Prompt text').fill('Best wishes,\nThe support team');
  await first.getByLabel('What did you change?').fill('Friendlier closing');
  await first.getByRole('button', { name: 'Save as a new version' }).click();
  await expect(first.getByRole('status').filter({ hasText: 'Saved as version 2.' })).toBeVisible();

  // The second browser still edits version 1: its save is refused and the conflict shown.
  await second.getByLabel('Prompt text').fill('Kind regards,\nThe billing team');
  await second.getByLabel('What did you change?').fill('Billing signs these');
  await second.getByRole('button', { name: 'Save as a new version' }).click();
  const conflict = second.locator('section.conflict');
  await expect(conflict.getByRole('heading')).toHaveText(`${alice} saved version 2 while you were editing`);
  await expect(conflict.locator('del')).toContainText(['Best wishes,', 'support']);
  await expect(conflict.locator('ins')).toContainText(['Kind regards,', 'billing']);
  await expectAccessible(second);
  await screenshot(second, testInfo, 'conflict');

  // Nothing was overwritten.
  const auth = { authorization: `Bearer ${key}` };
  let latest = await (await request.get(`/api/v1/prompts/${encodeURIComponent(name)}?label=latest`, { headers: auth })).json();
  expect(latest.version).toBe(2);
  expect(latest.template).toBe('Best wishes,\nThe support team');

  // Rebase: keep the edit on top of version 2 and save again.
  await conflict.getByRole('button', { name: 'Keep my edit on top of version 2' }).click();
  await expect(second.locator('section.conflict')).toHaveCount(0);
  await expect(second.getByLabel('Prompt text')).toHaveValue('Kind regards,\nThe billing team');
  await second.getByRole('button', { name: 'Save as a new version' }).click();
  await expect(second.getByRole('status').filter({ hasText: 'Saved as version 3.' })).toBeVisible();
  latest = await (await request.get(`/api/v1/prompts/${encodeURIComponent(name)}?label=latest`, { headers: auth })).json();
  expect(latest.version).toBe(3);
  expect(latest.created_by).toBe(bob);
});
