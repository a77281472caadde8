import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import { ConfigError } from './errors.ts';

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
