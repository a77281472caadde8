/**
 * API keys: who may use the gateway. Every WebSocket upgrade and REST call presents one.
 *
 * Two sources share one namespace of names:
 * - `API_KEYS` (config.ts): `name:secret` pairs, held in memory only.
 * - the keys file (`${DATA_DIR}/api-keys.json`, mode 0600), written by `npm run keys -- create NAME`
 *   and by `ensureDevKey`. It holds each key's name, creation time and the SHA-256 of its
 *   secret, never the secret: a copied file or backup lets nobody in.
 *
 * Key format of created keys: `n50_<name>_<43 chars>`, the tail being 32 random bytes in base64url
 * (256 bits). The prefix makes a leaked key recognisable to secret scanners and to the reader of
 * a config; the name tells a person which key it is. Nothing parses them back: a key is only ever
 * hashed, so configured secrets of any form (16-256 of A-Z a-z 0-9 _ -) work the same way.
 *
 * Why plain SHA-256 and not scrypt, nor a per-key salt: a slow or salted hash exists to protect
 * guessable secrets (passwords) from an attacker holding the file. A created key has 256 random
 * bits and a configured one at least 96; neither can be guessed at any hashing speed, so slowness
 * would only tax every request (scrypt takes tens of ms), and a per-key salt would force one
 * hash per stored key on each check instead of one hash in all. This is how GitHub and Stripe
 * store tokens. Anyone can recompute a stored hash: `printf %s "$KEY" | sha256sum`.
 *
 * Lookup without timing leaks: `verify` hashes the presented secret once (~1 µs), then compares
 * that digest with every stored digest using `timingSafeEqual` (~70 ns each), match or not, and
 * never exits early; its time depends only on the number of keys, not on which key matched or how
 * much of one did. Comparing digests rather than secrets already denies an attacker any control
 * over the compared bytes; the full scan removes even the question.
 */
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { watchFile, unwatchFile } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { API_KEY_NAME } from '../config.ts';
import { AppError } from '../core/errors.ts';
import type { Logger } from '../log.ts';

export const KEY_PREFIX = 'n50_';
/** Random bytes in a created key: 256 bits, 43 base64url characters. */
const KEY_RANDOM_BYTES = 32;
const FILE_VERSION = 1;

/** Where the keys file lives under DATA_DIR. */
export function keysFilePath(dataDir: string): string {
  return path.join(dataDir, 'api-keys.json');
}

export type KeySource = 'env' | 'file';

export interface KeyInfo {
  name: string;
  source: KeySource;
  mode: TradingMode;
  /** ISO time the key was created; null for API_KEYS keys, whose origin we do not know. */
  createdAt: string | null;
}

/** Who a verified key belongs to. One frozen object per key, so `verify` allocates nothing else. */
export interface Principal {
  readonly name: string;
}

/**
 * A key operation that cannot be done. Codes:
 * - KEY_NAME_INVALID: the name is not 1-64 of a-z 0-9 _ -.
 * - KEY_EXISTS: a key of that name exists (in API_KEYS or the file); revoke it or pick another name.
 * - KEY_FROM_ENV: the key comes from API_KEYS; remove it there and restart.
 * - KEYS_FILE_INVALID: the keys file is not what this program wrote; fix or delete it.
 */
export class AuthError extends AppError {
  constructor(code: 'KEY_NAME_INVALID' | 'KEY_EXISTS' | 'KEY_FROM_ENV' | 'KEYS_FILE_INVALID', message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
    this.name = 'AuthError';
  }
}

interface Entry {
  principal: Principal;
  source: KeySource;
  mode: TradingMode;
  createdAt: string | null;
  digest: Buffer;
}

interface FileKey {
  name: string;
  sha256: string;
  createdAt: string;
  /** 'live' sends the key's orders to Kite; absent or 'paper': the paper broker (the default). */
  mode?: TradingMode;
}

/** Which broker a key's orders go to. Every order, trade and position records it. */
export type TradingMode = 'paper' | 'live';

function sha256(secret: string): Buffer {
  return hash('sha256', secret, 'buffer');
}

function checkName(name: string): void {
  if (typeof name !== 'string' || !API_KEY_NAME.test(name)) {
    throw new AuthError('KEY_NAME_INVALID', `Key name "${String(name).slice(0, 70)}" is not 1-64 of a-z 0-9 _ -. Use e.g. "alice" or "risk-desk".`, { name });
  }
}

export interface KeyStoreOptions {
  /** Keys from API_KEYS (config.apiKeys). */
  configured: readonly { readonly name: string; readonly secret: string }[];
  /** The keys file; `keysFilePath(config.dataDir)`. Need not exist. */
  file: string;
}

