/**
 * A quote: the latest canonical tick of one instrument as a plain object, for REST answers,
 * snapshots and tests. Built from the tick layout (src/core/tick.ts `N`) at the edge only:
 * `quoteFromTick` allocates some twenty objects, so nothing on the tick path calls it.
 */
import { N } from '../core/tick.ts';

/** Instrument kinds, indexed by the N.INSTR_TYPE code (instrument-table.ts InstrumentKind). */
export const INSTRUMENT_TYPES = ['INDEX', 'EQ', 'FUT', 'CE', 'PE'] as const;
export type InstrumentType = (typeof INSTRUMENT_TYPES)[number];

/** Kite packet kinds (src/core/packet-slot.ts Kind) → the mode that carries them. */
const MODES = ['ltp', 'ltp', 'quote', 'full', 'quote', 'full'] as const;

export interface DepthLevel {
  /** Rupees. */
  price: number;
  quantity: number;
  /** Number of orders at this price. */
  orders: number;
}

export interface Quote {
  /** Kite instrument token. */
  token: number;
  /** Kite mode the tick arrived in; `ltp` ticks carry only price and times, `quote` no depth/OI. */
  mode: 'ltp' | 'quote' | 'full';
  /** Exchange time of the tick, epoch ms; the service's receive time when Kite sent none. */
  exchTimeMs: number;
  /** Time of the last trade, epoch ms; null when the packet carried none. */
  lastTradeMs: number | null;
  /** Last traded price, rupees. */
  price: number;
  /** Quantity of the last trade. */
  lastQty: number;
  /** Kite's average traded price today, rupees. */
  avgPrice: number;
  /** Volume traded today (cumulative). */
  volume: number;
  /** Total quantity of pending buy orders. */
  buyQty: number;
  /** Total quantity of pending sell orders. */
  sellQty: number;
  /** Day open, high and low, and the previous session's close, rupees. */
  ohlc: { open: number; high: number; low: number; close: number };
  /** Change against the previous close, percent; 0 when the close is unknown (0). */
  change: number;
  /** Open interest (derivatives; 0 otherwise), and its day high and low. */
  oi: number;
  oiHigh: number;
  oiLow: number;
  /** Five best bids (buy) and asks (sell), best first; null when the tick carried no depth. */
  depth: { buy: DepthLevel[]; sell: DepthLevel[] } | null;
  /** Day VWAP, rupees: Kite's average price, or Σpv/Σv of the day; null when neither exists (indices). */
  dayVwap: number | null;
  /** From the instrument master. */
  instrumentType: InstrumentType;
  /** Option strike, rupees; null when not an option. */
  strike: number | null;
  /** 00:00 IST of the expiry day, epoch ms; null for instruments that do not expire. */
  expiryMs: number | null;
  /** When the service received the tick, epoch µs: with exchTimeMs, the feed's latency. */
  recvTimeUs: number;
}

function depthSide(f: Float64Array, at: number): DepthLevel[] {
  const out: DepthLevel[] = [];
  // Each level is [quantity, price, orders] in the tick layout.
  for (let i = 0; i < 5; i++, at += 3) out.push({ price: f[at + 1], quantity: f[at], orders: f[at + 2] });
  return out;
}

/** Copy the canonical tick at f64 index `base` into a Quote. Allocates: edges and tests only. */
export function quoteFromTick(f: Float64Array, base: number): Quote {
  const ltt = f[base + N.LAST_TRADE_MS];
  const dvw = f[base + N.DAY_VWAP];
  const type = INSTRUMENT_TYPES[f[base + N.INSTR_TYPE]] ?? 'EQ';
  const strike = f[base + N.STRIKE];
  const expiry = f[base + N.EXPIRY_MS];
  return {
    token: f[base + N.TOKEN],
    mode: MODES[f[base + N.KIND]] ?? 'quote',
    exchTimeMs: f[base + N.EXCH_TIME_MS],
    lastTradeMs: ltt > 0 ? ltt : null,
    price: f[base + N.PRICE],
    lastQty: f[base + N.LAST_QTY],
    avgPrice: f[base + N.AVG_PRICE],
    volume: f[base + N.VOLUME],
    buyQty: f[base + N.BUY_QTY],
    sellQty: f[base + N.SELL_QTY],
    ohlc: { open: f[base + N.OPEN], high: f[base + N.HIGH], low: f[base + N.LOW], close: f[base + N.CLOSE] },
    change: f[base + N.CHANGE_PCT],
    oi: f[base + N.OI],
    oiHigh: f[base + N.OI_HIGH],
    oiLow: f[base + N.OI_LOW],
    depth: f[base + N.DEPTH_LEVELS] > 0
      ? { buy: depthSide(f, base + N.DEPTH), sell: depthSide(f, base + N.DEPTH + 15) }
      : null,
    dayVwap: dvw === dvw ? dvw : null,
    instrumentType: type,
    strike: type === 'CE' || type === 'PE' ? strike : null,
    expiryMs: expiry > 0 ? expiry : null,
    recvTimeUs: f[base + N.RECV_TIME_US],
  };
}
