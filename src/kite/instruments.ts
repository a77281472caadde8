/**
 * Kite's instrument master: the CSV, the universe the simulator lists, and the selection of tokens
 * the service follows.
 *
 * Kite publishes the master at `GET /instruments` (all exchanges) and `GET /instruments/{exchange}`:
 *
 *   instrument_token,exchange_token,tradingsymbol,name,last_price,expiry,strike,tick_size,lot_size,instrument_type,segment,exchange
 *   256265,1001,NIFTY 50,"NIFTY 50",0,,0,0,0,EQ,INDICES,NSE
 *   738561,2885,RELIANCE,"RELIANCE INDUSTRIES",0,,0,0.05,1,EQ,NSE,NSE
 *   12073986,47164,NIFTY25DEC24000CE,"NIFTY",0,2025-12-30,24000,0.05,75,CE,NFO-OPT,NFO
 *
 * `name` is always quoted, everything else bare. Index rows are `EQ` in segment `INDICES` (Kite has
 * no `INDEX` instrument type). Tokens carry the segment in their low byte: `token = exchange_token
 * << 8 | segment`, 1 for NSE cash, 2 for NSE F&O, 9 for indices.
 *
 * Lot size, tick size and expiries are exchange data that change (NSE moved NIFTY expiry to Tuesday
 * in September 2025 and revises lot sizes twice a year): code reads them from the master, only
 * `buildNifty50Universe` writes them.
 *
 * Control-plane code: runs at start-up, allocates freely.
 */
import { AppError } from '../core/errors.ts';
import {
  NIFTY50,
  NIFTY50_SYMBOLS,
  NIFTY_DERIVATIVE_NAME,
  NIFTY_INDEX_LEVEL,
  NIFTY_INDEX_SYMBOL,
  NIFTY_INDEX_TOKEN,
} from './nifty50.ts';
import { Segment } from '../core/packet-slot.ts';
import { DAY_MS, IST_OFFSET_MS } from '../core/ist.ts';
import type { Instrument, InstrumentType } from '../core/instrument.ts';

export type { Instrument, InstrumentExchange, InstrumentSegment, InstrumentType } from '../core/instrument.ts';


export const CSV_COLUMNS = [
  'instrument_token',
  'exchange_token',
  'tradingsymbol',
  'name',
  'last_price',
  'expiry',
  'strike',
  'tick_size',
  'lot_size',
  'instrument_type',
  'segment',
  'exchange',
] as const;
export const CSV_HEADER = CSV_COLUMNS.join(',');

const INSTRUMENT_TYPES: readonly string[] = ['EQ', 'FUT', 'CE', 'PE'];

// ---------------------------------------------------------------------------------------------
// CSV

/**
 * Kite's CSV for `instruments`. No trailing newline: the official JS client parses with papaparse,
 * which turns a final empty line into a junk row.
 */
export function toCsv(instruments: readonly Instrument[]): string {
  const lines = new Array<string>(instruments.length + 1);
  lines[0] = CSV_HEADER;
  for (let i = 0; i < instruments.length; i++) {
    const t = instruments[i];
    lines[i + 1] = [
      String(t.instrumentToken),
      String(t.exchangeToken),
      bare(t.tradingsymbol),
      quoted(t.name),
      num(t.lastPrice),
      t.expiry,
      num(t.strike),
      num(t.tickSize),
      num(t.lotSize),
      t.instrumentType,
      bare(t.segment),
      bare(t.exchange),
    ].join(',');
  }
  return lines.join('\n');
}

function quoted(s: string): string {
  return `"${s.replace(/"/g, '""')}"`;
}

