/**
 * The one config module: every setting comes from an environment variable, is checked here at
 * start-up, and is handed out as a frozen object. Nothing else reads `process.env`.
 *
 * A bad value throws ConfigError naming the variable and a valid example; `main` prints it and
 * exits before anything starts.
 */
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from './errors.ts';
import { DEFAULT_TIMEFRAMES, parseTimeframe } from '../workers/stages/session.ts';

export type TickMode = 'ltp' | 'quote' | 'full';
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  readonly port: number;
  readonly host: string;
  /** null when no Kite credentials are set: the built-in simulator stands in. */
  readonly kite: {
    readonly apiKey: string;
    readonly accessToken: string;
  } | null;
  readonly kiteWsUrl: string;
  readonly kiteApiUrl: string;
  /** Mode every subscribed token is set to. `full` is the only one with exchange time, OI and depth. */
  readonly kiteMode: TickMode;
  /** Explicit universe override: instrument tokens or trading symbols. Empty = NIFTY 50 default. */
  readonly kiteInstruments: readonly string[];
  /** Option strikes each side of the money in the default universe. */
  readonly optionStrikes: number;
  /** How many nearest option expiries the default universe follows. */
  readonly optionExpiries: number;
  /** Upstream WebSocket connections to spread tokens over (Kite allows 3 per API key). */
  readonly kiteConnections: number;
  readonly databaseUrl: string | null;
  readonly redisUrl: string | null;
  readonly workers: number;
  /** Bar timeframes, ms, in the order given. */
  readonly timeframesMs: readonly number[];
  readonly logLevel: LogLevel;
  readonly dataDir: string;
  readonly sim: {
    /** Ticks per second the built-in simulator emits in total. */
    readonly rate: number;
    readonly seed: number;
    /** 0 = any free port. */
    readonly port: number;
  };
}

type Env = Record<string, string | undefined>;

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const MODES: readonly TickMode[] = ['ltp', 'quote', 'full'];

export const KITE_WS_URL_DEFAULT = 'wss://ws.kite.trade/';
export const KITE_API_URL_DEFAULT = 'https://api.kite.trade';

function str(env: Env, name: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

function int(env: Env, name: string, dflt: number, min: number, max: number, example: string): number {
  const v = str(env, name);
  if (v === undefined) return dflt;
  if (!/^\d+$/.test(v)) throw new ConfigError(name, `"${v}" is not a whole number`, example);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(name, `${n} is outside ${min}..${max}`, example);
  return n;
}

function url(env: Env, name: string, protocols: readonly string[], example: string): string | undefined {
  const v = str(env, name);
  if (v === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(name, `"${redactUrl(v)}" is not a URL`, example);
  }
  if (!protocols.includes(u.protocol)) {
    throw new ConfigError(name, `protocol "${u.protocol}" is not one of ${protocols.join(', ')}`, example);
  }
  return v;
}

function oneOf<T extends string>(env: Env, name: string, allowed: readonly T[], dflt: T): T {
  const v = str(env, name);
  if (v === undefined) return dflt;
  const lower = v.toLowerCase() as T;
  if (!allowed.includes(lower)) throw new ConfigError(name, `"${v}" is not one of ${allowed.join(', ')}`, dflt);
  return lower;
}

function timeframes(env: Env, name: string): number[] {
  const v = str(env, name) ?? DEFAULT_TIMEFRAMES.join(',');
  const out: number[] = [];
  for (const part of v.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    let ms: number;
    try {
      ms = parseTimeframe(part);
    } catch (e) {
      throw new ConfigError(name, (e as Error).message, DEFAULT_TIMEFRAMES.join(','));
    }
    if (!out.includes(ms)) out.push(ms);
  }
  if (out.length === 0) throw new ConfigError(name, 'lists no timeframe', DEFAULT_TIMEFRAMES.join(','));
  return out;
}

/** Hide a password in a URL before it goes into a message. */
export function redactUrl(v: string): string {
  return v.replace(/\/\/([^:/@]+):([^@]+)@/, '//$1:***@');
}

export function loadConfig(env: Env = process.env): Config {
  const apiKey = str(env, 'KITE_API_KEY');
  const accessToken = str(env, 'KITE_ACCESS_TOKEN');
  if ((apiKey === undefined) !== (accessToken === undefined)) {
    const missing = apiKey === undefined ? 'KITE_API_KEY' : 'KITE_ACCESS_TOKEN';
    throw new ConfigError(
      missing,
      'is required when the other Kite credential is set (set both to use Kite, neither for the simulator)',
      missing === 'KITE_API_KEY' ? 'abcd1234efgh5678' : 'XyZ0123456789abcdefXyZ0123456789',
    );
  }
  const host = str(env, 'HOST') ?? '127.0.0.1';
  if (!/^[A-Za-z0-9.:\-[\]]+$/.test(host)) throw new ConfigError('HOST', `"${host}" is not a host name or address`, '0.0.0.0');

  const instruments = (str(env, 'KITE_INSTRUMENTS') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const s of instruments) {
    if (!/^(\d+|[A-Z0-9&\-_. ]+:?[A-Z0-9&\-_. ]*)$/i.test(s)) {
      throw new ConfigError('KITE_INSTRUMENTS', `"${s}" is neither an instrument token nor a trading symbol`, '256265,NFO:NIFTY26JAN24000CE');
    }
  }

  const cores = Math.max(1, os.availableParallelism());
  const config: Config = {
    port: int(env, 'PORT', 3000, 0, 65535, '3000'),
    host,
    kite: apiKey !== undefined && accessToken !== undefined ? { apiKey, accessToken } : null,
    kiteWsUrl: url(env, 'KITE_WS_URL', ['ws:', 'wss:'], KITE_WS_URL_DEFAULT) ?? KITE_WS_URL_DEFAULT,
    kiteApiUrl: (url(env, 'KITE_API_URL', ['http:', 'https:'], KITE_API_URL_DEFAULT) ?? KITE_API_URL_DEFAULT).replace(/\/+$/, ''),
    kiteMode: oneOf(env, 'KITE_MODE', MODES, 'full'),
    kiteInstruments: instruments,
    optionStrikes: int(env, 'OPTION_STRIKES', 10, 0, 200, '10'),
    optionExpiries: int(env, 'OPTION_EXPIRIES', 2, 0, 12, '2'),
    kiteConnections: int(env, 'KITE_CONNECTIONS', 3, 1, 3, '3'),
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:'], 'postgres://user@127.0.0.1:5432/nifty') ?? null,
    redisUrl: url(env, 'REDIS_URL', ['redis:', 'rediss:'], 'redis://127.0.0.1:6379/0') ?? null,
    workers: int(env, 'WORKERS', Math.min(2, cores), 1, 64, String(Math.min(2, cores))),
    timeframesMs: timeframes(env, 'BAR_TIMEFRAMES'),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    dataDir: path.resolve(str(env, 'DATA_DIR') ?? 'data'),
    sim: {
      rate: int(env, 'SIM_RATE', 2000, 1, 10_000_000, '2000'),
      seed: int(env, 'SIM_SEED', 1, 0, 2 ** 31 - 1, '1'),
      port: int(env, 'SIM_PORT', 0, 0, 65535, '0'),
    },
  };
  return deepFreeze(config);
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
