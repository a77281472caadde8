import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '../log.ts';
import { AuthError, KeyStore, ensureDevKey, keysFilePath } from './keys.ts';

let dir: string;
let file: string;

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'n50-keys-'));
  file = keysFilePath(dir);
});
afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

const ALICE = { name: 'alice', secret: 'alice-secret-0123456789' };
const BOB = { name: 'bob', secret: 'bob_secret_ABCDEFGHIJKLMN' };

function code(e: unknown): string {
  expect(e).toBeInstanceOf(AuthError);
  return (e as AuthError).code;
}

describe('KeyStore', () => {
  it('verifies configured keys and refuses everything else', async () => {
    const s = await KeyStore.load({ configured: [ALICE, BOB], file });
    expect(s.size).toBe(2);
    expect(s.verify(ALICE.secret)).toEqual({ name: 'alice' });
    expect(s.verify(BOB.secret)).toEqual({ name: 'bob' });
    expect(s.verify(`${ALICE.secret}x`)).toBeNull();
    expect(s.verify(ALICE.secret.slice(0, -1))).toBeNull();
    expect(s.verify('')).toBeNull();
    expect(s.verify(undefined)).toBeNull();
    expect(s.verify(null)).toBeNull();
    expect(s.verify('x'.repeat(10_000))).toBeNull();
    expect(s.list()).toEqual([
      { name: 'alice', source: 'env', mode: 'paper', createdAt: null },
      { name: 'bob', source: 'env', mode: 'paper', createdAt: null },
    ]);
  });

  it('hands back the same principal object on every verify, allocating none per call', async () => {
    const s = await KeyStore.load({ configured: [ALICE], file });
    expect(s.verify(ALICE.secret)).toBe(s.verify(ALICE.secret));
    expect(Object.isFrozen(s.verify(ALICE.secret))).toBe(true);
  });

  it('creates a key of the documented form, shows its secret once and stores only its SHA-256', async () => {
    const s = await KeyStore.load({ configured: [], file });
    const k = await s.create('bot-1');
    expect(k.name).toBe('bot-1');
    expect(k.secret).toMatch(/^n50_bot-1_[A-Za-z0-9_-]{43}$/);
    expect(s.verify(k.secret)).toEqual({ name: 'bot-1' });

    const text = await fs.readFile(file, 'utf8');
    expect(text).not.toContain(k.secret);
    expect(text).not.toContain(k.secret.slice(-43));
    const doc = JSON.parse(text);
    expect(doc.version).toBe(1);
    expect(doc.keys).toHaveLength(1);
    expect(doc.keys[0].name).toBe('bot-1');
    expect(doc.keys[0].sha256).toBe(createHash('sha256').update(k.secret).digest('hex'));
    expect(Number.isNaN(Date.parse(doc.keys[0].createdAt))).toBe(false);
    expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
    expect((await fs.readdir(dir)).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('gives two keys created in a row different secrets', async () => {
    const s = await KeyStore.load({ configured: [], file });
    const a = await s.create('a');
    const b = await s.create('b');
    expect(a.secret.slice(-43)).not.toBe(b.secret.slice(-43));
    expect(s.verify(a.secret)).toEqual({ name: 'a' });
    expect(s.verify(b.secret)).toEqual({ name: 'b' });
  });

  it('persists created keys across a reload and lists them with their source and creation time', async () => {
    const s1 = await KeyStore.load({ configured: [ALICE], file });
    const k = await s1.create('carol');
    const s2 = await KeyStore.load({ configured: [ALICE], file });
    expect(s2.size).toBe(2);
    expect(s2.verify(k.secret)).toEqual({ name: 'carol' });
    const listed = s2.list();
    expect(listed.map((e) => [e.name, e.source])).toEqual([['alice', 'env'], ['carol', 'file']]);
    expect(listed[1].createdAt).toMatch(/^\d{4}-\d\d-\d\dT/);
  });

  it('revokes a file key so it no longer verifies, here and after a reload', async () => {
    const s = await KeyStore.load({ configured: [], file });
    const k = await s.create('temp');
    expect(await s.revoke('temp')).toBe(true);
    expect(s.verify(k.secret)).toBeNull();
    expect(await s.revoke('temp')).toBe(false);
    expect((await KeyStore.load({ configured: [], file })).verify(k.secret)).toBeNull();
  });

  it('refuses to revoke an API_KEYS key and says to remove it from the environment', async () => {
    const s = await KeyStore.load({ configured: [ALICE], file });
    const e = await s.revoke('alice').catch((x: unknown) => x);
    expect(code(e)).toBe('KEY_FROM_ENV');
    expect((e as Error).message).toContain('API_KEYS');
    expect(s.verify(ALICE.secret)).toEqual({ name: 'alice' });
  });

  it('refuses a duplicate name, from either source, and a malformed one', async () => {
    const s = await KeyStore.load({ configured: [ALICE], file });
    await s.create('dave');
    expect(code(await s.create('dave').catch((x: unknown) => x))).toBe('KEY_EXISTS');
    expect(code(await s.create('alice').catch((x: unknown) => x))).toBe('KEY_EXISTS');
    for (const bad of ['', 'Alice', 'a b', 'x'.repeat(65), 'ümlaut', 'a:b']) {
      expect(code(await s.create(bad).catch((x: unknown) => x))).toBe('KEY_NAME_INVALID');
    }
    expect(s.size).toBe(2);
  });

  it('refuses to start when a name is both in API_KEYS and in the file, naming the way out', async () => {
    const s = await KeyStore.load({ configured: [], file });
    await s.create('alice');
    const e = await KeyStore.load({ configured: [ALICE], file }).catch((x: unknown) => x);
    expect(code(e)).toBe('KEY_EXISTS');
    expect((e as Error).message).toContain('revoke alice');
  });

  it('sees keys another process (the CLI) wrote before creating or revoking', async () => {
    const service = await KeyStore.load({ configured: [], file });
    const cli = await KeyStore.load({ configured: [], file });
    const k = await cli.create('erin');
    expect(service.verify(k.secret)).toBeNull();
    await service.create('frank');
    expect(service.verify(k.secret)).toEqual({ name: 'erin' });
    const reread = await KeyStore.load({ configured: [], file });
    expect(reread.list().map((e) => e.name)).toEqual(['erin', 'frank']);
  });

  it('serialises concurrent creates so none is lost', async () => {
    const s = await KeyStore.load({ configured: [], file });
    const made = await Promise.all(['k1', 'k2', 'k3', 'k4', 'k5'].map((n) => s.create(n)));
    const reread = await KeyStore.load({ configured: [], file });
    expect(reread.size).toBe(5);
    for (const k of made) expect(reread.verify(k.secret)).toEqual({ name: k.name });
  });

  it('watch() applies keys created and revoked elsewhere and reports what changed', async () => {
    const service = await KeyStore.load({ configured: [], file });
    const cli = await KeyStore.load({ configured: [], file });
    const changes: [string[], string[]][] = [];
    const stop = service.watch({ intervalMs: 20, onChange: (a, r) => changes.push([a, r]) });
    try {
      const k = await cli.create('gina');
      await expect.poll(() => service.verify(k.secret), { timeout: 5000, interval: 10 }).toEqual({ name: 'gina' });
      await cli.revoke('gina');
      await expect.poll(() => service.verify(k.secret), { timeout: 5000, interval: 10 }).toBeNull();
      expect(changes).toEqual([[['gina'], []], [[], ['gina']]]);
    } finally {
      stop();
    }
  });

  it('names the keys file and the remedy when the file is corrupt, and keeps the current keys on reload', async () => {
    const s = await KeyStore.load({ configured: [ALICE], file });
    await fs.writeFile(file, '{"version":1,"keys":[{"name":"x"}]');
    const e = await KeyStore.load({ configured: [], file }).catch((x: unknown) => x);
    expect(code(e)).toBe('KEYS_FILE_INVALID');
    expect((e as Error).message).toContain(file);
    expect((e as Error).message).toContain('delete it');
    await fs.writeFile(file, JSON.stringify({ version: 1, keys: [{ name: 'x', sha256: 'nothex', createdAt: 'now' }] }));
    expect(code(await s.reload().catch((x: unknown) => x))).toBe('KEYS_FILE_INVALID');
    expect(s.verify(ALICE.secret)).toEqual({ name: 'alice' });
    await fs.writeFile(file, JSON.stringify({ version: 2, keys: [] }));
    expect(code(await KeyStore.load({ configured: [], file }).catch((x: unknown) => x))).toBe('KEYS_FILE_INVALID');
  });

  it('takes the same time for a good key, a bad key and a near miss (no early exit)', async () => {
    // Not a proof of constant time, a guard against someone adding an early return: with 200 keys
    // the scan dominates, so a matched-first key exiting early would be many times faster.
    const configured = Array.from({ length: 200 }, (_, i) => ({ name: `k${i}`, secret: `secret-number-${String(i).padStart(6, '0')}` }));
    const s = await KeyStore.load({ configured, file });
    const time = (secret: string) => {
      let best = Infinity;
      for (let r = 0; r < 7; r++) {
        const t0 = process.hrtime.bigint();
        for (let i = 0; i < 200; i++) s.verify(secret);
        best = Math.min(best, Number(process.hrtime.bigint() - t0));
      }
      return best;
    };
    time(configured[0].secret);
    const first = time(configured[0].secret);
    const none = time('secret-number-999999');
    // An early exit would make `first` ~15x faster; the wide band absorbs a busy CI machine.
    expect(first / none).toBeGreaterThan(0.33);
    expect(first / none).toBeLessThan(3);
  });
});

describe('ensureDevKey', () => {
  function capture() {
    const lines: string[] = [];
    const stream = new Writable({ write(chunk, _enc, cb) { lines.push(String(chunk)); cb(); } });
    return { lines, log: createLogger('info', 'test', stream) };
  }

  it('creates a "dev" key when there is none, returns its secret once, and never logs it', async () => {
    const { lines, log } = capture();
    const s = await KeyStore.load({ configured: [], file });
    const secret = await ensureDevKey(s, log);
    expect(secret).toMatch(/^n50_dev_/);
    expect(s.verify(secret!)).toEqual({ name: 'dev' });
    expect(lines.join('')).toContain('npm run keys -- create NAME');
    expect(lines.join('')).not.toContain(secret!);

    // Next start: the hashed dev key is there, so nothing new is created or printed.
    const again = await KeyStore.load({ configured: [], file });
    expect(await ensureDevKey(again, log)).toBeNull();
    expect(again.verify(secret!)).toEqual({ name: 'dev' });
    expect(again.size).toBe(1);
  });

  it('does nothing when API_KEYS configures a key', async () => {
    const { log } = capture();
    const s = await KeyStore.load({ configured: [ALICE], file });
    expect(await ensureDevKey(s, log)).toBeNull();
    expect(s.size).toBe(1);
    await expect(fs.stat(file)).rejects.toThrow();
  });
});
