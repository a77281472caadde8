/**
 * The ingest's side of the fan-out (ROLE=ingest): a hub listener that gathers each drain's ticks
 * and bars into one drain message (drain-message.ts) and publishes it on Redis pub/sub, plus the
 * analytics frames, the universe and the master the gateways start from (keys.ts).
 *
 * Why Redis pub/sub: bench/engines.bench.ts sent the same drain messages through Redis pub/sub,
 * Redis Streams, NATS core and JetStream to two subscriber processes. Pub/sub carried the most
 * (181k ticks/s at 50 ticks a message, NATS core 102k, JetStream 64.5k) and, with a subscriber
 * stopped, cut that subscriber off at its output-buffer limit while the publisher and the other
 * subscriber went on untouched; NATS core let the stopped one raise the healthy one's latency to
 * seconds. Redis is already the cache, so the snapshot a gateway needs lies beside the channel.
 * A backlog is never wanted (the live side conflates), so a log (Streams, JetStream) buys nothing.
 *
 * The live side never slows the ingest: a publish is one write to the client's socket buffer;
 * when Redis is down or slow and that buffer passes MAX_BUFFERED_BYTES the message is skipped and
 * counted (gateways see the sequence gap and re-read the snapshot). Storage does not go through
 * here at all.
 *
 * Per tick: a 64-value copy into a preallocated buffer. Per drain: one Buffer (the socket may still
 * be sending the previous one) and one PUBLISH.
 */
import { randomInt } from 'node:crypto';
import { AppError } from '../core/errors.ts';
import { Redis } from 'ioredis';
import { N_FIELDS } from '../core/tick.ts';
import { BAR_FIELDS } from '../core/bar.ts';
import type { Instrument } from '../core/instrument.ts';
import type { HubListener } from '../gateway/hub.ts';
import type { Logger } from '../log.ts';
import { DRAIN_HEAD_BYTES, encodeAnalytics, writeDrainHead, type DrainHead } from './drain-message.ts';
import { scaleKeys, type ScaleKeys } from './keys.ts';

/** Bytes waiting in the publisher's socket past which drains are skipped rather than queued. */
export const MAX_BUFFERED_BYTES = 32 << 20;

export interface UniverseDoc {
  id: number;
  /** IST day (YYYY-MM-DD) the universe was selected for. */
  day: string;
  timeframesMs: number[];
  instruments: Instrument[];
  publishedBy: string;
}

export interface PublisherStats {
  messages: number;
  ticks: number;
  bars: number;
  skipped: number;
  errors: number;
  seq: number;
}

export class DrainPublisher implements HubListener {
  readonly epoch = randomInt(1, 2 ** 32 - 1);
  readonly redis: Redis;
  readonly keys: ScaleKeys;
  readonly stats: PublisherStats = { messages: 0, ticks: 0, bars: 0, skipped: 0, errors: 0, seq: 0 };
  private ticks: Float64Array<ArrayBuffer> = new Float64Array(1024 * N_FIELDS);
  private bars: Float64Array<ArrayBuffer> = new Float64Array(1024 * BAR_FIELDS);
  private nt = 0;
  private nb = 0;
  private readonly head: DrainHead = { epoch: 0, seq: 0, sentMs: 0, ticks: 0, bars: 0, universe: 0 };
  private lastWarn = 0;