export class KeyStore {
  private entries: Entry[] = [];
  /** Mutations run one at a time, each re-reading the file first (the CLI may have written it). */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly env: Entry[];

  private constructor(readonly file: string, configured: KeyStoreOptions['configured']) {
    this.env = configured.map((k) => {
      checkName(k.name);
      return { principal: Object.freeze({ name: k.name }), source: 'env' as const, mode: 'paper' as const, createdAt: null, digest: sha256(k.secret) };
    });
  }

  /** Read the keys file (absent = no file keys) and join the configured keys. Throws AuthError. */
  static async load(opts: KeyStoreOptions): Promise<KeyStore> {
    const store = new KeyStore(opts.file, opts.configured);
    store.install(await store.readFile());
    return store;
  }

  /** Number of keys, from both sources. */
  get size(): number {
    return this.entries.length;
  }

  /**
   * The key's owner if `secret` is a valid key, else null. Synchronous, ~1 µs + 70 ns per key,
   * constant in which key matched (see the module header). Never throws.
   */
  verify(secret: string | null | undefined): Principal | null {
    // Length is no secret: created keys have a known length and configured ones a documented range.
    if (typeof secret !== 'string' || secret.length < 16 || secret.length > 256) return null;
    const d = sha256(secret);
    const entries = this.entries;
    let found: Principal | null = null;
    for (let i = 0; i < entries.length; i++) {
      // Every digest is compared; the assignment is a register move, not an exit.
      if (timingSafeEqual(d, entries[i].digest)) found = entries[i].principal;
    }
    return found;
  }

  /** The keys, configured ones first, then the file's in creation order. No secrets, no hashes. */
  list(): KeyInfo[] {
    return this.entries.map((e) => ({ name: e.principal.name, source: e.source, mode: e.mode, createdAt: e.createdAt }));
  }

  /** The key's trading mode: 'paper' unless it was created with --live. Unknown names: 'paper'. */
  modeOf(name: string): TradingMode {
    return this.entries.find((e) => e.principal.name === name)?.mode ?? 'paper';
  }

  /**
   * Create a key, store its hash, and return the secret: the only time anyone sees it.
   * Throws AuthError KEY_NAME_INVALID or KEY_EXISTS, or the file system's error.
   */
  create(name: string, mode: TradingMode = 'paper'): Promise<{ name: string; secret: string }> {
    return this.serial(async () => {
      checkName(name);
      const keys = await this.readFile();
      this.install(keys);
      if (this.entries.some((e) => e.principal.name === name)) {
        throw new AuthError('KEY_EXISTS', `A key named "${name}" exists already. Revoke it first (npm run keys -- revoke ${name}) or choose another name.`, { name });
      }
      const secret = `${KEY_PREFIX}${name}_${randomBytes(KEY_RANDOM_BYTES).toString('base64url')}`;
      const entry: FileKey = { name, sha256: sha256(secret).toString('hex'), createdAt: new Date().toISOString() };
      if (mode === 'live') entry.mode = 'live';
      const next = [...keys, entry];
      await this.writeFile(next);
      this.install(next);
      return { name, secret };
    });
  }

  /**
   * Delete a file key. False when no file key has that name. Throws AuthError KEY_FROM_ENV for a
   * key configured in API_KEYS, which only the environment can take away.
   */
  revoke(name: string): Promise<boolean> {
    return this.serial(async () => {
      const keys = await this.readFile();
      this.install(keys);
      if (this.env.some((e) => e.principal.name === name)) {
        throw new AuthError('KEY_FROM_ENV', `Key "${name}" is configured in API_KEYS, not in ${this.file}: remove it from API_KEYS and restart the service.`, { name });
      }
      const next = keys.filter((k) => k.name !== name);
      if (next.length === keys.length) return false;
      await this.writeFile(next);
      this.install(next);
      return true;
    });
  }

  /** Re-read the keys file, e.g. after the CLI changed it. On error the current keys stay. */
  reload(): Promise<void> {
    return this.serial(async () => this.install(await this.readFile()));
  }

