import fc from 'fast-check';
import { Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { N, N_FIELDS } from '../core/tick.ts';
import { createPackr, createUnpackr, FEED_MODES, tickFor } from './messages.ts';
import { encodeSymbol, PLAIN_FRAMES, RECORD_FRAMES, RecordWriter } from './msgpack-encoder.ts';

/** Values where msgpackr switches encodings, and the kinds a tick field can hold. */
const EDGES = [
  0, -0, 1, 31, 32, 63, 64, 127, 128, 255, 256, 65535, 65536, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53,
  -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 0.05, 24012.35, -0.5, 1764662400000,
  1764662400123456.7, Number.MAX_VALUE, Number.MIN_VALUE, Infinity, -Infinity, NaN,
];
const valueArb = fc.oneof(
  fc.constantFrom(...EDGES),
  fc.integer({ min: -(2 ** 31), max: 2 ** 32 }),
  fc.double({ noNaN: false }),
  fc.integer({ min: 1, max: 10_000_000 }).map((p) => p / 100), // rupees and paise
);
const symbolArb = fc.oneof(
  fc.constantFrom('NIFTY 50', 'INFY', 'NIFTY25DEC24000CE', 'M&M', 'BAJAJ-AUTO'),
  fc.string({ minLength: 0, maxLength: 40 }),
  fc.string({ minLength: 250, maxLength: 300 }), // str8 and str16 headers
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }), // not ASCII: multi-byte UTF-8
);

function tickArray(values: number[]): Float64Array {
  const f = new Float64Array(N_FIELDS);
  for (let i = 0; i < N_FIELDS; i++) f[i] = values[i % values.length];
  return f;
}

describe('tick record encoder', () => {
  it.each([true, false])('writes the bytes msgpackr writes for the same tick, in every mode (records %s)', (records) => {
    const packr = createPackr(records);
    const w = new RecordWriter(16);
    fc.assert(fc.property(fc.array(valueArb, { minLength: 1, maxLength: N_FIELDS }), symbolArb, (values, symbol) => {
      const f = tickArray(values);
      const sym = encodeSymbol(symbol);
      for (let m = 0; m < 3; m++) {
        w.pos = 0;
        w.tick(f, 0, m, sym, records);
        const ours = Buffer.from(w.buf.subarray(0, w.pos));
        const theirs = Buffer.from(packr.pack(tickFor(f, 0, FEED_MODES[m], symbol)));
        expect(ours.toString('hex')).toBe(theirs.toString('hex'));
      }
    }), { numRuns: 2000 });
  });

  it.each([true, false])('frames concatenated ticks under one header that msgpackr decodes as a ticks frame (records %s)', (records) => {
    const packr = createPackr(records);
    const unpackr = records ? createUnpackr() : new Unpackr({ mapsAsObjects: true });
    const w = new RecordWriter(64); // grows while writing
    for (const count of [0, 1, 15, 16, 300, 70_000]) {
      const f = new Float64Array(N_FIELDS);
      f[N.TOKEN] = 408065;
      f[N.PRICE] = 1520.5;
      f[N.EXCH_TIME_MS] = 1764662400000;
      const sym = encodeSymbol('INFY');
      w.pos = 0;
      w.ticksHeader(count, records);
      expect(w.pos).toBe((records ? RECORD_FRAMES : PLAIN_FRAMES).headerBytes(count));
      const d = [];
      for (let i = 0; i < count; i++) {
        f[N.VOLUME] = i;
        const m = i % 3;
        w.tick(f, 0, m, sym, records);
        d.push(tickFor(f, 0, FEED_MODES[m], 'INFY'));
      }
      const ours = Buffer.from(w.buf.subarray(0, w.pos));
      expect(ours.equals(Buffer.from(packr.pack({ type: 'ticks', d })))).toBe(true);
      expect(unpackr.unpack(ours)).toEqual({ type: 'ticks', d });
    }
  });

  it('writes null for a missing day VWAP and depth as [price, quantity, orders], bids first', () => {
    const f = new Float64Array(N_FIELDS);
    f[N.DAY_VWAP] = NaN;
    for (let i = 0; i < 10; i++) {
      f[N.DEPTH + 3 * i] = 100 + i; // quantity
      f[N.DEPTH + 3 * i + 1] = 24000 + i * 0.05; // price
      f[N.DEPTH + 3 * i + 2] = i; // orders
    }
    const w = new RecordWriter();
    w.tick(f, 0, 2, encodeSymbol('NIFTY 50'));
    const t = createUnpackr().unpack(w.buf.subarray(0, w.pos)) as { dvw: null; bid: number[][]; ask: number[][] };
    expect(t.dvw).toBeNull();
    expect(t.bid[0]).toEqual([24000, 100, 0]);
    expect(t.ask[4]).toEqual([24000 + 9 * 0.05, 109, 9]);
  });
});
