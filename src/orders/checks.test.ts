import { describe, expect, it } from 'vitest';
import { refusal } from '../../test/support/refusal.ts';
import type { OrdersConfig } from '../config.ts';
import type { Instrument } from '../core/instrument.ts';
import { checkModify, checkPlace, freezeQuantity, marketSession, requiredMarginPaise, type CheckContext } from './checks.ts';
import type { Order } from './model.ts';
import type { ModifyRequest, PlaceRequest } from './request.ts';

// --- fixtures: instruments built by hand ---------------------------------------------------------

const base = { exchangeToken: 0, lastPrice: 0, expiry: '', strike: 0 };
const NIFTY_CE: Instrument = {
  ...base, instrumentToken: 1001, tradingsymbol: 'NIFTY26JAN24000CE', name: 'NIFTY', expiry: '2026-01-27', strike: 24000,
  tickSize: 0.05, lotSize: 65, instrumentType: 'CE', segment: 'NFO-OPT', exchange: 'NFO',
};
const NIFTY_PE: Instrument = { ...NIFTY_CE, instrumentToken: 1002, tradingsymbol: 'NIFTY26JAN24000PE', instrumentType: 'PE' };
const NIFTY_FUT: Instrument = {
  ...base, instrumentToken: 1003, tradingsymbol: 'NIFTY26JANFUT', name: 'NIFTY', expiry: '2026-01-27',
  tickSize: 0.1, lotSize: 65, instrumentType: 'FUT', segment: 'NFO-FUT', exchange: 'NFO',
};
const RELIANCE: Instrument = {
  ...base, instrumentToken: 738561, tradingsymbol: 'RELIANCE', name: 'RELIANCE INDUSTRIES',
  tickSize: 0.05, lotSize: 1, instrumentType: 'EQ', segment: 'NSE', exchange: 'NSE',
};
const NIFTY_INDEX: Instrument = {
  ...base, instrumentToken: 256265, tradingsymbol: 'NIFTY 50', name: 'NIFTY 50',
  tickSize: 0, lotSize: 0, instrumentType: 'EQ', segment: 'INDICES', exchange: 'NSE',
};

const CONFIG: OrdersConfig = {
  marketHours: 'always', paperLatencyMs: 20, ratePerSec: 10, ratePerMin: 400, ratePerDay: 5000, modificationsPerOrder: 25,
  rateActiveMs: 60_000, freezeQty: { NIFTY: 1800, BANKNIFTY: 600 }, maxOrderValuePaise: 1_00_00_000_00, maxOpenQty: 100_000,
  maxOrdersPerDay: 5000, priceBandPct: 20, optionBandPct: 500, paperCapitalPaise: 1_00_00_000_00, marginMis: 0.2, marginNrml: 0.25, kiteApiSecret: null, livePollMs: 5000, kiteTimeoutMs: 7000,
};

/** Wednesday 2026-01-14 10:00 IST, inside NSE's session. */
const WED_1000 = Date.parse('2026-01-14T10:00:00+05:30');
const ist = (s: string) => Date.parse(`${s}+05:30`);

function ctx(over: Partial<CheckContext> = {}, config: Partial<OrdersConfig> = {}): CheckContext {
  return {
    config: { ...CONFIG, ...config }, instrument: NIFTY_CE, lastPricePaise: 100_00, closePaise: 95_00, nowMs: WED_1000,
    openQty: 0, ordersToday: 0, availablePaise: 10_00_000_00, ...over,
  };
}

function req(over: Partial<PlaceRequest> = {}): PlaceRequest {
  return {
    variety: 'regular', exchange: 'NFO', tradingsymbol: 'NIFTY26JAN24000CE', transaction_type: 'BUY', quantity: 65,
    product: 'NRML', order_type: 'LIMIT', price: 100, validity: 'DAY', autoslice: false, ...over,
  };
}

const equity = (over: Partial<PlaceRequest> = {}) => req({ exchange: 'NSE', tradingsymbol: 'RELIANCE', product: 'CNC', price: 1400, quantity: 10, ...over });
const eqCtx = (over: Partial<CheckContext> = {}, config: Partial<OrdersConfig> = {}) =>
  ctx({ instrument: RELIANCE, lastPricePaise: 1400_00, closePaise: 1390_00, ...over }, config);

const why = (fn: () => unknown) => {
  const e = refusal(fn);
  return [e.field, e.rule, e.kind];
};

// --- place ---------------------------------------------------------------------------------------

describe('checkPlace: a passing order', () => {
  it('gives paise, one slice, its value and margin', () => {
    const c = checkPlace(req({ price: 100.05 }), ctx());
    expect(c).toMatchObject({ pricePaise: 100_05, triggerPaise: 0, marketProtection: null, slices: [65], iceberg: false, valuePaise: 65 * 100_05, marginPaise: 65 * 100_05 });
    expect(c.instrument).toBe(NIFTY_CE);
  });
});

describe('checkPlace: instrument', () => {
  it('refuses an instrument the master does not know, naming tradingsymbol', () => {
    const e = refusal(() => checkPlace(req({ tradingsymbol: 'NIFTY26JAN99999CE' }), ctx({ instrument: null })));
    expect([e.field, e.rule, e.kind]).toEqual(['tradingsymbol', 'unknown_instrument', 'input']);
    expect(e.message).toMatch(/^tradingsymbol: NFO:NIFTY26JAN99999CE is not in the instrument master/);
  });

  it('refuses an index (segment INDICES), which cannot be traded', () => {
    expect(why(() => checkPlace(equity({ tradingsymbol: 'NIFTY 50', quantity: 1 }), ctx({ instrument: NIFTY_INDEX })))).toEqual(['tradingsymbol', 'not_tradable', 'input']);
  });

  it('refuses co and auction even when built in code, past the parser', () => {
    expect(why(() => checkPlace(req({ variety: 'co' }), ctx()))).toEqual(['variety', 'variety_unsupported', 'input']);
  });
});

