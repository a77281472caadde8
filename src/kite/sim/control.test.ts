import { describe, expect, it } from 'vitest';
import { applyControl, type Rows } from './control.ts';
import { ModeCode } from './market.ts';
import { Followers, Subscriptions } from './subscriptions.ts';

/** Tokens 100, 101, ... are rows 0, 1, ...; anything else is unknown. */
const ROWS: Rows = { indexOf: (token) => (token >= 100 && token < 110 ? token - 100 : -1) };

function subscriptions(limit = 3000): Subscriptions {
  return new Subscriptions(10, limit, new Followers(10));
}

const apply = (subs: Subscriptions, msg: unknown) => applyControl(typeof msg === 'string' ? msg : JSON.stringify(msg), subs, ROWS);
const followedRows = (s: Subscriptions) => [...s.modes.keys()].filter((i) => s.modes[i] !== 0);

describe('applyControl', () => {
  it('subscribes tokens given as numbers or digit strings, in quote mode', () => {
    const s = subscriptions();
    expect(apply(s, { a: 'subscribe', v: [100, '103'] })).toBeNull();
    expect(followedRows(s)).toEqual([0, 3]);
    expect(s.modes[3]).toBe(ModeCode.QUOTE);
  });

  it('ignores unknown tokens and entries that are not tokens, without an error', () => {
    const s = subscriptions();
    expect(apply(s, { a: 'subscribe', v: [1, 99999999, -101, 101.5, '10x', null, { t: 102 }, 104] })).toBeNull();
    expect(followedRows(s)).toEqual([4]);
  });

  it('subscribes up to the limit and names the limit and the excess in one error', () => {
    const s = subscriptions(2);
    expect(apply(s, { a: 'subscribe', v: [100, 101, 102, 103, 100] })).toBe(
      'Subscription limit exceeded: a connection can follow at most 2 instruments; 2 not subscribed.',
    );
    expect(followedRows(s)).toEqual([0, 1]);
  });

  it('unsubscribes, ignoring tokens not followed', () => {
    const s = subscriptions();
    apply(s, { a: 'subscribe', v: [100, 101] });
    expect(apply(s, { a: 'unsubscribe', v: [101, 105, 7] })).toBeNull();
    expect(followedRows(s)).toEqual([0]);
  });

  it('sets the mode of followed tokens only', () => {
    const s = subscriptions();
    apply(s, { a: 'subscribe', v: [100, 101] });
    expect(apply(s, { a: 'mode', v: ['full', [100, 102]] })).toBeNull();
    expect(apply(s, { a: 'mode', v: ['ltp', ['101']] })).toBeNull();
    expect([s.modes[0], s.modes[1], s.modes[2]]).toEqual([ModeCode.FULL, ModeCode.LTP, 0]);
  });

  it('answers each malformed message with an error naming the expected shape, changing nothing', () => {
    const s = subscriptions();
    const cases: [unknown, string][] = [
      ['not json', 'Invalid message: not JSON. Send {"a":"subscribe","v":[token, ...]}.'],
      ['null', 'Invalid message: expected a JSON object with "a" and "v".'],
      ['5', 'Invalid message: expected a JSON object with "a" and "v".'],
      [{ a: 'dance' }, 'Invalid message: unknown action "dance".'],
      [{}, 'Invalid message: unknown action undefined.'],
      [{ a: 'subscribe', v: 100 }, 'Invalid subscribe: "v" must be an array of instrument tokens.'],
      [{ a: 'unsubscribe' }, 'Invalid unsubscribe: "v" must be an array of instrument tokens.'],
      [{ a: 'mode', v: ['loud', [100]] }, 'Invalid mode: "v" must be ["ltp"|"quote"|"full", [token, ...]].'],
      [{ a: 'mode', v: 'full' }, 'Invalid mode: "v" must be ["ltp"|"quote"|"full", [token, ...]].'],
      [{ a: 'mode', v: ['full', 100] }, 'Invalid mode: "v" must be ["ltp"|"quote"|"full", [token, ...]].'],
      [{ a: 'mode', v: ['full', [100], 1] }, 'Invalid mode: "v" must be ["ltp"|"quote"|"full", [token, ...]].'],
    ];
    for (const [msg, error] of cases) expect(apply(s, msg)).toBe(error);
    expect(s.count).toBe(0);
  });
});
