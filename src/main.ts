/**
 * `npm start`: check the config, start the service, stop cleanly on SIGINT/SIGTERM.
 */
import { loadConfig, redactUrl, type Config } from './config.ts';
import { AppError, ConfigError } from './core/errors.ts';
import { createProcessLogger } from './log.ts';

let config: Config;
try {
  config = loadConfig();
} catch (e) {
  if (e instanceof ConfigError) {
    process.stderr.write(`Configuration error: ${e.message}\n`);
    process.exit(2);
  }
  throw e;
}

const log = createProcessLogger(config.logLevel, config.logFormat);

try {
  // The dashboard (web/ → web/dist) when its build is missing or stale: one start command does everything.
  const { ensureWebBuild } = await import('./web-build.ts');
  await ensureWebBuild(log);
  // Loaded after the config is known good, so a config error answers at once.
  const { startService } = await import('./service.ts');
  const service = await startService(config, log);
  const base = `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${service.port}`;
  log.info(
    {
      feed: service.sim ? `built-in Kite simulator at ${service.sim.wsUrl} (no KITE_API_KEY/KITE_ACCESS_TOKEN set)` : `Kite at ${config.kiteWsUrl}`,
      storage: service.storage.where,
      cache: config.redisUrl ? `redis ${redactUrl(config.redisUrl)}` : 'in-process (REDIS_URL unset)',
      feeds: { msgpack: `${base.replace('http', 'ws')}/ws`, kite: `${base.replace('http', 'ws')}/kite` },
      apiKeys: service.keys.size,
      ...(service.devKey ? { devKey: service.devKey, devKeyNote: 'created now and shown once; stored hashed under DATA_DIR' } : {}),
      instruments: service.tokens.length,
      workers: config.workers,
      dashboard: `${base}/`,
      health: `${base}/health`,
    },
    `NIFTY 50 service up on ${base}: ${service.sim ? 'embedded defaults in use (simulator feed)' : 'live Kite feed'}; see ${base}/health`,
  );

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping: closing the feed, draining workers');
    const force = setTimeout(() => {
      log.error('shutdown took longer than 15 s; exiting anyway');
      process.exit(1);
    }, 15_000);
    force.unref();
    service.close().then(
      () => {
        log.info('stopped cleanly');
        process.exit(0);
      },
      (err) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  service.ingest.on('fatal', () => stop('kite-auth-refused'));
  if (service.ingest.fatalError) stop('kite-auth-refused');
} catch (e) {
  if (e instanceof AppError) {
    log.fatal({ code: e.code, ...e.details }, e.message);
    process.exit(1);
  }
  throw e;
}