describe('checkPlace: product', () => {
  it('refuses CNC and MTF for F&O, naming NRML or MIS', () => {
    const e = refusal(() => checkPlace(req({ product: 'CNC' }), ctx()));
    expect([e.field, e.rule]).toEqual(['product', 'product']);
    expect(e.message).toBe('product: CNC is not a product for NIFTY26JAN24000CE (F&O); send NRML or MIS');
    expect(why(() => checkPlace(req({ product: 'MTF' }), ctx()))[0]).toBe('product');
  });

  it('refuses NRML for a cash instrument and accepts CNC, MIS and MTF', () => {
    expect(why(() => checkPlace(equity({ product: 'NRML' }), eqCtx()))[0]).toBe('product');
    for (const product of ['CNC', 'MIS', 'MTF'] as const) expect(checkPlace(equity({ product }), eqCtx()).req.product).toBe(product);
  });
});

describe('checkPlace: quantity and lots', () => {
  it('refuses a NIFTY option quantity that is not a multiple of 65, naming quantity', () => {
    const e = refusal(() => checkPlace(req({ quantity: 50 }), ctx()));
    expect([e.field, e.rule, e.kind]).toEqual(['quantity', 'lot_multiple', 'input']);
    expect(e.message).toBe('quantity: 50 is not a multiple of the lot size 65 for NIFTY26JAN24000CE; send 65, 130, ...');
  });

  it('accepts whole lots of a NIFTY future', () => {
    expect(checkPlace(req({ tradingsymbol: 'NIFTY26JANFUT', quantity: 130, price: 24000 }), ctx({ instrument: NIFTY_FUT, lastPricePaise: 24000_00, closePaise: 24000_00 })).slices).toEqual([130]);
  });

  it('takes any whole quantity of a cash instrument (lot 1)', () => {
    expect(checkPlace(equity({ quantity: 7 }), eqCtx()).slices).toEqual([7]);
  });

  it.each([0, -65, 65.5, 2e9])('refuses the quantity %s built in code', (q) => {
    expect(why(() => checkPlace(req({ quantity: q }), ctx()))[0]).toBe('quantity');
  });

  it('refuses a disclosed quantity above the quantity', () => {
    expect(why(() => checkPlace(equity({ disclosed_quantity: 11 }), eqCtx()))).toEqual(['disclosed_quantity', 'disclosed', 'input']);
    expect(checkPlace(equity({ disclosed_quantity: 10 }), eqCtx()).req.disclosed_quantity).toBe(10);
  });
});

describe('checkPlace: validity and tag', () => {
  it('refuses validity TTL without validity_ttl', () => {
    expect(why(() => checkPlace(req({ validity: 'TTL' }), ctx()))).toEqual(['validity_ttl', 'required', 'input']);
  });

  it('accepts validity TTL with 1 to 1440 minutes and refuses 1441', () => {
    expect(checkPlace(req({ validity: 'TTL', validity_ttl: 1440 }), ctx()).req.validity_ttl).toBe(1440);
    expect(why(() => checkPlace(req({ validity: 'TTL', validity_ttl: 1441 }), ctx()))).toEqual(['validity_ttl', 'range', 'input']);
  });

  it.each(['DAY', 'IOC'] as const)('refuses validity_ttl with validity %s', (validity) => {
    expect(why(() => checkPlace(req({ validity, validity_ttl: 5 }), ctx()))).toEqual(['validity_ttl', 'ttl_only', 'input']);
  });

  it('allows IOC with a stop-loss order', () => {
    expect(checkPlace(req({ validity: 'IOC', order_type: 'SL', price: 106, trigger_price: 105 }), ctx()).req.validity).toBe('IOC');
  });

  it('refuses a tag over 20 characters built in code', () => {
    expect(why(() => checkPlace(req({ tag: 't'.repeat(21) }), ctx()))).toEqual(['tag', 'length', 'input']);
  });
});

describe('checkPlace: order type, price and trigger', () => {
  it('refuses LIMIT without a price, or with price 0', () => {
    expect(why(() => checkPlace(req({ price: undefined }), ctx()))).toEqual(['price', 'price_required', 'input']);
    expect(why(() => checkPlace(req({ price: 0 }), ctx()))).toEqual(['price', 'price_required', 'input']);
  });

  it('refuses LIMIT with a trigger price', () => {
    expect(why(() => checkPlace(req({ trigger_price: 99 }), ctx()))).toEqual(['trigger_price', 'trigger_not_allowed', 'input']);
  });

  it('refuses SL without a price or without a trigger', () => {
    expect(why(() => checkPlace(req({ order_type: 'SL', trigger_price: 105, price: undefined }), ctx()))[1]).toBe('price_required');
    expect(why(() => checkPlace(req({ order_type: 'SL', price: 106 }), ctx()))[1]).toBe('trigger_required');
  });

  it('refuses SL-M without a trigger, or with a price', () => {
    const slm = { order_type: 'SL-M' as const, market_protection: -1, price: undefined };
    expect(why(() => checkPlace(req(slm), ctx()))).toEqual(['trigger_price', 'trigger_required', 'input']);
    expect(why(() => checkPlace(req({ ...slm, trigger_price: 105, price: 106 }), ctx()))).toEqual(['price', 'price_not_allowed', 'input']);
  });

  it('refuses a price sent with MARKET, and reads price 0 as none', () => {
    const mkt = { order_type: 'MARKET' as const, market_protection: 5 };
    const e = refusal(() => checkPlace(req({ ...mkt, price: 100 }), ctx()));
    expect([e.field, e.rule]).toEqual(['price', 'price_not_allowed']);
    expect(e.message).toBe('price: MARKET orders take no price (got 100.00); send LIMIT to set one, or leave price out');
    expect(checkPlace(req({ ...mkt, price: 0, trigger_price: 0 }), ctx()).pricePaise).toBe(0);
  });

  it('refuses a trigger sent with MARKET', () => {
    expect(why(() => checkPlace(req({ order_type: 'MARKET', market_protection: 5, price: undefined, trigger_price: 99 }), ctx()))[1]).toBe('trigger_not_allowed');
  });
});

