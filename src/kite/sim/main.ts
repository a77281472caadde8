/**
 * `npm run sim`: the Kite simulator on its own, for pointing a client (ours or the official one)
 * at it from another process. Settings come from the config module: HOST, SIM_PORT, SIM_SEED,
 * SIM_RATE, LOG_LEVEL. Any non-empty api_key / access_token pair is accepted.
 */
import pino from 'pino';
import { loadConfig } from '../../config.ts';
import { AppError } from '../../core/errors.ts';
import { startSimulator } from './server.ts';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof AppError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  const log = pino({ name: 'kite-sim', level: config.logLevel });
  const sim = await startSimulator({ port: config.sim.port, host: config.host, seed: config.sim.seed, rate: config.sim.rate });
  log.info(
    { wsUrl: sim.wsUrl, apiUrl: sim.apiUrl, instruments: sim.instruments.length, rate: config.sim.rate, seed: config.sim.seed },
    `Kite simulator listening: KITE_WS_URL=${sim.wsUrl} KITE_API_URL=${sim.apiUrl}`,
  );
  const statsTimer = setInterval(() => log.debug({ stats: sim.stats, connections: sim.connections() }, 'sim stats'), 10_000);
  statsTimer.unref();

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, stats: sim.stats }, 'Kite simulator stopping');
    clearInterval(statsTimer);
    sim.close().then(
      () => process.exit(0),
      (e: unknown) => {
        log.error({ err: e }, 'Kite simulator failed to stop cleanly');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
