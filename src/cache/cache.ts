/**
 * The quote cache: the latest quote of every instrument and the latest bar of every
 * (instrument, timeframe), for REST quote calls, subscribe snapshots and other processes.
 *
 * Writes come from the output pump on the tick path, so `putTick`/`putBar` are synchronous, O(1)
 * and allocate nothing: they copy the record into the token's slot (slots.ts) and return. What
 * happens next is the implementation's business:
 *
 * - `MemoryCache` (memory.ts, REDIS_URL unset): the slots are the cache.
 * - `RedisCache` (redis.ts): a timer writes the slots changed since the last flush every
 *   CACHE_FLUSH_MS in a fixed number of commands (one MSET, one script call); 1000 ticks of one
 *   token between flushes are one write.
 *
 * Reads are async and allocate (edge code). Neither implementation throws from a put; reads throw
 * CacheError CACHE_UNAVAILABLE only when Redis must answer and cannot.
 */
import { AppError } from '../core/errors.ts';
import type { CanonicalBar } from '../core/bar.ts';
import type { Quote } from './quote.ts';

export type { CanonicalBar, Quote };

export interface CacheStats {
  /** Ticks and bars taken by putTick/putBar. */
  puts: number;
  /** Quarantined ticks, bars older than the one held, bars past the 32nd timeframe: not taken. */
  skipped: number;
  /** Values the backing store acknowledged (Redis: values its MSET and HSET calls took; memory: each put). */
  writes: number;
  /** Flush rounds that had something to write. */
  flushes: number;
  /** Values changed and not yet acknowledged by the store, in flight included (bounded by tokens × (1 + timeframes)). */
  pending: number;
  /** Duration of the last flush round, ms. */
  lastFlushMs: number;
  /** Failed Redis operations: flush rounds, reads, connection errors. */
  errors: number;
}

export interface QuoteCache {
  /** 'redis' or 'memory', for /health and the start-up line. */
  readonly kind: 'redis' | 'memory';
  /**
   * Take the canonical tick (src/core/tick.ts N layout) at f64 index `base`: latest per token
   * wins. Synchronous, O(1), no allocation, never throws. QUARANTINE records are skipped.
   */
  putTick(f64: Float64Array, base: number): void;
  /**
   * Take the bar record (src/core/bar.ts B layout) at f64 index `base`: latest per
   * token × timeframe wins, in progress or closed; a bar with an earlier START_MS than the one
   * held is skipped. Synchronous, O(1), no allocation, never throws.
   */
  putBar(f64: Float64Array, base: number): void;
  /** Write everything pending now; resolves when the store has answered. Never rejects. */
  flush(): Promise<void>;
  /**
   * Take the latest analytics of `key` (a chain `NIFTY:2026-12-08`, or `breadth`) as UTF-8 JSON
   * bytes (src/analytics/): latest per key wins. The bytes stay valid only until the put after
   * next of the same key (the analytics service writes two shared regions in turn): the memory
   * cache keeps the view and reads it synchronously; Redis, which sends later, copies it.
   * Synchronous, never throws.
   */
  putAnalytics(key: string, json: Uint8Array): void;
  /** The latest analytics of `key` as JSON text, or null when none has been put (here or, with Redis, by another process). */
  getAnalytics(key: string): Promise<string | null>;
  /** The latest quote of each token, null for tokens never seen. Same order as `tokens`. */
  getQuotes(tokens: readonly number[]): Promise<(Quote | null)[]>;
  /** The latest bar of `token` × `tfMs`, or null. */
  getBar(token: number, tfMs: number): Promise<CanonicalBar | null>;
  /** The latest bar of every timeframe of `token`, shortest timeframe first. */
  getBars(token: number): Promise<CanonicalBar[]>;
  /** True when the backing store answers (memory: always). */
  ping(): Promise<boolean>;
  /** Flush, then release the connection. Puts after close are skipped. Idempotent. */
  close(): Promise<void>;
  stats(): CacheStats;
}

/** Redis could not answer a read that memory could not answer either. Retry; check REDIS_URL. */
export class CacheError extends AppError {
  constructor(code: 'CACHE_UNAVAILABLE', message: string, details: Record<string, unknown> = {}) {
    super(code, message, details);
    this.name = 'CacheError';
  }
}
