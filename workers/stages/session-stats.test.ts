import { describe, expect, it } from 'vitest';
import { IST_OFFSET_MS } from './session.ts';
import { SessionStats } from './session-stats.ts';

function ist(y: number, mo: number, d: number, h: number, mi: number): number {
  return Date.UTC(y, mo - 1, d, h, mi) - IST_OFFSET_MS;
}

const RELIANCE = 738561;
const CE1 = 1001;
const PE1 = 1002;
const CE2 = 2001;
const PE2 = 2002;
const T = ist(2024, 5, 2, 10, 0);

describe('SessionStats', () => {
  it('computes the day VWAP from volume deltas', () => {
    const s = new SessionStats({ tokens: [RELIANCE] });
    expect(s.dayVwap(RELIANCE)).toBeNaN();
    s.onTick(RELIANCE, T, 100, 95, 10, 0);
    s.onTick(RELIANCE, T + 1000, 110, 95, 30, 0);
    expect(s.dayVwap(RELIANCE)).toBeCloseTo(107.5, 12);
    expect(s.dayVolume(RELIANCE)).toBe(40);
  });

  it('prefers Kite\'s average traded price for the day VWAP when the tick carries it', () => {
    const s = new SessionStats({ tokens: [RELIANCE] });
    s.onTick(RELIANCE, T, 100, 95, 10, 0, 101.25);
    expect(s.dayVwap(RELIANCE)).toBe(101.25);
  });

  it('gives the change % against the previous close', () => {
    const s = new SessionStats({ tokens: [RELIANCE] });
    s.onTick(RELIANCE, T, 102, 100, 0, 0);
    expect(s.changePct(RELIANCE)).toBeCloseTo(2, 12);
    s.onTick(RELIANCE, T + 1, 99, 0, 0, 0); // a packet without the close keeps the known one
    expect(s.changePct(RELIANCE)).toBeCloseTo(-1, 12);
  });

  it('resets the day stats at IST midnight, not UTC midnight', () => {
    const s = new SessionStats({ tokens: [RELIANCE] });
    s.onTick(RELIANCE, Date.UTC(2024, 4, 2, 18, 29), 100, 95, 10, 0, 100); // 23:59 IST
    s.onTick(RELIANCE, Date.UTC(2024, 4, 2, 18, 31), 200, 100, 5, 0); // 00:01 IST next day
    expect(s.dayVolume(RELIANCE)).toBe(5);
    expect(s.dayVwap(RELIANCE)).toBe(200);
  });

  it('ignores a straggler from the previous IST day', () => {
    const s = new SessionStats({ tokens: [RELIANCE] });
    s.onTick(RELIANCE, ist(2024, 5, 3, 0, 1), 200, 100, 5, 0);
    s.onTick(RELIANCE, ist(2024, 5, 2, 23, 59), 100, 95, 10, 0);
    expect(s.dayVolume(RELIANCE)).toBe(5);
    expect(s.staleTicks).toBe(1);
  });

  it('keeps the put-call ratio by OI per group, replacing each token\'s previous OI', () => {
    const s = new SessionStats({ tokens: [CE1, PE1, CE2, PE2], maxGroups: 1 });
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

  it('rejects bad registrations naming the token', () => {
    const s = new SessionStats({ tokens: [CE1] });
    expect(() => s.registerOption(999, 0, 'CE')).toThrow(/token 999/);
    s.registerOption(CE1, 0, 'CE');
    expect(() => s.registerOption(CE1, 0, 'PE')).toThrow(/already registered/);
    expect(() => new SessionStats({ tokens: [] })).toThrow(RangeError);
  });
});
