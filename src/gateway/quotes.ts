/**
 * Where REST quotes come from. `QuoteSource` is the slice of the quote cache (src/cache) that REST
 * needs: `getQuotes(tokens)`. The cache's `QuoteCache` satisfies it as it is (its `Quote` has every
 * field of `LiveQuote`), so the service passes the cache; `hubQuotes` serves the same from the feed
 * hub's latest ticks, for a gateway without a cache and for tests.
 */
import { N, N_FIELDS } from '../../workers/normalized.ts';
import type { FeedHub } from './hub.ts';

export interface DepthLevel {
  price: number;
  quantity: number;
  orders: number;
}

/** The latest state of one instrument. Prices rupees, times epoch ms. */
export interface LiveQuote {
  token: number;
  /** Exchange time of the tick (the receive time when Kite sent none). */
  exchTimeMs: number;
  lastTradeMs: number | null;
  price: number;
  lastQty: number;
  avgPrice: number;
  volume: number;
  buyQty: number;
  sellQty: number;
  /** Day open, high, low; close is the previous session's. */
  ohlc: { open: number; high: number; low: number; close: number };
  /** Percent against the previous close. */
  change: number;
  oi: number;
  oiHigh: number;
  oiLow: number;
  /** Five levels each side, best first; null when the tick carried none. */
  depth: { buy: DepthLevel[]; sell: DepthLevel[] } | null;
}

export interface QuoteSource {
  /** The latest quote of each token (null when none yet), in the order asked. */
  getQuotes(tokens: readonly number[]): Promise<(LiveQuote | null)[]>;
}

function side(f: Float64Array, at: number): DepthLevel[] {
  const out: DepthLevel[] = [];
  // [quantity, price, orders] per level in the tick layout.
  for (let i = 0; i < 5; i++, at += 3) out.push({ price: f[at + 1], quantity: f[at], orders: f[at + 2] });
  return out;
}

/** A LiveQuote from the canonical tick at `o` in `f`. Allocates: REST edge only. */
export function liveQuoteFromTick(f: Float64Array, o: number): LiveQuote {
  const ltt = f[o + N.LAST_TRADE_MS];
  return {
    token: f[o + N.TOKEN],
    exchTimeMs: f[o + N.EXCH_TIME_MS],
    lastTradeMs: ltt > 0 ? ltt : null,
    price: f[o + N.PRICE],
    lastQty: f[o + N.LAST_QTY],
    avgPrice: f[o + N.AVG_PRICE],
    volume: f[o + N.VOLUME],
    buyQty: f[o + N.BUY_QTY],
    sellQty: f[o + N.SELL_QTY],
    ohlc: { open: f[o + N.OPEN], high: f[o + N.HIGH], low: f[o + N.LOW], close: f[o + N.CLOSE] },
    change: f[o + N.CHANGE_PCT],
    oi: f[o + N.OI],
    oiHigh: f[o + N.OI_HIGH],
    oiLow: f[o + N.OI_LOW],
    depth: f[o + N.DEPTH_LEVELS] > 0 ? { buy: side(f, o + N.DEPTH), sell: side(f, o + N.DEPTH + 15) } : null,
  };
}

/** Quotes from the hub's latest tick per followed instrument (same process, no cache). */
export function hubQuotes(hub: FeedHub): QuoteSource {
  return {
    getQuotes(tokens) {
      return Promise.resolve(tokens.map((t) => {
        const row = hub.rowOfToken.get(t);
        return row === undefined || hub.hasTick[row] === 0 ? null : liveQuoteFromTick(hub.latestTicks, row * N_FIELDS);
      }));
    },
  };
}
