/**
 * Which instruments the service follows: the default NIFTY 50 universe (index, stocks, nearest
 * future, options around the money) or an explicit list, chosen from the instrument master.
 * Control-plane code: runs at start-up, allocates freely.
 */
import { AppError } from '../core/errors.ts';
import { istDay, isoOfDay } from '../core/ist.ts';
import type { Instrument } from '../core/instrument.ts';
import { NIFTY50_SYMBOLS, NIFTY_DERIVATIVE_NAME, NIFTY_INDEX_SYMBOL, NIFTY_INDEX_TOKEN } from './nifty50.ts';

const DIGITS = /^\d+$/;

export interface SelectOptions {
  /** Option strikes each side of the ATM strike (0 = ATM only). */
  strikes: number;
  /** Nearest option expiries to follow (0 = no options). */
  expiries: number;
  /** Current NIFTY level: decides the ATM strike. */
  indexLevel: number;
  /**
   * Overrides the default universe: instrument tokens ('408065'), 'EXCHANGE:TRADINGSYMBOL'
   * ('NFO:NIFTY25DEC24000CE', 'NSE:NIFTY 50') or bare trading symbols ('INFY'; NSE wins a tie).
   */
  explicit?: readonly string[];
  /** Drops contracts that expired before this day (IST). Default: trust the master to be today's. */
  today?: Date;
  /** Told which default-universe members the master lacks (renamed or delisted symbols). */
  onMissing?: (missing: string[]) => void;
}

/**
 * Tokens to subscribe, in order: NIFTY 50 index, the 50 constituents, the nearest NIFTY future,
 * then for each of the `expiries` nearest option expiries the CE and PE of the ATM strike and
 * `strikes` strikes either side (strikes as listed in the master, not assumed 50 apart). With a
 * non-empty `explicit` list, exactly those instead; any the master lacks throw one AppError
 * `UNIVERSE_UNKNOWN_INSTRUMENTS` naming all of them.
 */
export function selectUniverse(instruments: readonly Instrument[], opts: SelectOptions): number[] {
  if (opts.explicit !== undefined && opts.explicit.length > 0) return selectExplicit(instruments, opts.explicit);

  const todayIso = opts.today === undefined ? '' : isoOfDay(istDay(opts.today));
  const out: number[] = [];
  const missing: string[] = [];

  const index = instruments.find(
    (t) => t.instrumentToken === NIFTY_INDEX_TOKEN || (t.segment === 'INDICES' && t.tradingsymbol === NIFTY_INDEX_SYMBOL),
  );
  if (index === undefined) missing.push(`NSE:${NIFTY_INDEX_SYMBOL}`);
  else out.push(index.instrumentToken);

  const cash = new Map<string, Instrument>();
  for (const t of instruments) {
    if (t.exchange === 'NSE' && t.segment === 'NSE' && t.instrumentType === 'EQ') cash.set(t.tradingsymbol, t);
  }
  for (const s of NIFTY50_SYMBOLS) {
    const t = cash.get(s);
    if (t === undefined) missing.push(`NSE:${s}`);
    else out.push(t.instrumentToken);
  }

  let future: Instrument | undefined;
  const optionsByExpiry = new Map<string, Instrument[]>();
  for (const t of instruments) {
    if (t.name !== NIFTY_DERIVATIVE_NAME || t.exchange !== 'NFO' || t.expiry < todayIso) continue;
    if (t.instrumentType === 'FUT') {
      if (future === undefined || t.expiry < future.expiry) future = t;
    } else if (t.instrumentType === 'CE' || t.instrumentType === 'PE') {
      let list = optionsByExpiry.get(t.expiry);
      if (list === undefined) optionsByExpiry.set(t.expiry, (list = []));
      list.push(t);
    }
  }
  if (future === undefined) missing.push('NFO:NIFTY future');
  else out.push(future.instrumentToken);

  const expiries = [...optionsByExpiry.keys()].sort().slice(0, Math.max(0, opts.expiries));
  for (const expiry of expiries) {
    const list = optionsByExpiry.get(expiry)!;
    const strikes = [...new Set(list.map((t) => t.strike))].sort((a, b) => a - b);
    let atm = 0;
    for (let i = 1; i < strikes.length; i++) {
      if (Math.abs(strikes[i] - opts.indexLevel) < Math.abs(strikes[atm] - opts.indexLevel)) atm = i;
    }
    const lo = Math.max(0, atm - opts.strikes);
    const hi = Math.min(strikes.length - 1, atm + opts.strikes);
    const byKey = new Map<string, Instrument>();
    for (const t of list) byKey.set(`${t.strike}${t.instrumentType}`, t);
    for (let i = lo; i <= hi; i++) {
      const ce = byKey.get(`${strikes[i]}CE`);
      const pe = byKey.get(`${strikes[i]}PE`);
      if (ce !== undefined) out.push(ce.instrumentToken);
      if (pe !== undefined) out.push(pe.instrumentToken);
    }
  }

  if (missing.length > 0) opts.onMissing?.(missing);
  return [...new Set(out)];
}

/** When a bare symbol is listed on several exchanges, the first of these wins. */
const EXCHANGE_PREFERENCE = ['NSE', 'NFO', 'BSE', 'BFO', 'CDS', 'MCX'];

function selectExplicit(instruments: readonly Instrument[], explicit: readonly string[]): number[] {
  const byToken = new Map<number, Instrument>();
  const byKey = new Map<string, Instrument>();
  const bySymbol = new Map<string, Instrument>();
  const rank = (ex: string) => {
    const r = EXCHANGE_PREFERENCE.indexOf(ex);
    return r < 0 ? EXCHANGE_PREFERENCE.length : r;
  };
  for (const t of instruments) {
    byToken.set(t.instrumentToken, t);
    const sym = t.tradingsymbol.toUpperCase();
    byKey.set(`${t.exchange.toUpperCase()}:${sym}`, t);
    const prev = bySymbol.get(sym);
    if (prev === undefined || rank(t.exchange) < rank(prev.exchange)) bySymbol.set(sym, t);
  }
  const out: number[] = [];
  const unknown: string[] = [];
  for (const raw of explicit) {
    const s = raw.trim();
    if (s === '') continue;
    let t: Instrument | undefined;
    if (DIGITS.test(s)) t = byToken.get(Number(s));
    else if (s.includes(':')) t = byKey.get(s.toUpperCase());
    else t = bySymbol.get(s.toUpperCase());
    if (t === undefined) unknown.push(s);
    else out.push(t.instrumentToken);
  }
  if (unknown.length > 0) {
    throw new AppError(
      'UNIVERSE_UNKNOWN_INSTRUMENTS',
      `KITE_INSTRUMENTS lists ${unknown.length} instrument(s) not in Kite's instrument master: ${unknown.join(', ')}. ` +
        'Use numeric instrument tokens or EXCHANGE:TRADINGSYMBOL exactly as GET /instruments lists them ' +
        '(derivatives expire: refresh dated symbols), or unset KITE_INSTRUMENTS for the NIFTY 50 default.',
      { unknown },
    );
  }
  return [...new Set(out)];
}
