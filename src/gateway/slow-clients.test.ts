import { describe, expect, it } from 'vitest';
import type { WebSocket } from 'uWebSockets.js';
import { silentLogger } from '../log.ts';
import { CLOSED, freshSlowState, SLOW_CLIENT_DEFAULTS, SlowClients, slowClientLimits, type SlowClientState } from './slow-clients.ts';

/** A socket with a settable backlog that records how it was ended. */
function socket() {
  const s = { unsent: 0, ended: null as { code: number; reason: string } | null };
  const ws = { getBufferedAmount: () => s.unsent, end: (code: number, reason: string) => { s.ended = { code, reason }; } };
  return { s, ws: ws as unknown as WebSocket<unknown> };
}

function setup(limits = { conflateBytes: 1000, closeBytes: 10_000, stallCloseMs: 5000 }) {
  const stats = { maxUnsentBytes: 0, slowCloses: 0, stallCloses: 0 };
  const slow = new SlowClients(slowClientLimits(limits), stats, silentLogger, '/ws');
  const c: SlowClientState = { id: 1, key: 'alice', closed: false, ...freshSlowState() };
  const { s, ws } = socket();
  /** One periodic check at `now`. */
  const check = (now: number, mayClose = true) => {
    slow.begin(now);
    const r = slow.check(ws, c, mayClose);
    slow.end();
    return r;
  };
  return { stats, slow, c, s, check };
}

describe('slow-client policy', () => {
  it('closes a slow client with no progress exactly stallCloseMs after it passed conflateBytes, with 4008 and a reason', () => {
    const { stats, c, s, check } = setup();
    s.unsent = 500;
    expect(check(0)).toBe(500);
    s.unsent = 2000;
    expect(check(1000)).toBe(2000); // the clock starts here
    s.unsent = 2100; // a conflated frame more, nothing taken
    expect(check(5999)).toBe(2100);
    expect(s.ended).toBeNull();
    expect(check(6000)).toBe(CLOSED);
    expect(s.ended).toEqual({ code: 4008, reason: expect.stringContaining('stopped reading') });
    expect(c.closed).toBe(true);
    expect(stats).toEqual({ maxUnsentBytes: 2100, slowCloses: 0, stallCloses: 1 });
  });

  it('never stall-closes a client whose socket drains, or whose backlog shrinks, however slowly', () => {
    const { stats, slow, c, s, check } = setup();
    s.unsent = 5000;
    for (let t = 0; t <= 60_000; t += 4000) {
      // A drain every 4 s, the backlog growing anyway: progress all the same.
      s.unsent += 100;
      if (t % 8000 === 0) slow.drained(c);
      else s.unsent -= 200; // no drain, but less unsent than its lowest
      expect(check(t)).not.toBe(CLOSED);
    }
    expect(stats.stallCloses).toBe(0);
    expect(s.ended).toBeNull();
  });

  it('restarts the stall clock when the client falls back below conflateBytes', () => {
    const { s, check } = setup();
    s.unsent = 2000;
    check(0);
    s.unsent = 100;
    check(4000);
    s.unsent = 2000;
    check(4500);
    expect(check(9000)).toBe(2000);
    expect(check(9500)).toBe(CLOSED);
  });

  it('closes past closeBytes only when the endpoint allows it (/ws conflates first)', () => {
    const { stats, s, check } = setup();
    s.unsent = 20_000;
    expect(check(0, false)).toBe(20_000);
    expect(check(50, true)).toBe(CLOSED);
    expect(s.ended).toEqual({ code: 4008, reason: 'slow consumer: more than 10000 bytes unsent' });
    expect(stats.slowCloses).toBe(1);
  });

  it('refuses limits where closeBytes does not exceed conflateBytes, naming both', () => {
    expect(slowClientLimits()).toEqual(SLOW_CLIENT_DEFAULTS);
    expect(() => slowClientLimits({ conflateBytes: 4096, closeBytes: 4096 })).toThrow(/closeBytes \(4096\) must exceed conflateBytes \(4096\)/);
    expect(() => slowClientLimits({ stallCloseMs: 0 })).toThrow(/stallCloseMs/);
  });
});
