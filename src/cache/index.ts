/**
 * The cache's entry point: `createCache` picks Redis when REDIS_URL is set, else in-process.
 * See cache.ts for the interface and its guarantees.
 */
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import type { QuoteCache } from './cache.ts';
import { MemoryCache } from './memory.ts';
import { RedisCache, type RedisCacheOptions } from './redis.ts';

export { CacheError, type CacheStats, type QuoteCache } from './cache.ts';
export { quoteFromTick, type Quote, type DepthLevel, type InstrumentType } from './quote.ts';
export { MemoryCache } from './memory.ts';
export { RedisCache, type RedisCacheOptions } from './redis.ts';

export function createCache(
  config: Pick<Config, 'redisUrl' | 'redisPrefix' | 'cacheFlushMs'>, log: Logger, stamp?: RedisCacheOptions['stamp'],
): QuoteCache {
  if (config.redisUrl === null) return new MemoryCache();
  return new RedisCache({ url: config.redisUrl, prefix: config.redisPrefix, flushMs: config.cacheFlushMs, log, stamp });
}
