/**
 * The in-process cache (REDIS_URL unset): the slots are the store, so a put is visible to the next
 * read at once and flush has nothing to do. Same interface and semantics as RedisCache.
 */
import { N_FIELDS } from '../core/tick.ts';
import { BAR_FIELDS, barToObject, type CanonicalBar } from '../core/bar.ts';
import type { CacheStats, QuoteCache } from './cache.ts';
import { quoteFromTick, type Quote } from './quote.ts';
import { LatestSlots } from './slots.ts';

export class MemoryCache implements QuoteCache {
  readonly kind = 'memory' as const;
  private readonly slots = new LatestSlots({ trackDirty: false });
  private closed = false;
  private readonly analytics = new Map<string, Uint8Array>();

  putTick(f64: Float64Array, base: number): void {
    if (this.closed) this.slots.skipped++;
    else this.slots.putTick(f64, base);
  }

  putBar(f64: Float64Array, base: number): void {
    if (this.closed) this.slots.skipped++;
    else this.slots.putBar(f64, base);
  }

  putAnalytics(key: string, json: Uint8Array): void {
    if (this.closed) this.slots.skipped++;
    else this.analytics.set(key, json);
  }

  async getAnalytics(key: string): Promise<string | null> {
    const v = this.analytics.get(key);
    return v === undefined ? null : Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
  }

  async flush(): Promise<void> {}

  async getQuotes(tokens: readonly number[]): Promise<(Quote | null)[]> {
    return tokens.map((t) => {
      const i = this.slots.tickSlot(t);
      return i < 0 ? null : quoteFromTick(this.slots.ticks.values, i * N_FIELDS);
    });
  }

  async getBar(token: number, tfMs: number): Promise<CanonicalBar | null> {
    const i = this.slots.barSlot(token, tfMs);
    return i < 0 ? null : barToObject(this.slots.bars.values, i * BAR_FIELDS);
  }

  async getBars(token: number): Promise<CanonicalBar[]> {
    return this.slots
      .barSlots(token)
      .map((i) => barToObject(this.slots.bars.values, i * BAR_FIELDS))
      .sort((a, b) => a.tfMs - b.tfMs);
  }

  async ping(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  stats(): CacheStats {
    const s = this.slots;
    return { puts: s.puts, skipped: s.skipped, writes: s.puts, flushes: 0, pending: 0, lastFlushMs: 0, errors: 0 };
  }
}
