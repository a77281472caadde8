/**
 * The Redis cache (REDIS_URL set): latest quotes and bars kept in this process's slots
 * (slots.ts) and written to Redis in batches, off the tick path.
 *
 * Keys (PREFIX = REDIS_PREFIX, default `n50:`):
 *
 * | key                | type   | value                                                             |
 * |--------------------|--------|-------------------------------------------------------------------|
 * | PREFIX q:<token>   | string | the canonical tick: 64 little-endian f64 (512 B), tick.ts N |
 * | PREFIX b:<token>   | hash   | field = timeframe name ('1m', ist.ts timeframeName), value =  |
 * |                    |        | the bar record: 14 little-endian f64 (112 B), bar.ts B            |
 * | PREFIX a:<key>     | string | the latest analytics of a chain (`a:NIFTY:2026-12-08`) or of      |
 * |                    |        | `a:breadth`, UTF-8 JSON (src/analytics/, docs/openapi.yaml)      |
 *
 * Why raw f64 bytes and not msgpack: the slots already hold the records in that form, so encoding
 * is a memcpy (~35 ns a quote) and decoding another, exact for every value including NaN;
 * packing the same quote as a msgpack map measured ~4 µs and 664 B against 512 B (Node 20,
 * msgpackr 2.1). A flush of 2,000 changed quotes thus costs ~70 µs of CPU instead of ~8 ms.
 * Readers in other languages decode with the field table of tick.ts (`struct.unpack('<64d')`);
 * a value of another length is from another layout version and reads as absent. One hash per
 * token keeps getBars to one HGETALL.
 *
 * Writing: a put marks its slot dirty and, if no flush is scheduled, schedules one CACHE_FLUSH_MS
 * later. A flush round copies every dirty slot once into one buffer (the socket may still be
 * sending those bytes when the next tick overwrites the slot) and sends at most three commands,
 * however many values changed: one MSET of the quotes and analytics, one EVALSHA of HSET_EACH for
 * the bars (no multi-key HSET exists), then the stamp's SET once both succeeded. One command per
 * value (~600 a round at 4k ticks/s) made ioredis's per-command objects ~95% of the main thread's
 * allocation: ~1.8 MB of V8 heap a round of 600 values, against ~0.33 MB now (Node 20, ioredis 6).
 * Rounds run one at a time. When Redis fails, the round's slots are marked dirty again, so the
 * latest values (never a backlog: one per slot) go out with the next round; rounds then retry every
 * RETRY_MS until Redis is back, and at once when it reconnects. Errors are counted and logged at
 * most once per `logEveryMs`.
 *
 * Reading: a token this process has seen is answered from its slots (they are at least as new as
 * Redis, this process being the writer); others are read from Redis, so a second process reading
 * the same Redis (or this one after a restart) gets what was last written. The offline queue is
 * off: with Redis down a read fails at once with CACHE_UNAVAILABLE rather than hang.
 */
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { Redis, type RedisOptions } from 'ioredis';
import { N_FIELDS } from '../core/tick.ts';
import { B, BAR_FIELDS, barToObject, type CanonicalBar } from '../core/bar.ts';
import { timeframeName } from '../core/ist.ts';
import { redactUrl } from '../config.ts';
import { silentLogger, type Logger } from '../log.ts';
import { CacheError, type CacheStats, type QuoteCache } from './cache.ts';
import { quoteFromTick, type Quote } from './quote.ts';
import { LatestSlots } from './slots.ts';

// Values are the slots' bytes as they lie in memory, documented as little-endian.
if (os.endianness() !== 'LE') throw new Error('src/cache/redis.ts writes little-endian f64 and runs on little-endian hosts only');

const TICK_BYTES = N_FIELDS * 8;
const BAR_BYTES = BAR_FIELDS * 8;
/** Delay between flush rounds while Redis is failing. */
const RETRY_MS = 1000;

/**
 * HSET KEYS[i] ARGV[i] to the i-th `size`-byte piece of `blob`, for every i: all of a round's bars
 * in one command. ARGV = field 1..n, blob, size. One blob rather than n values: Lua cuts it for
 * free, where n arguments cost the writer n Buffers and n length headers.
 *
 * pcall, not call: a failing HSET (a key of another type) fails that value alone, as one HSET per
 * value did, rather than the rest of the round. Returns {} when all were set, else the first error
 * and the 1-based indices that failed.
 */
