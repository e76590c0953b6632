import { test, expect } from '@playwright/test';
import { PASSWORD, addUser, adminKey, createPrompt, expectAccessible, hydrated, screenshot, signIn, unique, watchErrors, visit } from './helpers';

test('the prompt list is rendered on the server, hydrates, and filters by search, folder and tag', async ({ page, request }, testInfo) => {
  const key = adminKey();
  const team = unique('team');
  await createPrompt(request, key, { name: `${team}/support/greeting`, description: 'First reply', tags: ['support'], template: 'Hello {{ customer }}' });
  await createPrompt(request, key, { name: `${team}/support/refund`, description: 'Refund policy', tags: ['billing'], template: 'Refunds take 14 days' });
  await createPrompt(request, key, { name: `${team}/sales/intro`, description: 'Cold intro', tags: ['sales'], template: 'Hi {{ lead }}' });
  const auth = { authorization: `Bearer ${key}` };
  const moved = await request.put(`/api/v1/prompts/${encodeURIComponent(`${team}/support/refund`)}/labels/stable`, { headers: auth, data: { version: 1 } });
  expect(moved.status()).toBe(200);

  // Signed out, every page shows the sign-in form (server-rendered, no data).
  const signedOut = await (await request.get('/', { headers: { cookie: '' } })).text();
  expect(signedOut).toContain('Sign in to promptledger');
  expect(signedOut).not.toContain(team);

  // Signed in, the HTML already holds the list before any script runs.
  const viewer = addUser('viewer');
  const login = await request.post('/api/console/login', { form: { username: viewer, password: PASSWORD } });
  const cookie = login.headers()['set-cookie'].split(';')[0];
  const html = await (await request.get(`/?folder=${team}`, { headers: { cookie } })).text();
  expect(html).toContain(`${team}/support/greeting`);
  expect(html).toContain('stable → v1');

  const errors = watchErrors(page);
  await signIn(page, viewer);
  await visit(page, `/?folder=${team}`);
  await hydrated(page);
  await expect(page.locator('tr.prompt-row')).toHaveCount(3);
  await expect(page.locator('tr.prompt-row').filter({ hasText: 'refund' }).locator('.badge-stable')).toHaveText('stable → v1');
  await expect(page.locator('tr.prompt-row').first()).toContainText(`by key:`);

  // The folder tree narrows the list (client-side navigation after hydration).
  await page.getByRole('navigation', { name: 'Folders' }).locator(`a[href$="folder=${team}/support"]`).click();
  await expect(page.locator('tr.prompt-row')).toHaveCount(2);
  // Search within the folder by description.
  await page.getByLabel('Search prompts by name or description').fill('refund policy');
  await page.getByRole('button', { name: 'Search' }).click();
  await expect(page.locator('tr.prompt-row')).toHaveCount(1);
  await expect(page).toHaveURL(/q=refund/);
  // A tag link shows every prompt with that tag.
  await page.getByRole('link', { name: '#billing' }).click();
  await expect(page.locator('tr.prompt-row').filter({ hasText: team })).toHaveCount(1);
  await visit(page, '/?q=no-such-prompt-anywhere');
  await expect(page.locator('p.empty')).toContainText('No prompt matches these filters');

  await visit(page, `/?folder=${team}`);
  await expectAccessible(page);
  await screenshot(page, testInfo, 'prompt-list');
  expect(errors).toEqual([]);
});