describe('checkPlace: market protection', () => {
  it("refuses a MARKET order without market_protection in Kite's words", () => {
    const e = refusal(() => checkPlace(req({ order_type: 'MARKET', price: undefined }), ctx()));
    expect([e.field, e.rule, e.kind]).toEqual(['market_protection', 'market_protection', 'input']);
    expect(e.message).toMatch(/^Market orders without market protection are not allowed via API\. Send market_protection -1/);
  });

  it('refuses market_protection 0 (none) on MARKET and SL-M', () => {
    expect(why(() => checkPlace(req({ order_type: 'MARKET', price: undefined, market_protection: 0 }), ctx()))[0]).toBe('market_protection');
    expect(why(() => checkPlace(req({ order_type: 'SL-M', price: undefined, trigger_price: 105, market_protection: 0 }), ctx()))[0]).toBe('market_protection');
  });

  it('refuses an SL-M order without market_protection', () => {
    expect(why(() => checkPlace(req({ order_type: 'SL-M', price: undefined, trigger_price: 105 }), ctx()))[0]).toBe('market_protection');
  });

  it('keeps -1 (automatic) and a percentage on MARKET and SL-M', () => {
    expect(checkPlace(req({ order_type: 'MARKET', price: undefined, market_protection: -1 }), ctx()).marketProtection).toBe(-1);
    expect(checkPlace(req({ order_type: 'SL-M', price: undefined, trigger_price: 105, market_protection: 3 }), ctx()).marketProtection).toBe(3);
  });

  it('drops market_protection sent with LIMIT or SL', () => {
    expect(checkPlace(req({ market_protection: 5 }), ctx()).marketProtection).toBeNull();
  });

  it('refuses a protection outside -1..100 built in code', () => {
    expect(why(() => checkPlace(req({ order_type: 'MARKET', price: undefined, market_protection: 101 }), ctx()))).toEqual(['market_protection', 'range', 'input']);
  });
});

describe('checkPlace: tick size', () => {
  it('refuses a price off the 0.05 tick, offering the ticks around it', () => {
    const e = refusal(() => checkPlace(req({ price: 100.03 }), ctx()));
    expect([e.field, e.rule, e.kind]).toEqual(['price', 'tick', 'input']);
    expect(e.message).toBe('price: 100.03 is not a multiple of the tick size 0.05 for NIFTY26JAN24000CE; send 100.00 or 100.05');
  });

  it('refuses a trigger off the tick', () => {
    expect(why(() => checkPlace(req({ order_type: 'SL', price: 106, trigger_price: 105.01 }), ctx()))).toEqual(['trigger_price', 'tick', 'input']);
  });

  it("uses the instrument's own tick (0.10 for the future)", () => {
    const c = ctx({ instrument: NIFTY_FUT, lastPricePaise: 24000_00, closePaise: 24000_00 });
    expect(why(() => checkPlace(req({ tradingsymbol: 'NIFTY26JANFUT', price: 24000.05 }), c))[1]).toBe('tick');
    expect(checkPlace(req({ tradingsymbol: 'NIFTY26JANFUT', price: 24000.1 }), c).pricePaise).toBe(24000_10);
  });

  it('refuses a price of fractional paise built in code', () => {
    expect(why(() => checkPlace(req({ price: 100.001 }), ctx()))).toEqual(['price', 'decimals', 'input']);
  });
});

