/**
 * Reads what the service needs from Kite's REST side at start-up: the instrument master and the
 * current NIFTY level (which decides the at-the-money strike of the option universe).
 */
import { AppError } from '../core/errors.ts';
import type { Logger } from '../log.ts';
import type { Instrument } from '../core/instrument.ts';
import { parseCsv } from './instrument-csv.ts';
import { NIFTY_INDEX_LEVEL, NIFTY_INDEX_SYMBOL, NIFTY_INDEX_TOKEN } from './nifty50.ts';

export interface KiteRest {
  apiUrl: string;
  apiKey: string;
  accessToken: string;
}

function headers(k: KiteRest): Record<string, string> {
  return { 'X-Kite-Version': '3', Authorization: `token ${k.apiKey}:${k.accessToken}` };
}

export async function fetchInstruments(k: KiteRest, log: Logger): Promise<Instrument[]> {
  const url = `${k.apiUrl}/instruments`;
  let res: Response;
  try {
    res = await fetch(url, { headers: headers(k), signal: AbortSignal.timeout(30_000) });
  } catch (e) {
    throw new AppError('KITE_MASTER_UNREACHABLE', `could not fetch the instrument master from ${url}: ${(e as Error).message}. Check KITE_API_URL and the network.`, { url });
  }
  if (res.status === 403 || res.status === 401) {
    throw new AppError('KITE_AUTH_REFUSED', `Kite refused ${url} (HTTP ${res.status}): KITE_API_KEY or KITE_ACCESS_TOKEN is wrong or expired. Regenerate the access token and restart.`, { url, status: res.status });
  }
  if (!res.ok) {
    throw new AppError('KITE_MASTER_FAILED', `GET ${url} answered HTTP ${res.status}; retry later or check KITE_API_URL.`, { url, status: res.status });
  }
  const parsed = parseCsv(await res.text());
  if (parsed.badRows > 0) log.warn({ badRows: parsed.badRows, lines: parsed.badLines }, 'instrument master: malformed rows skipped');
  log.info({ instruments: parsed.instruments.length }, 'instrument master loaded');
  return parsed.instruments;
}

/**
 * The NIFTY level now: Kite's LTP endpoint, else the master's own figure, else a fixed reference
 * level (logged, since the option strikes will then centre on a guess).
 */
export async function fetchIndexLevel(k: KiteRest, master: readonly Instrument[], log: Logger): Promise<number> {
  const key = `NSE:${NIFTY_INDEX_SYMBOL}`;
  try {
    const res = await fetch(`${k.apiUrl}/quote/ltp?i=${encodeURIComponent(key)}`, { headers: headers(k), signal: AbortSignal.timeout(10_000) });
    if (res.ok) {
      const body = (await res.json()) as { data?: Record<string, { last_price?: number }> };
      const lp = body.data?.[key]?.last_price;
      if (typeof lp === 'number' && lp > 0) return lp;
    }
  } catch {
    // fall through to the master's figure
  }
  const row = master.find((i) => i.instrumentToken === NIFTY_INDEX_TOKEN);
  if (row && row.lastPrice > 0) return row.lastPrice;
  log.warn({ level: NIFTY_INDEX_LEVEL }, 'could not read the NIFTY level; option strikes centre on a reference level');
  return NIFTY_INDEX_LEVEL;
}