const HSET_EACH = `
local n = #KEYS
local blob, size = ARGV[n + 1], tonumber(ARGV[n + 2])
local failed = {}
for i = 1, n do
  local r = redis.pcall('HSET', KEYS[i], ARGV[i], string.sub(blob, (i - 1) * size + 1, i * size))
  if type(r) == 'table' and r.err then
    if #failed == 0 then failed[1] = r.err end
    failed[#failed + 1] = i
  end
end
return failed
`;

export interface RedisCacheOptions {
  /** REDIS_URL, e.g. redis://127.0.0.1:6379/0 (the path picks the database). */
  url: string;
  /** REDIS_PREFIX; default 'n50:'. */
  prefix?: string;
  /** CACHE_FLUSH_MS; default 50. */
  flushMs?: number;
  log?: Logger;
  /** Least time between two log lines about Redis failures, ms; default 10 000. */
  logEveryMs?: number;
  /** A command unanswered this long fails (and its values are retried), ms; default 2000. */
  commandTimeoutMs?: number;
  /** Extra ioredis options, applied last. */
  redis?: RedisOptions;
  /**
   * After each flush round that wrote all its values, SET `key` to what `value()` returned when
   * the round took them: how far the cache's contents reach. The ingest stamps the sequence of the
   * last drain message it published, so a gateway reading the cache knows which messages the
   * values already hold (src/scale/).
   */
  stamp?: { key: string; value: () => string | null };
}

export class RedisCache implements QuoteCache {
  readonly kind = 'redis' as const;
  readonly redis: Redis;
  private readonly prefix: string;
  private readonly flushMs: number;
  private readonly log: Logger;
  private readonly logEveryMs: number;
  private readonly slots: LatestSlots;
  /** Redis key of each token index's quote and bar hash, built once at the token's first sight. */
  private readonly quoteKeys: string[] = [];
  private readonly barKeys: string[] = [];
  /** Hash field of each timeframe index. */
  private readonly tfNames: string[] = [];
  /** Latest analytics per key, and the keys not yet written (latest only, like the slots). */
  private readonly analytics = new Map<string, Uint8Array>();
  private readonly dirtyAnalytics = new Set<string>();
  private tickScratch = new Int32Array(0);
  private barScratch = new Int32Array(0);
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private failing = false;
  /** Values taken by the running flush round and not yet answered. */
  private inFlight = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  private lastLogMs = -Infinity;
  private unlogged = 0;
  private readonly counters = { writes: 0, flushes: 0, lastFlushMs: 0, errors: 0 };
  private readonly stamp: RedisCacheOptions['stamp'] | null;
  /** HSET_EACH through ioredis's script cache (EVAL once per connection, EVALSHA after); arrays flatten into arguments. */
  private readonly hsetEach: (args: (string | Buffer | number)[]) => Promise<(string | number)[]>;

  constructor(opts: RedisCacheOptions) {
    this.prefix = opts.prefix ?? 'n50:';
    this.stamp = opts.stamp ?? null;
    this.flushMs = opts.flushMs ?? 50;
    this.log = opts.log ?? silentLogger;
    this.logEveryMs = opts.logEveryMs ?? 10_000;
    this.slots = new LatestSlots({
      onNewToken: (i, token) => {
        this.quoteKeys[i] = `${this.prefix}q:${token}`;
        this.barKeys[i] = `${this.prefix}b:${token}`;
      },
    });
    this.redis = new Redis(opts.url, {
      connectionName: 'n50-cache',
      // Fail fast instead of queueing while disconnected: the slots already hold what must be
      // written, so a queue would only duplicate it, grow without bound and delay reads.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      commandTimeout: opts.commandTimeoutMs ?? 2000,
      ...opts.redis,
    });
    this.redis.defineCommand('n50HsetEach', { lua: HSET_EACH });
    const r = this.redis as unknown as { n50HsetEach: RedisCache['hsetEach'] };
    this.hsetEach = (args) => r.n50HsetEach.call(this.redis, args);
    const where = redactUrl(opts.url);
    this.redis.on('error', (err: Error) => {
      this.counters.errors++;
      this.warn({ err: err.message, redis: where }, 'Redis cache: connection error; quotes stay in memory and are written once it is back');
    });
    this.redis.on('ready', () => {
      if (!this.failing) return;
      this.failing = false;
      this.log.info({ redis: where, pending: this.pending() }, 'Redis cache: Redis is back; writing the latest values');
      if (this.pending() > 0 && !this.closed) void this.run();
    });
  }