describe('checkPlace: stop-loss trigger side', () => {
  it('refuses a BUY stop-loss whose trigger is not above the last price', () => {
    const e = refusal(() => checkPlace(req({ order_type: 'SL', price: 99, trigger_price: 98 }), ctx()));
    expect([e.field, e.rule]).toEqual(['trigger_price', 'trigger_side']);
    expect(e.message).toMatch(/^trigger_price: 98\.00 is not above the last price 100\.00/);
    expect(why(() => checkPlace(req({ order_type: 'SL', price: 100, trigger_price: 100 }), ctx()))[1]).toBe('trigger_side');
  });

  it('refuses a SELL stop-loss whose trigger is not below the last price', () => {
    expect(why(() => checkPlace(req({ transaction_type: 'SELL', order_type: 'SL', price: 101, trigger_price: 102 }), ctx()))).toEqual(['trigger_price', 'trigger_side', 'input']);
  });

  it('applies the same side to SL-M', () => {
    expect(why(() => checkPlace(req({ order_type: 'SL-M', price: undefined, trigger_price: 99, market_protection: -1 }), ctx()))[1]).toBe('trigger_side');
  });

  it('accepts stop-losses on the right side', () => {
    expect(checkPlace(req({ order_type: 'SL', price: 106, trigger_price: 105 }), ctx()).triggerPaise).toBe(105_00);
    expect(checkPlace(req({ transaction_type: 'SELL', order_type: 'SL', price: 94, trigger_price: 95 }), ctx()).triggerPaise).toBe(95_00);
  });

  it('skips the side check when there is no last price', () => {
    expect(checkPlace(req({ order_type: 'SL', price: 99, trigger_price: 98 }), ctx({ lastPricePaise: null })).triggerPaise).toBe(98_00);
  });

  it('refuses a BUY SL whose price is below its trigger, and a SELL SL whose price is above it', () => {
    const buy = refusal(() => checkPlace(req({ order_type: 'SL', price: 104, trigger_price: 105 }), ctx()));
    expect([buy.field, buy.rule]).toEqual(['price', 'sl_price']);
    expect(buy.message).toBe('price: 104.00 is below the trigger price 105.00: a BUY stop-loss limit needs price >= trigger price');
    expect(why(() => checkPlace(req({ transaction_type: 'SELL', order_type: 'SL', price: 96, trigger_price: 95 }), ctx()))).toEqual(['price', 'sl_price', 'input']);
    expect(checkPlace(req({ order_type: 'SL', price: 105, trigger_price: 105 }), ctx()).pricePaise).toBe(105_00);
  });
});

describe('checkPlace: price band', () => {
  it("refuses an equity price above the previous close + 20%, showing the band", () => {
    const e = refusal(() => checkPlace(equity({ price: 1668.05 }), eqCtx()));
    expect([e.field, e.rule, e.kind]).toEqual(['price', 'price_band', 'input']);
    expect(e.message).toBe("price: 1668.05 is above today's band for RELIANCE, 1112.00 to 1668.00 (previous close 1390.00 ± 20%); send a price inside it");
    expect(checkPlace(equity({ price: 1668 }), eqCtx()).pricePaise).toBe(1668_00);
  });

  it('refuses an equity price below the previous close - 20%', () => {
    expect(why(() => checkPlace(equity({ price: 1111.95 }), eqCtx()))).toEqual(['price', 'price_band', 'input']);
    expect(checkPlace(equity({ price: 1112 }), eqCtx()).pricePaise).toBe(1112_00);
  });

  it('bands a future the same way', () => {
    const c = ctx({ instrument: NIFTY_FUT, lastPricePaise: 24000_00, closePaise: 24000_00 });
    expect(why(() => checkPlace(req({ tradingsymbol: 'NIFTY26JANFUT', price: 28800.1 }), c))[1]).toBe('price_band');
  });

  it('refuses an option price above reference × (1 + 500/100) and allows one tick', () => {
    const e = refusal(() => checkPlace(req({ price: 570.05 }), ctx()));
    expect([e.field, e.rule]).toEqual(['price', 'price_band']);
    expect(e.message).toBe("price: 570.05 is above today's band for NIFTY26JAN24000CE, 0.05 to 570.00 (previous close 95.00 + 500%); send a price inside it");
    expect(checkPlace(req({ price: 570 }), ctx()).pricePaise).toBe(570_00);
    expect(checkPlace(req({ price: 0.05 }), ctx()).pricePaise).toBe(5);
    expect(checkPlace(req({ tradingsymbol: 'NIFTY26JAN24000PE', price: 0.05 }), ctx({ instrument: NIFTY_PE })).pricePaise).toBe(5);
  });

  it('uses the last price as reference when there is no previous close', () => {
    const e = refusal(() => checkPlace(equity({ price: 1700 }), eqCtx({ closePaise: null, lastPricePaise: 1400_00 })));
    expect(e.message).toMatch(/1120\.00 to 1680\.00 \(last price 1400\.00 ± 20%\)/);
  });

  it('checks no band when there is no reference', () => {
    expect(checkPlace(equity({ price: 99999 }), eqCtx({ closePaise: null, lastPricePaise: null })).pricePaise).toBe(99999_00);
  });

  it('bands the trigger price too', () => {
    expect(why(() => checkPlace(equity({ order_type: 'SL', price: 1700, trigger_price: 1699 }), eqCtx({ closePaise: 1390_00 })))).toEqual(['price', 'price_band', 'input']);
    expect(why(() => checkPlace(equity({ order_type: 'SL-M', price: undefined, trigger_price: 1699, market_protection: -1 }), eqCtx()))).toEqual(['trigger_price', 'price_band', 'input']);
  });
});

