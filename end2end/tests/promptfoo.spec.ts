import { test, expect, type APIRequestContext } from '@playwright/test';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { adminKey, appKey, createPrompt, unique } from './helpers';

// promptfoo as published (end2end/promptfoo, on the Node.js 22 it requires), evaluating
// `langfuse://` prompts that live in promptledger: only LANGFUSE_HOST and the keys point
// here. The `echo` provider answers with the prompt it was sent, so each output is what
// promptfoo fetched and compiled.
const promptfooDir = path.resolve(__dirname, '../promptfoo');

type Row = { label: string; output: string };

async function promptfooEval(key: string, prompts: { id: string; label: string }[], vars: Record<string, string>): Promise<{ code: number; rows: Row[]; log: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'promptfoo-'));
  const config = { prompts, providers: ['echo'], tests: [{ vars }] };
  fs.writeFileSync(path.join(dir, 'promptfooconfig.json'), JSON.stringify(config));
  const bin = path.join(promptfooDir, 'node_modules/.bin');
  const env = {
    ...process.env,
    PATH: `${bin}:${process.env.PATH}`,
    LANGFUSE_HOST: process.env.E2E_BASE!,
    LANGFUSE_PUBLIC_KEY: 'pk-lf-any',
    LANGFUSE_SECRET_KEY: key,
    PROMPTFOO_CONFIG_DIR: path.join(dir, 'home'),
    PROMPTFOO_DISABLE_TELEMETRY: '1',
    PROMPTFOO_DISABLE_UPDATE: '1',
  };
  const args = ['eval', '-c', 'promptfooconfig.json', '--no-write', '--no-cache', '--no-table', '-o', 'out.json'];
  const { code, log } = await new Promise<{ code: number; log: string }>((resolve) => {
    execFile(path.join(bin, 'promptfoo'), args, { cwd: dir, env, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, log: `${stdout}\n${stderr}` }));
  });
  const out = path.join(dir, 'out.json');
  const rows: Row[] = fs.existsSync(out)
    ? JSON.parse(fs.readFileSync(out, 'utf8')).results.results.map((r: any) => ({ label: r.prompt.label, output: r.response?.output ?? r.error }))
    : [];
  rows.sort((a, b) => a.label.localeCompare(b.label));
  return { code, rows, log };
}

async function moveStable(request: APIRequestContext, key: string, name: string, version: number) {
  const res = await request.put(`/api/v1/prompts/${encodeURIComponent(name)}/labels/stable`, { headers: { authorization: `Bearer ${key}` }, data: { version } });
  expect(res.status(), await res.text()).toBe(200);
}

test('promptfoo evaluates langfuse:// prompts served by promptledger, by label, version and type, and sees a promotion', async ({ request }) => {
  test.setTimeout(180_000);
  const admin = adminKey();
  const greet = `pf/${unique('greet')}`;
  const chat = `pf/${unique('chat')}`;
  await createPrompt(request, admin, { name: greet, template: 'Hello {{ customer }}, about {{ topic }}.' });
  const second = await request.post(`/api/v1/prompts/${encodeURIComponent(greet)}/versions`, {
    headers: { authorization: `Bearer ${admin}` },
    data: { base_version: 1, template: 'Hi {{ customer }}! Let us sort out {{ topic }}.' },
  });
  expect(second.status(), await second.text()).toBe(201);
  await moveStable(request, admin, greet, 1);
  await createPrompt(request, admin, {
    name: chat, type: 'chat', messages: [{ role: 'system', content: 'You help {{ company }}.' }, { role: 'user', content: '{{ question }}' }],
  });
  await moveStable(request, admin, chat, 1);

  // An application's key is enough to read prompts, as Langfuse's public key pair is.
  const key = appKey();
  const prompts = [
    { id: `langfuse://${greet}@production`, label: 'a production' },
    { id: `langfuse://${greet}:2`, label: 'b version 2' },
    { id: `langfuse://${greet}@latest`, label: 'c latest' },
    { id: `langfuse://${chat}@production:chat`, label: 'd chat' },
  ];
  const vars = { customer: 'Ada', topic: 'billing', company: 'Acme', question: 'Where is my invoice?' };
  const first = await promptfooEval(key, prompts, vars);
  expect(first.code, first.log).toBe(0);
  expect(first.rows).toEqual([
    { label: 'a production', output: 'Hello Ada, about billing.' },
    { label: 'b version 2', output: 'Hi Ada! Let us sort out billing.' },
    { label: 'c latest', output: 'Hi Ada! Let us sort out billing.' },
    { label: 'd chat', output: JSON.stringify([{ role: 'system', content: 'You help Acme.' }, { role: 'user', content: 'Where is my invoice?' }]) },
  ]);

  // Promoting version 2 to stable is what `production` serves on promptfoo's next run.
  await moveStable(request, admin, greet, 2);
  const promoted = await promptfooEval(key, prompts.slice(0, 1), vars);
  expect(promoted.code, promoted.log).toBe(0);
  expect(promoted.rows).toEqual([{ label: 'a production', output: 'Hi Ada! Let us sort out billing.' }]);

  // A prompt that is not there fails the evaluation with Langfuse's error, naming it.
  const missing = `pf/${unique('missing')}`;
  const failed = await promptfooEval(key, [{ id: `langfuse://${missing}@production`, label: 'missing' }], vars);
  expect(failed.code, failed.log).not.toBe(0);
  expect(failed.rows).toHaveLength(1);
  expect(failed.rows[0].output).toContain(`Failed to fetch Langfuse prompt "${missing}" with label "production"`);
  expect(failed.rows[0].output).toContain(`there is no prompt named '${missing}'`);
});
