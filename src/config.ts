/**
 * The one config module: every setting comes from an environment variable, is checked here at
 * start-up, and is handed out as a frozen object. Nothing else reads `process.env`.
 *
 * A bad value throws ConfigError naming the variable and a valid example; `main` prints it and
 * exits before anything starts.
 */
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from './core/errors.ts';
import { DEFAULT_TIMEFRAMES, parseTimeframe } from './core/ist.ts';
import type { TickMode } from './core/instrument.ts';
import { DEFAULT_PIPELINE_WAIT, MAX_SPIN_US, parseWaitPolicy, type WaitPolicy } from './core/ring.ts';


export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
/** JSON lines for machines; `pretty` for a person; `auto` is pretty when stdout is a terminal. */
export type LogFormat = 'auto' | 'json' | 'pretty';

/**
 * What this process runs (src/service.ts): `all` everything in one process; `ingest` the Kite
 * connections, rings, shards, batch writer and analytics, publishing each drain to the gateways
 * through Redis (src/scale/); `gateway` the client side (/ws, /kite, REST, orders, dashboard) fed
 * from Redis, with no Kite connection of its own.
 */
export type Role = 'all' | 'ingest' | 'gateway';
export const ROLES: readonly Role[] = ['all', 'ingest', 'gateway'];

export interface Config {
  readonly role: Role;
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
  /**
   * Cap of the exponential reconnect delay to Kite, ms (KITE_RECONNECT_MAX_MS). Default 5000:
   * after Kite refused connections for 30 s, recovery took 13.7 s under the old 30 s cap (the
   * next attempt was already scheduled that far out), 1.5-5.1 s under this one.
   */
  readonly kiteReconnectMaxMs: number;
  readonly databaseUrl: string | null;
  readonly redisUrl: string | null;
  /** Prefix of every Redis key the cache writes, so environments can share one Redis. */
  readonly redisPrefix: string;
  /** How often the cache writes the latest quotes and bars to Redis, ms. */
  readonly cacheFlushMs: number;
  /** API keys from API_KEYS (secrets in memory only, never written or logged). */
  readonly apiKeys: readonly { readonly name: string; readonly secret: string }[];
  readonly workers: number;
  /**
   * How pipeline threads wait for ticks (PIPELINE_WAIT): park, or spin so many µs first. Default
   * park: spinning cost 29-33 % of the saturated throughput on two cores and gained nothing the
   * noise did not hide (the figures: DEFAULT_PIPELINE_WAIT in src/core/ring.ts, bench/wait.bench.ts).
   */
  readonly pipelineWait: WaitPolicy;
  /** REST: requests per second each API key may make (token bucket refill); 0 = no limit. */
  readonly apiRatePerSec: number;
  /** REST: requests an API key may make at once before the rate applies (bucket size). */
  readonly apiRateBurst: number;
  /** REST: largest request body accepted, bytes (413 past it). */
  readonly apiMaxBodyBytes: number;
  /** REST: most bars one `/api/bars` answer carries (the `limit` parameter's maximum and default). */
  readonly apiBarsLimit: number;
  /** Bar timeframes, ms, in the order given. */
  readonly timeframesMs: readonly number[];
  /** Replay sessions open at once at most (src/replay/): each is a thread and a database connection. */
  readonly replayMaxSessions: number;
  /** Slow WebSocket clients on /ws and /kite (src/gateway/slow-clients.ts). */
  readonly ws: {
    /** Unsent bytes past which a client is slow: /ws conflates it, and the stall clock runs. */
    readonly conflateBytes: number;
    /** Unsent bytes past which a client is closed (4008). */
    readonly closeBytes: number;
    /** A slow client taking nothing for this long is closed (4008), ms. */
    readonly stallCloseMs: number;
  };
  readonly logLevel: LogLevel;
  readonly logFormat: LogFormat;
  readonly dataDir: string;
  /** The batch writer (workers/writer/) and, on PostgreSQL, the reader (workers/reader/). */
  readonly storage: {
    /** Rows that make a batch due at once. */
    readonly batchRows: number;
    /** Age at which a batch is due however small, ms. */
    readonly batchMs: number;
    /** Connections, each with one batch in flight (PostgreSQL; the embedded database has one). */
    readonly connections: number;
    /** Connections of the read pool (REST history, /ready), apart from the writer's; PostgreSQL only. */
    readonly readConnections: number;
    /** A commit (or, on PostgreSQL, a read) taking longer than this restarts the writer (reader) thread, ms. */
    readonly stallMs: number;
    /** Bound of the on-disk spill; when full the feed is paused, nothing dropped. */
    readonly spillMaxBytes: number;
    /** Days of ticks kept (0 = forever); server paths only. */
    readonly marketDataRetentionDays: number;
    /** Days of bars kept (0 = forever); server paths only. */
    readonly barsRetentionDays: number;
  };
  /** Orders (src/orders/): pre-trade checks, Kite's shared rate limits, the paper broker. */
  readonly orders: OrdersConfig;
  /** Option-chain analytics and breadth (src/analytics/), computed on a piscina pool. */
  readonly analytics: AnalyticsConfig;
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
const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];
const MODES: readonly TickMode[] = ['ltp', 'quote', 'full'];

