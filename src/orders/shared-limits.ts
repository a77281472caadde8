/**
 * Kite's order rate limits for the one account, held in Redis so that every gateway together
 * respects them: the same rule as OrderRateLimiter (rate-limit.ts, whose header defines it), taken
 * by one Lua script that Redis runs atomically, so two gateways taking at the same instant are
 * decided one after the other, each seeing what the other took.
 *
 * The same windows: sliding second and minute (a request at ts counts while t - ts < window), the
 * IST calendar day as a counter; all-or-nothing takes of n; fair share among the keys active within
 * rateActiveMs, account-wide (a key's share is ceil(limit / active keys) whichever gateway its
 * requests arrive at); the same RateDecision, with the same exact retryAfterMs (to the
 * millisecond: times are whole ms here) and the same messages (refusalMessage).
 *
 * Time is Redis's (TIME inside the script), made monotonic by a stored high-water mark, so the
 * gateways' clocks do not matter and cannot reopen a window. Tests may pass `clock` to drive it.
 *
 * Keys (P = the prefix option, REDIS_PREFIX; all named in KEYS and sharing the hash tag
 * `{orders}`, so one cluster slot holds them):
 *
 * | key                            | type   | holds                                                  |
 * |--------------------------------|--------|--------------------------------------------------------|
 * | P{orders}:rl:log               | zset   | the account's accepted requests of the last minute,    |
 * |                                |        | score = time (ms), member = time:seq; the second's are |
 * |                                |        | those with score > t - 1000                            |
 * | P{orders}:rl:k:<api key>       | zset   | the same for one key (its share)                       |
 * | P{orders}:rl:day               | hash   | start (epoch ms of 00:00 IST), n (accepted that day)   |
 * | P{orders}:rl:kday              | hash   | api key → accepted that day (cleared with the day)     |
 * | P{orders}:rl:active            | zset   | api key → its last order request (ms): the active keys |
 * | P{orders}:rl:clock             | string | the latest time seen (monotonic clock)                 |
 * | P{orders}:rl:seq               | string | counter making log members unique                      |
 *
 * Every key expires once it can no longer matter (logs a minute after their last entry, the
 * active set rateActiveMs after the last request, day counters an hour after IST midnight; all
 * relative to the script's time, so a test clock behaves), so an
 * idle account leaves nothing behind but the clock and the counter.
 *
 * Cost: an accepted take is ~15 Redis calls inside one script, O(log N) each (N ≤ ratePerMin);
 * one round trip. A refusal also reads the active keys (few) and the k-th oldest entries it waits
 * for. Measured on a local Redis 7, one client taking one after another: ~160 µs a take, round
 * trip included, with 20,000 entries in the minute's log (Kite's limits keep it at 400 at most).
 *
 * Redis down: take() rejects with SharedStateUnavailable; the order is refused (503), never sent
 * unaccounted.
 */
import type { Redis } from 'ioredis';
import { LuaScript } from './lua.ts';
import {
  checkTakeSize, refusalMessage, WINDOWS, type OrderRateConfig, type OrderRateStats, type RateDecision, type RateWindow,
} from './rate-limit.ts';

/** What the order service needs of an account-wide limiter shared by the gateways. */
export interface SharedRateLimiter {
  /** Asks for n order requests for `key` now, all or nothing (rate-limit.ts take()). */
  take(key: string, n?: number): Promise<RateDecision>;
  stats(): Promise<OrderRateStats>;
}

export interface RedisRateLimiterOptions {
  redis: Redis;
  config: OrderRateConfig;
  /** REDIS_PREFIX, e.g. 'n50:'. */
  prefix: string;
  /** Tests only: the time (epoch ms) to use instead of Redis's TIME. */
  clock?: () => number;
}

// Shared by both scripts: the time, monotonic; the IST day.
const CLOCK_LUA = `
local t
if ARGV[1] ~= '' then t = tonumber(ARGV[1]) else
  local now = redis.call('TIME')
  t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
local last = tonumber(redis.call('GET', KEYS[6]))
if last ~= nil and last > t then t = last else redis.call('SET', KEYS[6], t) end
local DAY, IST = 86400000, 19800000
local dayStart = math.floor((t + IST) / DAY) * DAY - IST
local dayEnd = dayStart + DAY
`;