  constructor(private readonly opts: { url: string; prefix: string; log: Logger }) {
    this.keys = scaleKeys(opts.prefix);
    this.head.epoch = this.epoch;
    this.redis = new Redis(opts.url, { connectionName: 'n50-ingest-pub', enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    this.redis.on('error', () => {});
  }

  /** `EPOCH:SEQ` of the last message published: the cache's stamp (keys.ts). */
  stampValue(): string {
    return `${this.epoch}:${this.stats.seq}`;
  }

  tick(f: Float64Array, o: number): void {
    if ((this.nt + 1) * N_FIELDS > this.ticks.length) this.ticks = grow(this.ticks);
    const t = this.ticks;
    const d = this.nt * N_FIELDS;
    for (let i = 0; i < N_FIELDS; i++) t[d + i] = f[o + i];
    this.nt++;
  }

  bar(f: Float64Array, o: number): void {
    if ((this.nb + 1) * BAR_FIELDS > this.bars.length) this.bars = grow(this.bars);
    const b = this.bars;
    const d = this.nb * BAR_FIELDS;
    for (let i = 0; i < BAR_FIELDS; i++) b[d + i] = f[o + i];
    this.nb++;
  }

  batchEnd(): void {
    const nt = this.nt;
    const nb = this.nb;
    if (nt + nb === 0) return;
    this.nt = 0;
    this.nb = 0;
    // The sequence advances whether or not the message goes out: a skipped one is a gap gateways see.
    const seq = ++this.stats.seq;
    const stream = (this.redis as unknown as { stream?: { writableLength?: number } }).stream;
    if (this.redis.status !== 'ready' || (stream?.writableLength ?? 0) > MAX_BUFFERED_BYTES) {
      this.stats.skipped++;
      this.warn('Redis not taking drain messages; gateways will catch up from the cache');
      return;
    }
    const tb = nt * N_FIELDS * 8;
    const msg = Buffer.allocUnsafe(DRAIN_HEAD_BYTES + tb + nb * BAR_FIELDS * 8);
    const h = this.head;
    h.seq = seq;
    h.sentMs = Date.now();
    h.ticks = nt;
    h.bars = nb;
    writeDrainHead(msg, h);
    msg.set(new Uint8Array(this.ticks.buffer, 0, tb), DRAIN_HEAD_BYTES);
    msg.set(new Uint8Array(this.bars.buffer, 0, nb * BAR_FIELDS * 8), DRAIN_HEAD_BYTES + tb);
    this.stats.messages++;
    this.stats.ticks += nt;
    this.stats.bars += nb;
    this.redis.publish(this.keys.feed, msg).catch(() => {
      this.stats.errors++;
    });
  }

  /** An analytics refresh's frames: to the channel and, as the latest of its key, to the hash. */
  analytics(key: string, records: Uint8Array, plain: Uint8Array): void {
    if (this.redis.status !== 'ready') return;
    const msg = encodeAnalytics(key, records, plain);
    this.redis.multi().hset(this.keys.analyticsFrames, key, msg).publish(this.keys.analytics, msg).exec().catch(() => {
      this.stats.errors++;
    });
  }

  /** The instrument list (row order) and master the gateways build their hubs and REST from. */
  async publishUniverse(doc: UniverseDoc, master: readonly Instrument[]): Promise<void> {
    // Every message from now on carries this list's id: a gateway on another list restarts.
    this.head.universe = doc.id;
    await this.whenReady();
    await this.redis.multi().set(this.keys.master, JSON.stringify(master)).set(this.keys.universe, JSON.stringify(doc)).exec();
  }

  /** Resolves once the connection is up (commands are not queued while it is not); rejects after `ms`. */
  whenReady(ms = 10_000): Promise<void> {
    if (this.redis.status === 'ready') return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.redis.off('ready', done);
        reject(new AppError('REDIS_UNAVAILABLE', `Redis at REDIS_URL did not answer within ${ms / 1000} s; ROLE=ingest publishes to the gateways through it. Start Redis or fix REDIS_URL.`));
      }, ms);
      this.redis.once('ready', done);
    });
  }

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private warn(msg: string): void {
    const now = Date.now();
    if (now - this.lastWarn < 10_000) return;
    this.lastWarn = now;
    this.opts.log.warn({ skipped: this.stats.skipped }, msg);
  }
}

function grow(a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> {
  const b = new Float64Array(a.length * 2);
  b.set(a);
  return b;
}

/** The universe the gateways use, if one was published for `day`: a new ingest owner keeps its rows. */
export async function readUniverse(redis: Redis, keys: ScaleKeys): Promise<UniverseDoc | null> {
  const s = await redis.get(keys.universe);
  if (s === null) return null;
  try {
    return JSON.parse(s) as UniverseDoc;
  } catch {
    return null;
  }
}
