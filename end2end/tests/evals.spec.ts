import { test, expect } from '@playwright/test';
import { addUser, adminKey, createPrompt, expectAccessible, hydrated, screenshot, signIn, unique, visit, watchErrors } from './helpers';

test('a support lead writes a suite, runs it, sees a failure, fixes the prompt, reruns, and compares the two runs', async ({ page, request }, testInfo) => {
  const key = adminKey();
  const auth = { authorization: `Bearer ${key}` };
  // The local provider (end2end/mock-provider.mjs) answers with the prompt it is sent.
  const provider = await request.put('/api/v1/providers/mock', { headers: auth, data: { kind: 'openai', base_url: process.env.MOCK_PROVIDER_BASE } });
  expect(provider.status(), await provider.text()).toBe(200);
  const name = `support/${unique('apology')}`;
  await createPrompt(request, key, { name, template: 'Sorry {{ customer }}, we cannot help with that.', config: { model: 'mock/echo' } });
  const lead = addUser('editor');
  const errors = watchErrors(page);
  await signIn(page, lead);

  // A suite, written in the console: greet the customer by name, never apologise.
  await visit(page, `/prompts/${name}`);
  await page.getByRole('link', { name: 'Evaluations' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Evaluations' })).toBeVisible();
  await expect(page.getByText('No suite yet.')).toBeVisible();
  await page.getByRole('link', { name: 'New suite' }).click();
  await hydrated(page);
  await page.getByLabel('Case 1 description').fill('names the customer, no apology');
  await page.getByLabel('customer').fill('Ada');
  await page.getByRole('button', { name: 'Add a check to case 1' }).click();
  await page.getByLabel('Kind of case 1, check 1').selectOption('icontains');
  await page.getByLabel('Value of case 1, check 1').fill('ada');
  await page.getByRole('button', { name: 'Add a check to case 1' }).click();
  await page.getByLabel('Kind of case 1, check 2').selectOption('icontains');
  await page.getByRole('checkbox', { name: 'must NOT' }).nth(1).check();
  await page.getByLabel('Value of case 1, check 2').fill('sorry');
  await expectAccessible(page);
  await page.getByRole('button', { name: 'Save the suite' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Suite smoke saved.' })).toBeVisible();
  await hydrated(page);

  // Run it on version 1: the apology fails the suite.
  await page.getByRole('button', { name: 'Start the run' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Suite smoke on version 1' })).toBeVisible();
  await expect(page.locator('.run-summary .badge')).toHaveText('Failed 0%', { timeout: 30_000 });
  await hydrated(page);
  const failed = page.locator('details.case-result.failed');
  await expect(failed).toHaveCount(1);
  await failed.locator('summary').click();
  await expect(failed).toContainText('Sorry Ada, we cannot help with that.');
  await expect(failed.locator('tr.failed')).toContainText('sorry');
  await expectAccessible(page);
  await screenshot(page, testInfo, 'evals-failed-run');

  // Fix the prompt and save version 2.
  await page.getByRole('link', { name }).click();
  await hydrated(page);
  await page.getByLabel('Prompt text').fill('Thank you {{ customer }}, we are on it.');
  await page.getByLabel('What did you change?').fill('No apology');
  await page.getByRole('button', { name: 'Save as a new version' }).click();
  await expect(page.getByRole('status').filter({ hasText: 'Saved as version 2.' })).toBeVisible();

  // Rerun on the new latest version: it passes.
  await visit(page, `/evals/${name}`);
  await page.getByLabel('Test', { exact: true }).selectOption('label:latest');
  await page.getByRole('button', { name: 'Start the run' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Suite smoke on version 2' })).toBeVisible();
  await expect(page.locator('.run-summary .badge')).toHaveText('Passed 100%', { timeout: 30_000 });
  await expect(page.locator('details.case-result.passed')).toHaveCount(1);

  // Compare the two runs: the case was fixed.
  await page.getByRole('link', { name: 'All runs' }).click();
  await expect(page.locator('svg.chart')).toBeVisible();
  await page.getByRole('button', { name: 'Compare runs' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Compare runs' })).toBeVisible();
  await expect(page.locator('.delta')).toContainText('0 newly failing, 1 fixed. Pass rate 0% → 100%');
  await expect(page.locator('tr.fixed')).toContainText('names the customer, no apology');
  await expectAccessible(page);
  await screenshot(page, testInfo, 'evals-compare');

  // The version history shows each version's latest result.
  await visit(page, `/history/${name}`);
  const rows = page.locator('tr.version-row');
  await expect(rows.nth(0)).toContainText('Passed 100%');
  await expect(rows.nth(1)).toContainText('Failed 0%');
  expect(errors).toEqual([]);
});