describe('checkPlace: freeze quantity and autoslice', () => {
  it('refuses a NIFTY quantity above the 1,800 freeze without autoslice, naming the most one order takes', () => {
    const e = refusal(() => checkPlace(req({ quantity: 1820 }), ctx()));
    expect([e.field, e.rule, e.kind]).toEqual(['quantity', 'freeze', 'input']);
    expect(e.message).toBe('quantity: 1820 is above the freeze quantity 1800 of NIFTY; send at most 1755, or autoslice true to place it as 2 orders');
  });

  it('takes a quantity at the freeze, when it is a lot multiple', () => {
    const c = ctx({ instrument: { ...NIFTY_CE, lotSize: 75 } });
    expect(checkPlace(req({ quantity: 1800 }), c).slices).toEqual([1800]);
  });

  it('slices with autoslice: full slices of the largest lot multiple within the freeze, the rest last', () => {
    const c = checkPlace(req({ quantity: 65 * 60, autoslice: true }), ctx());
    expect(c.slices).toEqual([1755, 1755, 390]);
    expect(c.slices.every((q) => q % 65 === 0 && q <= 1800)).toBe(true);
    expect(c.slices.reduce((a, b) => a + b, 0)).toBe(3900);
  });

  it('places at most 10 slices, refusing more', () => {
    expect(checkPlace(req({ quantity: 1755 * 10, autoslice: true }), ctx({ availablePaise: 1e10 })).slices).toHaveLength(10);
    const e = refusal(() => checkPlace(req({ quantity: 1755 * 10 + 65, autoslice: true }), ctx()));
    expect([e.field, e.rule]).toEqual(['quantity', 'autoslice_limit']);
    expect(e.message).toBe('quantity: 17615 needs 11 slices of at most 1755, and autoslice places at most 10; send at most 17550');
  });

  it('leaves one slice with autoslice when the quantity is within the freeze', () => {
    expect(checkPlace(req({ quantity: 130, autoslice: true }), ctx()).slices).toEqual([130]);
  });

  it('applies no freeze to cash instruments or to underlyings not in the table', () => {
    expect(checkPlace(equity({ quantity: 50_000, price: 14 }), eqCtx({ lastPricePaise: 14_00, closePaise: 14_00 })).slices).toEqual([50_000]);
    const finnifty = { ...NIFTY_CE, name: 'FINNIFTY', tradingsymbol: 'FINNIFTY26JAN24000CE' };
    expect(freezeQuantity(CONFIG, finnifty)).toBeNull();
    expect(freezeQuantity(CONFIG, RELIANCE)).toBeNull();
    expect(freezeQuantity(CONFIG, NIFTY_FUT)).toBe(1800);
  });
});

describe('checkPlace: iceberg', () => {
  const ice = (over: Partial<PlaceRequest> = {}) => req({ variety: 'iceberg', quantity: 650, iceberg_legs: 5, iceberg_quantity: 130, ...over });

  it('gives one slice per leg', () => {
    const c = checkPlace(ice(), ctx());
    expect(c.iceberg).toBe(true);
    expect(c.slices).toEqual([130, 130, 130, 130, 130]);
  });

  it('refuses an iceberg without iceberg_legs, or with fewer than 2 or more than 50', () => {
    expect(why(() => checkPlace(ice({ iceberg_legs: undefined }), ctx()))).toEqual(['iceberg_legs', 'required', 'input']);
    expect(why(() => checkPlace(ice({ iceberg_legs: 1, iceberg_quantity: 650 }), ctx()))).toEqual(['iceberg_legs', 'range', 'input']);
    expect(why(() => checkPlace(ice({ quantity: 65 * 51, iceberg_legs: 51, iceberg_quantity: 65 }), ctx()))).toEqual(['iceberg_legs', 'range', 'input']);
    expect(checkPlace(ice({ quantity: 65 * 50, iceberg_legs: 50, iceberg_quantity: 65 }), ctx()).slices).toHaveLength(50);
  });

  it('refuses an iceberg_quantity that is not quantity / legs, saying what to send', () => {
    const e = refusal(() => checkPlace(ice({ iceberg_quantity: 65 }), ctx()));
    expect([e.field, e.rule]).toEqual(['iceberg_quantity', 'iceberg_split']);
    expect(e.message).toBe('iceberg_quantity: 65 × 5 legs is 325, not the quantity 650; send 130');
    expect(why(() => checkPlace(ice({ iceberg_quantity: undefined }), ctx()))).toEqual(['iceberg_quantity', 'required', 'input']);
  });

  it('refuses legs that are not a multiple of the lot', () => {
    // 3 lots in 5 legs: 39 each, not a multiple of 65.
    const e = refusal(() => checkPlace(ice({ quantity: 195, iceberg_legs: 5, iceberg_quantity: 39 }), ctx()));
    expect([e.field, e.rule, e.kind]).toEqual(['iceberg_quantity', 'lot_multiple', 'input']);
    expect(e.message).toBe('iceberg_quantity: 39 is not a multiple of the lot size 65 for NIFTY26JAN24000CE; send 65, 130, ...');
  });

  it('says when the quantity does not split into equal legs', () => {
    expect(refusal(() => checkPlace(ice({ quantity: 195, iceberg_legs: 2, iceberg_quantity: 65 }), ctx())).message)
      .toBe('iceberg_quantity: 65 × 2 legs is 130, not the quantity 195; the quantity 195 does not split into 2 equal legs; change one of them');
  });

  it('refuses a leg above the freeze quantity', () => {
    expect(why(() => checkPlace(ice({ quantity: 1820 * 2, iceberg_legs: 2, iceberg_quantity: 1820 }), ctx()))).toEqual(['iceberg_quantity', 'freeze', 'input']);
  });

  it('refuses MARKET and SL-M icebergs', () => {
    expect(why(() => checkPlace(ice({ order_type: 'MARKET', price: undefined, market_protection: -1 }), ctx()))).toEqual(['order_type', 'iceberg_order_type', 'input']);
    expect(why(() => checkPlace(ice({ order_type: 'SL-M', price: undefined, trigger_price: 105, market_protection: -1 }), ctx()))[1]).toBe('iceberg_order_type');
    expect(checkPlace(ice({ order_type: 'SL', price: 106, trigger_price: 105 }), ctx()).slices).toHaveLength(5);
  });

  it('refuses autoslice on an iceberg', () => {
    expect(why(() => checkPlace(ice({ autoslice: true }), ctx()))).toEqual(['autoslice', 'iceberg_autoslice', 'input']);
  });

  it('refuses iceberg fields on a regular order', () => {
    expect(why(() => checkPlace(req({ iceberg_legs: 2 }), ctx()))).toEqual(['iceberg_legs', 'iceberg_only', 'input']);
    expect(why(() => checkPlace(req({ iceberg_quantity: 65 }), ctx()))).toEqual(['iceberg_quantity', 'iceberg_only', 'input']);
  });
});

