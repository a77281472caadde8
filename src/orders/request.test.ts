import { describe, expect, it } from 'vitest';
import { refusal } from '../../test/support/refusal.ts';
import { parseModifyForm, parseModifyJson, parsePlaceForm, parsePlaceJson } from './request.ts';


const FORM = {
  exchange: 'NFO', tradingsymbol: 'NIFTY26JAN24000CE', transaction_type: 'BUY', quantity: '65',
  product: 'NRML', order_type: 'LIMIT', price: '101.05',
};
const form = (over: Record<string, string | null> = {}): URLSearchParams => {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries({ ...FORM, ...over })) if (v !== null) p.append(k, v);
  return p;
};
const placeForm = (over: Record<string, string | null> = {}) => parsePlaceForm('regular', form(over));

const JSON_BODY = {
  exchange: 'NFO', tradingsymbol: 'NIFTY26JAN24000CE', transaction_type: 'BUY', quantity: 65,
  product: 'NRML', order_type: 'LIMIT', price: 101.05,
};
const placeJson = (over: Record<string, unknown> = {}) => parsePlaceJson({ ...JSON_BODY, ...over });

describe('parsePlaceForm (/kite, form-encoded)', () => {
  it("reads a Kite form's digit strings as numbers, with validity DAY and autoslice off by default", () => {
    expect(placeForm()).toEqual({
      variety: 'regular', exchange: 'NFO', tradingsymbol: 'NIFTY26JAN24000CE', transaction_type: 'BUY', quantity: 65,
      product: 'NRML', order_type: 'LIMIT', price: 101.05, trigger_price: undefined, validity: 'DAY', validity_ttl: undefined,
      disclosed_quantity: undefined, iceberg_legs: undefined, iceberg_quantity: undefined, tag: undefined,
      market_protection: undefined, autoslice: false, guid: undefined,
    });
  });

  it('reads every optional field', () => {
    const r = parsePlaceForm('iceberg', form({
      trigger_price: '100', validity: 'TTL', validity_ttl: '30', disclosed_quantity: '0', iceberg_legs: '2', iceberg_quantity: '65',
      tag: 'scalp-1', market_protection: '-1', autoslice: 'false', guid: 'a1b2-c3', algo_id: 'X9',
    }));
    expect(r).toMatchObject({
      variety: 'iceberg', trigger_price: 100, validity: 'TTL', validity_ttl: 30, disclosed_quantity: 0, iceberg_legs: 2,
      iceberg_quantity: 65, tag: 'scalp-1', market_protection: -1, autoslice: false, guid: 'a1b2-c3',
    });
    expect(r).not.toHaveProperty('algo_id');
  });

  it('takes the variety from the path and ignores the variety and order_id kiteconnectjs copies into the body', () => {
    const r = parsePlaceForm('amo', form({ variety: 'co', order_id: '123' }));
    expect(r.variety).toBe('amo');
  });

  it('ignores fields it does not know, as Kite does', () => {
    expect(placeForm({ squareoff: '5', stoploss: '2', anything: 'x' }).quantity).toBe(65);
  });

  it('reads an empty value as an absent field (qs sends price= for a null price)', () => {
    const r = placeForm({ order_type: 'MARKET', price: '', trigger_price: '', market_protection: '5' });
    expect(r.price).toBeUndefined();
    expect(r.trigger_price).toBeUndefined();
  });

  it('refuses a field sent twice, naming it', () => {
    const p = form();
    p.append('quantity', '130');
    const e = refusal(() => parsePlaceForm('regular', p));
    expect([e.field, e.rule, e.kind]).toEqual(['quantity', 'repeated', 'input']);
  });

  it('reads autoslice as true/false in any case or 1/0, and refuses anything else', () => {
    expect(placeForm({ autoslice: 'true' }).autoslice).toBe(true);
    expect(placeForm({ autoslice: 'True' }).autoslice).toBe(true);
    expect(placeForm({ autoslice: '1' }).autoslice).toBe(true);
    expect(placeForm({ autoslice: '0' }).autoslice).toBe(false);
    expect(placeForm({ autoslice: 'FALSE' }).autoslice).toBe(false);
    const e = refusal(() => placeForm({ autoslice: 'yes' }));
    expect([e.field, e.rule]).toEqual(['autoslice', 'format']);
  });

  it('refuses cover and auction orders, saying which varieties it places', () => {
    const co = refusal(() => parsePlaceForm('co', form()));
    expect([co.field, co.rule, co.kind]).toEqual(['variety', 'variety_unsupported', 'input']);
    expect(co.message).toBe('variety: cover orders (co) are not placed by this service; use regular, amo, iceberg');
    const auction = refusal(() => parsePlaceForm('auction', form()));
    expect(auction.message).toBe('variety: auction orders are not placed by this service; use regular, amo, iceberg');
  });

  it('refuses an unknown variety, naming the allowed ones', () => {
    const e = refusal(() => parsePlaceForm('bo', form()));
    expect([e.field, e.rule]).toEqual(['variety', 'enum']);
    expect(e.message).toBe('variety: "bo" is not one of regular, amo, iceberg');
  });

  it.each(['exchange', 'tradingsymbol', 'transaction_type', 'quantity', 'product', 'order_type'])('refuses a request without %s, naming it', (f) => {
    const e = refusal(() => placeForm({ [f]: null }));
    expect([e.field, e.rule]).toEqual([f, 'required']);
    expect(e.message).toBe(`${f}: is required`);
  });

  it('names the first missing field in Kite\'s order when several are missing', () => {
    expect(refusal(() => parsePlaceForm('regular', new URLSearchParams())).field).toBe('exchange');
  });

  it.each([
    ['ten', 'format'], ['1.5', 'format'], ['0', 'range'], ['-65', 'range'], ['1000000001', 'range'], ['1e3', 'format'],
    ['+65', 'format'], [' 65', 'format'], ['0x41', 'format'], ['99999999999999999999999', 'range'],
  ])('refuses the quantity %j (%s)', (q, rule) => {
    const e = refusal(() => placeForm({ quantity: q }));
    expect([e.field, e.rule, e.kind]).toEqual(['quantity', rule, 'input']);
  });

  it('accepts the largest quantity, 1e9', () => {
    expect(placeForm({ quantity: '1000000000' }).quantity).toBe(1e9);
  });

  it.each([
    ['100.055', 'decimals'], ['0.001', 'decimals'], ['-1', 'range'], ['100000000.01', 'range'], ['NaN', 'format'],
    ['Infinity', 'format'], ['1e2', 'format'], ['12,5', 'format'], ['.5', 'format'],
  ])('refuses the price %j (%s)', (p, rule) => {
    const e = refusal(() => placeForm({ price: p }));
    expect([e.field, e.rule]).toEqual(['price', rule]);
  });

  it('says a price with a third decimal is not whole paise', () => {
    expect(refusal(() => placeForm({ price: '100.055' })).message).toBe('price: "100.055" has more than 2 decimals; prices are whole paise, e.g. 100.05');
  });

  it('accepts prices of 0, whole rupees, one and two decimals, and 1e8 rupees', () => {
    expect(placeForm({ price: '0' }).price).toBe(0);
    expect(placeForm({ price: '100' }).price).toBe(100);
    expect(placeForm({ price: '0.1' }).price).toBe(0.1);
    expect(placeForm({ price: '2500.45' }).price).toBe(2500.45);
    expect(placeForm({ price: '100000000' }).price).toBe(1e8);
  });

  it('refuses a trigger price with more than 2 decimals, naming trigger_price', () => {
    const e = refusal(() => placeForm({ trigger_price: '99.999' }));
    expect([e.field, e.rule]).toEqual(['trigger_price', 'decimals']);
  });

  it.each([
    ['reliance', 'lowercase'], ["RELIANCE'; DROP TABLE orders;--", 'SQL'], ['A'.repeat(41), '41 characters'],
    ['NIFTY 50', 'a space'], ['NSE:RELIANCE', 'an exchange prefix'],
  ])('refuses the symbol %j (%s) as a bad symbol', (s) => {
    const e = refusal(() => placeForm({ tradingsymbol: s }));
    expect(e.field).toBe('tradingsymbol');
    expect(['format', 'length']).toContain(e.rule);
  });

  it('accepts symbols with & _ and -', () => {
    expect(placeForm({ exchange: 'NSE', tradingsymbol: 'M&M' }).tradingsymbol).toBe('M&M');
    expect(placeForm({ exchange: 'NSE', tradingsymbol: 'BAJAJ-AUTO' }).tradingsymbol).toBe('BAJAJ-AUTO');
  });

  it.each([
    ['transaction_type', 'buy', 'BUY, SELL'], ['product', 'BO', 'CNC, NRML, MIS, MTF'], ['order_type', 'STOPLOSS', 'MARKET, LIMIT, SL, SL-M'],
    ['validity', 'GTC', 'DAY, IOC, TTL'], ['exchange', 'NYSE', 'NSE, BSE, NFO, BFO, CDS, BCD, MCX'],
  ])('refuses an unknown %s, naming the allowed values', (field, value, allowed) => {
    const e = refusal(() => placeForm({ [field]: value }));
    expect([e.field, e.rule]).toEqual([field, 'enum']);
    expect(e.message).toBe(`${field}: "${value}" is not one of ${allowed}`);
  });

  it('refuses a tag over 20 characters', () => {
    expect(placeForm({ tag: 'x'.repeat(20) }).tag).toBe('x'.repeat(20));
    const e = refusal(() => placeForm({ tag: 'x'.repeat(21) }));
    expect([e.field, e.rule]).toEqual(['tag', 'length']);
    expect(e.message).toBe('tag: is 21 characters long; at most 20 are allowed');
  });

  it('refuses a tag with a control character', () => {
    expect(refusal(() => placeForm({ tag: 'a\nb' })).field).toBe('tag');
  });

  it('refuses a guid over 64 characters or with characters outside A-Z a-z 0-9 _ . : -', () => {
    expect(placeForm({ guid: 'g'.repeat(64) }).guid).toHaveLength(64);
    expect([refusal(() => placeForm({ guid: 'g'.repeat(65) })).field, refusal(() => placeForm({ guid: 'a b' })).field]).toEqual(['guid', 'guid']);
  });

  it.each(['0', '1441', '1.5'])('refuses validity_ttl %s (minutes, 1..1440)', (v) => {
    expect(refusal(() => placeForm({ validity: 'TTL', validity_ttl: v })).field).toBe('validity_ttl');
  });

  it.each(['101', '-2', '2.5'])('refuses market_protection %s (-1, 0 or 1-100)', (v) => {
    expect(refusal(() => placeForm({ market_protection: v })).field).toBe('market_protection');
  });

  it.each(['disclosed_quantity', 'iceberg_legs', 'iceberg_quantity'])('refuses a %s that is not a whole number', (f) => {
    expect(refusal(() => placeForm({ [f]: '2.5' })).field).toBe(f);
    expect(refusal(() => placeForm({ [f]: '-1' })).field).toBe(f);
  });
});

