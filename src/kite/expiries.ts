/**
 * NIFTY's expiry calendar and Kite's contract symbols: weekly expiries on Tuesdays, the monthly on
 * the month's last Tuesday (NSE's calendar from September 2025), and the trading symbols Kite
 * gives them. Expiries and lot sizes are exchange data that change: code that trades reads them
 * from the instrument master; this calendar is for building a master (the simulator's) and for
 * naming contracts.
 */
import { DAY_MS, istDay } from '../core/ist.ts';
import { NIFTY_DERIVATIVE_NAME } from './nifty50.ts';

const TUESDAY = 2;
const MONTHS = ['JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN', 'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC'] as const;
/** Weekly contracts name the month with one character: 1-9, then O, N, D. */
const WEEKLY_MONTH_CODES = '123456789OND';


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