describe('market hours', () => {
  it("places any variety at any time with marketHours 'always'", () => {
    for (const v of ['regular', 'amo', 'iceberg'] as const) expect(marketSession(v, ist('2026-01-17T03:00:00'), 'always')).toEqual({ open: true });
  });

  it("opens regular and iceberg from 09:15 to 15:30 IST on weekdays with 'exchange'", () => {
    expect(marketSession('regular', ist('2026-01-14T09:14:59'), 'exchange').open).toBe(false);
    expect(marketSession('regular', ist('2026-01-14T09:15:00'), 'exchange').open).toBe(true);
    expect(marketSession('iceberg', ist('2026-01-14T15:29:59'), 'exchange').open).toBe(true);
    expect(marketSession('regular', ist('2026-01-14T15:30:00'), 'exchange').open).toBe(false);
    expect(marketSession('regular', ist('2026-01-12T10:00:00'), 'exchange').open).toBe(true); // Monday
    expect(marketSession('regular', ist('2026-01-16T10:00:00'), 'exchange').open).toBe(true); // Friday
  });

  it('closes on Saturday and Sunday', () => {
    expect(marketSession('regular', ist('2026-01-17T10:00:00'), 'exchange').open).toBe(false);
    expect(marketSession('regular', ist('2026-01-18T10:00:00'), 'exchange').open).toBe(false);
  });

  it('takes amo only outside the session', () => {
    expect(marketSession('amo', ist('2026-01-14T10:00:00'), 'exchange').open).toBe(false);
    expect(marketSession('amo', ist('2026-01-14T16:00:00'), 'exchange').open).toBe(true);
    expect(marketSession('amo', ist('2026-01-14T08:00:00'), 'exchange').open).toBe(true);
    expect(marketSession('amo', ist('2026-01-17T10:00:00'), 'exchange').open).toBe(true);
  });

  it('refuses a regular order after the close, suggesting amo', () => {
    const e = refusal(() => checkPlace(req(), ctx({ nowMs: ist('2026-01-14T16:00:00') }, { marketHours: 'exchange' })));
    expect([e.field, e.rule, e.kind]).toEqual(['variety', 'market_hours', 'input']);
    expect(e.message).toMatch(/^variety: markets are closed right now .*variety amo/);
  });

  it('refuses an amo during the session, suggesting regular', () => {
    const e = refusal(() => checkPlace(req({ variety: 'amo' }), ctx({}, { marketHours: 'exchange' })));
    expect([e.field, e.rule]).toEqual(['variety', 'market_hours']);
    expect(e.message).toMatch(/place a regular order$/);
    expect(checkPlace(req({ variety: 'amo' }), ctx({ nowMs: ist('2026-01-14T18:00:00') }, { marketHours: 'exchange' })).req.variety).toBe('amo');
  });
});

describe('checkPlace: per-key risk limits', () => {
  it('refuses an order once the key has placed maxOrdersPerDay today', () => {
    expect(checkPlace(req(), ctx({ ordersToday: 4999 })).slices).toHaveLength(1);
    const e = refusal(() => checkPlace(req(), ctx({ ordersToday: 5000 })));
    expect([e.field, e.rule, e.kind]).toEqual(['order', 'max_orders_per_day', 'order']);
  });

  it("counts each autoslice slice against the day's orders", () => {
    expect(why(() => checkPlace(req({ quantity: 3900, autoslice: true }), ctx({ ordersToday: 4998 })))[1]).toBe('max_orders_per_day');
    expect(checkPlace(req({ quantity: 3900, autoslice: true }), ctx({ ordersToday: 4997 })).slices).toHaveLength(3);
  });

  it('refuses an order whose value (quantity × price) passes maxOrderValuePaise, naming the most it may be', () => {
    const c = eqCtx({}, { maxOrderValuePaise: 1_00_000_00 });
    expect(checkPlace(equity({ quantity: 71, price: 1400 }), c).valuePaise).toBe(99_400_00);
    const e = refusal(() => checkPlace(equity({ quantity: 72, price: 1400 }), c));
    expect([e.field, e.rule, e.kind]).toEqual(['quantity', 'max_order_value', 'order']);
    expect(e.message).toBe("quantity: the order's value 100800.00 (72 × 1400.00) is above this key's limit of 100000.00 per order; send at most 71 units, or split the order");
  });

  it('values a MARKET order at the last price and an SL-M at its trigger', () => {
    expect(checkPlace(equity({ order_type: 'MARKET', price: undefined, market_protection: -1 }), eqCtx({ lastPricePaise: 1401_00 })).valuePaise).toBe(10 * 1401_00);
    expect(checkPlace(equity({ transaction_type: 'SELL', order_type: 'SL-M', price: undefined, trigger_price: 1350, market_protection: -1 }), eqCtx()).valuePaise).toBe(10 * 1350_00);
  });

  it('refuses a MARKET order when there is no last price to value it at', () => {
    expect(why(() => checkPlace(equity({ order_type: 'MARKET', price: undefined, market_protection: -1 }), eqCtx({ lastPricePaise: null })))).toEqual(['price', 'no_last_price', 'order']);
  });

  it('refuses an order that takes open quantity in the instrument past maxOpenQty', () => {
    const c = (openQty: number) => ctx({ openQty }, { maxOpenQty: 1300 });
    expect(checkPlace(req({ quantity: 650 }), c(650)).slices).toEqual([650]);
    const e = refusal(() => checkPlace(req({ quantity: 650 }), c(715)));
    expect([e.field, e.rule, e.kind]).toEqual(['quantity', 'max_open_qty', 'order']);
    expect(e.message).toMatch(/send at most 585$/);
  });
});

