import { test, expect } from '@playwright/test';
import { hydrated, PASSWORD, addUser, adminKey, createPrompt, expectAccessible, screenshot, signIn, unique, watchErrors, visit } from './helpers';

test('an admin adds a person, changes their role, disables them, and creates and revokes an API key', async ({ page, request }, testInfo) => {
  const admin = addUser('admin');
  const errors = watchErrors(page);
  await signIn(page, admin);
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Users and keys' }).click();
  await expect(page.getByRole('heading', { name: 'People' })).toBeVisible();
  await hydrated(page);

  const person = unique('lead');
  await page.getByLabel('Username').fill(person);
  await page.getByLabel('Role', { exact: true }).selectOption('editor');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Add', exact: true }).click();
  const row = page.locator('tr.user-row').filter({ hasText: person });
  await expect(row).toContainText('editor');

  // The new person can sign in (checked over HTTP, so this page stays signed in).
  expect((await request.post('/api/console/login', { form: { username: person, password: PASSWORD } })).status()).toBe(200);

  await row.getByLabel(`New role for ${person}`).selectOption('publisher');
  await row.getByRole('button', { name: 'Change role' }).click();
  await expect(page.locator('section.users .notice').first()).toContainText(`Saved: ${person} is publisher and can sign in.`);
  await row.getByRole('button', { name: 'Disable' }).click();
  await expect(page.locator('section.users .notice').first()).toContainText(`${person} is publisher and can no longer sign in.`);
  expect((await request.post('/api/console/login', { form: { username: person, password: PASSWORD } })).status()).toBe(401);

  // A key is shown once; it works until it is revoked.
  const keyName = unique('ci');
  await page.getByLabel('Name', { exact: true }).fill(keyName);
  await page.getByLabel('Scope').selectOption('read');
  await page.getByRole('button', { name: 'Create key' }).click();
  const secret = (await page.locator('code.new-key').textContent())!.trim();
  expect(secret).toMatch(/^pl_[0-9a-f]{64}$/);
  await expectAccessible(page);
  await screenshot(page, testInfo, 'admin-key-created');
  expect((await request.get('/api/v1/prompts', { headers: { authorization: `Bearer ${secret}` } })).status()).toBe(200);
  const keyRow = page.locator('tr.key-row').filter({ hasText: keyName });
  await keyRow.getByRole('button', { name: 'Revoke' }).click();
  await keyRow.getByRole('button', { name: 'Confirm revoke' }).click();
  await expect(keyRow).toContainText('revoked');
  expect((await request.get('/api/v1/prompts', { headers: { authorization: `Bearer ${secret}` } })).status()).toBe(401);

  // A model provider for evaluations, and a price; the key is only a variable's name.
  const prov = unique('prov');
  await page.getByLabel('Provider name').fill(prov);
  await page.getByLabel('Address', { exact: true }).fill('http://127.0.0.1:9/v1');
  await page.getByLabel('Environment variable with the API key').fill('SOME_KEY');
  await page.getByRole('button', { name: 'Save the provider' }).click();
  await expect(page.locator('.providers .success')).toContainText(`Saved ${prov}`);
  await page.getByLabel('Provider', { exact: true }).fill(prov);
  await page.getByLabel('Model', { exact: true }).fill('m-1');
  await page.getByLabel('Input, $ per million tokens').fill('0.5');
  await page.getByLabel('Output, $ per million tokens').fill('1.5');
  await page.getByRole('button', { name: 'Save the price' }).click();
  const providerRow = page.locator('.providers tr').filter({ hasText: prov });
  await expect(providerRow).toContainText('m-1: 0.5 / 1.5');
  await expect(providerRow).toContainText('$SOME_KEY');
  await expectAccessible(page);

  // A webhook: its secret is shown once, and its delivery log shows each attempt.
  const hook = `http://127.0.0.1:9/${unique('hook')}`;
  await page.getByLabel('Address that receives the events').fill(hook);
  await page.getByLabel('a version is saved').check();
  await page.getByLabel('a label moves').check();
  await page.getByRole('button', { name: 'Add the webhook' }).click();
  await expect(page.locator('code.new-secret')).toHaveText(/^whsec_[0-9a-f]{64}$/);
  const hookCard = page.locator('.webhook').filter({ hasText: hook });
  await expect(hookCard).toContainText('label.moved, version.created');
  await createPrompt(request, adminKey(), { name: `hooks/${unique('p')}`, template: 'Hi' });
  await expect(async () => {
    await visit(page, '/admin');
    await expect(page.locator('.webhook').filter({ hasText: hook })).toContainText('could not be reached', { timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  await expectAccessible(page);
  expect(errors).toEqual([]);

  // A non-admin sees no admin page (and the server refuses its calls regardless).
  const viewer = addUser('viewer');
  const other = await (await page.context().browser()!.newContext()).newPage();
  await signIn(other, viewer);
  await visit(other, '/admin');
  await expect(other.getByText('Only administrators can manage users and keys.')).toBeVisible();
});
