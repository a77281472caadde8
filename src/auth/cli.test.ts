import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyStore, keysFilePath } from './keys.ts';

const CLI = path.join(import.meta.dirname, 'cli.ts');
let dir: string;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'n50-keys-cli-'));
});
afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', DATA_DIR: dir, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('npm run keys', () => {
  it('creates (secret alone on stdout, once), lists without secrets, and revokes', async () => {
    const created = await run(['create', 'bot']);
    expect(created.code).toBe(0);
    const secret = created.stdout.trim();
    expect(secret).toMatch(/^n50_bot_[A-Za-z0-9_-]{43}$/);
    expect(created.stderr).toContain('shown this once');
    expect(created.stderr).not.toContain(secret);

    const store = await KeyStore.load({ configured: [], file: keysFilePath(dir) });
    expect(store.verify(secret)).toEqual({ name: 'bot' });

    const listed = await run(['list'], { API_KEYS: 'alice:alice-secret-0123456789' });
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(/^NAME\s+SOURCE\s+MODE\s+CREATED\n/);
    expect(listed.stdout).toMatch(/alice\s+env\s+paper\s+-/);
    expect(listed.stdout).toMatch(/bot\s+file\s+paper\s+\d{4}-/);
    expect(listed.stdout + listed.stderr).not.toContain('alice-secret');
    expect(listed.stdout + listed.stderr).not.toContain(secret);

    const revoked = await run(['revoke', 'bot']);
    expect(revoked.code).toBe(0);
    const again = await run(['revoke', 'bot']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('No key named "bot"');
  });

  it('answers bad usage with the usage text and exit code 2, refusals with 1 and the remedy', async () => {
    const none = await run([]);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('npm run keys -- create NAME');
    expect((await run(['create'])).code).toBe(2);
    const bad = await run(['create', 'Not Valid']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('1-64 of a-z 0-9 _ -');
    const env = await run(['revoke', 'alice'], { API_KEYS: 'alice:alice-secret-0123456789' });
    expect(env.code).toBe(1);
    expect(env.stderr).toContain('remove it from API_KEYS');
    const cfg = await run(['list'], { API_KEYS: 'alice:short' });
    expect(cfg.code).toBe(2);
    expect(cfg.stderr).toContain('API_KEYS');
    expect(cfg.stderr).not.toContain('short');
  });

  it('marks a key live only with --live and Kite credentials; paper is the default', async () => {
    const refused = await run(['create', 'live-bot', '--live']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('KITE_API_KEY');
    const made = await run(['create', 'live-bot', '--live'], { KITE_API_KEY: 'abcd1234efgh5678', KITE_ACCESS_TOKEN: 'XyZ0123456789abcdefXyZ0123456789' });
    expect(made.code).toBe(0);
    expect(made.stderr).toContain('LIVE');
    await run(['create', 'paper-bot']);
    const store = await KeyStore.load({ configured: [], file: keysFilePath(dir) });
    expect(store.modeOf('live-bot')).toBe('live');
    expect(store.modeOf('paper-bot')).toBe('paper');
    const listed = await run(['list']);
    expect(listed.stdout).toMatch(/live-bot\s+file\s+live/);
    expect(listed.stdout).toMatch(/paper-bot\s+file\s+paper/);
  });
});