  /** Resolves true once connected (false after `timeoutMs`): for a start-up check, not required. */
  async waitReady(timeoutMs = 5000): Promise<boolean> {
    if (this.redis.status === 'ready') return true;
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        clearTimeout(t);
        this.redis.off('ready', onReady);
        resolve(ok);
      };
      const onReady = () => done(true);
      const t = setTimeout(() => done(false), timeoutMs);
      this.redis.on('ready', onReady);
    });
  }

  putTick(f64: Float64Array, base: number): void {
    if (this.closed) {
      this.slots.skipped++;
      return;
    }
    if (this.slots.putTick(f64, base) && this.timer === null) this.schedule();
  }

  putBar(f64: Float64Array, base: number): void {
    if (this.closed) {
      this.slots.skipped++;
      return;
    }
    if (this.slots.putBar(f64, base) && this.timer === null) this.schedule();
  }

  putAnalytics(key: string, json: Uint8Array): void {
    if (this.closed) {
      this.slots.skipped++;
      return;
    }
    // A copy: the caller reuses the bytes after the next put, and the socket may send them later.
    this.analytics.set(key, json.slice());
    this.dirtyAnalytics.add(key);
    if (this.timer === null) this.schedule();
  }

  async getAnalytics(key: string): Promise<string | null> {
    const v = this.analytics.get(key);
    if (v !== undefined) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('utf8');
    return this.read(() => this.redis.get(`${this.prefix}a:${key}`));
  }

  flush(): Promise<void> {
    return this.run();
  }

  async getQuotes(tokens: readonly number[]): Promise<(Quote | null)[]> {
    const out: (Quote | null)[] = new Array<Quote | null>(tokens.length).fill(null);
    const missing: number[] = [];
    for (let k = 0; k < tokens.length; k++) {
      const i = this.slots.tickSlot(tokens[k]);
      if (i >= 0) out[k] = quoteFromTick(this.slots.ticks.values, i * N_FIELDS);
      else missing.push(k);
    }
    if (missing.length === 0) return out;
    const bufs = await this.read(() => this.redis.mgetBuffer(missing.map((k) => `${this.prefix}q:${tokens[k]}`)));
    for (let j = 0; j < missing.length; j++) {
      const f = decode(bufs[j], N_FIELDS);
      if (f !== null) out[missing[j]] = quoteFromTick(f, 0);
    }
    return out;
  }

  async getBar(token: number, tfMs: number): Promise<CanonicalBar | null> {
    const i = this.slots.barSlot(token, tfMs);
    if (i >= 0) return barToObject(this.slots.bars.values, i * BAR_FIELDS);
    const buf = await this.read(() => this.redis.hgetBuffer(`${this.prefix}b:${token}`, timeframeName(tfMs)));
    const f = decode(buf, BAR_FIELDS);
    return f === null ? null : barToObject(f, 0);
  }

  /** Redis's bars of the token overlaid with this process's; with Redis down, this process's alone. */
  async getBars(token: number): Promise<CanonicalBar[]> {
    const byTf = new Map<number, CanonicalBar>();
    const local = this.slots.barSlots(token);
    try {
      const all = await this.read(() => this.redis.hgetallBuffer(`${this.prefix}b:${token}`));
      for (const buf of Object.values(all)) {
        const f = decode(buf, BAR_FIELDS);
        if (f !== null) byTf.set(f[B.TF_MS], barToObject(f, 0));
      }
    } catch (e) {
      if (local.length === 0) throw e;
    }
    for (const i of local) {
      const b = barToObject(this.slots.bars.values, i * BAR_FIELDS);
      byTf.set(b.tfMs, b);
    }
    return [...byTf.values()].sort((a, b) => a.tfMs - b.tfMs);
  }

  async ping(): Promise<boolean> {
    try {
      return (await this.redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
      await this.run();
      const left = this.pending();
      if (left > 0) this.log.warn({ pending: left }, 'Redis cache closed with values Redis did not take; they are lost from the cache (the store has them)');
      let t: NodeJS.Timeout | undefined;
      try {
        await Promise.race([this.redis.quit(), new Promise((r) => (t = setTimeout(r, 1000)))]);
      } catch {
        // Not connected: nothing to say goodbye to.
      } finally {
        clearTimeout(t);
        this.redis.disconnect();
      }
    })();
    return this.closing;
  }

  stats(): CacheStats {
    // A value changed again while its previous version is in flight counts twice; both are owed.
    return { puts: this.slots.puts, skipped: this.slots.skipped, pending: this.pending() + this.inFlight, ...this.counters };
  }

  /** Values changed since a flush round took them. */
  private pending(): number {
    return this.slots.ticks.dirtyCount + this.slots.bars.dirtyCount + this.dirtyAnalytics.size;
  }

  private schedule(): void {
    this.timer = setTimeout(this.onTimer, this.failing ? Math.max(this.flushMs, RETRY_MS) : this.flushMs);
    // A pending flush must not keep the process alive; close() writes what is left.
    this.timer.unref();
  }

  private readonly onTimer = (): void => {
    this.timer = null;
    void this.run();
  };

  /** Queue a flush round after any running one. Never rejects. */
  private run(): Promise<void> {
    const p = this.chain.then(() => this.round());
    this.chain = p;
    return p;
  }

  private async round(): Promise<void> {
    try {
      await this.write();
    } catch (err) {
      // write() handles Redis failures itself; this is a bug guard so a flush never rejects.
      this.counters.errors++;
      this.warn({ err }, 'Redis cache: flush failed unexpectedly');
    }
    if (this.pending() > 0 && this.timer === null && !this.closed) this.schedule();
  }

  private async write(): Promise<void> {
    const s = this.slots;
    if (this.pending() === 0) return;
    if (this.tickScratch.length < s.ticks.capacity) this.tickScratch = new Int32Array(s.ticks.capacity);
    if (this.barScratch.length < s.bars.capacity) this.barScratch = new Int32Array(s.bars.capacity);
    const nt = s.ticks.takeDirty(this.tickScratch);
    const nb = s.bars.takeDirty(this.barScratch);
    const stamp = this.stamp?.value() ?? null;
    const t0 = performance.now();

    // One copy of this round's values: the commands must not point into slots that the next
    // tick overwrites while the socket may still be sending them.
    const data = new Float64Array(nt * N_FIELDS + nb * BAR_FIELDS);
    const bytes = Buffer.from(data.buffer);
    const akeys = [...this.dirtyAnalytics];
    this.dirtyAnalytics.clear();
    const na = akeys.length;
    // MSET key value …: quotes, then analytics.
    const kv: (string | Buffer)[] = new Array<string | Buffer>(2 * (nt + na));
    let o = 0;
    for (let k = 0; k < nt; k++, o += N_FIELDS) {
      const i = this.tickScratch[k];
      data.set(s.ticks.values.subarray(i * N_FIELDS, (i + 1) * N_FIELDS), o);
      kv[2 * k] = this.quoteKeys[i];
      kv[2 * k + 1] = bytes.subarray(o * 8, o * 8 + TICK_BYTES);
    }
    // Analytics bytes are this cache's own copies, replaced (not changed) by a later put: sent as they are.
    for (let k = 0; k < na; k++) {
      const v = this.analytics.get(akeys[k])!;
      kv[2 * (nt + k)] = `${this.prefix}a:${akeys[k]}`;
      kv[2 * (nt + k) + 1] = Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    }
    // HSET_EACH numkeys key … field … blob size: the bars, their bytes one blob after the quotes'.
    const barArgs: (string | Buffer | number)[] = new Array<string | Buffer | number>(2 * nb + 3);
    const barsAt = o;
    barArgs[0] = nb;
    for (let k = 0; k < nb; k++, o += BAR_FIELDS) {
      const i = this.barScratch[k];
      const tf = s.barTf(i);
      this.tfNames[tf] ??= timeframeName(s.timeframes[tf]);
      data.set(s.bars.values.subarray(i * BAR_FIELDS, (i + 1) * BAR_FIELDS), o);
      barArgs[1 + k] = this.barKeys[s.barToken[i]];
      barArgs[1 + nb + k] = this.tfNames[tf];
    }
    barArgs[1 + 2 * nb] = bytes.subarray(barsAt * 8, o * 8);
    barArgs[2 + 2 * nb] = BAR_BYTES;

    // Both are written to the socket at once, in this order: one round trip, no pipeline (whose
    // exec would copy every byte once more into one Buffer).
    let failure: unknown = null;
    let failed = 0;
    this.inFlight = nt + nb + na;
    const strings = nt + na === 0 ? null : this.redis.mset(...kv).then(() => null, (e: unknown) => e);
    const hashes = nb === 0 ? null : this.hsetEach(barArgs).then((r) => r, (e: unknown) => e);
    const [msetErr, barReply] = await Promise.all([strings, hashes]);
    this.inFlight = 0;
    this.counters.flushes++;
    this.counters.lastFlushMs = performance.now() - t0;

    if (msetErr !== null) {
      // MSET is all or nothing.
      failure = msetErr;
      failed += nt + na;
      for (let k = 0; k < nt; k++) s.ticks.markDirty(this.tickScratch[k]);
      for (const k of akeys) this.dirtyAnalytics.add(k);
    } else {
      this.counters.writes += nt + na;
    }
    if (barReply !== null && !Array.isArray(barReply)) {
      failure ??= barReply;
      failed += nb;
      for (let k = 0; k < nb; k++) s.bars.markDirty(this.barScratch[k]);
    } else if (barReply !== null) {
      // [] or [first error, failed index (1-based), …]
      failure ??= barReply.length > 0 ? barReply[0] : null;
      for (let j = 1; j < barReply.length; j++) s.bars.markDirty(this.barScratch[Number(barReply[j]) - 1]);
      const barFailed = Math.max(0, barReply.length - 1);
      failed += barFailed;
      this.counters.writes += nb - barFailed;
    }
    if (failed > 0) {
      this.counters.errors++;
      this.failing = true;
      const reason = failure ?? 'no reply';
      this.warn({ err: reason instanceof Error ? reason.message : String(reason), failed, retryMs: Math.max(this.flushMs, RETRY_MS) }, 'Redis cache: flush failed; keeping the latest values to retry');
    } else if (this.failing && this.redis.status === 'ready') {
      this.failing = false;
    }
    // Only a round that wrote everything it took moves the stamp: earlier rounds' failures were
    // marked dirty again and are in this one.
    if (failed === 0 && stamp !== null) {
      await this.redis.set(this.stamp!.key, stamp).catch(() => {
        this.counters.errors++;
      });
    }
  }

  /** Run a read; on failure count it and throw CACHE_UNAVAILABLE. */
  private async read<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      this.counters.errors++;
      const why = e instanceof Error ? e.message : String(e);
      this.warn({ err: why }, 'Redis cache: read failed');
      throw new CacheError('CACHE_UNAVAILABLE', `Redis did not answer (${why}). Retry shortly; if it persists, check that Redis at REDIS_URL is up.`, { cause: why });
    }
  }

  /** Log at most once per logEveryMs, saying how many were held back meanwhile. */
  private warn(obj: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    if (now - this.lastLogMs < this.logEveryMs) {
      this.unlogged++;
      return;
    }
    this.log.warn({ ...obj, suppressed: this.unlogged }, msg);
    this.lastLogMs = now;
    this.unlogged = 0;
  }
}

/** A Redis value as an aligned Float64Array of `fields`, or null if absent or of another layout. */
function decode(buf: Buffer | null | undefined, fields: number): Float64Array | null {
  if (buf == null || buf.length !== fields * 8) return null;
  const f = new Float64Array(fields);
  // Copy rather than view: ioredis's Buffer need not start on an 8-byte boundary.
  new Uint8Array(f.buffer).set(buf);
  return f;
}
