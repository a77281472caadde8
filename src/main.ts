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
  let service: { close(): Promise<void> };
  let onFatal: ((stop: (why: string) => void) => void) | null = null;
  if (config.role === 'gateway') {
    const { startGatewayService, EXIT_UNIVERSE_CHANGED } = await import('./gateway-service.ts');
    const gw = await startGatewayService(config, log, {
      onUniverseChange: () => {
        void gw.close().finally(() => process.exit(EXIT_UNIVERSE_CHANGED));
      },
    });
    service = gw;
    const base = `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${gw.port}`;
    log.info(
      { role: 'gateway', instruments: gw.tokens.length, cache: redactUrl(config.redisUrl!), feeds: { msgpack: `${base.replace('http', 'ws')}/ws`, kite: `${base.replace('http', 'ws')}/kite` }, dashboard: `${base}/`, health: `${base}/health` },
      `NIFTY 50 gateway up on ${base}, fed by the ingest through Redis; see ${base}/health`,
    );
  } else {
    const { startService } = await import('./service.ts');
    // ROLE=ingest: one owner at a time; the others stand by here until the owner dies.
    const held = config.role === 'ingest' ? await (await import('./scale/ingest-role.ts')).takeIngestLease(config, log) : null;
    const svc = await startService(config, log, held ? { lease: held.lease, fence: { name: held.lease.status().name, token: held.grant.token } } : {});
    service = held
      ? { close: () => svc.close().finally(() => held.lease.release()) }
      : svc;
    const base = `http://${config.host === '0.0.0.0' ? '127.0.0.1' : config.host}:${svc.port}`;
    log.info(
      {
        role: config.role,
        feed: svc.sim ? `built-in Kite simulator at ${svc.sim.wsUrl} (no KITE_API_KEY/KITE_ACCESS_TOKEN set)` : `Kite at ${config.kiteWsUrl}`,
        storage: svc.storage.where,
        cache: config.redisUrl ? `redis ${redactUrl(config.redisUrl)}` : 'in-process (REDIS_URL unset)',
        ...(config.role === 'all' ? { feeds: { msgpack: `${base.replace('http', 'ws')}/ws`, kite: `${base.replace('http', 'ws')}/kite` } } : { publishes: `Redis channel ${config.redisPrefix}feed` }),
        apiKeys: svc.keys.size,
        ...(svc.devKey ? { devKey: svc.devKey, devKeyNote: 'created now and shown once; stored hashed under DATA_DIR' } : {}),
        instruments: svc.tokens.length,
        workers: config.workers,
        ...(config.role === 'all' ? { dashboard: `${base}/` } : {}),
        health: `${base}/health`,
      },
      config.role === 'ingest'
        ? `NIFTY 50 ingest up on ${base}: owns the Kite connections, publishes to the gateways; see ${base}/health`
        : `NIFTY 50 service up on ${base}: ${svc.sim ? 'embedded defaults in use (simulator feed)' : 'live Kite feed'}; see ${base}/health`,
    );
    onFatal = (stop) => {
      svc.ingest.on('fatal', () => stop('kite-auth-refused'));
      if (svc.ingest.fatalError) stop('kite-auth-refused');
    };
  }

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
  onFatal?.(stop);
} catch (e) {
  if (e instanceof AppError) {
    log.fatal({ code: e.code, ...e.details }, e.message);
    process.exit(1);
  }
  throw e;
}