describe('parsePlaceJson (/api, JSON)', () => {
  it('reads a JSON place request with Kite field names, variety regular by default', () => {
    expect(placeJson()).toMatchObject({ variety: 'regular', quantity: 65, price: 101.05, validity: 'DAY', autoslice: false });
    expect(placeJson({ variety: 'amo' }).variety).toBe('amo');
  });

  it('refuses co and auction inside the JSON', () => {
    expect(refusal(() => placeJson({ variety: 'co' })).rule).toBe('variety_unsupported');
    expect(refusal(() => placeJson({ variety: 'auction' })).rule).toBe('variety_unsupported');
  });

  it.each([
    ['quantity', '65'], ['price', '101.05'], ['trigger_price', '100'], ['market_protection', '-1'], ['validity_ttl', '5'],
    ['disclosed_quantity', '0'], ['iceberg_legs', '2'], ['iceberg_quantity', '65'],
  ])('refuses a string in the number field %s', (field, value) => {
    const e = refusal(() => placeJson({ [field]: value }));
    expect([e.field, e.rule]).toEqual([field, 'type']);
    expect(e.message).toBe(`${field}: must be a JSON number, not the string "${value}"`);
  });

  it('refuses an unknown field, naming it, before a missing one it may stand for', () => {
    const { quantity: _q, ...rest } = JSON_BODY;
    const e = refusal(() => parsePlaceJson({ ...rest, qty: 65 }));
    expect([e.field, e.rule, e.kind]).toEqual(['qty', 'unknown_field', 'input']);
    expect(e.message).toMatch(/^qty: not a field of a place request; the fields are variety, exchange, tradingsymbol, /);
  });

  it("refuses Kite's bracket-order fields on /api, which does not place them", () => {
    expect(refusal(() => placeJson({ squareoff: 5 })).field).toBe('squareoff');
  });

  it('reads null as an absent field', () => {
    const r = placeJson({ trigger_price: null, tag: null, variety: null });
    expect(r.trigger_price).toBeUndefined();
    expect(r.tag).toBeUndefined();
    expect(r.variety).toBe('regular');
  });

  it('refuses null in a required field as missing', () => {
    expect(refusal(() => placeJson({ quantity: null })).rule).toBe('required');
  });

  it.each([NaN, Infinity, -Infinity])('refuses %s as a quantity or price', (n) => {
    expect(refusal(() => placeJson({ quantity: n })).field).toBe('quantity');
    expect(refusal(() => placeJson({ price: n })).field).toBe('price');
  });

  it.each([[1.5, 'whole'], [0, 'range'], [-65, 'range'], [1e10, 'range'], [true, 'type']])('refuses the quantity %j (%s)', (q, rule) => {
    expect([refusal(() => placeJson({ quantity: q })).field, refusal(() => placeJson({ quantity: q })).rule]).toEqual(['quantity', rule]);
  });

  it('accepts float noise in a JSON price and refuses a third decimal', () => {
    expect(placeJson({ price: 0.1 + 0.2 }).price).toBeCloseTo(0.3);
    expect(refusal(() => placeJson({ price: 100.123 })).rule).toBe('decimals');
    expect(refusal(() => placeJson({ price: 1e8 + 1 })).rule).toBe('range');
  });

  it('takes autoslice only as a JSON boolean', () => {
    expect(placeJson({ autoslice: true }).autoslice).toBe(true);
    expect(refusal(() => placeJson({ autoslice: 'true' })).field).toBe('autoslice');
    expect(refusal(() => placeJson({ autoslice: 1 })).field).toBe('autoslice');
  });

  it('accepts algo_id and drops it', () => {
    expect(placeJson({ algo_id: 'ALGO1' })).not.toHaveProperty('algo_id');
  });

  it('refuses a symbol that is not a string', () => {
    expect(refusal(() => placeJson({ tradingsymbol: 42 })).rule).toBe('type');
  });

  it.each([[[]], ['RELIANCE'], [null], [42]])('refuses a body that is not an object (%j)', (b) => {
    const e = refusal(() => parsePlaceJson(b));
    expect([e.field, e.rule]).toEqual(['body', 'type']);
  });

  it('cuts a long bad value short in the message', () => {
    const e = refusal(() => placeJson({ product: 'X'.repeat(10_000) }));
    expect(e.message.length).toBeLessThan(150);
  });
});

