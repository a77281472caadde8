/**
 * A REST server on loopback for tests and the REST bench: the real gateway (uWS app, port 0) with
 * mountRest on it, a feed hub whose latest ticks the fixture writes directly (deterministic
 * quotes, no pipeline), and bars seeded into a real database.
 *
 * Seeded bars are 1-minute bars of whole sessions (09:15-15:30 IST) from a seeded random walk, plus
 * the 15-minute bars aggregated from them, as the aggregate stage would store them; tests compute
 * their own reference candles from the 1-minute bars.
 */
import type { Instrument } from '../../src/core/instrument.ts';
import { selectUniverse } from '../../src/kite/selection.ts';
import { buildNifty50Universe } from '../../src/kite/sim/universe.ts';
import { FeedHub } from '../../src/gateway/hub.ts';
import { startGateway, type Gateway } from '../../src/gateway/server.ts';
import { mountRest, type ReadyState, type RestDeps, type RestHandle } from '../../src/gateway/rest.ts';
import { hubQuotes, type QuoteSource } from '../../src/gateway/quotes.ts';
import { MemoryCache } from '../../src/cache/index.ts';
import type { MetricsSources } from '../../src/gateway/metrics.ts';
import type { Db } from '../../src/core/db.ts';
import { silentLogger } from '../../src/log.ts';
import { N, N_FIELDS, NType } from '../../src/core/tick.ts';
import { IST_OFFSET_MS, MINUTE_MS, timeframeName } from '../../src/core/ist.ts';
import { loadConfig } from '../../src/config.ts';
import { OrderService } from '../../src/orders/service.ts';
import { ReplayManager } from '../../src/replay/manager.ts';
import { dbStore, OrderStore } from '../../src/orders/store.ts';

export const KEY = 'rest-test-key-0123456789';
export const OTHER_KEY = 'rest-other-key-0123456789';
export const auth = { verify: (s: string) => (s === KEY ? { name: 'alice' } : s === OTHER_KEY ? { name: 'bob' } : null) };

export const TODAY = new Date('2025-12-03T04:00:00Z'); // a Wednesday, 09:30 IST
export const master: Instrument[] = buildNifty50Universe({ today: TODAY, strikesEachSide: 6 });
const followedTokens = selectUniverse(master, { strikes: 2, expiries: 2, indexLevel: 26000, today: TODAY });
const byToken = new Map(master.map((i) => [i.instrumentToken, i]));
export const followed: Instrument[] = followedTokens.map((t) => byToken.get(t)!);

export const bySymbol = (s: string): Instrument => {
  const [ex, sym] = s.includes(':') ? s.split(':') : ['NSE', s];
  const i = master.find((x) => x.exchange === ex && x.tradingsymbol === sym);
  if (!i) throw new Error(`no ${s} in the test master`);
  return i;
};

/** Stored timeframes in the tests: 1m and 15m (no 1d, so day candles are rolled up). */
export const STORED = [MINUTE_MS, 15 * MINUTE_MS];

// --- ticks ---------------------------------------------------------------------------------------

export interface TickSpec {
  price: number;
  close: number;
  oi?: number;
  volume?: number;
  exchTimeMs?: number;
}

/** A deterministic tick per followed instrument, except every 7th row (left without one). */
export function tickSpecs(): Map<number, TickSpec> {
  const out = new Map<number, TickSpec>();
  followed.forEach((i, k) => {
    if (k % 7 === 6) return;
    const base = i.instrumentType === 'CE' || i.instrumentType === 'PE' ? 100 + (k % 13) * 5 : 1000 + k * 10;
    out.set(i.instrumentToken, {
      price: base + 0.05 * (k % 20),
      close: base - 2.5,
      oi: i.segment === 'NFO-OPT' ? 10_000 * (1 + (k % 5)) : 0,
      volume: 1000 * (k + 1),
      exchTimeMs: Date.parse('2025-12-03T04:01:02Z') + k * 1000,
    });
  });
  return out;
}

