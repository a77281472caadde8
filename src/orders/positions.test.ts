import { describe, expect, it } from 'vitest';
import { AppError } from '../core/errors.ts';
import { DAY_MS, istDayStart } from '../core/ist.ts';
import type { Product, Side, Trade } from './model.ts';
import { rupeesToPaise } from './model.ts';
import { type Mark, PositionBook, type PositionRecord, overnightQuantity, positionQuantity } from './positions.ts';

/** Monday 6 January 2025, 00:00 IST, and the next day. */
const DAY1 = istDayStart(Date.UTC(2025, 0, 6, 4, 0));
const DAY2 = DAY1 + DAY_MS;
const T1 = DAY1 + 10 * 3600_000; // 10:00 IST on day 1
const T2 = DAY2 + 10 * 3600_000;

const INFY = 408065;
const TCS = 2953217;

let seq = 0;
function fill(side: Side, quantity: number, rupees: string, o: { key?: string; token?: number; product?: Product; atMs?: number } = {}): Trade {
  seq++;
  const token = o.token ?? INFY;
  return {
    tradeId: String(seq),
    orderId: String(1000 + seq),
    key: o.key ?? 'alice',
    mode: 'paper',
    exchange: 'NSE',
    symbol: token === INFY ? 'INFY' : 'TCS',
    token,
    product: o.product ?? 'MIS',
    side,
    quantity,
    pricePaise: rupeesToPaise(rupees),
    timeMs: o.atMs ?? T1,
  };
}

function marks(m: Record<number, [string, string]>): Mark {
  return (token) => {
    const v = m[token];
    return v === undefined ? null : { lastPaise: rupeesToPaise(v[0]), closePaise: rupeesToPaise(v[1]) };
  };
}

const noMark: Mark = () => null;

function netRow(book: PositionBook, mark: Mark, token = INFY, product: Product = 'MIS', key = 'alice'): Record<string, unknown> {
  const row = book.kitePositions(key, mark).net.find((r) => r.instrument_token === token && r.product === product);
  if (row === undefined) throw new Error(`no net row for ${token} ${product}`);
  return row;
}

const KITE_POSITION_FIELDS = [
  'tradingsymbol', 'exchange', 'instrument_token', 'product', 'quantity', 'overnight_quantity', 'multiplier',
  'average_price', 'close_price', 'last_price', 'value', 'pnl', 'm2m', 'unrealised', 'realised',
  'buy_quantity', 'buy_price', 'buy_value', 'buy_m2m', 'sell_quantity', 'sell_price', 'sell_value', 'sell_m2m',
  'day_buy_quantity', 'day_buy_price', 'day_buy_value', 'day_sell_quantity', 'day_sell_price', 'day_sell_value',
];

