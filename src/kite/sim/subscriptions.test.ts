import { describe, expect, it } from 'vitest';
import { ModeCode } from './market.ts';
import { Followers, Subscriptions } from './subscriptions.ts';

const followed = (f: Followers) => [...f.rows.subarray(0, f.count)].sort((a, b) => a - b);
const owed = (s: Subscriptions) => [...s.owed.subarray(0, s.owedCount)];
/** What the frame builder does once it has sent the owed snapshots. */
function paid(s: Subscriptions): void {
  for (let p = 0; p < s.owedCount; p++) s.owedFlag[s.owed[p]] = 0;
  s.owedCount = 0;
}

describe('Subscriptions', () => {
  it('follows a new row in quote mode and owes it one snapshot', () => {
    const s = new Subscriptions(10, 3000, new Followers(10));
    expect(s.add(4)).toBe(true);
    expect(s.modes[4]).toBe(ModeCode.QUOTE);
    expect(s.count).toBe(1);
    expect(owed(s)).toEqual([4]);
  });

  it('owes a row one snapshot however often it is owed before the next frame', () => {
    const s = new Subscriptions(10, 3000, new Followers(10));
    s.add(4);
    s.setMode(4, ModeCode.FULL);
    s.owe(4);
    expect(owed(s)).toEqual([4]);
  });

  it('keeps the mode of a row subscribed again, and owes nothing more for it', () => {
    const s = new Subscriptions(10, 3000, new Followers(10));
    s.add(4);
    s.setMode(4, ModeCode.FULL);
    paid(s);
    expect(s.add(4)).toBe(true);
    expect(s.modes[4]).toBe(ModeCode.FULL);
    expect(s.count).toBe(1);
    expect(owed(s)).toEqual([]);
  });

  it('refuses new rows past its limit, still taking rows it already follows', () => {
    const s = new Subscriptions(10, 2, new Followers(10));
    expect(s.add(1)).toBe(true);
    expect(s.add(2)).toBe(true);
    expect(s.add(3)).toBe(false);
    expect(s.modes[3]).toBe(0);
    expect(s.add(1)).toBe(true);
    expect(s.count).toBe(2);
    s.remove(1);
    expect(s.add(3)).toBe(true);
    expect(s.count).toBe(2);
  });

  it('owes a snapshot for a mode change, not for the same mode or a row not followed', () => {
    const s = new Subscriptions(10, 3000, new Followers(10));
    s.add(1);
    paid(s);
    s.setMode(1, ModeCode.QUOTE);
    s.setMode(2, ModeCode.FULL);
    expect(owed(s)).toEqual([]);
    expect(s.modes[2]).toBe(0);
    s.setMode(1, ModeCode.LTP);
    s.setMode(1, ModeCode.FULL);
    expect(s.modes[1]).toBe(ModeCode.FULL);
    expect(owed(s)).toEqual([1]);
  });

  it('keeps a row in quote mode until its mode message has been in effect for the delay, then owes a snapshot', () => {
    let now = 1000;
    const s = new Subscriptions(10, 3000, new Followers(10), { ms: 500, now: () => now });
    s.add(1);
    s.add(2);
    paid(s);
    s.setMode(1, ModeCode.FULL);
    now = 1200;
    s.setMode(2, ModeCode.FULL);
    expect(s.pendingModes()).toBe(2);
    s.applyDueModes(1499);
    expect([s.modes[1], s.modes[2]]).toEqual([ModeCode.QUOTE, ModeCode.QUOTE]);
    expect(owed(s)).toEqual([]);
    s.applyDueModes(1500);
    expect([s.modes[1], s.modes[2]]).toEqual([ModeCode.FULL, ModeCode.QUOTE]);
    expect(owed(s)).toEqual([1]);
    s.applyDueModes(1700);
    expect(s.modes[2]).toBe(ModeCode.FULL);
    expect(owed(s)).toEqual([1, 2]);
    expect(s.pendingModes()).toBe(0);
  });

  it('drops a pending mode of a row unsubscribed before it took effect', () => {
    let now = 0;
    const s = new Subscriptions(10, 3000, new Followers(10), { ms: 100, now: () => now });
    s.add(3);
    s.setMode(3, ModeCode.FULL);
    s.remove(3);
    s.add(3);
    paid(s);
    now = 200;
    s.applyDueModes(now);
    expect(s.modes[3]).toBe(ModeCode.QUOTE);
    expect(owed(s)).toEqual([]);
    expect(s.pendingModes()).toBe(0);
  });

  it('ignores removing a row it does not follow', () => {
    const f = new Followers(10);
    const s = new Subscriptions(10, 3000, f);
    s.add(1);
    s.remove(2);
    s.remove(1);
    s.remove(1);
    expect(s.count).toBe(0);
    expect(f.count).toBe(0);
  });
});

describe('Followers', () => {
  it('lists a row while any connection follows it', () => {
    const f = new Followers(10);
    const a = new Subscriptions(10, 3000, f);
    const b = new Subscriptions(10, 3000, f);
    a.add(1);
    a.add(5);
    b.add(5);
    b.add(7);
    expect(followed(f)).toEqual([1, 5, 7]);
    expect(f.of(5)).toBe(2);
    a.remove(5);
    expect(followed(f)).toEqual([1, 5, 7]);
    b.clear();
    expect(followed(f)).toEqual([1]);
    expect(b.count).toBe(0);
    expect(b.modes.every((m) => m === 0)).toBe(true);
    a.clear();
    expect(f.count).toBe(0);
  });

  it('fills a leaver\'s place with the last row, so the order is that of the calls', () => {
    const f = new Followers(10);
    for (const r of [3, 1, 4, 9, 2]) f.follow(r);
    f.unfollow(1);
    expect([...f.rows.subarray(0, f.count)]).toEqual([3, 2, 4, 9]);
    f.unfollow(9);
    f.follow(1);
    expect([...f.rows.subarray(0, f.count)]).toEqual([3, 2, 4, 1]);
  });

  it('keeps each followed row listed once through add and remove churn', () => {
    const n = 50_000;
    const f = new Followers(n);
    const s = new Subscriptions(n, n, f);
    for (let i = 0; i < n; i++) s.add(i);
    for (let k = 0; k < 100_000; k++) {
      const row = (k * 7919) % n;
      s.remove(row);
      s.add(row);
    }
    expect(f.count).toBe(n);
    expect(new Set(f.rows).size).toBe(n);
  });
});