describe('checkPlace: funds', () => {
  it("refuses an order whose margin is above the funds available, in Kite's words, as a margin refusal", () => {
    const e = refusal(() => checkPlace(req({ quantity: 650 }), ctx({ availablePaise: 64_999_99 })));
    expect([e.field, e.rule, e.kind]).toEqual(['quantity', 'margin', 'margin']);
    expect(e.message).toMatch(/^Insufficient funds\. Required margin is 65000\.00 but available margin is 64999\.99\. /);
  });

  it('takes an order whose margin equals the funds available', () => {
    expect(checkPlace(req({ quantity: 650 }), ctx({ availablePaise: 65_000_00 })).marginPaise).toBe(65_000_00);
  });

  it('refuses any order when the funds are negative', () => {
    const e = refusal(() => checkPlace(req(), ctx({ availablePaise: -1_00 })));
    expect(e.message).toMatch(/available margin is -1\.00\./);
  });
});

describe('requiredMarginPaise', () => {
  it('charges CNC the full value', () => {
    expect(requiredMarginPaise(CONFIG, RELIANCE, 'CNC', 'BUY', 14_000_00)).toBe(14_000_00);
  });

  it('charges MTF the full value (no leverage table here)', () => {
    expect(requiredMarginPaise(CONFIG, RELIANCE, 'MTF', 'BUY', 14_000_00)).toBe(14_000_00);
  });

  it('charges an option buyer the full premium, whatever the product', () => {
    expect(requiredMarginPaise(CONFIG, NIFTY_CE, 'NRML', 'BUY', 6500_00)).toBe(6500_00);
    expect(requiredMarginPaise(CONFIG, NIFTY_PE, 'MIS', 'BUY', 6500_00)).toBe(6500_00);
  });

  it('charges MIS value × marginMis and NRML value × marginNrml', () => {
    expect(requiredMarginPaise(CONFIG, RELIANCE, 'MIS', 'BUY', 14_000_00)).toBe(2_800_00);
    expect(requiredMarginPaise(CONFIG, NIFTY_FUT, 'NRML', 'SELL', 100_000_00)).toBe(25_000_00);
  });

  it('charges an option seller value × fraction (an approximation: no SPAN here)', () => {
    expect(requiredMarginPaise(CONFIG, NIFTY_CE, 'NRML', 'SELL', 6500_00)).toBe(1625_00);
    expect(requiredMarginPaise(CONFIG, NIFTY_CE, 'MIS', 'SELL', 6500_00)).toBe(1300_00);
  });

  it('rounds up to the paisa in integers', () => {
    expect(requiredMarginPaise(CONFIG, RELIANCE, 'MIS', 'BUY', 1001)).toBe(201); // 200.2
    expect(requiredMarginPaise({ marginMis: 0.1, marginNrml: 0.1 }, RELIANCE, 'MIS', 'BUY', 30)).toBe(3); // 0.1 × 30 is 3.0000000000000004 in floats
    expect(requiredMarginPaise({ marginMis: 0.3, marginNrml: 0.1 }, RELIANCE, 'MIS', 'BUY', 9_007_199_254_740_990)).toBe(2_702_159_776_422_297);
  });

  it('prices a missing instrument as a non-option', () => {
    expect(requiredMarginPaise(CONFIG, null, 'NRML', 'BUY', 100_00)).toBe(25_00);
  });
});

// --- modify --------------------------------------------------------------------------------------

function order(over: Partial<Order> = {}): Order {
  return {
    id: '1', key: 'k', mode: 'paper', parentId: null, variety: 'regular', exchange: 'NFO', symbol: 'NIFTY26JAN24000CE', token: 1001,
    side: 'BUY', product: 'NRML', orderType: 'LIMIT', validity: 'DAY', validityTtl: 0, quantity: 130, disclosedQuantity: 0,
    pricePaise: 100_00, triggerPaise: 0, marketProtection: null, tag: null, guid: null, status: 'OPEN', statusMessage: null,
    filledQuantity: 0, filledValuePaise: 0, cancelledQuantity: 0, modifications: 0, createdMs: WED_1000, updatedMs: WED_1000,
    exchangeMs: WED_1000, meta: null, ...over,
  };
}
const modify = (o: Order, r: ModifyRequest, c: CheckContext = ctx({ openQty: o.quantity })) => checkModify(o, r, c);