export function fillTicks(hub: FeedHub, specs: Map<number, TickSpec>): void {
  for (const [token, s] of specs) {
    const row = hub.rowOfToken.get(token)!;
    const f = hub.latestTicks;
    const o = row * N_FIELDS;
    f.fill(0, o, o + N_FIELDS);
    f[o + N.TYPE] = NType.TICK;
    f[o + N.TOKEN] = token;
    f[o + N.KIND] = 5;
    f[o + N.EXCH_TIME_MS] = s.exchTimeMs ?? 0;
    f[o + N.PRICE] = s.price;
    f[o + N.LAST_QTY] = 5;
    f[o + N.AVG_PRICE] = s.price - 0.5;
    f[o + N.VOLUME] = s.volume ?? 0;
    f[o + N.BUY_QTY] = 700;
    f[o + N.SELL_QTY] = 800;
    f[o + N.OPEN] = s.close + 1;
    f[o + N.HIGH] = s.price + 3;
    f[o + N.LOW] = s.close - 1;
    f[o + N.CLOSE] = s.close;
    f[o + N.CHANGE_PCT] = ((s.price - s.close) * 100) / s.close;
    f[o + N.OI] = s.oi ?? 0;
    f[o + N.OI_HIGH] = (s.oi ?? 0) + 100;
    f[o + N.OI_LOW] = Math.max(0, (s.oi ?? 0) - 100);
    f[o + N.LAST_TRADE_MS] = (s.exchTimeMs ?? 0) - 1000;
    f[o + N.INSTR] = row;
    f[o + N.DEPTH_LEVELS] = 5;
    for (let l = 0; l < 10; l++) {
      const d = o + N.DEPTH + 3 * l;
      f[d] = 10 * (l + 1); // quantity
      f[d + 1] = l < 5 ? s.price - 0.05 * (l + 1) : s.price + 0.05 * (l - 4); // price
      f[d + 2] = l + 1; // orders
    }
    hub.hasTick[row] = 1;
  }
}

// --- bars ----------------------------------------------------------------------------------------

export interface SeedBar {
  token: number;
  tfMs: number;
  st: number;
  o: number;
  h: number;
  l: number;
  c: number;
  v: number;
  vw: number | null;
  n: number;
  oi: number;
}

/** 09:15 IST of an IST date 'YYYY-MM-DD', epoch ms. */
export function sessionOpen(date: string): number {
  return Date.parse(`${date}T00:00:00Z`) - IST_OFFSET_MS + (9 * 60 + 15) * MINUTE_MS;
}

/** One-minute bars of whole sessions (375 a day), a seeded random walk on the 5-paise grid. */
export function minuteBars(token: number, dates: readonly string[], seed: number, withOi: boolean): SeedBar[] {
  let x = seed >>> 0 || 1;
  const rnd = () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x / 2 ** 32;
  };
  let paise = 100_000 + Math.floor(rnd() * 50_000) * 5;
  let oi = 50_000;
  const out: SeedBar[] = [];
  for (const d of dates) {
    const open = sessionOpen(d);
    for (let m = 0; m < 375; m++) {
      const o = paise;
      const steps = [0, 0, 0, 0].map(() => Math.round((rnd() - 0.5) * 40) * 5);
      const path = [o, o + steps[0], o + steps[0] + steps[1], o + steps[0] + steps[1] + steps[2]];
      const c = path[3] + steps[3];
      paise = c;
      const v = withOi || token !== 256265 ? 100 + Math.floor(rnd() * 5000) : 0;
      if (withOi) oi += Math.round((rnd() - 0.4) * 300);
      out.push({
        token, tfMs: MINUTE_MS, st: open + m * MINUTE_MS,
        o: o / 100, h: Math.max(...path, c) / 100, l: Math.min(...path, c) / 100, c: c / 100,
        v, vw: v > 0 ? Math.round((o + c) / 2) / 100 : null, n: v > 0 ? 1 + (m % 9) : 0, oi: withOi ? oi : 0,
      });
    }
  }
  return out;
}

/**
 * Aggregate bars into `tfMs` buckets, on the session grid written out by hand (not ist.ts):
 * minutes since 09:15 divided by the interval; one bucket per day for a day.
 */
export function reference(bars: readonly SeedBar[], tfMs: number): SeedBar[] {
  const out: SeedBar[] = [];
  for (const b of bars) {
    const dayStart = Math.floor((b.st + IST_OFFSET_MS) / 86_400_000) * 86_400_000 - IST_OFFSET_MS;
    const open = dayStart + (9 * 60 + 15) * MINUTE_MS;
    const st = tfMs === 86_400_000 ? dayStart : open + Math.floor((b.st - open) / tfMs) * tfMs;
    const last = out[out.length - 1];
    if (last && last.st === st) {
      last.h = Math.max(last.h, b.h);
      last.l = Math.min(last.l, b.l);
      last.c = b.c;
      const pv = (last.vw ?? 0) * last.v + (b.vw ?? 0) * b.v;
      last.v += b.v;
      last.vw = last.v > 0 ? pv / last.v : null;
      last.n += b.n;
      last.oi = b.oi;
    } else {
      out.push({ ...b, tfMs, st });
    }
  }
  return out;
}

/** Insert bars into the `bars` table (one multi-row INSERT per 1000). */
export async function insertBars(db: Db, bars: readonly SeedBar[]): Promise<void> {
  for (let i = 0; i < bars.length; i += 1000) {
    const chunk = bars.slice(i, i + 1000);
    const params: unknown[] = [];
    const rows = chunk.map((b, k) => {
      const end = b.st + b.tfMs;
      params.push(b.token, timeframeName(b.tfMs), new Date(b.st).toISOString(), new Date(end).toISOString(),
        b.o, b.h, b.l, b.c, b.v, b.vw, b.n, b.oi);
      const p = k * 12;
      return `($${p + 1}, $${p + 2}, $${p + 3}::timestamptz, $${p + 4}::timestamptz, $${p + 5}, $${p + 6}, $${p + 7}, $${p + 8}, $${p + 9}, $${p + 10}, $${p + 11}, $${p + 12}, 1, false, 1)`;
    });
    await db.query(`INSERT INTO bars (token, timeframe, bucket_start, bucket_end, open, high, low, close, volume, vwap, trades, oi, ticks, partial, flags) VALUES ${rows.join(', ')}`, params);
  }
}