export const KITE_WS_URL_DEFAULT = 'wss://ws.kite.trade/';
/** KITE_RECONNECT_MAX_MS's default (Config.kiteReconnectMaxMs says why). */
export const KITE_RECONNECT_MAX_MS_DEFAULT = 5000;
/** Settings of the order path. Kite's limits change: every number is here, none in the code. */
export interface OrdersConfig {
  /** `exchange`: NSE's session in IST on trading days; `always`: any time (the simulator's default). */
  readonly marketHours: 'exchange' | 'always';
  /** The paper broker's delay between accepting an order and matching it, ms. */
  readonly paperLatencyMs: number;
  /** Kite's account-wide order budget (shared by every key): per second, minute and IST day. */
  readonly ratePerSec: number;
  readonly ratePerMin: number;
  readonly ratePerDay: number;
  /** Modifications Kite allows per order. */
  readonly modificationsPerOrder: number;
  /** A key counts as active, and so takes a share of the budget, this long after its last order request, ms. */
  readonly rateActiveMs: number;
  /** NSE's quantity freeze per F&O underlying (Kite's master has no such column), units. */
  readonly freezeQty: Readonly<Record<string, number>>;
  /** Per-key risk limits: largest order value (paise), open quantity per instrument, orders per IST day. */
  readonly maxOrderValuePaise: number;
  readonly maxOpenQty: number;
  readonly maxOrdersPerDay: number;
  /** Day's band for EQ and FUT prices: previous close ± this percent (the feed carries no circuit limits). */
  readonly priceBandPct: number;
  /** Options: a price above reference × (1 + this percent / 100) is refused; below, down to one tick, is allowed. */
  readonly optionBandPct: number;
  /** Paper capital of every paper key, paise. */
  readonly paperCapitalPaise: number;
  /** Margin as a fraction of order value for MIS and NRML (an approximation: SPAN is not available here). */
  readonly marginMis: number;
  readonly marginNrml: number;
  /** Kite's API secret: verifies postbacks (SHA-256 of order_id + order_timestamp + secret). null: postbacks refused. */
  readonly kiteApiSecret: string | null;
  /** Live orders: a working order with no update for this long has its history read from Kite, ms. */
  readonly livePollMs: number;
  /** Live orders: how long a request to Kite may take before it counts as lost (then looked up, never re-sent blindly), ms. */
  readonly kiteTimeoutMs: number;
}

