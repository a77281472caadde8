/** Canonical ticks and bar records for the cache tests, with every field set to something distinct. */
import { N, N_FIELDS, NType } from '../../src/core/tick.ts';
import { B, BAR_FIELDS, BarFlag } from '../../src/core/bar.ts';

/** A full-mode option tick of `token` at `price`, with depth; `seq` varies the other fields. */
export function makeTick(token: number, price: number, seq = 1, over: Partial<Record<keyof typeof N, number>> = {}): Float64Array {
  const f = new Float64Array(N_FIELDS);
  f[N.TYPE] = NType.TICK;
  f[N.TOKEN] = token;
  f[N.KIND] = 5; // FULL
  f[N.CONSUMERS] = 3;
  f[N.EXCH_TIME_MS] = 1_767_000_000_000 + seq * 1000;
  f[N.RECV_TIME_US] = (1_767_000_000_000 + seq * 1000) * 1000 + 123;
  f[N.PRICE] = price;
  f[N.LAST_QTY] = 75;
  f[N.AVG_PRICE] = price - 0.35;
  f[N.VOLUME] = 3_000_000_000 + seq; // past 2^31
  f[N.VOLUME_DELTA] = 75;
  f[N.BUY_QTY] = 120_000 + seq;
  f[N.SELL_QTY] = 98_000 + seq;
  f[N.OPEN] = 101.05;
  f[N.HIGH] = 130.1;
  f[N.LOW] = 95.45;
  f[N.CLOSE] = 100;
  f[N.CHANGE_PCT] = price - 100;
  f[N.OI] = 1_500_000 + seq;
  f[N.OI_HIGH] = 1_600_000;
  f[N.OI_LOW] = 1_400_000;
  f[N.LAST_TRADE_MS] = 1_767_000_000_000 + seq * 1000 - 7;
  f[N.INSTR] = 42;
  f[N.INSTR_TYPE] = 3; // CE
  f[N.STRIKE] = 26_000;
  f[N.EXPIRY_MS] = 1_767_205_800_000;
  f[N.SEQ] = seq;
  f[N.DEPTH_LEVELS] = 5;
  for (let i = 0; i < 10; i++) {
    const d = N.DEPTH + 3 * i;
    f[d] = 75 * (i + 1); // quantity
    f[d + 1] = i < 5 ? price - 0.05 * (i + 1) : price + 0.05 * (i - 4); // price
    f[d + 2] = i + 1; // orders
  }
  f[N.PROC_TIME_US] = f[N.RECV_TIME_US] + 40;
  f[N.DAY_VWAP] = price - 0.2;
  for (const [k, v] of Object.entries(over)) f[N[k as keyof typeof N]] = v;
  return f;
}

/** A 1-minute (or `tfMs`) bar record of `token` starting at `startMs`. */
export function makeBar(token: number, tfMs: number, startMs: number, close: number, flags = 0): Float64Array {
  const f = new Float64Array(BAR_FIELDS);
  f[B.TOKEN] = token;
  f[B.TF_MS] = tfMs;
  f[B.START_MS] = startMs;
  f[B.END_MS] = startMs + tfMs;
  f[B.OPEN] = close - 1.5;
  f[B.HIGH] = close + 2.25;
  f[B.LOW] = close - 3.1;
  f[B.CLOSE] = close;
  f[B.VOLUME] = 4500;
  f[B.VWAP] = close - 0.4;
  f[B.TRADES] = 17;
  f[B.OI] = 1_500_000;
  f[B.TICKS] = 40;
  f[B.FLAGS] = flags;
  return f;
}

export { BarFlag };
