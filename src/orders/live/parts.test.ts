/**
 * The live broker's parts without Kite: the mark in Kite's tag, the read budget, and the progress
 * ledger that lets only forward moves through.
 */
import { describe, expect, it } from 'vitest';
import { IdSource } from '../model.ts';
import { ReadBudget } from './budget.ts';
import { classify, exactRupees, readRow, rupeesText } from './kite.ts';
import { KITE_TAG_MAX, markOf, orderIdOfMark, rowHasMark } from './mark.ts';
import { Progress } from './progress.ts';

describe('mark', () => {
  it('carries our order id in a Kite tag of at most 20 alphanumeric characters, and back', () => {
    const ids = new IdSource();
    for (let i = 0; i < 100; i++) {
      const id = ids.next();
      const mark = markOf({ id });
      expect(mark).toMatch(/^n5[0-9a-z]+$/);
      expect(mark.length).toBeLessThanOrEqual(KITE_TAG_MAX);
      expect(orderIdOfMark(mark)).toBe(id);
    }
    const widest = '9'.repeat(27);
    expect(markOf({ id: widest }).length).toBeLessThanOrEqual(KITE_TAG_MAX);
    expect(orderIdOfMark(markOf({ id: widest }))).toBe(widest);
  });

  it('reads tags that are not our marks as no order of ours', () => {
    for (const tag of [null, undefined, '', 'n5', 'myStrategy', 'N5ABC', 'n5-12', 'x5abc', 'n5' + 'z'.repeat(19), 42]) {
      expect(orderIdOfMark(tag)).toBeNull();
    }
  });

  it('refuses an order id that is not a whole number', () => {
    expect(() => markOf({ id: 'abc' })).toThrow(/not a whole number/);
  });

  it('finds the mark in tag or tags', () => {
    expect(rowHasMark({ tag: 'n5abc' }, 'n5abc')).toBe(true);
    expect(rowHasMark({ tag: 'other', tags: ['other', 'n5abc'] }, 'n5abc')).toBe(true);
    expect(rowHasMark({ tag: null, tags: [] }, 'n5abc')).toBe(false);
  });
});

describe('Kite answers', () => {
  it('sorts the official client\'s rejections by what to do next', () => {
    expect(classify({ error_type: 'TokenException', message: 'Incorrect `api_key` or `access_token`.' }).kind).toBe('token');
    expect(classify({ error_type: 'InputException', message: 'Invalid `quantity`.' })).toEqual({ kind: 'refused', errorType: 'InputException', message: 'Invalid `quantity`.' });
    expect(classify({ error_type: 'MarginException', message: 'Insufficient funds.' }).kind).toBe('refused');
    expect(classify({ error_type: 'OrderException', message: 'Order cannot be cancelled as it is COMPLETE.' }).kind).toBe('refused');
    expect(classify({ error_type: 'NetworkException', message: 'Too many requests' }).kind).toBe('rate');
    expect(classify({ error_type: 'NetworkException', message: 'Too Many Requests' }).kind).toBe('rate');
    expect(classify({ error_type: 'NetworkException', message: 'No response from server with error code: ECONNRESET' }).kind).toBe('lost');
    expect(classify({ error_type: 'GeneralException', message: 'Unknown error' }).kind).toBe('lost');
    expect(classify(new Error('boom')).kind).toBe('lost');
    expect(classify(undefined).kind).toBe('lost');
  });

  it('reads rupees exactly and writes paise as rupee text', () => {
    expect(exactRupees(1234.5678)).toEqual({ num: 12345678n, scale: 10000n });
    expect(exactRupees('0.1')).toEqual({ num: 1n, scale: 10n });
    expect(exactRupees(100)).toEqual({ num: 100n, scale: 1n });
    expect(exactRupees('abc')).toBeNull();
    expect(rupeesText(123405)).toBe('1234.05');
    expect(rupeesText(5)).toBe('0.05');
  });

  it('reads an order row\'s moving fields and nothing from a row without id or status', () => {
    expect(readRow({ status: 'OPEN' })).toBeNull();
    expect(readRow({ order_id: '1', status: 'OPEN', filled_quantity: 3, price: 101.5, trigger_price: 0, quantity: 5, exchange_order_id: 11 })).toMatchObject({
      orderId: '1', status: 'OPEN', filled: 3, pricePaise: 10150, triggerPaise: 0, quantity: 5, exchangeOrderId: '11',
    });
  });
});

