/**
 * uWebSockets.js, native or not at all.
 *
 * The package is the maintained fork (`@trufflesuite/uws-js-unofficial`, aliased as
 * `uWebSockets.js` in package.json) because the official binaries need glibc 2.38. Its entry
 * point silently falls back to a slow pure-JS implementation when the native binary does not
 * load; we load the binary ourselves instead, so a missing or incompatible binary stops start-up
 * with a message rather than costing an order of magnitude in throughput unnoticed.
 */
import { createRequire } from 'node:module';
import { AppError } from './core/errors.ts';

type Uws = typeof import('uWebSockets.js');

const require = createRequire(import.meta.url);

function loadNative(): Uws {
  const name = `uws_${process.platform}_${process.arch}_${process.versions.modules}.node`;
  try {
    return require(`uWebSockets.js/binaries/${name}`) as Uws;
  } catch (e) {
    throw new AppError(
      'UWS_NATIVE_MISSING',
      `uWebSockets.js native binary ${name} did not load (${(e as Error).message}). ` +
        'This build supports Node 20 (ABI 115) on linux/darwin x64/arm64; run with Node 20 and reinstall with `npm ci`.',
      { binary: name },
    );
  }
}

export const uws: Uws = loadNative();
