/**
 * The dashboard's build at start: `npm start` runs `ensureWebBuild` first, which builds `web/` with
 * Vite into `web/dist` when the build is missing or stale, so the README's one start command still
 * does everything. Stale means: the sources it is built from changed. That is decided by a hash of
 * their contents (not file times, which a fresh clone sets to the checkout's), stored beside the
 * build in `.build-hash`. Hashing the few hundred KB of sources takes milliseconds; a build, a
 * second or two, once.
 */
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AppError } from './core/errors.ts';
import type { Logger } from './log.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const WEB_DIR = join(ROOT, 'web');
export const WEB_DIST = join(WEB_DIR, 'dist');
const HASH_FILE = join(WEB_DIST, '.build-hash');
/** What the bundle is built from: the web app, the feed client and what it imports, the locked packages. */
const INPUTS = ['web', 'src/client', 'src/core', 'src/gateway/messages.ts', 'package-lock.json'];

function files(p: string): string[] {
  if (!existsSync(p)) return [];
  if (!statSync(p).isDirectory()) return [p];
  const out: string[] = [];
  for (const name of readdirSync(p).sort()) {
    if (name === 'dist' || name === 'node_modules' || name.startsWith('.')) continue;
    out.push(...files(join(p, name)));
  }
  return out;
}

/** Hash of the build's inputs. */
export function sourceHash(): string {
  const h = createHash('sha256');
  for (const rel of INPUTS) {
    for (const f of files(join(ROOT, rel))) {
      h.update(f.slice(ROOT.length)).update('\0').update(readFileSync(f)).update('\0');
    }
  }
  return h.digest('hex');
}

/** True when `web/dist` was built from the sources as they are now. */
export function webBuildFresh(hash = sourceHash()): boolean {
  return existsSync(join(WEB_DIST, 'index.html')) && existsSync(HASH_FILE) && readFileSync(HASH_FILE, 'utf8').trim() === hash;
}

/** Build `web/` into `web/dist` unless it is fresh. Throws AppError WEB_BUILD_FAILED with Vite's message. */
export async function ensureWebBuild(log: Logger): Promise<'fresh' | 'built'> {
  const hash = sourceHash();
  if (webBuildFresh(hash)) return 'fresh';
  const t0 = Date.now();
  log.info('building the dashboard (web/ → web/dist)');
  try {
    const { build } = await import('vite');
    await build({ configFile: join(WEB_DIR, 'vite.config.ts'), logLevel: 'warn' });
  } catch (e) {
    throw new AppError('WEB_BUILD_FAILED', `building the dashboard failed: ${(e as Error).message}. Fix web/ (npx vite build --config web/vite.config.ts shows the same).`);
  }
  writeFileSync(HASH_FILE, `${hash}\n`);
  log.info({ ms: Date.now() - t0 }, 'dashboard built');
  return 'built';
}
