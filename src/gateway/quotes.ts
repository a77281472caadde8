/**
 * Where REST quotes come from. `QuoteSource` is the slice of the quote cache (src/cache) that REST
 * needs: `getQuotes(tokens)`. The cache's `QuoteCache` satisfies it as it is (its `Quote` has every
 * field of `LiveQuote`), so the service passes the cache; `hubQuotes` serves the same from the feed
 * hub's latest ticks, for a gateway without a cache and for tests.
 */
import { N_FIELDS } from '../core/tick.ts';
import { quoteFromTick, type Quote } from '../cache/quote.ts';
import type { FeedHub } from './hub.ts';

export type { DepthLevel } from '../cache/quote.ts';

/**
 * The latest state of one instrument, as REST needs it: the cache's Quote (src/cache/quote.ts,
 * every field documented there), of which REST reads these fields.
 */
export type LiveQuote = Pick<Quote,
  'token' | 'exchTimeMs' | 'lastTradeMs' | 'price' | 'lastQty' | 'avgPrice' | 'volume' | 'buyQty' | 'sellQty' |
  'ohlc' | 'change' | 'oi' | 'oiHigh' | 'oiLow' | 'depth'>;

export interface QuoteSource {
  /** The latest quote of each token (null when none yet), in the order asked. */
  getQuotes(tokens: readonly number[]): Promise<(LiveQuote | null)[]>;
}

/** Quotes from the hub's latest tick per followed instrument (same process, no cache). */
export function hubQuotes(hub: FeedHub): QuoteSource {
  return {
    getQuotes(tokens) {
      return Promise.resolve(tokens.map((t) => {
        const row = hub.rowOfToken.get(t);
        return row === undefined || hub.hasTick[row] === 0 ? null : quoteFromTick(hub.latestTicks, row * N_FIELDS);
      }));
    },
  };
}