/**
 * KEYS: log, day, active, own log, kday, clock, seq.
 * ARGV: clock override ('' = TIME), api key, n, perSec, perMin, perDay, activeMs.
 * Returns {1} when taken; {0, which (1..6: second, minute, day, then the three shares), retryAfterMs
 * (-1: never), held (the key's count in the named window), active keys} when refused.
 */
const TAKE = new LuaScript('the account-wide order rate limit', `${CLOCK_LUA}
local key = ARGV[2]
local n = tonumber(ARGV[3])
local perSec, perMin, perDay, activeMs = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local SEC, MIN = 1000, 60000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t - MIN)
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', t - MIN)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', t - activeMs)
if tonumber(redis.call('HGET', KEYS[2], 'start')) ~= dayStart then
  redis.call('DEL', KEYS[2], KEYS[5])
  redis.call('HSET', KEYS[2], 'start', dayStart, 'n', 0)
  redis.call('PEXPIRE', KEYS[2], dayEnd - t + 3600000)
end
redis.call('ZADD', KEYS[3], t, key)
redis.call('PEXPIRE', KEYS[3], activeMs + SEC)
local a = redis.call('ZCARD', KEYS[3])
local secN = redis.call('ZCOUNT', KEYS[1], '(' .. (t - SEC), '+inf')
local minN = redis.call('ZCARD', KEYS[1])
local dayN = tonumber(redis.call('HGET', KEYS[2], 'n') or '0')
local ownSec = redis.call('ZCOUNT', KEYS[4], '(' .. (t - SEC), '+inf')
local ownMin = redis.call('ZCARD', KEYS[4])
local ownDay = tonumber(redis.call('HGET', KEYS[5], key) or '0')
local function share(limit) return math.ceil(limit / a) end
if secN + n <= perSec and minN + n <= perMin and dayN + n <= perDay
  and ownSec + n <= share(perSec) and ownMin + n <= share(perMin) and ownDay + n <= share(perDay) then
  local seq = redis.call('INCRBY', KEYS[7], n)
  for i = 1, n do
    local m = t .. ':' .. (seq - n + i)
    redis.call('ZADD', KEYS[1], t, m)
    redis.call('ZADD', KEYS[4], t, m)
  end
  redis.call('PEXPIRE', KEYS[1], MIN + SEC)
  redis.call('PEXPIRE', KEYS[4], MIN + SEC)
  redis.call('HINCRBY', KEYS[2], 'n', n)
  redis.call('HINCRBY', KEYS[5], key, n)
  redis.call('PEXPIRE', KEYS[5], dayEnd - t + 3600000)
  return {1}
end

-- Refused: when each failing condition clears (rate-limit.ts refuse() and shareClears()).
local INF = 1 / 0
local function kthSince(z, since, k)
  local r = redis.call('ZRANGEBYSCORE', z, '(' .. since, '+inf', 'WITHSCORES', 'LIMIT', k, 1)
  return tonumber(r[2])
end
local others = nil
local function shareClears(limit, held, z, since, windowMs)
  if others == nil then
    others = {}
    local r = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
    for i = 1, #r, 2 do if r[i] ~= key then others[#others + 1] = tonumber(r[i + 1]) end end
  end
  local best, idx, idleAt = INF, 1, t
  for m = a, 1, -1 do
    if m < a then
      if idx > #others then break end
      idleAt = others[idx] + activeMs
      idx = idx + 1
    end
    if idleAt >= best then break end
    local room = math.ceil(limit / m) - n
    if room >= 0 then
      local mustLeave = held - room
      local ownAt
      if mustLeave <= 0 then ownAt = t
      elseif z == nil then ownAt = dayEnd
      else ownAt = kthSince(z, since, mustLeave - 1) + windowMs end
      local c = ownAt
      if idleAt > c then c = idleAt end
      if c < best then best = c end
    end
  end
  return best
end
local clears = {
  (secN + n > perSec) and (kthSince(KEYS[1], t - SEC, secN + n - perSec - 1) + SEC) or -INF,
  (minN + n > perMin) and (kthSince(KEYS[1], t - MIN, minN + n - perMin - 1) + MIN) or -INF,
  (dayN + n > perDay) and dayEnd or -INF,
  (ownSec + n > share(perSec)) and shareClears(perSec, ownSec, KEYS[4], t - SEC, SEC) or -INF,
  (ownMin + n > share(perMin)) and shareClears(perMin, ownMin, KEYS[4], t - MIN, MIN) or -INF,
  (ownDay + n > share(perDay)) and shareClears(perDay, ownDay, nil, 0, 0) or -INF,
}
local which = 1
for i = 2, 6 do if clears[i] > clears[which] then which = i end end
local retry = clears[which] - t
if retry == INF then retry = -1 end
local of = (which - 1) % 3
local held = ownDay
if of == 0 then held = ownSec elseif of == 1 then held = ownMin end
return {0, which, retry, held, a}
`);