describe('PositionBook', () => {
  it('buy then sell flat: quantity 0 and realised is exactly the difference', () => {
    const book = new PositionBook();
    book.apply(fill('BUY', 10, '100.05'), DAY1);
    const s = book.apply(fill('SELL', 10, '101.10'), DAY1);
    expect(positionQuantity(s)).toBe(0);
    const row = netRow(book, marks({ [INFY]: ['101.50', '99.00'] }));
    expect(row).toMatchObject({ quantity: 0, average_price: 0, realised: 10.5, unrealised: 0, pnl: 10.5, value: 10.5, m2m: 10.5 });
    expect(book.totals('alice', noMark)).toEqual({ realisedPaise: 1050, unrealisedPaise: 0, m2mPaise: 1050 });
  });

  it('partial close realises the closed quantity at sell average − buy average, rounded half-even only when shown', () => {
    const book = new PositionBook();
    book.apply(fill('BUY', 1, '100.00'), DAY1);
    book.apply(fill('BUY', 2, '100.01'), DAY1); // buy average 100.00666…
    book.apply(fill('SELL', 1, '100.02'), DAY1); // realised 4/3 paise
    const row = netRow(book, marks({ [INFY]: ['100.02', '100.00'] }));
    expect(row).toMatchObject({ quantity: 2, average_price: 100.0067, buy_price: 100.0067, realised: 0.01, pnl: 0.04, unrealised: 0.03 });

    // Exactly half a paisa rounds to even: 0.5 → 0, 1.5 → 2.
    const half = new PositionBook();
    half.apply(fill('BUY', 1, '100.00'), DAY1);
    half.apply(fill('BUY', 1, '100.01'), DAY1);
    half.apply(fill('SELL', 1, '100.01'), DAY1);
    expect(half.totals('alice', noMark).realisedPaise).toBe(0);
    const oneAndHalf = new PositionBook();
    oneAndHalf.apply(fill('BUY', 1, '100.00'), DAY1);
    oneAndHalf.apply(fill('BUY', 1, '100.03'), DAY1);
    oneAndHalf.apply(fill('SELL', 1, '100.03'), DAY1);
    expect(oneAndHalf.totals('alice', noMark).realisedPaise).toBe(2);
  });

  it('short then cover: negative quantity at the sell average, realised on cover', () => {
    const book = new PositionBook();
    book.apply(fill('SELL', 5, '200.00'), DAY1);
    const mark = marks({ [INFY]: ['198.00', '201.00'] });
    expect(book.netQuantity('alice', INFY)).toBe(-5);
    expect(netRow(book, mark)).toMatchObject({ quantity: -5, average_price: 200, value: 1000, realised: 0, unrealised: 10, pnl: 10 });
    book.apply(fill('BUY', 5, '199.50'), DAY1);
    expect(netRow(book, mark)).toMatchObject({ quantity: 0, average_price: 0, realised: 2.5, unrealised: 0, pnl: 2.5 });
  });

  it('1,000 fills at 0.05 steps sum to the paisa', () => {
    const book = new PositionBook();
    let qty = 0;
    let bought = 0;
    for (let i = 0; i < 1000; i++) {
      const q = (i % 7) + 1;
      qty += q;
      bought += q * (10000 + 5 * i);
      book.apply(fill('BUY', q, (100 + i * 0.05).toFixed(2)), DAY1);
    }
    const open = netRow(book, marks({ [INFY]: ['125.00', '124.00'] }));
    expect(open.buy_quantity).toBe(qty);
    expect(open.buy_value).toBe(bought / 100);
    expect(open.pnl).toBe((qty * 12500 - bought) / 100);
    // Sell each lot 0.10 higher than it was bought: every unit gains exactly 10 paise.
    for (let i = 0; i < 1000; i++) book.apply(fill('SELL', (i % 7) + 1, (100.1 + i * 0.05).toFixed(2)), DAY1);
    const flat = netRow(book, noMark);
    expect(qty).toBe(3997);
    expect(flat).toMatchObject({ quantity: 0, realised: 399.7, pnl: 399.7, value: 399.7, sell_value: (bought + qty * 10) / 100 });
    expect(book.totals('alice', noMark)).toEqual({ realisedPaise: 39970, unrealisedPaise: 0, m2mPaise: 39970 });
  });

  it('day vs net across an IST day boundary: rollDay moves day quantity to overnight and drops flat positions', () => {
    const book = new PositionBook();
    book.apply(fill('BUY', 10, '100.00', { product: 'NRML' }), DAY1);
    book.apply(fill('SELL', 3, '101.00', { product: 'NRML' }), DAY1);
    book.apply(fill('BUY', 4, '50.00', { token: TCS }), DAY1);
    book.apply(fill('SELL', 4, '51.00', { token: TCS }), DAY1);
    expect(book.kitePositions('alice', noMark).day).toHaveLength(2);

    const changed = book.rollDay(DAY2);
    expect(changed).toHaveLength(2);
    expect(book.rollDay(DAY2)).toEqual([]);
    expect(book.get('alice', TCS, 'MIS')).toBeUndefined(); // flat yesterday: gone
    const zeroed = changed.find((s) => s.token === TCS);
    expect(book.record(zeroed!)).toMatchObject({ buyQty: 0, sellQty: 0, buyValuePaise: 0, sellValuePaise: 0, updatedMs: DAY2 });

    const mark = marks({ [INFY]: ['102.00', '101.50'] });
    let p = book.kitePositions('alice', mark);
    expect(p.day).toEqual([]);
    expect(p.net).toHaveLength(1);
    expect(p.net[0]).toMatchObject({ quantity: 7, overnight_quantity: 7, buy_quantity: 10, sell_quantity: 3, day_buy_quantity: 0, day_sell_quantity: 0 });

    book.apply(fill('SELL', 2, '102.00', { product: 'NRML', atMs: T2 }), DAY2);
    // A fill of yesterday reported late counts in net only.
    book.apply(fill('BUY', 1, '100.00', { product: 'NRML', atMs: T1 }), DAY2);
    p = book.kitePositions('alice', mark);
    expect(p.net[0]).toMatchObject({ quantity: 6, overnight_quantity: 8, buy_quantity: 11, sell_quantity: 5, day_sell_quantity: 2, day_sell_value: 204 });
    expect(p.day).toHaveLength(1);
    expect(p.day[0]).toMatchObject({
      quantity: -2, overnight_quantity: 0, buy_quantity: 0, buy_value: 0, sell_quantity: 2, sell_value: 204,
      average_price: 102, value: 204, pnl: 0, m2m: 0, realised: 0,
    });
  });

  it('a fill of a new day rolls its position without waiting for rollDay', () => {
    const book = new PositionBook();
    book.apply(fill('BUY', 10, '100.00'), DAY1);
    const s = book.apply(fill('BUY', 5, '101.00', { atMs: T2 }), DAY2);
    expect(overnightQuantity(s)).toBe(10);
    expect(s).toMatchObject({ buyQty: 15, dayBuyQty: 5, dayBuyValuePaise: 50500 });
  });

  it('m2m marks carried quantity against the previous close and today’s trades against their prices', () => {
    const book = new PositionBook();
    book.apply(fill('BUY', 10, '100.00', { product: 'NRML' }), DAY1);
    book.apply(fill('SELL', 4, '300.00', { token: TCS, product: 'NRML' }), DAY1);
    book.rollDay(DAY2);
    const mark = marks({ [INFY]: ['106.00', '104.00'], [TCS]: ['295.00', '298.00'] });
    expect(netRow(book, mark, INFY, 'NRML')).toMatchObject({ m2m: 20, pnl: 60, buy_m2m: 1040, sell_m2m: 0 });
    // Short carried: 4 × (298 − 295) against the close.
    expect(netRow(book, mark, TCS, 'NRML')).toMatchObject({ m2m: 12, pnl: 20, sell_m2m: 1192, buy_m2m: 0 });

    book.apply(fill('BUY', 5, '105.00', { product: 'NRML', atMs: T2 }), DAY2);
    book.apply(fill('SELL', 3, '107.00', { product: 'NRML', atMs: T2 }), DAY2);
    // carried 10 × (106 − 104) = 20; bought 5 at 105 now 106: +5; sold 3 at 107 now 106: +3.
    expect(netRow(book, mark, INFY, 'NRML')).toMatchObject({ quantity: 12, m2m: 28, buy_m2m: 1565, sell_m2m: 321 });
    const day = book.kitePositions('alice', mark).day.find((r) => r.instrument_token === INFY)!;
    expect(day).toMatchObject({ quantity: 2, m2m: 8, pnl: 8 });
    expect(book.totals('alice', mark).m2mPaise).toBe(2800 + 1200);
  });

  it('kitePositions rows carry every Kite field, numbers in rupees', () => {
    const book = new PositionBook();
    book.apply(fill('BUY', 3, '100.10'), DAY1);
    book.apply(fill('SELL', 1, '100.35'), DAY1);
    const { net, day } = book.kitePositions('alice', marks({ [INFY]: ['100.20', '99.90'] }));
    for (const row of [net[0], day[0]]) {
      expect(Object.keys(row).sort()).toEqual([...KITE_POSITION_FIELDS].sort());
      for (const f of KITE_POSITION_FIELDS) {
        if (f === 'tradingsymbol' || f === 'exchange' || f === 'product') expect(typeof row[f]).toBe('string');
        else expect(Number.isFinite(row[f])).toBe(true);
      }
    }
    expect(net[0]).toMatchObject({
      tradingsymbol: 'INFY', exchange: 'NSE', instrument_token: INFY, product: 'MIS', multiplier: 1,
      quantity: 2, last_price: 100.2, close_price: 99.9, buy_value: 300.3, sell_value: 100.35, value: -199.95,
      pnl: 0.45, realised: 0.25, unrealised: 0.2,
    });
  });

  it('holdings list only CNC quantity carried long from earlier days, at the average of earlier buys', () => {
    const book = new PositionBook();
    book.apply(fill('BUY', 10, '100.00', { product: 'CNC' }), DAY1);
    book.apply(fill('BUY', 5, '101.00', { product: 'CNC' }), DAY1);
    book.apply(fill('BUY', 7, '100.00', { product: 'MIS' }), DAY1);
    book.rollDay(DAY2);
    book.apply(fill('BUY', 2, '110.00', { product: 'CNC', atMs: T2 }), DAY2);
    book.apply(fill('SELL', 3, '111.00', { product: 'CNC', atMs: T2 }), DAY2);
    book.apply(fill('BUY', 4, '300.00', { token: TCS, product: 'CNC', atMs: T2 }), DAY2);
    const mark = marks({ [INFY]: ['105.00', '102.00'], [TCS]: ['301.00', '299.00'] });
    const holdings = book.kiteHoldings('alice', mark);
    expect(holdings).toHaveLength(1);
    expect(holdings[0]).toMatchObject({
      tradingsymbol: 'INFY', instrument_token: INFY, product: 'CNC', isin: '', t1_quantity: 0,
      quantity: 15, opening_quantity: 15, used_quantity: 3,
      average_price: 100.3333, last_price: 105, close_price: 102,
      pnl: 70, // 15 × 105 − 1505
      day_change: 3, day_change_percentage: 2.9412,
    });
    expect(book.kiteHoldings('alice', noMark)[0]).toMatchObject({ pnl: 0, last_price: 0, day_change: 0 });
  });

  it('products of one instrument are kept apart and netQuantity sums them', () => {
    const book = new PositionBook();
    book.apply(fill('BUY', 10, '100.00', { product: 'MIS' }), DAY1);
    book.apply(fill('BUY', 5, '100.00', { product: 'CNC' }), DAY1);
    book.apply(fill('SELL', 12, '101.00', { product: 'NRML' }), DAY1);
    expect(positionQuantity(book.get('alice', INFY, 'MIS')!)).toBe(10);
    expect(positionQuantity(book.get('alice', INFY, 'CNC')!)).toBe(5);
    expect(positionQuantity(book.get('alice', INFY, 'NRML')!)).toBe(-12);
    expect(book.get('alice', INFY, 'MTF')).toBeUndefined();
    expect(book.netQuantity('alice', INFY)).toBe(3);
    expect(book.forKey('alice')).toHaveLength(3);
    expect(book.kitePositions('alice', noMark).net.map((r) => r.product)).toEqual(['MIS', 'CNC', 'NRML']);
  });

  it('API keys are kept apart', () => {
    const book = new PositionBook();
    book.apply(fill('BUY', 10, '100.00', { key: 'alice' }), DAY1);
    book.apply(fill('SELL', 4, '100.00', { key: 'bob' }), DAY1);
    expect(book.netQuantity('alice', INFY)).toBe(10);
    expect(book.netQuantity('bob', INFY)).toBe(-4);
    expect(book.forKey('carol')).toEqual([]);
    expect(book.kitePositions('carol', noMark)).toEqual({ net: [], day: [] });
  });

  it('record and restore round-trip a position, figures unchanged', () => {
    const book = new PositionBook();
    book.apply(fill('BUY', 3, '100.01'), DAY1);
    const s = book.apply(fill('SELL', 1, '100.07'), DAY1);
    const rec = book.record(s);
    book.apply(fill('BUY', 1, '100.00'), DAY1);
    expect(rec.buyQty).toBe(3); // a copy, not the live position

    const again = new PositionBook();
    again.restore(rec);
    const mark = marks({ [INFY]: ['100.04', '100.00'] });
    const fresh = new PositionBook();
    fresh.apply(fill('BUY', 3, '100.01'), DAY1);
    fresh.apply(fill('SELL', 1, '100.07'), DAY1);
    expect(again.kitePositions('alice', mark)).toEqual(fresh.kitePositions('alice', mark));
    expect(again.totals('alice', mark)).toEqual(fresh.totals('alice', mark));

    // Restoring the same position again replaces it rather than adding a second.
    again.restore({ ...rec, sellQty: 2, sellValuePaise: 20014, daySellQty: 2, daySellValuePaise: 20014 });
    expect(again.forKey('alice')).toHaveLength(1);
    expect(again.netQuantity('alice', INFY)).toBe(1);
  });

  it('refuses a corrupt record or fill with a typed error', () => {
    const book = new PositionBook();
    const rec: PositionRecord = {
      key: 'alice', mode: 'paper', token: INFY, product: 'MIS', exchange: 'NSE', symbol: 'INFY',
      buyQty: 1, buyValuePaise: 10000, sellQty: 0, sellValuePaise: 0,
      dayBuyQty: 2, dayBuyValuePaise: 20000, daySellQty: 0, daySellValuePaise: 0, updatedMs: T1,
    };
    expect(() => book.restore(rec)).toThrow(AppError);
    expect(() => book.restore({ ...rec, dayBuyQty: 1, buyValuePaise: 100.5 })).toThrow(/buyValuePaise/);
    try {
      book.apply({ ...fill('BUY', 1, '100.00'), pricePaise: 1000.5 }, DAY1);
      expect.unreachable();
    } catch (e) {
      expect((e as AppError).code).toBe('POSITION_FILL_INVALID');
    }
    expect(book.forKey('alice')).toEqual([]);
  });

  it('totals add realised and unrealised to the whole pnl across positions', () => {
    const book = new PositionBook();
    book.apply(fill('BUY', 3, '100.00'), DAY1);
    book.apply(fill('SELL', 1, '100.01'), DAY1); // realised 1 paisa on INFY
    book.apply(fill('BUY', 3, '50.00', { token: TCS }), DAY1);
    book.apply(fill('BUY', 3, '50.01', { token: TCS }), DAY1);
    book.apply(fill('SELL', 2, '50.02', { token: TCS }), DAY1); // 2 × 1.5 paise = 3 paise
    const mark = marks({ [INFY]: ['101.00', '100.00'], [TCS]: ['49.00', '50.00'] });
    const t = book.totals('alice', mark);
    expect(t.realisedPaise).toBe(4);
    // pnl: INFY 10001 − 30000 + 2 × 10100 = 201; TCS 10004 − 30003 + 4 × 4900 = −399.
    expect(t.realisedPaise + t.unrealisedPaise).toBe(201 - 399);
    expect(t.m2mPaise).toBe(201 - 399);
    // No price for TCS: its open quantity counts at cost.
    const partial = book.totals('alice', marks({ [INFY]: ['101.00', '100.00'] }));
    expect(partial).toEqual({ realisedPaise: 4, unrealisedPaise: 200, m2mPaise: 204 });
  });
});
