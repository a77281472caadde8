/**
 * Normalize: one decoded Kite record (integers, wire units) into the canonical tick (tick.ts):
 * prices in rupees by the token's segment divisor, times in epoch ms, volume delta from the
 * validator, instrument attributes joined from the master. Writes in place into an output slot.
 */
import { DEPTH_ENTRY_WORDS, F, Kind, priceDivisor, type SlotViews } from '../../src/core/packet-slot.ts';
import { N, NType } from '../../src/core/tick.ts';
import type { InstrumentTable } from './instrument-table.ts';

/**
 * Write the canonical tick for the record at word `b` into `out` at f64 index `o`.
 * `exchTimeMs` and `volumeDelta` come from the validator.
 */
export function normalize(
  v: SlotViews, b: number, row: number, table: InstrumentTable,
  exchTimeMs: number, volumeDelta: number, type: number, reason: number,
  out: Float64Array, o: number,
): void {
  const u32 = v.u32;
  const i32 = v.i32;
  const token = u32[b + F.TOKEN];
  const div = priceDivisor(token);
  const kind = u32[b + F.KIND];
  out[o + N.TYPE] = type;
  out[o + N.TOKEN] = token;
  out[o + N.KIND] = kind;
  out[o + N.CONSUMERS] = 0;
  out[o + N.REASON] = reason;
  out[o + N.EXCH_TIME_MS] = exchTimeMs;
  out[o + N.RECV_TIME_US] = v.f64[(b >> 1) + F.RECV_TIME_US_F64];
  const price = i32[b + F.LAST_PRICE] / div;
  out[o + N.PRICE] = price;
  out[o + N.LAST_QTY] = u32[b + F.LAST_QTY];
  out[o + N.AVG_PRICE] = i32[b + F.AVG_PRICE] / div;
  out[o + N.VOLUME] = u32[b + F.VOLUME];
  out[o + N.VOLUME_DELTA] = volumeDelta;
  out[o + N.BUY_QTY] = u32[b + F.BUY_QTY];
  out[o + N.SELL_QTY] = u32[b + F.SELL_QTY];
  out[o + N.OPEN] = i32[b + F.OPEN] / div;
  out[o + N.HIGH] = i32[b + F.HIGH] / div;
  out[o + N.LOW] = i32[b + F.LOW] / div;
  const close = i32[b + F.CLOSE] / div;
  out[o + N.CLOSE] = close;
  out[o + N.CHANGE_PCT] = close !== 0 ? ((price - close) * 100) / close : 0;
  out[o + N.OI] = u32[b + F.OI];
  out[o + N.OI_HIGH] = u32[b + F.OI_HIGH];
  out[o + N.OI_LOW] = u32[b + F.OI_LOW];
  out[o + N.LAST_TRADE_MS] = u32[b + F.LAST_TRADE_TIME] * 1000;
  out[o + N.INSTR] = row;
  if (row >= 0) {
    out[o + N.INSTR_TYPE] = table.kind[row];
    out[o + N.STRIKE] = table.strike[row];
    out[o + N.EXPIRY_MS] = table.expiryMs[row];
  } else {
    out[o + N.INSTR_TYPE] = -1;
    out[o + N.STRIKE] = 0;
    out[o + N.EXPIRY_MS] = 0;
  }
  out[o + N.SEQ] = u32[b + F.SEQ];
  out[o + N.CONN] = u32[b + F.CONN];
  const hasDepth = kind === Kind.FULL;
  out[o + N.DEPTH_LEVELS] = hasDepth ? 5 : 0;
  let w = b + F.DEPTH;
  let d = o + N.DEPTH;
  for (let i = 0; i < 10; i++) {
    out[d] = u32[w];
    out[d + 1] = i32[w + 1] / div;
    out[d + 2] = u32[w + 2];
    w += DEPTH_ENTRY_WORDS;
    d += 3;
  }
}
