import { test, expect } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { execFileSync } from 'node:child_process';

const bin = process.env.PROMPTLEDGER_BIN!;
const db = process.env.E2E_DB!;

/** An admin key made with the real CLI against the server's own database. */
function adminKey(): string {
  const out = execFileSync(bin, ['--db', db, 'apikey', 'create', '--name', `e2e-${Date.now()}`, '--scope', 'admin']);
  return out.toString().trim().split('\n').pop()!;
}

test('the prompt list is rendered on the server and hydrates in the browser', async ({ page, request }, testInfo) => {
  const headers = { authorization: `Bearer ${adminKey()}` };
  for (const [name, description] of [['support/greeting', 'First reply'], ['support/refund', 'Refund policy']]) {
    const created = await request.post('/api/v1/prompts', { headers, data: { name, description, template: 'Hello {{ customer }}' } });
    expect(created.status()).toBe(201);
  }
  const moved = await request.put('/api/v1/prompts/support%2Frefund/labels/stable', { headers, data: { version: 1, reason: 'e2e' } });
  expect(moved.status()).toBe(200);

  // Server-rendered: the HTML already holds the list before any script runs.
  const html = await (await request.get('/')).text();
  expect(html).toContain('support/greeting');
  expect(html).toContain('stable → v1');

  const errors: string[] = [];
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  page.on('pageerror', (err) => errors.push(err.message));

  await page.goto('/');
  const list = page.locator('section.prompts');
  // Set by an effect, which only runs once the wasm has hydrated the page.
  await expect(list).toHaveAttribute('data-hydrated', 'true');
  await expect(page.locator('tr.prompt-row')).toHaveCount(2);

  // Typing filters the list in the browser: only a hydrated page can do that.
  await page.getByLabel('Filter prompts by name').fill('refund');
  await expect(page.locator('tr.prompt-row')).toHaveCount(1);
  await expect(page.locator('tr.prompt-row .badge.stable')).toHaveText('stable → v1');
  await expect(page.locator('p.count')).toHaveText('1 of 2 prompts');

  const axe = await new AxeBuilder({ page }).analyze();
  const serious = axe.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(serious.map((v) => `${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ') + ' ' + (n.failureSummary ?? '')).join('; ')}`)).toEqual([]);

  await page.screenshot({ path: testInfo.outputPath('prompt-list.png'), fullPage: true });
  expect(errors).toEqual([]);
});
