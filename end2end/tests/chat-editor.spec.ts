import { test, expect } from '@playwright/test';
import { addUser, adminKey, createPrompt, expectAccessible, screenshot, signIn, unique, visit } from './helpers';

test('a chat prompt: add, reorder and remove messages with the live preview, then save; readable on a tablet', async ({ page, request }, testInfo) => {
  const key = adminKey();
  const name = `assistant/${unique('triage')}`;
  await createPrompt(request, key, {
    name, type: 'chat', messages: [
      { role: 'system', content: 'You triage tickets for {{ product }}.' },
      { role: 'user', content: '{{ ticket }}' },
    ], config: { model: 'claude-sonnet', max_tokens: 300 },
  });
  await page.setViewportSize({ width: 820, height: 1180 });
  await signIn(page, addUser('editor'));
  await visit(page, `/prompts/${name}`);
  await expect(page.getByLabel('Message 1 text')).toHaveValue('You triage tickets for {{ product }}.');
  await page.getByLabel('product sample value').fill('Acme Mail');
  await page.getByLabel('ticket sample value').fill('I cannot log in');
  const preview = page.locator('.preview-text');
  await expect(preview.locator('pre')).toHaveText(['You triage tickets for Acme Mail.', 'I cannot log in']);

  // Add an example answer, move it above the ticket, then remove it again... and keep one.
  await page.getByRole('button', { name: 'Add a message' }).click();
  await page.getByLabel('Message 3 role').selectOption('assistant');
  await page.getByLabel('Message 3 text').fill('Category: {{ category }}');
  await expect(page.getByLabel('category sample value')).toBeVisible();
  await page.getByRole('button', { name: 'Move message 3 up' }).click();
  await expect(page.getByLabel('Message 2 text')).toHaveValue('Category: {{ category }}');
  await page.getByRole('button', { name: 'Move message 1 down' }).click();
  await expect(page.getByLabel('Message 1 text')).toHaveValue('Category: {{ category }}');
  await page.getByRole('button', { name: 'Move message 2 up' }).click();
  await expect(page.getByLabel('Message 1 text')).toHaveValue('You triage tickets for {{ product }}.');
  await expect(page.getByRole('button', { name: 'Move message 3 down' })).toBeDisabled();
  await expect(page.getByRole('button', { name: 'Move message 1 up' })).toBeDisabled();
  await expect(preview.locator('p.role')).toHaveText(['system', 'assistant', 'user']);
  await page.getByRole('button', { name: 'Remove message 3' }).click();
  await expect(page.getByLabel('Message 3 text')).toHaveCount(0);
  await expect(preview.locator('pre')).toHaveText(['You triage tickets for Acme Mail.', 'Category: [category]']);
  await expectAccessible(page);
  await screenshot(page, testInfo, 'chat-editor-tablet');

  await page.getByLabel('What did you change?').fill('Answer with a category');
  await page.getByRole('button', { name: 'Save as a new version' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Saved as version 2.' })).toBeVisible();
  const saved = await (await request.get(`/api/v1/prompts/${encodeURIComponent(name)}?version=2`, { headers: { authorization: `Bearer ${key}` } })).json();
  expect(saved.type).toBe('chat');
  expect(saved.messages).toEqual([
    { role: 'system', content: 'You triage tickets for {{ product }}.' },
    { role: 'assistant', content: 'Category: {{ category }}' },
  ]);
  expect(saved.variables).toEqual(['category', 'product']);
  expect(saved.config).toEqual({ model: 'claude-sonnet', max_tokens: 300 });
});