describe('checkModify', () => {
  it("keeps what the request does not send and applies what it does", () => {
    expect(modify(order(), { price: 101.5 })).toEqual({
      quantity: 130, pricePaise: 101_50, triggerPaise: 0, orderType: 'LIMIT', validity: 'DAY', disclosedQuantity: 0,
      marketProtection: null, valuePaise: 130 * 101_50, marginPaise: 130 * 101_50,
    });
    expect(modify(order(), { quantity: 195, validity: 'IOC' })).toMatchObject({ quantity: 195, pricePaise: 100_00, validity: 'IOC' });
  });

  it('drops the trigger when an SL order becomes LIMIT', () => {
    const o = order({ orderType: 'SL', pricePaise: 106_00, triggerPaise: 105_00 });
    expect(modify(o, { order_type: 'LIMIT' })).toMatchObject({ orderType: 'LIMIT', pricePaise: 106_00, triggerPaise: 0 });
  });

  it('refuses a trigger sent while turning an order LIMIT', () => {
    expect(why(() => modify(order({ orderType: 'SL', pricePaise: 106_00, triggerPaise: 105_00 }), { order_type: 'LIMIT', trigger_price: 105 }))[1]).toBe('trigger_not_allowed');
  });

  it('turns a LIMIT order MARKET only with market protection', () => {
    expect(why(() => modify(order(), { order_type: 'MARKET' }))).toEqual(['market_protection', 'market_protection', 'input']);
    expect(modify(order(), { order_type: 'MARKET', market_protection: -1 })).toMatchObject({ orderType: 'MARKET', pricePaise: 0, marketProtection: -1 });
  });

  it('keeps the protection an SL-M order already has', () => {
    const o = order({ orderType: 'SL-M', pricePaise: 0, triggerPaise: 105_00, marketProtection: 3 });
    expect(modify(o, { trigger_price: 106 })).toMatchObject({ triggerPaise: 106_00, marketProtection: 3 });
  });

  it('refuses a quantity that is not a lot multiple', () => {
    expect(why(() => modify(order(), { quantity: 100 }))).toEqual(['quantity', 'lot_multiple', 'input']);
  });

  it('refuses a quantity not above what is already filled', () => {
    const e = refusal(() => modify(order({ filledQuantity: 65, filledValuePaise: 65 * 100_00 }), { quantity: 65 }));
    expect([e.field, e.rule]).toEqual(['quantity', 'below_filled']);
  });

  it('refuses a quantity above the freeze (a modification cannot be sliced)', () => {
    expect(why(() => modify(order(), { quantity: 1820 }))).toEqual(['quantity', 'freeze', 'input']);
  });

  it('refuses a price off the tick or outside the band', () => {
    expect(why(() => modify(order(), { price: 100.02 }))[1]).toBe('tick');
    expect(why(() => modify(order(), { price: 600 }))[1]).toBe('price_band');
  });

  it('refuses turning an iceberg leg MARKET', () => {
    expect(why(() => modify(order({ variety: 'iceberg' }), { order_type: 'MARKET', market_protection: -1 }))).toEqual(['order_type', 'iceberg_order_type', 'input']);
  });

  it('refuses validity TTL on an order placed without validity_ttl, and keeps it on one placed with it', () => {
    expect(why(() => modify(order(), { validity: 'TTL' }))).toEqual(['validity', 'ttl_required', 'input']);
    expect(modify(order({ validity: 'TTL', validityTtl: 5 }), { price: 101 }).validity).toBe('TTL');
  });

  it('refuses a disclosed quantity above the new quantity', () => {
    expect(why(() => modify(order({ disclosedQuantity: 130 }), { quantity: 65 }))[0]).toBe('disclosed_quantity');
  });

  it('refuses modifying a regular order outside market hours, and lets an amo be modified any time', () => {
    const closed = ctx({ nowMs: ist('2026-01-14T16:00:00'), openQty: 130 }, { marketHours: 'exchange' });
    expect(why(() => modify(order(), { price: 101 }, closed))).toEqual(['variety', 'market_hours', 'input']);
    expect(modify(order({ variety: 'amo' }), { price: 101 }, closed).pricePaise).toBe(101_00);
    const open = ctx({ openQty: 130 }, { marketHours: 'exchange' });
    expect(modify(order({ variety: 'amo' }), { price: 101 }, open).pricePaise).toBe(101_00);
  });

  it('refuses raising the quantity past maxOpenQty, and always allows lowering it', () => {
    const c = ctx({ openQty: 1300 }, { maxOpenQty: 1300 });
    expect(why(() => modify(order(), { quantity: 195 }, c))).toEqual(['quantity', 'max_open_qty', 'order']);
    expect(modify(order(), { quantity: 65 }, c).quantity).toBe(65);
  });

  it('refuses a modification whose value passes maxOrderValuePaise', () => {
    expect(why(() => modify(order(), { quantity: 650 }, ctx({ openQty: 130 }, { maxOrderValuePaise: 60_000_00 })))).toEqual(['quantity', 'max_order_value', 'order']);
  });

  it('needs only the extra margin beyond what the order already blocks', () => {
    // Blocks 130 × 100 = 13,000; at 195 the order needs 19,500: 6,500 more.
    expect(modify(order(), { quantity: 195 }, ctx({ openQty: 130, availablePaise: 6_500_00 })).marginPaise).toBe(19_500_00);
    const e = refusal(() => modify(order(), { quantity: 195 }, ctx({ openQty: 130, availablePaise: 6_499_99 })));
    expect([e.field, e.rule, e.kind]).toEqual(['quantity', 'margin', 'margin']);
    expect(e.message).toMatch(/^Insufficient funds\. Required margin is 19500\.00 but available margin is 19499\.99\./);
  });

  it('prices the margin of the unfilled quantity only', () => {
    const o = order({ filledQuantity: 65, filledValuePaise: 65 * 100_00 });
    expect(modify(o, { price: 101 }).marginPaise).toBe(65 * 101_00);
  });

  it('refuses when the instrument is no longer in the master', () => {
    expect(why(() => modify(order(), { price: 101 }, ctx({ instrument: null })))).toEqual(['tradingsymbol', 'unknown_instrument', 'input']);
  });
});
