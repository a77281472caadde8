/**
 * The Redis names the ingest and the gateways meet at (PREFIX = REDIS_PREFIX, default `n50:`),
 * beside the cache's own (src/cache/redis.ts: q:, b:, a:).
 *
 * | name                   | type    | written by | value                                              |
 * |------------------------|---------|------------|----------------------------------------------------|
 * | PREFIX feed            | channel | ingest     | one drain message per hub drain (drain-message.ts)  |
 * | PREFIX feed:stamp      | string  | ingest     | `EPOCH:SEQ`: the cache's q: and b: keys hold every  |
 * |                        |         |            | drain message up to SEQ of EPOCH (set after each    |
 * |                        |         |            | flush round that wrote all its values)              |
 * | PREFIX analytics       | channel | ingest     | each analytics frame (drain-message.ts)             |
 * | PREFIX analytics:frames| hash    | ingest     | field = chain key or `breadth`, value = its latest  |
 * |                        |         |            | frame, as on the channel                            |
 * | PREFIX universe        | string  | ingest     | JSON: the followed instruments in row order, their  |
 * |                        |         |            | id, IST day, the bar timeframes                     |
 * | PREFIX master          | string  | ingest     | JSON: the instrument master the universe came from  |
 */
export function scaleKeys(prefix: string) {
  return {
    feed: `${prefix}feed`,
    stamp: `${prefix}feed:stamp`,
    analytics: `${prefix}analytics`,
    analyticsFrames: `${prefix}analytics:frames`,
    universe: `${prefix}universe`,
    master: `${prefix}master`,
  } as const;
}

export type ScaleKeys = ReturnType<typeof scaleKeys>;