export interface AnalyticsConfig {
  /** How often the chain analytics and breadth are recomputed, ms; 0 turns analytics off. */
  readonly refreshMs: number;
  /** Threads of the analytics pool. */
  readonly threads: number;
  /** Continuously compounded annual risk-free rate for Black-76 (0.055 = 5.5 %). */
  readonly rate: number;
  /** A quote whose exchange time is this far behind the chain's newest gets no IV ('stale'), ms. */
  readonly staleMs: number;
  /** OI change is reported since the day's open and since this long ago, ms. */
  readonly oiIntervalMs: number;
  /** The IV percentile looks back this many days of stored minutes. */
  readonly ivLookbackDays: number;
}

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

export const API_KEY_NAME = /^[a-z0-9_-]{1,64}$/;
/** Secrets are 16..256 URL-safe characters: 16 of 64 symbols is 96 bits, too many to guess. */
export const API_KEY_SECRET = /^[A-Za-z0-9_-]{16,256}$/;
const API_KEYS_EXAMPLE = 'alice:Zx8_q2Lr-Vb61KpTw9Yc,bob:...';

/**
 * API_KEYS: `name:secret,name:secret`. Messages name the key but never echo a secret, since
 * start-up errors go to the terminal and to log collectors.
 */
function apiKeys(env: Env, name: string): { name: string; secret: string }[] {
  const v = str(env, name);
  if (v === undefined) return [];
  const out: { name: string; secret: string }[] = [];
  const parts = v.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const [i, part] of parts.entries()) {
    const colon = part.indexOf(':');
    if (colon < 0) throw new ConfigError(name, `entry ${i + 1} has no ":" between name and secret`, API_KEYS_EXAMPLE);
    const keyName = part.slice(0, colon);
    const secret = part.slice(colon + 1);
    if (!API_KEY_NAME.test(keyName)) {
      throw new ConfigError(name, `entry ${i + 1}: name "${keyName.slice(0, 70)}" is not 1-64 of a-z 0-9 _ -`, API_KEYS_EXAMPLE);
    }
    if (!API_KEY_SECRET.test(secret)) {
      throw new ConfigError(name, `key "${keyName}": secret must be 16-256 of A-Z a-z 0-9 _ - (it has ${secret.length} characters; not shown)`, API_KEYS_EXAMPLE);
    }
    const dup = out.find((k) => k.name === keyName || k.secret === secret);
    if (dup) {
      throw new ConfigError(name, dup.name === keyName ? `key "${keyName}" is listed twice` : `keys "${dup.name}" and "${keyName}" share a secret`, API_KEYS_EXAMPLE);
    }
    out.push({ name: keyName, secret });
  }
  return out;
}

function redisPrefix(env: Env, name: string): string {
  // Never empty (unset means the default): the cache's keys must be findable, and deletable, by
  // prefix in a Redis that other apps share.
  const v = str(env, name) ?? 'n50:';
  if (!/^[A-Za-z0-9_.:-]{1,64}$/.test(v)) throw new ConfigError(name, `"${v.slice(0, 70)}" is not 1-64 of A-Z a-z 0-9 _ . : -`, 'n50:');
  return v;
}

/** Whole rupees, returned as paise (money is integer paise in the order path). */
function rupees(env: Env, name: string, dflt: number, example: string): number {
  return int(env, name, dflt, 1, 1_000_000_000_000, example) * 100;
}

/** A fraction in (0, 1], written as a decimal. */
function fraction(env: Env, name: string, dflt: number, example: string): number {
  const v = str(env, name);
  if (v === undefined) return dflt;
  if (!/^(0(\.\d+)?|1(\.0+)?)$/.test(v) || Number(v) <= 0) throw new ConfigError(name, `"${v}" is not a fraction in (0, 1]`, example);
  return Number(v);
}

/**
 * FREEZE_QTY: `UNDERLYING=units,...`, NSE's quantity freeze per F&O underlying (Kite's master has no
 * such column). Defaults: NSE's circulars effective September 2025 (NIFTY 1,800; BANKNIFTY 600;
 * FINNIFTY 1,800; MIDCPNIFTY 2,800). Entries given replace the default of that underlying only.
 */
