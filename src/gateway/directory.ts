/**
 * Instrument lookup for REST: by token, `EXCHANGE:TRADINGSYMBOL` or bare symbol (NSE wins a tie,
 * as on Kite), over the instruments the service follows first and then Kite's whole master (bars
 * of an instrument followed yesterday are still in the database).
 *
 * The master is read through a getter and re-indexed only when it returns a different array, so a
 * service that refreshes its master at the daily rollover is seen without a restart.
 */
import type { Instrument } from '../core/instrument.ts';
import type { FeedHub } from './hub.ts';

export class Directory {
  private indexed: readonly Instrument[] | null = null;
  private byToken = new Map<number, Instrument>();
  private bySymbol = new Map<string, Instrument>();

  constructor(private readonly hub: FeedHub, private readonly master: () => readonly Instrument[]) {}

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
    this.index();
    if (typeof s === 'number' || /^\d+$/.test(s)) return this.byToken.get(Number(s)) ?? null;
    return this.bySymbol.get(s.trim().toUpperCase()) ?? null;
  }

  private index(): void {
    const m = this.master();
    if (m === this.indexed) return;
    this.indexed = m;
    this.byToken = new Map();
    this.bySymbol = new Map();
    for (const i of m) {
      this.byToken.set(i.instrumentToken, i);
      const sym = i.tradingsymbol.toUpperCase();
      this.bySymbol.set(`${i.exchange.toUpperCase()}:${sym}`, i);
      const prev = this.bySymbol.get(sym);
      if (prev === undefined || (i.exchange === 'NSE' && prev.exchange !== 'NSE')) this.bySymbol.set(sym, i);
    }
  }
}