/** KEYS as TAKE (own log and seq unused). ARGV: clock override, activeMs. Returns {second, minute, day, active}. */
const STATS = new LuaScript('the account-wide order rate limit (stats)', `${CLOCK_LUA}
local activeMs = tonumber(ARGV[2])
local day = 0
if tonumber(redis.call('HGET', KEYS[2], 'start')) == dayStart then day = tonumber(redis.call('HGET', KEYS[2], 'n')) end
return {
  redis.call('ZCOUNT', KEYS[1], '(' .. (t - 1000), '+inf'),
  redis.call('ZCOUNT', KEYS[1], '(' .. (t - 60000), '+inf'),
  day,
  redis.call('ZCOUNT', KEYS[3], '(' .. (t - activeMs), '+inf'),
}
`);

export class RedisRateLimiter implements SharedRateLimiter {
  private readonly base: string;

  constructor(private readonly opts: RedisRateLimiterOptions) {
    const c = opts.config;
    for (const name of ['ratePerSec', 'ratePerMin', 'ratePerDay', 'rateActiveMs'] as const) {
      if (!Number.isSafeInteger(c[name]) || c[name] < 1) {
        throw new RangeError(`RedisRateLimiter: ${name} must be a whole number of at least 1, got ${String(c[name])}`);
      }
    }
    this.base = `${opts.prefix}{orders}:rl:`;
  }

  private keys(key: string): string[] {
    const b = this.base;
    return [`${b}log`, `${b}day`, `${b}active`, `${b}k:${key}`, `${b}kday`, `${b}clock`, `${b}seq`];
  }

  private clockArg(): string {
    return this.opts.clock === undefined ? '' : String(Math.floor(this.opts.clock()));
  }

  async take(key: string, n = 1): Promise<RateDecision> {
    const cfg = this.opts.config;
    checkTakeSize(cfg, n);
    const r = (await TAKE.run(this.opts.redis, this.keys(key), [
      this.clockArg(), key, n, cfg.ratePerSec, cfg.ratePerMin, cfg.ratePerDay, cfg.rateActiveMs,
    ])) as number[];
    if (r[0] === 1) return { ok: true };
    const [, which, retry, held, active] = r;
    const of: RateWindow = WINDOWS[(which - 1) % 3];
    const window: RateWindow | 'share' = which <= 3 ? of : 'share';
    const retryAfterMs = retry < 0 ? Infinity : retry;
    return { ok: false, window, retryAfterMs, message: refusalMessage(cfg, of, window, retryAfterMs, held, active, n) };
  }

  async stats(): Promise<OrderRateStats> {
    const r = (await STATS.run(this.opts.redis, this.keys(''), [this.clockArg(), this.opts.config.rateActiveMs])) as number[];
    return { second: r[0], minute: r[1], day: r[2], activeKeys: r[3] };
  }
}
