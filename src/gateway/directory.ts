/**
 * Instrument lookup: by token, `EXCHANGE:TRADINGSYMBOL` or bare symbol (NSE wins a tie, as on
 * Kite). InstrumentIndex is the one place that rule lives: the feed hub (hub.ts) indexes the
 * instruments the service follows with it, and Directory, for REST, looks in those first and then
 * in Kite's whole master (bars of an instrument followed yesterday are still in the database).
 *
 * The master is read through a getter and re-indexed only when it returns a different array, so a
 * service that refreshes its master at the daily rollover is seen without a restart.
 */
import type { Instrument } from '../core/instrument.ts';

/** Positions of instruments in a list, by token and by symbol. */
export class InstrumentIndex {
  /** Position of each token (the last listing of a token repeated in the list). */
  readonly rowOfToken: ReadonlyMap<number, number>;
  private readonly rowOfSymbol: ReadonlyMap<string, number>;

  constructor(instruments: readonly Instrument[]) {
    const byToken = new Map<number, number>();
    const bySymbol = new Map<string, number>();
    instruments.forEach((i, row) => {
      byToken.set(i.instrumentToken, row);
      const sym = i.tradingsymbol.toUpperCase();
      bySymbol.set(`${i.exchange.toUpperCase()}:${sym}`, row);
      // A bare symbol listed on several exchanges is the NSE listing, as on Kite; else the first.
      const prev = bySymbol.get(sym);
      if (prev === undefined || (i.exchange === 'NSE' && instruments[prev].exchange !== 'NSE')) bySymbol.set(sym, row);
    });
    this.rowOfToken = byToken;
    this.rowOfSymbol = bySymbol;
  }

  /** Position of a token (number or digits) or symbol ('NFO:NIFTY25DEC26000CE', 'infy'); -1 if not listed. */
  find(instrument: number | string): number {
    // A token comes as a number or as digits; no trading symbol is all digits.
    if (typeof instrument === 'number' || /^\d+$/.test(instrument)) return this.rowOfToken.get(Number(instrument)) ?? -1;
    return this.rowOfSymbol.get(instrument.trim().toUpperCase()) ?? -1;
  }
}

/** What the directory needs of the feed hub (hub.ts): the instruments the service follows. */
export interface Followed {
  readonly instruments: readonly Instrument[];
  readonly rowOfToken: ReadonlyMap<number, number>;
  /** Row in `instruments`, -1 if not followed (an InstrumentIndex's find). */
  resolve(instrument: number | string): number;
}

export class Directory {
  private indexed: readonly Instrument[] = [];
  private index = new InstrumentIndex([]);

  constructor(private readonly hub: Followed, private readonly master: () => readonly Instrument[]) {}

  /** The instruments the service follows. */
  followed(): readonly Instrument[] {
    return this.hub.instruments;
  }

  /** Kite's instrument master (or the followed instruments when the service has none). */
  all(): readonly Instrument[] {
    return this.master();
  }

  /** True when the service follows the instrument (has live quotes for it). */
  isFollowed(token: number): boolean {
    return this.hub.rowOfToken.has(token);
  }

  resolve(s: string | number): Instrument | null {
    const row = this.hub.resolve(s);
    if (row >= 0) return this.hub.instruments[row];
    const m = this.master();
    if (m !== this.indexed) {
      this.indexed = m;
      this.index = new InstrumentIndex(m);
    }
    const at = this.index.find(s);
    return at >= 0 ? m[at] : null;
  }
}
