/**
 * The msgpack feed's messages: how a canonical tick or a bar becomes what a client decodes.
 *
 * Data frames are `{ type, d }` (itself a shared record) whose `d` is an array of records. Records use
 * msgpackr's shared structures: both ends know these field lists in advance (the typed client in
 * src/client ships them), so a record costs one byte of structure id plus its values, no keys.
 * Clients without msgpackr connect with `?records=0` and get plain maps with the same keys.
 *
 * Tick record, by mode (every later mode extends the earlier one):
 *
 * | key  | mode  | value                                                          |
 * |------|-------|----------------------------------------------------------------|
 * | t    | ltp   | instrument token                                               |
 * | s    | ltp   | trading symbol                                                 |
 * | p    | ltp   | last price, rupees                                             |
 * | ts   | ltp   | exchange time, epoch ms                                        |
 * | q    | quote | last traded quantity                                           |
 * | ap   | quote | average traded price today                                     |
 * | v    | quote | volume today                                                   |
 * | dv   | quote | volume since the previous tick                                 |
 * | bq   | quote | total buy quantity                                             |
 * | sq   | quote | total sell quantity                                            |
 * | o    | quote | day open                                                       |
 * | h    | quote | day high                                                       |
 * | l    | quote | day low                                                        |
 * | c    | quote | previous close                                                 |
 * | ch   | quote | change % against the previous close                            |
 * | oi   | full  | open interest                                                  |
 * | ohi  | full  | OI day high                                                    |
 * | olo  | full  | OI day low                                                     |
 * | ltt  | full  | last trade time, epoch ms (0 when unknown)                     |
 * | dvw  | full  | day VWAP (null when none)                                      |
 * | bid  | full  | 5 × [price, quantity, orders], best first                      |
 * | ask  | full  | 5 × [price, quantity, orders], best first                      |
 * | rt   | full  | receive time at the service, epoch µs (latency measurement)    |
 *
 * Bar record: t, s, tf ('1m'), st (bucket start ms), o, h, l, c, v, vw (null when no volume),
 * n (trades), oi, x (1 = closed, 0 = in progress), pt (1 = partial).
 *
 * Message types: `ticks`, `bars`, `snapshot` (ticks and bars right after a subscribe), `ack`,
 * `error`, `hb` (heartbeat, `{ type: 'hb', ts }`), and the key's own, sent only to sockets opened
 * with that key: `order` (`{ type: 'order', d: row }`, one order as Kite's order book shows it, at
 * each change) and `position` (`{ type: 'position', d: rows }`, all of the key's position
 * rows, at each change). Their rows are plain objects, not shared-structure records.
 */
import { N } from '../core/tick.ts';
import { B, BarFlag } from '../core/bar.ts';
import { timeframeName } from '../core/ist.ts';

export type FeedMode = 'ltp' | 'quote' | 'full';
export const FEED_MODES: readonly FeedMode[] = ['ltp', 'quote', 'full'];

export { createPackr, createUnpackr, PROTOCOL_VERSION, STRUCTURES } from '../core/feed-structures.ts';

export interface TickLtp { t: number; s: string; p: number; ts: number }
export interface TickQuote extends TickLtp { q: number; ap: number; v: number; dv: number; bq: number; sq: number; o: number; h: number; l: number; c: number; ch: number }
export interface TickFull extends TickQuote { oi: number; ohi: number; olo: number; ltt: number; dvw: number | null; bid: number[][]; ask: number[][]; rt: number }
export type FeedTick = TickLtp | TickQuote | TickFull;

export interface FeedBar { t: number; s: string; tf: string; st: number; o: number; h: number; l: number; c: number; v: number; vw: number | null; n: number; oi: number; x: 0 | 1; pt: 0 | 1 }