/** Unquoted as Kite writes it, quoted only when the value would otherwise break the row. */
function bare(s: string): string {
  return /[",\r\n]/.test(s) ? quoted(s) : s;
}

/** Shortest form: 0, 24000, 0.05, 1550.4 (Kite writes no trailing zeros). */
function num(n: number): string {
  return Number.isFinite(n) ? String(n) : '0';
}

export interface ParsedInstruments {
  instruments: Instrument[];
  /** Rows skipped because a field was missing or malformed. */
  badRows: number;
  /** 1-based line numbers of the first few bad rows, for the log. */
  badLines: number[];
}

const MAX_BAD_LINES = 20;

/**
 * Parse Kite's instrument CSV. Accepts quoted fields (with "" escapes), CRLF
 * and a byte-order mark. A malformed row is counted and skipped, never thrown: one odd row in a
 * master of 100,000 must not stop start-up. A wrong header is thrown: then the whole file is
 * something else (an HTML error page, a changed format), and every row would be misread.
 */
export function parseCsv(text: string): ParsedInstruments {
  const out: ParsedInstruments = { instruments: [], badRows: 0, badLines: [] };
  let header = true;
  forEachRecord(text, (fields, line, broken) => {
    if (header) {
      header = false;
      checkHeader(fields);
      return;
    }
    if (fields.length === 1 && fields[0].trim() === '') return; // blank line
    const ins = broken ? null : rowToInstrument(fields);
    if (ins === null) {
      out.badRows++;
      if (out.badLines.length < MAX_BAD_LINES) out.badLines.push(line);
    } else {
      out.instruments.push(ins);
    }
  });
  if (header) checkHeader([]);
  return out;
}

function checkHeader(fields: string[]): void {
  const got = fields.map((f) => f.trim().toLowerCase());
  const ok = got.length === CSV_COLUMNS.length && CSV_COLUMNS.every((c, i) => got[i] === c);
  if (!ok) {
    const shown = got.join(',').slice(0, 200);
    throw new AppError(
      'INSTRUMENTS_BAD_HEADER',
      `The instrument master does not start with Kite's header (got "${shown}", want "${CSV_HEADER}"). ` +
        'Check KITE_API_URL points at Kite (or the simulator) and that /instruments returned CSV, not an error page.',
      { header: shown },
    );
  }
}

const DIGITS = /^\d+$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

function rowToInstrument(f: string[]): Instrument | null {
  if (f.length !== CSV_COLUMNS.length) return null;
  const tokenText = f[0].trim();
  if (!DIGITS.test(tokenText)) return null;
  const instrumentToken = Number(tokenText);
  if (instrumentToken > 0xffffffff) return null;
  const exText = f[1].trim();
  let exchangeToken: number;
  if (exText === '') exchangeToken = instrumentToken >>> 8;
  else if (DIGITS.test(exText)) exchangeToken = Number(exText);
  else return null;
  const tradingsymbol = f[2].trim();
  if (tradingsymbol === '') return null;
  const lastPrice = numberOrZero(f[4]);
  const expiry = f[5].trim();
  if (expiry !== '' && !DATE.test(expiry)) return null;
  const strike = numberOrZero(f[6]);
  const tickSize = numberOrZero(f[7]);
  const lotSize = numberOrZero(f[8]);
  if (Number.isNaN(lastPrice) || Number.isNaN(strike) || Number.isNaN(tickSize) || Number.isNaN(lotSize)) return null;
  if (!Number.isInteger(lotSize) || lotSize < 0 || tickSize < 0 || strike < 0) return null;
  const instrumentType = f[9].trim();
  if (!INSTRUMENT_TYPES.includes(instrumentType)) return null;
  const segment = f[10].trim();
  const exchange = f[11].trim();
  if (segment === '' || exchange === '') return null;
  return {
    instrumentToken,
    exchangeToken,
    tradingsymbol,
    name: f[3].trim(),
    lastPrice,
    expiry,
    strike,
    tickSize,
    lotSize,
    instrumentType: instrumentType as InstrumentType,
    segment,
    exchange,
  };
}

/** Empty means 0 (some dumps leave strike blank for non-options); anything non-numeric is NaN. */
function numberOrZero(s: string): number {
  const t = s.trim();
  if (t === '') return 0;
  const n = Number(t);
  return Number.isFinite(n) ? n : Number.NaN;
}

/**
 * RFC 4180 records, except that a quoted field may not span lines: Kite's fields never hold a
 * newline, and a stray quote must cost its own row, not swallow the rows after it. Calls
 * `onRecord(fields, line, broken)` for each record, `line` being its 1-based line number and
 * `broken` set when a quote was left open.
 */
function forEachRecord(text: string, onRecord: (fields: string[], line: number, broken: boolean) => void): void {
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  const n = text.length;
  let line = 1;
  while (i < n) {
    const fields: string[] = [];
    let field = '';
    let broken = false;
    let endOfRecord = false;
    while (i < n && !endOfRecord) {
      const c = text.charCodeAt(i);
      if (c === 0x22 /* " */ && field === '') {
        // Quoted field: runs to the next lone quote on this line.
        i++;
        let start = i;
        let value = '';
        let closed = false;
        while (i < n) {
          const q = text.charCodeAt(i);
          if (q === 0x22) {
            if (text.charCodeAt(i + 1) === 0x22) {
              value += text.slice(start, i + 1);
              i += 2;
              start = i;
              continue;
            }
            closed = true;
            break;
          }
          if (q === 0x0a || q === 0x0d) break;
          i++;
        }
        value += text.slice(start, i);
        if (closed) i++;
        else broken = true;
        // Anything between the closing quote and the next separator is kept, as a lenient reader does.
        while (i < n) {
          const d = text.charCodeAt(i);
          if (d === 0x2c || d === 0x0a || d === 0x0d) break;
          value += text[i];
          i++;
        }
        field = value;
        continue;
      }
      if (c === 0x2c /* , */) {
        fields.push(field);
        field = '';
        i++;
      } else if (c === 0x0d || c === 0x0a) {
        if (c === 0x0d && text.charCodeAt(i + 1) === 0x0a) i++;
        i++;
        endOfRecord = true;
      } else {
        let j = i + 1;
        while (j < n) {
          const d = text.charCodeAt(j);
          if (d === 0x2c || d === 0x0a || d === 0x0d) break;
          j++;
        }
        field += text.slice(i, j);
        i = j;
      }
    }
    fields.push(field);
    onRecord(fields, line, broken);
    line++;
  }
}

// ---------------------------------------------------------------------------------------------
// NIFTY expiries and symbols

const TUESDAY = 2;
const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'] as const;
/** Weekly contracts name the month with one character: 1-9, then O, N, D. */
const WEEKLY_MONTH_CODES = '123456789OND';

/** The calendar day in India of an instant, as days since 1970-01-01. */
export function istDay(at: Date): number {
  return Math.floor((at.getTime() + IST_OFFSET_MS) / DAY_MS);
}

export function isoOfDay(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

export function dayOfIso(iso: string): number {
  return Math.floor(Date.parse(`${iso}T00:00:00Z`) / DAY_MS);
}

/** 0 = Sunday; 1970-01-01 was a Thursday. */
function weekday(day: number): number {
  return (day + 4) % 7;
}

/** Last Tuesday of a month (month 0-11): NIFTY's monthly expiry from September 2025. */
export function lastTuesday(year: number, month: number): number {
  const last = Math.floor(Date.UTC(year, month + 1, 0) / DAY_MS);
  return last - ((weekday(last) - TUESDAY + 7) % 7);
}

export function isMonthlyExpiry(day: number): boolean {
  const d = new Date(day * DAY_MS);
  return lastTuesday(d.getUTCFullYear(), d.getUTCMonth()) === day;
}

export interface NiftyExpiries {
  /** The next `weekly` Tuesdays, today included (a contract trades on its expiry day). */
  weekly: number[];
  /** The next `monthly` last-Tuesdays-of-month, today included. */
  monthly: number[];
}

/**
 * NIFTY expiry days (days since epoch) from an IST day. Exchange holidays are ignored: NSE moves an
 * expiry that falls on a holiday to the previous trading day, which we do not model.
 */
export function niftyExpiries(today: number, weekly = 4, monthly = 3): NiftyExpiries {
  const w: number[] = [];
  let t = today + ((TUESDAY - weekday(today) + 7) % 7);
  for (let i = 0; i < weekly; i++, t += 7) w.push(t);
  const m: number[] = [];
  const d = new Date(today * DAY_MS);
  let year = d.getUTCFullYear();
  let month = d.getUTCMonth();
  while (m.length < monthly) {
    const lt = lastTuesday(year, month);
    if (lt >= today) m.push(lt);
    month++;
    if (month === 12) {
      month = 0;
      year++;
    }
  }
  return { weekly: w, monthly: m };
}

function yy(day: number): string {
  return String(new Date(day * DAY_MS).getUTCFullYear() % 100).padStart(2, '0');
}

/** `NIFTY25DEC24000CE` for a monthly expiry, `NIFTY25D0924000CE` for a weekly one. */
export function niftyOptionSymbol(expiryDay: number, strike: number, type: 'CE' | 'PE', underlying = NIFTY_DERIVATIVE_NAME): string {
  const d = new Date(expiryDay * DAY_MS);
  const month = d.getUTCMonth();
  if (isMonthlyExpiry(expiryDay)) return `${underlying}${yy(expiryDay)}${MONTHS[month]}${strike}${type}`;
  const dd = String(d.getUTCDate()).padStart(2, '0');
  return `${underlying}${yy(expiryDay)}${WEEKLY_MONTH_CODES[month]}${dd}${strike}${type}`;
}

/** `NIFTY25DECFUT`. */
export function niftyFutureSymbol(expiryDay: number, underlying = NIFTY_DERIVATIVE_NAME): string {
  return `${underlying}${yy(expiryDay)}${MONTHS[new Date(expiryDay * DAY_MS).getUTCMonth()]}FUT`;
}

// ---------------------------------------------------------------------------------------------
// The simulated universe

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

// ---------------------------------------------------------------------------------------------
// Selection: which tokens the service follows

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
