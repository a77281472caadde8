/**
 * The instrument master the simulator lists: the NIFTY 50 index, its 50 stocks, NIFTY futures and
 * options, with Kite-like tokens. Lot size, tick size and expiries are exchange data that change
 * (NSE moved NIFTY expiry to Tuesday in September 2025 and revises lot sizes twice a year): the
 * service reads them from the master, only this module writes them.
 */
import { istDay, isoOfDay } from '../../core/ist.ts';
import type { Instrument, InstrumentType } from '../../core/instrument.ts';
import { Segment } from '../../core/packet-slot.ts';
import { isMonthlyExpiry, niftyExpiries, niftyFutureSymbol, niftyOptionSymbol } from '../expiries.ts';
import { NIFTY50, NIFTY_DERIVATIVE_NAME, NIFTY_INDEX_LEVEL, NIFTY_INDEX_SYMBOL, NIFTY_INDEX_TOKEN } from '../nifty50.ts';

export interface UniverseOptions {
  /** Its calendar day in India decides which contracts are live. */
  today: Date;
  /** NIFTY level the option strikes centre on; default ~26000. */
  indexLevel?: number;
  /** Option strikes listed on each side of the money; default 40. */
  strikesEachSide?: number;
}

const NIFTY_STRIKE_STEP = 50;
const NIFTY_LOT = 75;
const FNO_TICK = 0.05;
const CASH_TICK = 0.05;

/**
 * A Kite-like NFO exchange token, stable for a contract across days (Kite's is too): the expiry's
 * week, the strike step and the type packed into 23 bits, so `token = exchange_token << 8 | 2`
 * stays below 2^31 (the official client reads tokens as signed 32-bit integers). Unique for
 * strikes below 102,400 and expiries within 19 years of each other.
 */
function nfoExchangeToken(expiryDay: number, strike: number, type: InstrumentType): number {
  const week = Math.floor((expiryDay + 3) / 7) & 1023;
  const strikeStep = Math.round(strike / NIFTY_STRIKE_STEP) & 2047;
  const typeCode = type === 'FUT' ? 0 : type === 'CE' ? 1 : 2;
  return (week << 13) | (strikeStep << 2) | typeCode;
}

function nfo(exchangeToken: number): number {
  return exchangeToken * 256 + Segment.NSE_FO;
}

/**
 * The NIFTY 50 index, its 50 constituents, NIFTY futures for the next 3 monthly expiries, and NIFTY
 * options (every 50 points, `strikesEachSide` each side of the money, CE and PE) for the next 4
 * weekly expiries and the next 3 monthly ones. Deterministic for a given day and level.
 */
export function buildNifty50Universe(opts: UniverseOptions): Instrument[] {
  const level = opts.indexLevel ?? NIFTY_INDEX_LEVEL;
  const each = opts.strikesEachSide ?? 40;
  const today = istDay(opts.today);
  const out: Instrument[] = [];
  out.push({
    instrumentToken: NIFTY_INDEX_TOKEN,
    exchangeToken: NIFTY_INDEX_TOKEN >>> 8,
    tradingsymbol: NIFTY_INDEX_SYMBOL,
    name: NIFTY_INDEX_SYMBOL,
    lastPrice: level,
    expiry: '',
    strike: 0,
    tickSize: 0,
    lotSize: 0,
    instrumentType: 'EQ',
    segment: 'INDICES',
    exchange: 'NSE',
  });
  for (const c of NIFTY50) {
    out.push({
      instrumentToken: c.token,
      exchangeToken: c.token >>> 8,
      tradingsymbol: c.symbol,
      name: c.name,
      lastPrice: c.level,
      expiry: '',
      strike: 0,
      tickSize: CASH_TICK,
      lotSize: 1,
      instrumentType: 'EQ',
      segment: 'NSE',
      exchange: 'NSE',
    });
  }
  const { weekly, monthly } = niftyExpiries(today);
  for (const day of monthly) {
    const ex = nfoExchangeToken(day, 0, 'FUT');
    out.push({
      instrumentToken: nfo(ex),
      exchangeToken: ex,
      tradingsymbol: niftyFutureSymbol(day),
      name: NIFTY_DERIVATIVE_NAME,
      lastPrice: 0,
      expiry: isoOfDay(day),
      strike: 0,
      tickSize: FNO_TICK,
      lotSize: NIFTY_LOT,
      instrumentType: 'FUT',
      segment: 'NFO-FUT',
      exchange: 'NFO',
    });
  }
  const optionDays = [...new Set([...weekly, ...monthly])].sort((a, b) => a - b);
  const atm = Math.round(level / NIFTY_STRIKE_STEP) * NIFTY_STRIKE_STEP;
  for (const day of optionDays) {
    for (let k = -each; k <= each; k++) {
      const strike = atm + k * NIFTY_STRIKE_STEP;
      if (strike <= 0) continue;
      for (const type of ['CE', 'PE'] as const) {
        const ex = nfoExchangeToken(day, strike, type);
        out.push({
          instrumentToken: nfo(ex),
          exchangeToken: ex,
          tradingsymbol: niftyOptionSymbol(day, strike, type),
          name: NIFTY_DERIVATIVE_NAME,
          lastPrice: 0,
          expiry: isoOfDay(day),
          strike,
          tickSize: FNO_TICK,
          lotSize: NIFTY_LOT,
          instrumentType: type,
          segment: 'NFO-OPT',
          exchange: 'NFO',
        });
      }
    }
  }
  return out;
}
