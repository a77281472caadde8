import { describe, expect, it } from 'vitest';
import { dayOfIso, istDay, isoOfDay } from '../core/ist.ts';
import { niftyExpiries, niftyFutureSymbol, niftyOptionSymbol } from './expiries.ts';
import { MON_1_DEC_2025 } from '../../test/support/universe.ts';

describe('NIFTY expiries and symbols', () => {
  it('takes the calendar day in India, not UTC', () => {
    // 20:00 UTC Monday is 01:30 Tuesday in India.
    expect(isoOfDay(istDay(new Date('2025-12-01T20:00:00Z')))).toBe('2025-12-02');
    expect(isoOfDay(istDay(new Date('2025-12-01T18:00:00Z')))).toBe('2025-12-01');
  });

  it('lists weekly Tuesdays and last-Tuesday monthlies, today included', () => {
    const e = niftyExpiries(istDay(MON_1_DEC_2025));
    expect(e.weekly.map(isoOfDay)).toEqual(['2025-12-02', '2025-12-09', '2025-12-16', '2025-12-23']);
    expect(e.monthly.map(isoOfDay)).toEqual(['2025-12-30', '2026-01-27', '2026-02-24']);
    const onExpiry = niftyExpiries(dayOfIso('2025-12-30'));
    expect(isoOfDay(onExpiry.weekly[0])).toBe('2025-12-30');
    expect(isoOfDay(onExpiry.monthly[0])).toBe('2025-12-30');
    const afterMonthly = niftyExpiries(dayOfIso('2025-12-31'));
    expect(afterMonthly.monthly.map(isoOfDay)).toEqual(['2026-01-27', '2026-02-24', '2026-03-31']);
  });

  it('names contracts like Kite: weekly YY+month code+DD, monthly YY+MON', () => {
    expect(niftyOptionSymbol(dayOfIso('2025-12-09'), 24000, 'CE')).toBe('NIFTY25D0924000CE');
    expect(niftyOptionSymbol(dayOfIso('2025-10-07'), 25100, 'PE')).toBe('NIFTY25O0725100PE');
    expect(niftyOptionSymbol(dayOfIso('2026-01-06'), 26000, 'CE')).toBe('NIFTY2610626000CE');
    expect(niftyOptionSymbol(dayOfIso('2025-11-11'), 25500, 'PE')).toBe('NIFTY25N1125500PE');
    expect(niftyOptionSymbol(dayOfIso('2025-12-30'), 24000, 'CE')).toBe('NIFTY25DEC24000CE');
    expect(niftyFutureSymbol(dayOfIso('2025-12-30'))).toBe('NIFTY25DECFUT');
  });
});
