import { defineConfig } from '@playwright/test';
import * as os from 'node:os';
import * as path from 'node:path';
import * as fs from 'node:fs';

// One throwaway database per run, shared by the server and the tests (workers inherit env).
if (!process.env.E2E_DB) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'promptledger-e2e-'));
  process.env.E2E_DB = path.join(dir, 'e2e.db');
}
const port = Number(process.env.E2E_PORT ?? 3457);
process.env.E2E_BASE = `http://127.0.0.1:${port}`;
const bin = process.env.PROMPTLEDGER_BIN ?? path.resolve(__dirname, '../target/debug/promptledger');
process.env.PROMPTLEDGER_BIN = bin;
const providerPort = Number(process.env.MOCK_PROVIDER_PORT ?? 4017);
process.env.MOCK_PROVIDER_PORT = String(providerPort);
process.env.MOCK_PROVIDER_BASE = `http://127.0.0.1:${providerPort}/v1`;
const siteRoot = process.env.PROMPTLEDGER_SITE_ROOT ?? path.resolve(__dirname, '../target/site');

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  retries: 0,
  workers: 1,
  reporter: [['list']],
  outputDir: './test-results',
  use: {
    baseURL: process.env.E2E_BASE,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
      ],
    },
  },
  webServer: [
    {
      command: `"${bin}" --db "${process.env.E2E_DB}" serve --addr 127.0.0.1:${port} --site-root "${siteRoot}"`,
      url: `${process.env.E2E_BASE}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: 'pipe',
      stderr: 'pipe',
    },
    {
      // A local model provider speaking the OpenAI protocol, for the evaluation journey.
      command: 'node mock-provider.mjs',
      url: `http://127.0.0.1:${providerPort}/health`,
      reuseExistingServer: false,
      timeout: 20_000,
    },
  ],
});
