/**
 * `npm run keys -- create NAME | list | revoke NAME`: manage the API keys in the keys file
 * (`${DATA_DIR}/api-keys.json`). Reads the same environment as the service (DATA_DIR, API_KEYS),
 * so `list` shows exactly the keys the service accepts.
 *
 * `create` writes the new key alone on stdout, so `KEY=$(node --import tsx src/auth/cli.ts create
 * bot)` captures it; everything else goes to stderr. Exit codes: 0 done, 1 refused (the message
 * says why and what to do), 2 bad usage or configuration.
 */
import { loadConfig } from '../config.ts';
import { AppError, ConfigError } from '../core/errors.ts';
import { KeyStore, keysFilePath } from './keys.ts';

const USAGE = `Usage:
  npm run keys -- create NAME [--live]
                                create a key (NAME: 1-64 of a-z 0-9 _ -); prints its secret once.
                                Its orders go to the paper broker, or with --live to Kite (needs
                                KITE_API_KEY and KITE_ACCESS_TOKEN)
  npm run keys -- list          list keys (names, source, creation time; never secrets)
  npm run keys -- revoke NAME   delete a key created here (API_KEYS keys are removed from the environment)
`;

async function main(argv: string[]): Promise<number> {
  const live = argv.includes('--live');
  const [cmd, name, ...rest] = argv.filter((a) => a !== '--live');
  if (live && cmd !== 'create') {
    process.stderr.write(USAGE);
    return 2;
  }
  const needsName = cmd === 'create' || cmd === 'revoke';
  if (!(needsName || cmd === 'list') || (needsName && name === undefined) || rest.length > 0 || (cmd === 'list' && name !== undefined)) {
    process.stderr.write(USAGE);
    return 2;
  }
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`Configuration error: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  if (live && config.kite === null) {
    process.stderr.write('A live key sends its orders to Kite: set KITE_API_KEY and KITE_ACCESS_TOKEN first (or create a paper key, without --live).\n');
    return 1;
  }
  const file = keysFilePath(config.dataDir);
  try {
    const store = await KeyStore.load({ configured: config.apiKeys, file });
    if (cmd === 'create') {
      const key = await store.create(name, live ? 'live' : 'paper');
      process.stdout.write(`${key.secret}\n`);
      process.stderr.write(
        `Created ${live ? 'LIVE' : 'paper'} API key "${key.name}". The line above is its secret, shown this once: store it now.\n` +
          `Only its SHA-256 is kept, in ${file}. Use it as "Authorization: Bearer <key>", or "?key=<key>" where headers cannot be set.\n` +
          'A running service picks it up within a few seconds.\n',
      );
      return 0;
    }
    if (cmd === 'revoke') {
      if (await store.revoke(name)) {
        process.stderr.write(`Revoked API key "${name}". A running service refuses it within a few seconds.\n`);
        return 0;
      }
      process.stderr.write(`No key named "${name}" in ${file}. See: npm run keys -- list\n`);
      return 1;
    }
    const keys = store.list();
    if (keys.length === 0) {
      process.stderr.write(`No API keys: none in API_KEYS, none in ${file}. Create one: npm run keys -- create NAME\n`);
      return 0;
    }
    const width = Math.max(4, ...keys.map((k) => k.name.length));
    const lines = keys.map((k) => `${k.name.padEnd(width)}  ${k.source.padEnd(6)}  ${k.mode.padEnd(5)}  ${k.createdAt ?? '-'}`);
    process.stdout.write(`${'NAME'.padEnd(width)}  SOURCE  MODE   CREATED\n${lines.join('\n')}\n`);
    return 0;
  } catch (e) {
    if (e instanceof AppError) {
      process.stderr.write(`${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

process.exitCode = await main(process.argv.slice(2));
