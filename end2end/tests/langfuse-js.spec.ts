import { test, expect } from '@playwright/test';
import { LangfuseClient } from '@langfuse/client';
import { adminKey, unique } from './helpers';

// The published JS SDK (@langfuse/client from npm) against promptledger's
// Langfuse-compatible API, with only the base URL and keys changed.
test('the Langfuse JS SDK creates, gets, compiles and relabels prompts, and falls back on a 404', async ({ request }) => {
  const key = adminKey();
  const langfuse = new LangfuseClient({ publicKey: 'pk-any', secretKey: key, baseUrl: process.env.E2E_BASE });
  const name = `js/${unique('greeting')}`;

  const created = await langfuse.prompt.create({ name, prompt: 'Hello {{customer}}!', labels: ['production'], config: { model: 'm' } });
  expect(created.version).toBe(1);
  expect(created.labels.sort()).toEqual(['latest', 'production']);
  const second = await langfuse.prompt.create({ name, prompt: 'Hi {{customer}}, welcome back.', labels: ['staging'] });
  expect(second.version).toBe(2);

  const production = await langfuse.prompt.get(name, { cacheTtlSeconds: 0 });
  expect(production.version).toBe(1);
  expect(production.compile({ customer: 'Ada' })).toBe('Hello Ada!');
  const staging = await langfuse.prompt.get(name, { label: 'staging', cacheTtlSeconds: 0 });
  expect(staging.compile({ customer: 'Ada' })).toBe('Hi Ada, welcome back.');
  const byVersion = await langfuse.prompt.get(name, { version: 2, cacheTtlSeconds: 0 });
  expect(byVersion.version).toBe(2);

  await langfuse.prompt.update({ name, version: 2, newLabels: ['production'] });
  expect((await langfuse.prompt.get(name, { cacheTtlSeconds: 0 })).version).toBe(2);
  // promptledger serves it as stable on its own API too.
  const served = await (await request.get(`/api/v1/prompts/${encodeURIComponent(name)}`, { headers: { authorization: `Bearer ${key}` } })).json();
  expect(served.version).toBe(2);

  const chatName = `js/${unique('chat')}`;
  await langfuse.prompt.create({
    name: chatName,
    type: 'chat',
    prompt: [{ role: 'system', content: 'You help {{company}}.' }, { type: 'placeholder', name: 'history' }, { role: 'user', content: '{{question}}' }],
    labels: ['production'],
  });
  const chat = await langfuse.prompt.get(chatName, { type: 'chat', cacheTtlSeconds: 0 });
  expect(chat.compile({ company: 'Acme', question: 'And now?' }, { history: [{ role: 'user', content: 'Hi' }] })).toEqual([
    { role: 'system', content: 'You help Acme.' },
    { role: 'user', content: 'Hi' },
    { role: 'user', content: 'And now?' },
  ]);

  const fallback = await langfuse.prompt.get(`js/${unique('missing')}`, { fallback: 'Fallback {{customer}}', cacheTtlSeconds: 0 });
  expect(fallback.isFallback).toBe(true);
  expect(fallback.compile({ customer: 'Ada' })).toBe('Fallback Ada');
  await expect(langfuse.prompt.get(`js/${unique('missing')}`, { cacheTtlSeconds: 0 })).rejects.toThrow();
});
