/**
 * The simulator's positions and funds per api_key, as Kite's `/portfolio/positions` and
 * `/user/margins` show them, kept from the simulator's own fills (orders.ts).
 *
 * A simulator run is one trading day: nothing is carried overnight, so `net` and `day` list the
 * same positions and `overnight_quantity` is 0. Money is integer paise until the answer.
 *
 * | position field     | from                                                                   |
 * |--------------------|------------------------------------------------------------------------|
 * | quantity           | bought − sold                                                          |
 * | average_price      | the buy average when long, the sell average when short, 0 when flat    |
 * | value              | sell value − buy value                                                 |
 * | pnl, m2m           | value + quantity × last price                                          |
 * | realised           | min(bought, sold) × (sell average − buy average)                       |
 * | unrealised         | pnl − realised                                                         |
 *
 * Funds: `capitalPaise` to start with. What an order or a position blocks is its value at
 * `marginFraction` of its product (CNC and MTF the whole value, MIS and NRML a fifth): an
 * approximation, as the real SPAN and exposure figures are not available here. Available (`net`)
 * is capital − blocked + realised + unrealised.
 */
import { averageRupees, divRoundHalfEven, paiseToRupees } from '../../orders/model.ts';

/** The part of an order's or position's value that is blocked as margin, by product. */
export function marginFraction(product: string): number {
  return product === 'CNC' || product === 'MTF' ? 1 : 0.2;
}

/** ⌈value × fraction(product)⌉, in integers. */
export function marginOf(valuePaise: number, product: string): number {
  const f = marginFraction(product);
  return f === 1 ? valuePaise : Math.ceil((valuePaise * Math.round(f * 1000)) / 1000);
}

export interface Position {
  readonly exchange: string;
  readonly tradingsymbol: string;
  readonly token: number;
  readonly row: number;
  readonly product: string;
  buyQty: number;
  buyValuePaise: number;
  sellQty: number;
  sellValuePaise: number;
}

/** A position as Kite's `/portfolio/positions` lists it. */
export interface KitePositionRow {
  tradingsymbol: string;
  exchange: string;
  instrument_token: number;
  product: string;
  quantity: number;
  overnight_quantity: number;
  multiplier: number;
  average_price: number;
  close_price: number;
  last_price: number;
  value: number;
  pnl: number;
  m2m: number;
  unrealised: number;
  realised: number;
  buy_quantity: number;
  buy_price: number;
  buy_value: number;
  buy_m2m: number;
  sell_quantity: number;
  sell_price: number;
  sell_value: number;
  sell_m2m: number;
  day_buy_quantity: number;
  day_buy_price: number;
  day_buy_value: number;
  day_sell_quantity: number;
  day_sell_price: number;
  day_sell_value: number;
}

/** Last and previous close of a market row, paise. */
export interface Prices {
  lastPaise(row: number): number;
  closePaise(row: number): number;
}

/** A position's P&L in paise: total, and the realised part (half-even at the paisa). */
export function positionPnl(p: Position, lastPaise: number): { pnl: number; realised: number } {
  const net = p.buyQty - p.sellQty;
  const pnl = p.sellValuePaise - p.buyValuePaise + net * lastPaise;
  const matched = Math.min(p.buyQty, p.sellQty);
  let realised = 0;
  if (matched > 0) {
    // matched × (sellValue / sellQty − buyValue / buyQty), over one common denominator.
    const num = BigInt(matched) * (BigInt(p.sellValuePaise) * BigInt(p.buyQty) - BigInt(p.buyValuePaise) * BigInt(p.sellQty));
    realised = Number(divRoundHalfEven(num, BigInt(p.buyQty) * BigInt(p.sellQty)));
  }
  return { pnl, realised };
}

export function positionRow(p: Position, prices: Prices): KitePositionRow {
  const last = prices.lastPaise(p.row);
  const net = p.buyQty - p.sellQty;
  const { pnl, realised } = positionPnl(p, last);
  const buyAvg = averageRupees(p.buyValuePaise, p.buyQty);
  const sellAvg = averageRupees(p.sellValuePaise, p.sellQty);
  const buyValue = paiseToRupees(p.buyValuePaise);
  const sellValue = paiseToRupees(p.sellValuePaise);
  return {
    tradingsymbol: p.tradingsymbol,
    exchange: p.exchange,
    instrument_token: p.token,
    product: p.product,
    quantity: net,
    overnight_quantity: 0,
    multiplier: 1,
    average_price: net > 0 ? buyAvg : net < 0 ? sellAvg : 0,
    close_price: paiseToRupees(prices.closePaise(p.row)),
    last_price: paiseToRupees(last),
    value: paiseToRupees(p.sellValuePaise - p.buyValuePaise),
    pnl: paiseToRupees(pnl),
    m2m: paiseToRupees(pnl),
    unrealised: paiseToRupees(pnl - realised),
    realised: paiseToRupees(realised),
    buy_quantity: p.buyQty,
    buy_price: buyAvg,
    buy_value: buyValue,
    buy_m2m: buyValue,
    sell_quantity: p.sellQty,
    sell_price: sellAvg,
    sell_value: sellValue,
    sell_m2m: sellValue,
    day_buy_quantity: p.buyQty,
    day_buy_price: buyAvg,
    day_buy_value: buyValue,
    day_sell_quantity: p.sellQty,
    day_sell_price: sellAvg,
    day_sell_value: sellValue,
  };
}

/** One segment of Kite's `/user/margins`. */
export interface KiteSegmentMargins {
  enabled: boolean;
  net: number;
  available: {
    adhoc_margin: number;
    cash: number;
    opening_balance: number;
    live_balance: number;
    collateral: number;
    intraday_payin: number;
  };
  utilised: {
    debits: number;
    exposure: number;
    m2m_realised: number;
    m2m_unrealised: number;
    option_premium: number;
    payout: number;
    span: number;
    holding_sales: number;
    turnover: number;
    liquid_collateral: number;
    stock_collateral: number;
    delivery: number;
  };
}

/** Funds in paise, from which the equity segment is shown. */
export interface Funds {
  capitalPaise: number;
  /** Margin blocked by working orders and open positions. */
  blockedPaise: number;
  realisedPaise: number;
  unrealisedPaise: number;
  /** Value traded today. */
  turnoverPaise: number;
}

/** What is available for new orders, paise. */
export function availablePaise(f: Funds): number {
  return f.capitalPaise - f.blockedPaise + f.realisedPaise + f.unrealisedPaise;
}

export function segmentMargins(f: Funds | null): KiteSegmentMargins {
  const r = paiseToRupees;
  const capital = f === null ? 0 : f.capitalPaise;
  const net = f === null ? 0 : availablePaise(f);
  return {
    enabled: f !== null,
    net: r(net),
    available: { adhoc_margin: 0, cash: r(capital), opening_balance: r(capital), live_balance: r(net), collateral: 0, intraday_payin: 0 },
    utilised: {
      debits: r(f === null ? 0 : f.blockedPaise),
      exposure: 0,
      m2m_realised: r(f === null ? 0 : f.realisedPaise),
      m2m_unrealised: r(f === null ? 0 : f.unrealisedPaise),
      option_premium: 0,
      payout: 0,
      span: r(f === null ? 0 : f.blockedPaise),
      holding_sales: 0,
      turnover: r(f === null ? 0 : f.turnoverPaise),
      liquid_collateral: 0,
      stock_collateral: 0,
      delivery: 0,
    },
  };
}