/** Day partitions exist on the partitioned path only; create those the seeded days need. */
export async function ensurePartitions(db: Db, fromMs: number, toMs: number): Promise<void> {
  const fn = await db.query<{ ok: boolean }>("SELECT to_regproc('storage_ensure_partitions') IS NOT NULL AS ok");
  if (fn[0].ok) await db.query('SELECT storage_ensure_partitions($1::timestamptz, $2::timestamptz)', [new Date(fromMs).toISOString(), new Date(toMs).toISOString()]);
}

// --- server --------------------------------------------------------------------------------------

export interface RestServer {
  port: number;
  base: string;
  hub: FeedHub;
  handle: RestHandle;
  gateway: Gateway;
  readyState: ReadyState;
  close(): void;
}

export async function startRestServer(opts: {
  db: Db | null;
  ratePerSec?: number;
  burst?: number;
  maxBodyBytes?: number;
  barsLimit?: number;
  metrics?: MetricsSources;
  routes?: (app: Gateway['app'], hub: FeedHub) => void;
  /** Where quotes come from: the in-process quote cache (default), or the hub's latest ticks. */
  quotes?: 'cache' | 'hub';
  extra?: Partial<RestDeps>;
  /** Mount the order routes over a real order service whose store is this database (migrated). */
  orders?: Db;
  /** KITE_API_SECRET for the order routes' postback checksum. */
  postbackSecret?: string;
  /** Mount the replay routes (src/gateway/replays.ts) over a manager with no stored ticks. */
  replays?: boolean;
}): Promise<RestServer> {
  const hub = new FeedHub(followed, STORED);
  const specs = tickSpecs();
  fillTicks(hub, specs);
  let quotes: QuoteSource = hubQuotes(hub);
  if (opts.quotes !== 'hub') {
    // The service's QuoteCache is a QuoteSource as it is; fed the same ticks the hub holds.
    const cache = new MemoryCache();
    for (const token of specs.keys()) cache.putTick(hub.latestTicks, hub.rowOfToken.get(token)! * N_FIELDS);
    quotes = cache;
  }
  const readyState: ReadyState = { feedConnected: true, dbOk: true, cacheOk: true, ringsOk: true };
  let orders: OrderService | null = null;
  if (opts.orders !== undefined) {
    const bySym = new Map(master.map((i) => [`${i.exchange}:${i.tradingsymbol}`, i]));
    const byTok = new Map(master.map((i) => [i.instrumentToken, i]));
    orders = new OrderService({
      config: loadConfig({}).orders,
      store: new OrderStore(dbStore(opts.orders)),
      instrument: (e, sym) => bySym.get(`${e}:${sym}`) ?? null,
      instrumentByToken: (t) => byTok.get(t) ?? null,
      market: hub,
      rows: hub.rows,
      modeOf: () => 'paper',
      push: { order() {}, positions() {} },
      log: silentLogger,
    });
    await orders.start();
  }
  let handle!: RestHandle;
  const gateway = await startGateway({
    host: '127.0.0.1', port: 0, health: () => ({}),
    routes: (app) => {
      opts.routes?.(app, hub);
      const replays = opts.replays
        ? new ReplayManager({
          app, instruments: followed, timeframesMs: STORED, graceMs: 500, auth, log: silentLogger,
          source: { kind: 'proxy' }, query: async () => [], maxSessions: 2,
        })
        : undefined;
      handle = mountRest(app, {
        replays,
        config: {
          apiRatePerSec: opts.ratePerSec ?? 0, apiRateBurst: opts.burst ?? 100,
          apiMaxBodyBytes: opts.maxBodyBytes ?? 65_536, apiBarsLimit: opts.barsLimit ?? 10_000, timeframesMs: STORED,
        },
        auth, hub, quotes, db: opts.db, master: () => master,
        ready: () => ({ ...readyState }),
        metrics: opts.metrics ?? {},
        log: silentLogger,
        now: () => TODAY.getTime(),
        ...(orders === null ? {} : { orders: { orders, postbackSecret: opts.postbackSecret ?? null } }),
        ...opts.extra,
      });
    },
  });
  return {
    port: gateway.port, base: `http://127.0.0.1:${gateway.port}`, hub, handle, gateway, readyState,
    close: () => {
      gateway.close();
      void orders?.close();
    },
  };
}