export const FREEZE_QTY_DEFAULT: Readonly<Record<string, number>> = { NIFTY: 1800, BANKNIFTY: 600, FINNIFTY: 1800, MIDCPNIFTY: 2800 };
function freezeTable(env: Env, name: string): Record<string, number> {
  const out: Record<string, number> = { ...FREEZE_QTY_DEFAULT };
  const v = str(env, name);
  if (v === undefined) return out;
  for (const part of v.split(',').map((x) => x.trim()).filter((x) => x !== '')) {
    const m = /^([A-Z0-9&_-]{1,32})=(\d{1,9})$/.exec(part);
    if (m === null || Number(m[2]) === 0) throw new ConfigError(name, `"${part.slice(0, 40)}" is not UNDERLYING=units`, 'NIFTY=1800,BANKNIFTY=600');
    out[m[1]] = Number(m[2]);
  }
  return out;
}

/** A decimal number in [min, max] (`0.055`, `-0.01`). */
function decimal(env: Env, name: string, dflt: number, min: number, max: number, example: string): number {
  const v = str(env, name);
  if (v === undefined) return dflt;
  if (!/^-?\d+(\.\d+)?$/.test(v)) throw new ConfigError(name, `"${v}" is not a decimal number`, example);
  const n = Number(v);
  if (n < min || n > max) throw new ConfigError(name, `${n} is outside ${min}..${max}`, example);
  return n;
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

  const role = oneOf(env, 'ROLE', ROLES, 'all');
  const databaseUrl = url(env, 'DATABASE_URL', ['postgres:', 'postgresql:'], 'postgres://user@127.0.0.1:5432/nifty') ?? null;
  const redisUrl = url(env, 'REDIS_URL', ['redis:', 'rediss:'], 'redis://127.0.0.1:6379/0') ?? null;
  if (role !== 'all') {
    // The roles meet only through these two: the ingest publishes each drain and the latest state
    // to Redis and holds its ownership lease in PostgreSQL; gateways read both.
    if (redisUrl === null) throw new ConfigError('REDIS_URL', `is required with ROLE=${role}: ingest and gateways exchange ticks through Redis`, 'redis://127.0.0.1:6379/0');
    if (databaseUrl === null) throw new ConfigError('DATABASE_URL', `is required with ROLE=${role}: the processes share one PostgreSQL (the embedded database is one process's)`, 'postgres://user@127.0.0.1:5432/nifty');
  }

  const cores = Math.max(1, os.availableParallelism());
  const config: Config = {
    role,
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
    kiteReconnectMaxMs: int(env, 'KITE_RECONNECT_MAX_MS', KITE_RECONNECT_MAX_MS_DEFAULT, 500, 300_000, String(KITE_RECONNECT_MAX_MS_DEFAULT)),
    databaseUrl,
    redisUrl,
    redisPrefix: redisPrefix(env, 'REDIS_PREFIX'),
    cacheFlushMs: int(env, 'CACHE_FLUSH_MS', 50, 1, 60_000, '50'),
    apiKeys: apiKeys(env, 'API_KEYS'),
    // One core stays with the front thread (decode, feeds, REST): on 2 cores, 2 shards put three
    // busy threads on two cores and tripled p99 latency at 100k ticks/s in bench/pipeline.
    workers: int(env, 'WORKERS', Math.max(1, cores - 1), 1, 64, String(Math.max(1, cores - 1))),
    pipelineWait: pipelineWait(env, 'PIPELINE_WAIT'),
    apiRatePerSec: int(env, 'API_RATE_PER_SEC', 50, 0, 1_000_000, '50'),
    apiRateBurst: int(env, 'API_RATE_BURST', 100, 1, 1_000_000, '100'),
    apiMaxBodyBytes: int(env, 'API_MAX_BODY_BYTES', 65_536, 1, 16 << 20, '65536'),
    apiBarsLimit: int(env, 'API_BARS_LIMIT', 10_000, 1, 1_000_000, '10000'),
    timeframesMs: timeframes(env, 'BAR_TIMEFRAMES'),
    replayMaxSessions: int(env, 'REPLAY_MAX_SESSIONS', 8, 0, 256, '8'),
    ws: wsLimits(env),
    logLevel: oneOf(env, 'LOG_LEVEL', LOG_LEVELS, 'info'),
    logFormat: oneOf(env, 'LOG_FORMAT', LOG_FORMATS, 'auto'),
    dataDir: path.resolve(str(env, 'DATA_DIR') ?? 'data'),
    storage: {
      batchRows: int(env, 'WRITER_BATCH_ROWS', 5000, 1, 1_000_000, '5000'),
      batchMs: int(env, 'WRITER_BATCH_MS', 100, 1, 60_000, '100'),
      connections: int(env, 'WRITER_CONNECTIONS', 4, 1, 32, '4'),
      readConnections: int(env, 'READER_CONNECTIONS', 2, 1, 32, '2'),
      stallMs: int(env, 'WRITER_STALL_MS', 30_000, 1000, 3_600_000, '30000'),
      spillMaxBytes: int(env, 'SPILL_MAX_BYTES', 1024 ** 3, 1024 * 1024, 2 ** 50, String(1024 ** 3)),
      marketDataRetentionDays: int(env, 'MARKET_DATA_RETENTION_DAYS', 30, 0, 36_500, '30'),
      barsRetentionDays: int(env, 'BARS_RETENTION_DAYS', 365, 0, 36_500, '365'),
    },
    orders: {
      marketHours: oneOf(env, 'MARKET_HOURS', ['exchange', 'always'] as const, apiKey === undefined ? 'always' : 'exchange'),
      paperLatencyMs: int(env, 'PAPER_LATENCY_MS', 20, 0, 60_000, '20'),
      ratePerSec: int(env, 'KITE_ORDER_RATE_PER_SEC', 10, 1, 1_000_000, '10'),
      ratePerMin: int(env, 'KITE_ORDER_RATE_PER_MIN', 400, 1, 1_000_000, '400'),
      ratePerDay: int(env, 'KITE_ORDER_RATE_PER_DAY', 5000, 1, 100_000_000, '5000'),
      modificationsPerOrder: int(env, 'KITE_MODIFICATIONS_PER_ORDER', 25, 1, 10_000, '25'),
      rateActiveMs: int(env, 'ORDER_RATE_ACTIVE_MS', 60_000, 1, 86_400_000, '60000'),
      freezeQty: freezeTable(env, 'FREEZE_QTY'),
      maxOrderValuePaise: rupees(env, 'ORDER_MAX_VALUE', 1_00_00_000, '10000000'),
      maxOpenQty: int(env, 'ORDER_MAX_OPEN_QTY', 100_000, 1, 1_000_000_000, '100000'),
      maxOrdersPerDay: int(env, 'ORDER_MAX_PER_DAY', 5000, 1, 10_000_000, '5000'),
      priceBandPct: int(env, 'PRICE_BAND_PCT', 20, 1, 1000, '20'),
      optionBandPct: int(env, 'OPTION_PRICE_BAND_PCT', 500, 1, 100_000, '500'),
      paperCapitalPaise: rupees(env, 'PAPER_CAPITAL', 1_00_00_000, '10000000'),
      marginMis: fraction(env, 'MARGIN_MIS_FRACTION', 0.2, '0.2'),
      marginNrml: fraction(env, 'MARGIN_NRML_FRACTION', 0.2, '0.2'),
      kiteApiSecret: str(env, 'KITE_API_SECRET') ?? null,
      livePollMs: int(env, 'LIVE_POLL_MS', 5000, 100, 3_600_000, '5000'),
      kiteTimeoutMs: int(env, 'KITE_TIMEOUT_MS', 7000, 100, 120_000, '7000'),
    },
    analytics: {
      refreshMs: analyticsRefresh(env, 'ANALYTICS_REFRESH_MS'),
      // One thread: a refresh of the default chain (2 expiries × 21 strikes) is well under a
      // millisecond of work a second (bench/analytics.bench.ts), and every other core is a shard's.
      threads: int(env, 'ANALYTICS_THREADS', 1, 1, 64, '1'),
      // About India's 91-day Treasury bill yield in 2026; set it to the day's rate.
      rate: decimal(env, 'RISK_FREE_RATE', 0.055, -0.05, 0.5, '0.055'),
      staleMs: int(env, 'ANALYTICS_STALE_MS', 30_000, 1, 86_400_000, '30000'),
      oiIntervalMs: int(env, 'ANALYTICS_OI_INTERVAL_MS', 300_000, 1000, 86_400_000, '300000'),
      ivLookbackDays: int(env, 'ANALYTICS_IV_LOOKBACK_DAYS', 365, 1, 36_500, '365'),
    },
    sim: {
      rate: int(env, 'SIM_RATE', 2000, 1, 10_000_000, '2000'),
      seed: int(env, 'SIM_SEED', 1, 0, 2 ** 31 - 1, '1'),
      port: int(env, 'SIM_PORT', 0, 0, 65535, '0'),
    },
  };
  return deepFreeze(config);
}

