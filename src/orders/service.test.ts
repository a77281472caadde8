import { describe, expect, it } from 'vitest';
import { nextIstWeekdayTime, SESSION_CLOSE_MIN, SESSION_OPEN_MIN } from './service.ts';

/** An IST wall-clock time as epoch ms. */
const ist = (s: string) => Date.parse(`${s}+05:30`);

describe('the session clock (MARKET_HOURS=exchange)', () => {
  it('finds the next open the same morning, before 09:15 IST', () => {
    expect(nextIstWeekdayTime(ist('2026-12-07T08:00:00'), SESSION_OPEN_MIN)).toBe(ist('2026-12-07T09:15:00'));
  });

  it('skips to Monday after a Friday close and over a weekend', () => {
    expect(nextIstWeekdayTime(ist('2026-12-04T16:00:00'), SESSION_OPEN_MIN)).toBe(ist('2026-12-07T09:15:00'));
    expect(nextIstWeekdayTime(ist('2026-12-05T10:00:00'), SESSION_OPEN_MIN)).toBe(ist('2026-12-07T09:15:00'));
  });

  it('is strictly after now: at 15:30 exactly the next close is tomorrow', () => {
    expect(nextIstWeekdayTime(ist('2026-12-08T15:30:00'), SESSION_CLOSE_MIN)).toBe(ist('2026-12-09T15:30:00'));
  });

  it('uses the IST date, not the UTC one (00:30 IST Monday is Sunday in UTC)', () => {
    expect(nextIstWeekdayTime(ist('2026-12-07T00:30:00'), SESSION_OPEN_MIN)).toBe(ist('2026-12-07T09:15:00'));
  });
});