describe('ReadBudget', () => {
  it('lets 10 requests go at once and holds the 11th for a token, in arrival order', async () => {
    const b = new ReadBudget(10);
    const done: number[] = [];
    const all = Array.from({ length: 12 }, (_, i) => b.take().then(() => done.push(i)));
    await Promise.all(all.slice(0, 10));
    expect(done).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(b.waiting).toBe(2);
    await Promise.all(all);
    expect(done).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    b.close();
  });

  it('refills with time: on a clock 1 s on, 10 more go at once', async () => {
    let t = 0;
    const b = new ReadBudget(10, () => t);
    for (let i = 0; i < 10; i++) await b.take();
    t = 1000;
    let n = 0;
    const next = Array.from({ length: 10 }, () => b.take().then(() => n++));
    await Promise.all(next);
    expect(n).toBe(10);
    expect(b.waiting).toBe(0);
    b.close();
  });

  it('names a bad rate', () => {
    expect(() => new ReadBudget(0)).toThrow(/perSec/);
  });
});

describe('Progress', () => {
  const fresh = { status: 'OPEN PENDING', filledQuantity: 0, filledValuePaise: 0 } as const;
  const trade = (id: string, quantity: number, average_price: number) => ({ trade_id: id, quantity, average_price });

  it('reports each trade once, and none beyond what the rows showed filled', () => {
    const p = new Progress(fresh);
    expect(p.atExchange).toBe(false);
    expect(p.seeFilled(30)).toBe(true);
    expect(p.takeTrades([trade('t1', 10, 100.05), trade('t2', 20, 100.1)])).toEqual([{ qty: 10, pricePaise: 10005 }, { qty: 20, pricePaise: 10010 }]);
    // The same trades again, and an older row: nothing.
    expect(p.takeTrades([trade('t1', 10, 100.05), trade('t2', 20, 100.1)])).toEqual([]);
    expect(p.seeFilled(10)).toBe(false);
    // A trade Kite lists before its row says so waits (is capped) until a row shows it.
    expect(p.seeFilled(40)).toBe(true);
    expect(p.takeTrades([trade('t1', 10, 100.05), trade('t2', 20, 100.1), trade('t3', 10, 100.2)])).toEqual([{ qty: 10, pricePaise: 10020 }]);
    expect(p.reported).toBe(40);
    expect(p.reportedValuePaise).toBe(10 * 10005 + 20 * 10010 + 10 * 10020);
  });

  it('after a restart, skips the trades behind the fills already recorded', () => {
    const p = new Progress({ status: 'OPEN', filledQuantity: 30, filledValuePaise: 30 * 10000 });
    expect(p.atExchange).toBe(true);
    p.seeFilled(50);
    expect(p.takeTrades([trade('a', 10, 100), trade('b', 20, 100), trade('c', 20, 101)])).toEqual([{ qty: 20, pricePaise: 10100 }]);
  });

  it('derives a fill from filled_quantity and average_price in exact integers', () => {
    const p = new Progress(fresh);
    p.seeFilled(3);
    // 3 @ 100.05, 100.05, 100.10: Kite's average 100.0666... rounded to 100.0667.
    expect(p.derive(3, 100.0667)).toEqual({ qty: 3, pricePaise: 10007 });
    const q = new Progress(fresh);
    q.seeFilled(2);
    q.takeTrades([trade('t1', 2, 100)]);
    q.seeFilled(5);
    // 2 @ 100 + 3 @ 101.5 = 504.5 → average 100.9
    expect(q.derive(5, 100.9)).toEqual({ qty: 3, pricePaise: 10150 });
    // The trades behind the derived quantity, read later, report nothing more.
    expect(q.takeTrades([trade('t1', 2, 100), trade('t2', 3, 101.5)])).toEqual([]);
    expect(q.derive(5, 100.9)).toBeNull();
  });

  it('derives nothing from an older row', () => {
    const p = new Progress(fresh);
    p.seeFilled(10);
    expect(p.derive(5, 100)).toBeNull();
    expect(p.owed).toBe(10);
  });
});