/**
 * WS_CONFLATE_BYTES, WS_CLOSE_BYTES, WS_STALL_CLOSE_MS. The close limit must exceed the conflation
 * one: a client is thinned before it is cut off.
 */
function wsLimits(env: Env): Config['ws'] {
  const conflateBytes = int(env, 'WS_CONFLATE_BYTES', 1 << 20, 4096, 2 ** 30, String(1 << 20));
  const closeBytes = int(env, 'WS_CLOSE_BYTES', 16 << 20, 8192, 2 ** 31, String(16 << 20));
  if (closeBytes <= conflateBytes) {
    throw new ConfigError('WS_CLOSE_BYTES', `${closeBytes} must exceed WS_CONFLATE_BYTES (${conflateBytes}): a slow client is conflated before it is closed`, String(conflateBytes * 16));
  }
  const stallCloseMs = int(env, 'WS_STALL_CLOSE_MS', 5000, 100, 3_600_000, '5000');
  return { conflateBytes, closeBytes, stallCloseMs };
}

/** ANALYTICS_REFRESH_MS: 0 (off) or 50 ms to an hour; a refresh takes about a millisecond of pool time. */
function analyticsRefresh(env: Env, name: string): number {
  const ms = int(env, name, 1000, 0, 3_600_000, '1000');
  if (ms !== 0 && ms < 50) throw new ConfigError(name, `${ms} is below 50 ms (0 turns analytics off)`, '1000');
  return ms;
}

