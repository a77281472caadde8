/**
 * Kite's instrument master as CSV: the codec. Kite publishes the master at `GET /instruments`
 * (all exchanges) and `GET /instruments/{exchange}`:
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
 * Control-plane code: runs at start-up, allocates freely.
 */
import { AppError } from '../core/errors.ts';
import type { Instrument, InstrumentType } from '../core/instrument.ts';

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