/**
 * Project the canonical tick at f64 index `o` for a mode. Allocates: the feed's edge.
 *
 * One object literal per mode, no spread: `{ ...ltp, q, ... }` took 14 µs a quote tick and 17 µs a
 * full one (CPU, Node 20), against 55 and 195 ns written out, and was a fifth of the gateway's main
 * thread at 20k ticks/s (bench/feed.bench.ts). Key order is the record structure's: keep it.
 */
export function tickFor(f: Float64Array, o: number, mode: FeedMode, symbol: string): FeedTick {
  if (mode === 'ltp') return { t: f[o + N.TOKEN], s: symbol, p: f[o + N.PRICE], ts: f[o + N.EXCH_TIME_MS] };
  if (mode === 'quote') {
    return {
      t: f[o + N.TOKEN], s: symbol, p: f[o + N.PRICE], ts: f[o + N.EXCH_TIME_MS],
      q: f[o + N.LAST_QTY], ap: f[o + N.AVG_PRICE], v: f[o + N.VOLUME], dv: f[o + N.VOLUME_DELTA],
      bq: f[o + N.BUY_QTY], sq: f[o + N.SELL_QTY], o: f[o + N.OPEN], h: f[o + N.HIGH], l: f[o + N.LOW],
      c: f[o + N.CLOSE], ch: f[o + N.CHANGE_PCT],
    };
  }
  const bid: number[][] = [];
  const ask: number[][] = [];
  for (let i = 0; i < 10; i++) {
    const d = o + N.DEPTH + 3 * i;
    (i < 5 ? bid : ask).push([f[d + 1], f[d], f[d + 2]]);
  }
  const dvw = f[o + N.DAY_VWAP];
  return {
    t: f[o + N.TOKEN], s: symbol, p: f[o + N.PRICE], ts: f[o + N.EXCH_TIME_MS],
    q: f[o + N.LAST_QTY], ap: f[o + N.AVG_PRICE], v: f[o + N.VOLUME], dv: f[o + N.VOLUME_DELTA],
    bq: f[o + N.BUY_QTY], sq: f[o + N.SELL_QTY], o: f[o + N.OPEN], h: f[o + N.HIGH], l: f[o + N.LOW],
    c: f[o + N.CLOSE], ch: f[o + N.CHANGE_PCT],
    oi: f[o + N.OI], ohi: f[o + N.OI_HIGH], olo: f[o + N.OI_LOW], ltt: f[o + N.LAST_TRADE_MS],
    dvw: dvw === dvw ? dvw : null, bid, ask, rt: f[o + N.RECV_TIME_US],
  };
}

export function barFor(f: Float64Array, o: number, symbol: string): FeedBar {
  const vw = f[o + B.VWAP];
  const flags = f[o + B.FLAGS];
  return {
    t: f[o + B.TOKEN], s: symbol, tf: timeframeName(f[o + B.TF_MS]), st: f[o + B.START_MS],
    o: f[o + B.OPEN], h: f[o + B.HIGH], l: f[o + B.LOW], c: f[o + B.CLOSE], v: f[o + B.VOLUME],
    vw: vw === vw ? vw : null, n: f[o + B.TRADES], oi: f[o + B.OI],
    x: (flags & BarFlag.CLOSED) !== 0 ? 1 : 0, pt: (flags & BarFlag.PARTIAL) !== 0 ? 1 : 0,
  };
}

/** Control messages a client sends (msgpack or JSON text). */
export interface ControlMessage {
  op: 'subscribe' | 'unsubscribe' | 'ping';
  /** Echoed in the ack. */
  id?: string | number;
  /** Instrument tokens and/or trading symbols ('NFO:NIFTY25DEC26000CE' or 'INFY'). */
  instruments?: (number | string)[];
  mode?: FeedMode;
  /** Bar timeframes to receive, e.g. ['1m', '5m']. */
  bars?: string[];
  /** Option chains whose analytics to receive at each refresh: an expiry ('2026-12-08', NIFTY's) or 'NAME:YYYY-MM-DD'. */
  chain?: string | string[];
  /** Market breadth of the NIFTY 50 stocks at each refresh. */
  breadth?: boolean;
}
