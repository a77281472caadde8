import { describe, expect, it } from 'vitest';
import { DAY_MS, IST_OFFSET_MS, istDayStart } from '../../src/core/ist.ts';
import { Carries, DayStats } from './day-stats.ts';

function ist(y: number, mo: number, d: number, h: number, mi: number): number {
  return Date.UTC(y, mo - 1, d, h, mi) - IST_OFFSET_MS;
}

const RELIANCE = 738561;
const CE1 = 1001;
const PE1 = 1002;
const CE2 = 2001;
const PE2 = 2002;
const T = ist(2024, 5, 2, 10, 0);

describe('DayStats', () => {
  it('computes the day VWAP from volume deltas', () => {
    const s = new DayStats({ tokens: [RELIANCE] });
    expect(s.dayVwap(RELIANCE)).toBeNaN();
    s.onTick(RELIANCE, T, 100, 95, 10, 0);
    s.onTick(RELIANCE, T + 1000, 110, 95, 30, 0);
    expect(s.dayVwap(RELIANCE)).toBeCloseTo(107.5, 12);
    expect(s.dayVolume(RELIANCE)).toBe(40);
  });

  it('prefers Kite\'s average traded price for the day VWAP when the tick carries it', () => {
    const s = new DayStats({ tokens: [RELIANCE] });
    s.onTick(RELIANCE, T, 100, 95, 10, 0, 101.25);
    expect(s.dayVwap(RELIANCE)).toBe(101.25);
  });

  it('gives the change % against the previous close', () => {
    const s = new DayStats({ tokens: [RELIANCE] });
    s.onTick(RELIANCE, T, 102, 100, 0, 0);
    expect(s.changePct(RELIANCE)).toBeCloseTo(2, 12);
    s.onTick(RELIANCE, T + 1, 99, 0, 0, 0); // a packet without the close keeps the known one
    expect(s.changePct(RELIANCE)).toBeCloseTo(-1, 12);
  });

  it('resets the day stats at IST midnight, not UTC midnight', () => {
    const s = new DayStats({ tokens: [RELIANCE] });
    s.onTick(RELIANCE, Date.UTC(2024, 4, 2, 18, 29), 100, 95, 10, 0, 100); // 23:59 IST
    s.onTick(RELIANCE, Date.UTC(2024, 4, 2, 18, 31), 200, 100, 5, 0); // 00:01 IST next day
    expect(s.dayVolume(RELIANCE)).toBe(5);
    expect(s.dayVwap(RELIANCE)).toBe(200);
  });

  it('ignores a straggler from the previous IST day', () => {
    const s = new DayStats({ tokens: [RELIANCE] });
    s.onTick(RELIANCE, ist(2024, 5, 3, 0, 1), 200, 100, 5, 0);
    s.onTick(RELIANCE, ist(2024, 5, 2, 23, 59), 100, 95, 10, 0);
    expect(s.dayVolume(RELIANCE)).toBe(5);
    expect(s.staleTicks).toBe(1);
  });

  it('keeps the put-call ratio by OI per group, replacing each token\'s previous OI', () => {
    const s = new DayStats({ tokens: [CE1, PE1, CE2, PE2], maxGroups: 1 });
    s.registerOption(CE1, 0, 'CE');
    s.registerOption(PE1, 0, 'PE');
    s.registerOption(CE2, 1, 'CE');
    s.registerOption(PE2, 1, 'PE');
    expect(s.pcr(0)).toBeNaN();
    s.onTick(CE1, T, 10, 10, 0, 1000);
    s.onTick(PE1, T, 10, 10, 0, 1500);
    s.onTick(CE2, T, 10, 10, 0, 400);
    s.onTick(PE2, T, 10, 10, 0, 100);
    expect(s.pcr(0)).toBe(1.5);
    expect(s.pcr(1)).toBe(0.25);
    s.onTick(PE1, T + 1, 10, 10, 0, 2000);
    s.onTick(PE1, T + 2, 10, 10, 0, NaN); // packet without OI: keep 2000
    expect(s.putOi(0)).toBe(2000);
    expect(s.callOi(0)).toBe(1000);
    expect(s.pcr(0)).toBe(2);
    expect(s.pcr(7)).toBeNaN();
  });

  it('reads ticks from records through the field offsets given at construction and writes the day VWAP back', () => {
    const fields = { token: 10, exchTimeMs: 2, price: 4, prevClose: 0, volumeDelta: 7, oi: 1, avgPrice: 5, dayVwap: 12 };
    const s = new DayStats({ tokens: [RELIANCE, CE1], fields });
    s.registerOption(CE1, 0, 'CE');
    const rec = new Float64Array(2 * 16).fill(-3);
    const put = (o: number, token: number, t: number, price: number, prev: number, qty: number, oi: number, avg: number) => {
      rec[o + fields.token] = token;
      rec[o + fields.exchTimeMs] = t;
      rec[o + fields.price] = price;
      rec[o + fields.prevClose] = prev;
      rec[o + fields.volumeDelta] = qty;
      rec[o + fields.oi] = oi;
      rec[o + fields.avgPrice] = avg;
    };
    put(0, RELIANCE, T, 100, 95, 10, 0, 0);
    s.onTickAt(rec, 0, Carries.OI | Carries.AVG_PRICE);
    expect(rec[fields.dayVwap]).toBe(100);
    put(16, RELIANCE, T + 1000, 110, 95, 30, 0, 0);
    s.onTickAt(rec, 16, 0);
    expect(rec[16 + fields.dayVwap]).toBeCloseTo(107.5, 12);
    expect(s.dayVwap(RELIANCE)).toBe(rec[16 + fields.dayVwap]);
    expect(s.dayVolume(RELIANCE)).toBe(40);
    expect(s.changePct(RELIANCE)).toBeCloseTo(((110 - 95) / 95) * 100, 12);
    put(0, 999, T, 1, 1, 1, 1, 1);
    s.onTickAt(rec, 0, Carries.OI | Carries.AVG_PRICE);
    expect(rec[fields.dayVwap]).toBeNaN();
    expect(s.unknownTokens).toBe(1);
  });

  it('takes OI and the average price from a record only when the packet carries them', () => {
    const s = new DayStats({ tokens: [CE1, PE1] });
    s.registerOption(CE1, 0, 'CE');
    s.registerOption(PE1, 0, 'PE');
    // Default layout: token, exchTimeMs, price, prevClose, volumeDelta, oi, avgPrice, dayVwap.
    s.onTickAt(Float64Array.of(CE1, T, 10, 10, 5, 1000, 11, 0), 0, Carries.OI | Carries.AVG_PRICE);
    s.onTickAt(Float64Array.of(PE1, T, 10, 10, 5, 1500, 12, 0), 0, Carries.OI);
    expect(s.pcr(0)).toBe(1.5);
    expect(s.dayVwap(CE1)).toBe(11);
    expect(s.dayVwap(PE1)).toBe(10); // no average price: Σpv/Σv
    // A quote packet: N holds 0 for OI, which must not replace the known 1500.
    const rec = Float64Array.of(PE1, T + 1, 10, 10, 5, 0, 12.5, 0);
    s.onTickAt(rec, 0, Carries.AVG_PRICE);
    expect(s.putOi(0)).toBe(1500);
    expect(rec[7]).toBe(12.5);
    s.onTickAt(Float64Array.of(PE1, T + 2, 10, 10, 5, 0, 0, 0), 0, 0);
    expect(s.putOi(0)).toBe(1500);
    expect(s.dayVwap(PE1)).toBe(12.5);
  });

  it('rolls the day over exactly where istDayStart does, fractional times next to IST midnight included', () => {
    const midnight = istDayStart(T) + DAY_MS;
    for (const before of [1.5, 1, 0.75, 0.5, 1e-3, 1.5e-4, 1e-4, 2 ** -20]) {
      const s = new DayStats({ tokens: [RELIANCE] });
      s.onTick(RELIANCE, midnight - DAY_MS + 1, 100, 95, 10, 0);
      const t = midnight - before;
      s.onTick(RELIANCE, t, 100, 95, 5, 0);
      const rolled = istDayStart(t) === midnight;
      expect([before, s.dayVolume(RELIANCE)]).toEqual([before, rolled ? 5 : 15]);
    }
  });

  it('rejects bad field offsets naming them', () => {
    const fields = { token: 0, exchTimeMs: 1, price: 2, prevClose: 3, volumeDelta: 4, oi: 5, avgPrice: 6, dayVwap: 7 };
    expect(() => new DayStats({ tokens: [1], fields: { ...fields, dayVwap: 0 } }))
      .toThrow(/fields\.dayVwap and fields\.token are both at offset 0/);
    expect(() => new DayStats({ tokens: [1], fields: { ...fields, oi: NaN } })).toThrow(/fields\.oi/);
  });

  it('rejects bad registrations naming the token', () => {
    const s = new DayStats({ tokens: [CE1] });
    expect(() => s.registerOption(999, 0, 'CE')).toThrow(/token 999/);
    s.registerOption(CE1, 0, 'CE');
    expect(() => s.registerOption(CE1, 0, 'PE')).toThrow(/already registered/);
    expect(() => new DayStats({ tokens: [] })).toThrow(RangeError);
  });
});
