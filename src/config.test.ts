import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import { ConfigError } from './core/errors.ts';
import { DEFAULT_PIPELINE_WAIT } from './core/ring.ts';

function fails(env: Record<string, string>, variable: string): ConfigError {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    const err = e as ConfigError;
    expect(err.variable).toBe(variable);
    expect(err.message).toContain(variable);
    expect(err.message).toMatch(/Expected e\.g\./);
    return err;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('config', () => {
  it('defaults to the simulator, embedded storage and in-process cache with no environment', () => {
    const c = loadConfig({});
    expect(c.kite).toBeNull();
    expect(c.databaseUrl).toBeNull();
    expect(c.redisUrl).toBeNull();
    expect(c.port).toBe(3000);
    expect(c.kiteMode).toBe('full');
    expect(c.kiteWsUrl).toBe('wss://ws.kite.trade/');
    expect(c.kiteApiUrl).toBe('https://api.kite.trade');
    expect(Object.isFrozen(c)).toBe(true);
    expect(Object.isFrozen(c.sim)).toBe(true);
  });

  it('reads every documented variable', () => {
    const c = loadConfig({
      PORT: '8080', HOST: '0.0.0.0', KITE_API_KEY: 'k', KITE_ACCESS_TOKEN: 't', KITE_WS_URL: 'ws://127.0.0.1:9/',
      KITE_API_URL: 'http://127.0.0.1:9/', DATABASE_URL: 'postgres://root@127.0.0.1:5432/test', REDIS_URL: 'redis://127.0.0.1:6379/3',
      WORKERS: '4', LOG_LEVEL: 'DEBUG', KITE_MODE: 'quote', KITE_INSTRUMENTS: '256265, NFO:NIFTY25DEC26000CE',
    });
    expect(c.port).toBe(8080);
    expect(c.kite).toEqual({ apiKey: 'k', accessToken: 't' });
    expect(c.kiteApiUrl).toBe('http://127.0.0.1:9');
    expect(c.workers).toBe(4);
    expect(c.logLevel).toBe('debug');
    expect(c.kiteMode).toBe('quote');
    expect(c.kiteInstruments).toEqual(['256265', 'NFO:NIFTY25DEC26000CE']);
  });

  it('reads PIPELINE_WAIT: park, or a spinning strategy and its µs, naming it when bad', () => {
    expect(loadConfig({}).pipelineWait).toEqual(DEFAULT_PIPELINE_WAIT);
    expect(loadConfig({ PIPELINE_WAIT: 'park' }).pipelineWait).toEqual({ strategy: 'park', spinUs: 0 });
    expect(loadConfig({ PIPELINE_WAIT: 'Spin-Park:50' }).pipelineWait).toEqual({ strategy: 'spin-park', spinUs: 50 });
    expect(loadConfig({ PIPELINE_WAIT: 'adaptive:500' }).pipelineWait).toEqual({ strategy: 'adaptive', spinUs: 500 });
    for (const bad of ['spin', 'park:10', 'spin-park:0', 'spin-park:5000', 'adaptive:fast']) {
      expect(fails({ PIPELINE_WAIT: bad }, 'PIPELINE_WAIT').message).toContain('spin-park:50');
    }
  });

  it('names the variable and an example for each bad value', () => {
    fails({ PORT: 'abc' }, 'PORT');
    fails({ PORT: '70000' }, 'PORT');
    fails({ WORKERS: '0' }, 'WORKERS');
    fails({ LOG_LEVEL: 'loud' }, 'LOG_LEVEL');
    fails({ KITE_MODE: 'fast' }, 'KITE_MODE');
    fails({ DATABASE_URL: 'mysql://x@y/z' }, 'DATABASE_URL');
    fails({ REDIS_URL: 'not a url' }, 'REDIS_URL');
    fails({ KITE_WS_URL: 'http://x/' }, 'KITE_WS_URL');
    fails({ KITE_API_KEY: 'k' }, 'KITE_ACCESS_TOKEN');
    fails({ KITE_ACCESS_TOKEN: 't' }, 'KITE_API_KEY');
  });

  it('never repeats a database password in its message', () => {
    const err = fails({ DATABASE_URL: 'mysql://u:hunter2@h/db' }, 'DATABASE_URL');
    expect(err.message).not.toContain('hunter2');
  });

  it('stops `npm start` with a message naming the variable', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      env: { ...process.env, PORT: 'eighty' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('PORT');
    expect(r.stderr).toContain('"eighty" is not a whole number');
  });
});

describe('config: Kite reconnect', () => {
  it('caps the reconnect delay at 5000 ms unless KITE_RECONNECT_MAX_MS says otherwise', () => {
    expect(loadConfig({}).kiteReconnectMaxMs).toBe(5000);
    expect(loadConfig({ KITE_RECONNECT_MAX_MS: '500' }).kiteReconnectMaxMs).toBe(500);
    expect(loadConfig({ KITE_RECONNECT_MAX_MS: '300000' }).kiteReconnectMaxMs).toBe(300_000);
  });

  it('refuses a KITE_RECONNECT_MAX_MS outside 500..300000 or not a whole number, naming it', () => {
    for (const bad of ['499', '300001', '0', '-1', '5s', '2.5', 'fast']) {
      expect(fails({ KITE_RECONNECT_MAX_MS: bad }, 'KITE_RECONNECT_MAX_MS').message).toContain('5000');
    }
  });
});

describe('config: roles', () => {
  it('runs everything in one process unless ROLE says otherwise', () => {
    expect(loadConfig({}).role).toBe('all');
    const urls = { DATABASE_URL: 'postgres://root@127.0.0.1:5432/test', REDIS_URL: 'redis://127.0.0.1:6379/0' };
    expect(loadConfig({ ROLE: 'ingest', ...urls }).role).toBe('ingest');
    expect(loadConfig({ ROLE: 'Gateway', ...urls }).role).toBe('gateway');
  });

  it('refuses an unknown role, naming ROLE', () => {
    fails({ ROLE: 'worker' }, 'ROLE');
  });

  it('refuses ingest and gateway roles without Redis or PostgreSQL, naming the missing one', () => {
    expect(fails({ ROLE: 'gateway', DATABASE_URL: 'postgres://root@127.0.0.1:5432/test' }, 'REDIS_URL').message).toMatch(/ROLE=gateway/);
    expect(fails({ ROLE: 'ingest', REDIS_URL: 'redis://127.0.0.1:6379/0' }, 'DATABASE_URL').message).toMatch(/ROLE=ingest/);
  });
});

describe('config: API keys and cache', () => {
  it('reads API_KEYS as name:secret pairs, blanks and empty entries ignored', () => {
    const c = loadConfig({ API_KEYS: ' alice:alice-secret-0123456789 , ,risk_desk-2:AbCdEfGh_IjKl-MnOp ' });
    expect(c.apiKeys).toEqual([
      { name: 'alice', secret: 'alice-secret-0123456789' },
      { name: 'risk_desk-2', secret: 'AbCdEfGh_IjKl-MnOp' },
    ]);
    expect(Object.isFrozen(c.apiKeys[0])).toBe(true);
    expect(loadConfig({}).apiKeys).toEqual([]);
  });

  it('refuses bad API_KEYS entries without ever echoing a secret', () => {
    const secret = 'hunter2hunter2hunter2';
    for (const v of [
      'alice', // no colon
      `Alice:${secret}`, // upper-case name
      `:${secret}`,
      `${'a'.repeat(65)}:${secret}`,
      'alice:short-hunter2', // 13 characters
      `alice:${secret}!`, // bad character
      `alice:${'x'.repeat(257)}`,
      `alice:${secret},alice:${secret}X`, // duplicate name
      `alice:${secret},bob:${secret}`, // shared secret
    ]) {
      const err = fails({ API_KEYS: v }, 'API_KEYS');
      expect(err.message).not.toContain('hunter2');
    }
    expect(fails({ API_KEYS: `alice:${secret},alice:${secret}X` }, 'API_KEYS').message).toContain('"alice" is listed twice');
  });

  it('reads CACHE_FLUSH_MS and REDIS_PREFIX with their defaults', () => {
    expect(loadConfig({}).cacheFlushMs).toBe(50);
    expect(loadConfig({}).redisPrefix).toBe('n50:');
    const c = loadConfig({ CACHE_FLUSH_MS: '200', REDIS_PREFIX: 'staging:n50:' });
    expect(c.cacheFlushMs).toBe(200);
    expect(c.redisPrefix).toBe('staging:n50:');
    fails({ CACHE_FLUSH_MS: '0' }, 'CACHE_FLUSH_MS');
    fails({ REDIS_PREFIX: 'has space' }, 'REDIS_PREFIX');
  });
});

describe('config: storage writer and reader', () => {
  it('has measured defaults and reads every WRITER_/READER_/SPILL_/RETENTION setting', () => {
    expect(loadConfig({}).storage).toEqual({
      batchRows: 5000, batchMs: 100, connections: 4, readConnections: 2, stallMs: 30_000, spillMaxBytes: 1024 ** 3, marketDataRetentionDays: 30, barsRetentionDays: 365,
    });
    const c = loadConfig({
      WRITER_BATCH_ROWS: '2000', WRITER_BATCH_MS: '50', WRITER_CONNECTIONS: '2', READER_CONNECTIONS: '3', WRITER_STALL_MS: '5000',
      SPILL_MAX_BYTES: '104857600', MARKET_DATA_RETENTION_DAYS: '0', BARS_RETENTION_DAYS: '730',
    });
    expect(c.storage).toEqual({
      batchRows: 2000, batchMs: 50, connections: 2, readConnections: 3, stallMs: 5000, spillMaxBytes: 104_857_600, marketDataRetentionDays: 0, barsRetentionDays: 730,
    });
    expect(Object.isFrozen(c.storage)).toBe(true);
  });

  it('names the storage variable and an example for each bad value', () => {
    fails({ WRITER_BATCH_ROWS: '0' }, 'WRITER_BATCH_ROWS');
    fails({ WRITER_BATCH_MS: 'soon' }, 'WRITER_BATCH_MS');
    fails({ WRITER_CONNECTIONS: '100' }, 'WRITER_CONNECTIONS');
    fails({ READER_CONNECTIONS: '0' }, 'READER_CONNECTIONS');
    fails({ READER_CONNECTIONS: 'few' }, 'READER_CONNECTIONS');
    fails({ WRITER_STALL_MS: '10' }, 'WRITER_STALL_MS');
    fails({ SPILL_MAX_BYTES: '1k' }, 'SPILL_MAX_BYTES');
    fails({ MARKET_DATA_RETENTION_DAYS: '-1' }, 'MARKET_DATA_RETENTION_DAYS');
  });

  it('reads the analytics settings, with a one-second refresh, one thread and 5.5 % by default', () => {
    expect(loadConfig({}).analytics).toEqual({ refreshMs: 1000, threads: 1, rate: 0.055, staleMs: 30_000, oiIntervalMs: 300_000, ivLookbackDays: 365 });
    const c = loadConfig({
      ANALYTICS_REFRESH_MS: '250', ANALYTICS_THREADS: '2', RISK_FREE_RATE: '0.0675', ANALYTICS_STALE_MS: '5000',
      ANALYTICS_OI_INTERVAL_MS: '900000', ANALYTICS_IV_LOOKBACK_DAYS: '90',
    });
    expect(c.analytics).toEqual({ refreshMs: 250, threads: 2, rate: 0.0675, staleMs: 5000, oiIntervalMs: 900_000, ivLookbackDays: 90 });
    expect(loadConfig({ ANALYTICS_REFRESH_MS: '0' }).analytics.refreshMs).toBe(0);
  });

  it('names the analytics variable and an example for each bad value', () => {
    fails({ ANALYTICS_REFRESH_MS: '10' }, 'ANALYTICS_REFRESH_MS');
    fails({ ANALYTICS_REFRESH_MS: 'fast' }, 'ANALYTICS_REFRESH_MS');
    fails({ ANALYTICS_THREADS: '0' }, 'ANALYTICS_THREADS');
    fails({ RISK_FREE_RATE: '6.5%' }, 'RISK_FREE_RATE');
    fails({ RISK_FREE_RATE: '6.5' }, 'RISK_FREE_RATE');
    fails({ ANALYTICS_OI_INTERVAL_MS: '10' }, 'ANALYTICS_OI_INTERVAL_MS');
  });

  it('reads the slow WebSocket client limits, 1 MiB / 16 MiB / 5 s by default', () => {
    expect(loadConfig({}).ws).toEqual({ conflateBytes: 1 << 20, closeBytes: 16 << 20, stallCloseMs: 5000 });
    const c = loadConfig({ WS_CONFLATE_BYTES: '65536', WS_CLOSE_BYTES: '1048576', WS_STALL_CLOSE_MS: '1000' });
    expect(c.ws).toEqual({ conflateBytes: 65_536, closeBytes: 1_048_576, stallCloseMs: 1000 });
    expect(Object.isFrozen(c.ws)).toBe(true);
  });

  it('names the WebSocket limit and an example for each bad value, and refuses a close limit not above the conflation one', () => {
    fails({ WS_CONFLATE_BYTES: '1MiB' }, 'WS_CONFLATE_BYTES');
    fails({ WS_CONFLATE_BYTES: '0' }, 'WS_CONFLATE_BYTES');
    fails({ WS_CLOSE_BYTES: '-1' }, 'WS_CLOSE_BYTES');
    fails({ WS_STALL_CLOSE_MS: '0' }, 'WS_STALL_CLOSE_MS');
    fails({ WS_STALL_CLOSE_MS: 'soon' }, 'WS_STALL_CLOSE_MS');
    expect(fails({ WS_CONFLATE_BYTES: '2097152', WS_CLOSE_BYTES: '2097152' }, 'WS_CLOSE_BYTES').message).toContain('must exceed WS_CONFLATE_BYTES');
    fails({ WS_CLOSE_BYTES: '524288' }, 'WS_CLOSE_BYTES');
  });
});
