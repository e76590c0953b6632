import { expect, type Page, type APIRequestContext, type TestInfo } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { execFileSync } from 'node:child_process';

const bin = process.env.PROMPTLEDGER_BIN!;
const db = process.env.E2E_DB!;
export const PASSWORD = 'correct horse battery';

/** A unique suffix so tests sharing one database never collide. */
export function unique(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/** An admin key made with the real CLI against the server's own database. */
export function adminKey(): string {
  const out = execFileSync(bin, ['--db', db, 'apikey', 'create', '--name', unique('e2e'), '--scope', 'admin']);
  return out.toString().trim().split('\n').pop()!;
}

/** An `app` key, as a running application has, made with the real CLI. */
export function appKey(): string {
  const out = execFileSync(bin, ['--db', db, 'apikey', 'create', '--name', unique('app'), '--scope', 'app']);
  return out.toString().trim().split('\n').pop()!;
}

/** A person with a role, added with the real CLI (password on stdin). */
export function addUser(role: 'viewer' | 'editor' | 'publisher' | 'admin'): string {
  const name = unique(role);
  execFileSync(bin, ['--db', db, 'user', 'add', name, '--role', role, '--password-stdin'], { input: `${PASSWORD}\n` });
  return name;
}

/** Creates a prompt through the REST API. */
export async function createPrompt(request: APIRequestContext, key: string, body: Record<string, unknown>) {
  const res = await request.post('/api/v1/prompts', { headers: { authorization: `Bearer ${key}` }, data: body });
  expect(res.status(), await res.text()).toBe(201);
  return res.json();
}

/** Collects console errors and page errors; check with `expect(errors).toEqual([])`. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('console', (msg) => { if (msg.type() === 'error') errors.push(msg.text()); });
  page.on('pageerror', (err) => errors.push(err.message));
  return errors;
}

/** Waits until every island on the page has loaded its wasm chunk and hydrated (the app counts them and sets the marker). */
export async function hydrated(page: Page) {
  await expect(page.locator('div.app')).toHaveAttribute('data-hydrated', 'true');
}

/** Opens a page and waits until its interactive parts (islands) have hydrated. */
export async function visit(page: Page, path: string) {
  await page.goto(path);
  await hydrated(page);
}

/** Signs in through the form and waits for the console. */
export async function signIn(page: Page, username: string, password = PASSWORD) {
  await page.goto('/');
  await hydrated(page);
  await page.getByLabel('Username').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.locator('.topbar .who')).toContainText(username);
  await hydrated(page);
}

/** No serious or critical accessibility violation on the page as it is now. */
export async function expectAccessible(page: Page) {
  const axe = await new AxeBuilder({ page }).analyze();
  const serious = axe.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  expect(serious.map((v) => `${v.id}: ${v.help} at ${v.nodes.map((n) => n.target.join(' ') + ' ' + (n.failureSummary ?? '')).join('; ')}`)).toEqual([]);
}

export async function screenshot(page: Page, testInfo: TestInfo, name: string) {
  await page.screenshot({ path: testInfo.outputPath(`${name}.png`), fullPage: true });
}

/** On a prompt's history page: picks (`pick`) or types (`type`) the label and picks the
 *  version (when given), opens the release review, and returns it. */
export async function reviewMove(page: Page, label: { pick: string } | { type: string }, version?: string) {
  if ('pick' in label) {
    await page.getByLabel('Label', { exact: true }).selectOption(label.pick);
  } else {
    await page.getByLabel('or a new label').fill(label.type);
  }
  if (version) {
    await page.getByLabel('Version', { exact: true }).selectOption(version);
  }
  await page.getByRole('button', { name: 'Review the change' }).click();
  return page.getByRole('region', { name: 'Review the label move' });
}