describe('modify requests', () => {
  it('reads only the fields a form sends, ignoring the variety and order_id the clients add', () => {
    const r = parseModifyForm(new URLSearchParams({ variety: 'regular', order_id: '1', parent_order_id: '', price: '101.10', quantity: '130' }));
    expect(r).toEqual({
      quantity: 130, price: 101.1, order_type: undefined, trigger_price: undefined, validity: undefined,
      disclosed_quantity: undefined, market_protection: undefined,
    });
  });

  it('reads every modify field from a form', () => {
    const r = parseModifyForm(new URLSearchParams({
      order_type: 'SL', trigger_price: '100', validity: 'IOC', disclosed_quantity: '10', market_protection: '3',
    }));
    expect(r).toMatchObject({ order_type: 'SL', trigger_price: 100, validity: 'IOC', disclosed_quantity: 10, market_protection: 3 });
  });

  it('refuses a bad modify field on a form, naming it', () => {
    expect(refusal(() => parseModifyForm(new URLSearchParams({ quantity: '0' }))).field).toBe('quantity');
    expect(refusal(() => parseModifyForm(new URLSearchParams({ order_type: 'STOP' }))).rule).toBe('enum');
  });

  it('reads a JSON modification and refuses strings in its number fields', () => {
    expect(parseModifyJson({ price: 99.5 }).price).toBe(99.5);
    const e = refusal(() => parseModifyJson({ quantity: '65' }));
    expect([e.field, e.rule]).toEqual(['quantity', 'type']);
  });

  it('refuses an unknown JSON modify field, naming it', () => {
    const e = refusal(() => parseModifyJson({ price: 99.5, tradingsymbol: 'INFY' }));
    expect([e.field, e.rule]).toEqual(['tradingsymbol', 'unknown_field']);
  });
});

describe('OrderRejection.inLeg', () => {
  it('names the order of a basket the refusal belongs to', () => {
    const e = refusal(() => placeJson({ quantity: '65' })).inLeg(2);
    expect([e.field, e.rule, e.kind]).toEqual(['orders[2].quantity', 'type', 'input']);
    expect(e.message).toBe('orders[2].quantity: must be a JSON number, not the string "65"');
  });
});