/** PIPELINE_WAIT: `park`, `spin-park[:µs]` or `adaptive[:µs]` (src/core/ring.ts; default chosen in bench/wait.bench.ts). */
function pipelineWait(env: Env, name: string): WaitPolicy {
  const v = str(env, name);
  if (v === undefined) return DEFAULT_PIPELINE_WAIT;
  const p = parseWaitPolicy(v.toLowerCase());
  if (p === null) throw new ConfigError(name, `"${v}" is not park, spin-park[:µs] or adaptive[:µs] with 1..${MAX_SPIN_US} µs`, 'spin-park:50');
  return p;
}

function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

/** Settings of `npm run tail`: where the feed is and the API key to use. */
export function loadTailConfig(env: Env = process.env): { url: string; key: string } {
  const key = str(env, 'FEED_KEY');
  if (key === undefined) throw new ConfigError('FEED_KEY', 'is not set: pass an API key (the dev key is printed at start-up, or `npm run keys -- create NAME`)', 'n50_dev_...');
  const port = int(env, 'PORT', 3000, 1, 65535, '3000');
  const url = url_(env, 'FEED_URL') ?? `ws://127.0.0.1:${port}/ws`;
  return { url, key };
}

function url_(env: Env, name: string): string | undefined {
  return url(env, name, ['ws:', 'wss:'], 'ws://127.0.0.1:3000/ws');
}
