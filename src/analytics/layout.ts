/**
 * The analytics layout (src/core/chain-snapshot.ts ChainLayout) from the instruments the service
 * follows: which hub rows make each option chain, its spot and future, and the stocks for breadth.
 * Control-plane code: runs once at start.
 */
import { dayOfIso, DAY_MS, IST_OFFSET_MS, MINUTE_MS, SESSION_CLOSE_MIN } from '../core/ist.ts';
import type { Instrument } from '../core/instrument.ts';
import type { ChainGroup, ChainLayout, ChainOption } from '../core/chain-snapshot.ts';

/** An index whose derivatives carry another name in the master: the NIFTY 50 index trades as NIFTY. */
const INDEX_OF_NAME: Readonly<Record<string, string>> = { NIFTY: 'NIFTY 50', BANKNIFTY: 'NIFTY BANK', FINNIFTY: 'NIFTY FIN SERVICE' };

export interface LayoutSettings {
  rate: number;
  staleMs: number;
  oiIntervalMs: number;
}

export interface BuiltLayout {
  layout: ChainLayout;
  /** Hub row (FeedHub row index) of each snapshot row. */
  hubRows: Int32Array;
}

/** 15:30 IST on the day 'YYYY-MM-DD', epoch ms. */
export function expiryCloseMs(expiry: string): number {
  return dayOfIso(expiry) * DAY_MS - IST_OFFSET_MS + SESSION_CLOSE_MIN * MINUTE_MS;
}

/**
 * `instruments` are the hub's rows, in order. Every followed option joins the chain of its
 * (name, expiry); every followed NSE equity counts in breadth.
 */
export function buildLayout(instruments: readonly Instrument[], settings: LayoutSettings): BuiltLayout {
  const hubRows: number[] = [];
  const rowOfHub = new Map<number, number>();
  const rowFor = (hubRow: number): number => {
    let r = rowOfHub.get(hubRow);
    if (r === undefined) {
      r = hubRows.length;
      hubRows.push(hubRow);
      rowOfHub.set(hubRow, r);
    }
    return r;
  };
  const byChain = new Map<string, { name: string; expiry: string; options: { hub: number; i: Instrument }[] }>();
  instruments.forEach((i, hub) => {
    if (i.instrumentType !== 'CE' && i.instrumentType !== 'PE') return;
    const key = `${i.name}:${i.expiry}`;
    let c = byChain.get(key);
    if (c === undefined) byChain.set(key, (c = { name: i.name, expiry: i.expiry, options: [] }));
    c.options.push({ hub, i });
  });
  const spotOf = (name: string): number => {
    const index = INDEX_OF_NAME[name];
    const hub = instruments.findIndex((i) => (index !== undefined
      ? i.segment === 'INDICES' && i.tradingsymbol === index
      : i.exchange === 'NSE' && i.instrumentType === 'EQ' && i.tradingsymbol === name));
    return hub < 0 ? -1 : rowFor(hub);
  };
  const groups: ChainGroup[] = [];
  const chains = [...byChain.values()].sort((a, b) => a.name.localeCompare(b.name) || a.expiry.localeCompare(b.expiry));
  const rankOf = new Map<string, number>();
  for (const c of chains) {
    const rank = rankOf.get(c.name) ?? 0;
    rankOf.set(c.name, rank + 1);
    c.options.sort((a, b) => a.i.strike - b.i.strike || (a.i.instrumentType === 'CE' ? -1 : 1));
    const options: ChainOption[] = c.options.map(({ hub, i }) => ({
      row: rowFor(hub), token: i.instrumentToken, symbol: i.tradingsymbol, strike: i.strike, call: i.instrumentType === 'CE',
    }));
    const futHub = instruments.findIndex((i) => i.instrumentType === 'FUT' && i.name === c.name && i.expiry === c.expiry);
    groups.push({
      key: `${c.name}:${c.expiry}`, name: c.name, expiry: c.expiry, expiryCloseMs: expiryCloseMs(c.expiry), rank,
      spotRow: spotOf(c.name), futureRow: futHub < 0 ? -1 : rowFor(futHub), options,
    });
  }
  const stocks: { row: number; symbol: string }[] = [];
  instruments.forEach((i, hub) => {
    if (i.exchange === 'NSE' && i.segment === 'NSE' && i.instrumentType === 'EQ') stocks.push({ row: rowFor(hub), symbol: i.tradingsymbol });
  });
  return {
    layout: { rows: hubRows.length, groups, stocks, rate: settings.rate, staleMs: settings.staleMs, oiIntervalMs: settings.oiIntervalMs },
    hubRows: Int32Array.from(hubRows),
  };
}