  /**
   * Re-read the file whenever it changes (polled with fs.watchFile, which survives the atomic
   * rename that every write does), so keys created or revoked with the CLI take effect in a
   * running service within `intervalMs`. `onChange` gets the names that appeared and vanished;
   * the gateway closes the sessions of vanished ones. Returns the function that stops watching.
   */
  watch(opts: {
    intervalMs?: number;
    onChange?: (added: string[], removed: string[]) => void;
    onError?: (err: unknown) => void;
  } = {}): () => void {
    const listener = () => {
      const before = new Set(this.entries.map((e) => e.principal.name));
      this.reload().then(
        () => {
          const after = new Set(this.entries.map((e) => e.principal.name));
          const added = [...after].filter((n) => !before.has(n));
          const removed = [...before].filter((n) => !after.has(n));
          if (added.length + removed.length > 0) opts.onChange?.(added, removed);
        },
        (err) => opts.onError?.(err),
      );
    };
    watchFile(this.file, { interval: opts.intervalMs ?? 1000, persistent: false }, listener);
    return () => unwatchFile(this.file, listener);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn);
    this.queue = p.catch(() => undefined);
    return p;
  }

  private install(keys: readonly FileKey[]): void {
    const fromFile: Entry[] = [];
    for (const k of keys) {
      const clash = this.env.find((e) => e.principal.name === k.name);
      if (clash) {
        throw new AuthError(
          'KEY_EXISTS',
          `Key "${k.name}" is both in API_KEYS and in ${this.file}. Remove it from API_KEYS, or revoke the file's one (npm run keys -- revoke ${k.name}).`,
          { name: k.name },
        );
      }
      fromFile.push({ principal: Object.freeze({ name: k.name }), source: 'file', mode: k.mode ?? 'paper', createdAt: k.createdAt, digest: Buffer.from(k.sha256, 'hex') });
    }
    this.entries = [...this.env, ...fromFile];
  }

  private async readFile(): Promise<FileKey[]> {
    let text: string;
    try {
      text = await fs.readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const bad = (why: string) =>
      new AuthError('KEYS_FILE_INVALID', `${this.file}: ${why}. Restore it from a backup, or delete it and create the keys again (npm run keys -- create NAME).`, { file: this.file });
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      throw bad('not valid JSON');
    }
    const d = doc as { version?: unknown; keys?: unknown };
    if (d === null || typeof d !== 'object' || d.version !== FILE_VERSION || !Array.isArray(d.keys)) {
      throw bad(`not a version ${FILE_VERSION} keys file ({"version":1,"keys":[...]})`);
    }
    const out: FileKey[] = [];
    for (const [i, k] of (d.keys as unknown[]).entries()) {
      const e = k as Partial<FileKey> | null;
      if (e === null || typeof e !== 'object' || typeof e.name !== 'string' || !API_KEY_NAME.test(e.name)) throw bad(`key ${i + 1} has no valid name`);
      if (typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256)) throw bad(`key "${e.name}" has no valid sha256 (64 lowercase hex digits)`);
      if (typeof e.createdAt !== 'string') throw bad(`key "${e.name}" has no createdAt`);
      if (out.some((o) => o.name === e.name)) throw bad(`key "${e.name}" is listed twice`);
      if (e.mode !== undefined && e.mode !== 'paper' && e.mode !== 'live') throw bad(`key "${e.name}" has mode ${JSON.stringify(e.mode)}: use "paper" or "live"`);
      out.push(e.mode === 'live' ? { name: e.name, sha256: e.sha256, createdAt: e.createdAt, mode: 'live' } : { name: e.name, sha256: e.sha256, createdAt: e.createdAt });
    }
    return out;
  }

  /** Atomic replace: a reader (or a crash) sees the old file or the new one, never half of one. */
  private async writeFile(keys: readonly FileKey[]): Promise<void> {
    await fs.mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    const body = `${JSON.stringify({ version: FILE_VERSION, keys }, null, 2)}\n`;
    const fh = await fs.open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(body);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await fs.rename(tmp, this.file);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw e;
    }
  }
}

/**
 * Embedded/dev mode: with no key at all the gateway would refuse everyone, so create one named
 * `dev` and return its secret for the caller to print once (in the start-up line). It is stored
 * hashed like any other, so the next start finds a key and returns null: the secret is never
 * printed twice. Lost it? `npm run keys -- revoke dev` and restart, or `npm run keys -- create NAME`.
 */
export async function ensureDevKey(store: KeyStore, log: Logger): Promise<string | null> {
  if (store.size > 0) return null;
  const { name, secret } = await store.create('dev');
  log.info({ key: name, file: store.file }, 'no API keys configured: created key "dev" (stored hashed; secret shown once). Create more with: npm run keys -- create NAME');
  return secret;
}

/**
 * A running service's watch of the keys file (KeyStore.watch): each change logged, the names of
 * revoked keys handed to `revoked` (the feeds close their sessions), the current keys kept when
 * the file cannot be read. Returns the function that stops watching.
 */
export function followKeyFile(keys: KeyStore, log: Logger, revoked: (names: string[]) => void): () => void {
  return keys.watch({
    intervalMs: 1000,
    onChange: (added, removed) => {
      log.info({ added, removed }, 'API keys changed');
      if (removed.length > 0) revoked(removed);
    },
    onError: (err) => log.warn({ err }, 'API keys file unreadable; keeping the current keys'),
  });
}
