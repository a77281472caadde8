/**
 * The gateway's side of the fan-out (ROLE=gateway): drain messages from Redis pub/sub into this
 * process's hub, which hands them to the same listeners (msgpack feed, Kite endpoint, paper broker)
 * in the same order and batches as the ingest's hub did.
 *
 * States:
 *
 * | state   | messages                               | leaves when                              |
 * |---------|----------------------------------------|------------------------------------------|
 * | syncing | kept (up to MAX_HELD), not applied      | the cache's stamp reaches the first kept |
 * |         |                                        | message: snapshot applied, then the kept |
 * |         |                                        | ones after the stamp, as one batch       |
 * | live    | applied, one batch each                | a gap in EPOCH/SEQ or a reconnect:       |
 * |         |                                        | syncing                                  |
 *
 * Snapshot before live frames, with no hole: the subscription is made first, then the cache is
 * read in one MULTI (stamp, every followed quote, every bar hash). The stamp says through which
 * message the values reach (src/cache/redis.ts `stamp`), so the kept messages after it are exactly
 * what the snapshot lacks. If the stamp is older than the first kept message minus one (the cache
 * flushes every CACHE_FLUSH_MS), the read is repeated after a flush interval.
 *
 * Conflation: a message whose SENT_MS is more than CONFLATE_LAG_MS behind this clock puts the
 * hub in quiet mode (latest values kept, listeners not called); the first message within the lag
 * ends it with one batch of each changed instrument's latest tick and bar. A gateway that was
 * stopped or starved thus reads through its backlog at memcpy speed and its clients get the
 * latest values, never the history. If it falls so far behind that Redis cuts it off (the
 * pub/sub output-buffer limit), it reconnects and syncs from the cache.
 */
import { Redis } from 'ioredis';
import { N, N_FIELDS } from '../core/tick.ts';
import { BAR_FIELDS } from '../core/bar.ts';
import type { FeedHub } from '../gateway/hub.ts';
import type { Logger } from '../log.ts';
import { BAR_BYTES, decodeAnalytics, DRAIN_HEAD_BYTES, readDrainHead, TICK_BYTES, type DrainHead } from './drain-message.ts';
import { scaleKeys, type ScaleKeys } from './keys.ts';

/** Lag behind the ingest past which a gateway conflates instead of passing every drain on. */
export const CONFLATE_LAG_MS = 250;
/** Messages kept while syncing; past it the oldest go and the sync reads the cache again. */
const MAX_HELD = 4096;

export interface SubscriberStats {
  state: 'syncing' | 'live';
  messages: number;
  ticks: number;
  bars: number;
  /** Sequence gaps seen (messages the ingest skipped or Redis dropped): each ended in a sync. */
  gaps: number;
  syncs: number;
  /** Quiet spells ended (each a batch of latest values instead of the backlog). */
  conflations: number;
  malformed: number;
  /** Lag of the last message applied, ms (ingest clock to this one). */
  lagMs: number;
  epoch: number;
  seq: number;
}

export interface AnalyticsSink {
  publishAnalytics(key: string, records: Uint8Array, plain: Uint8Array): void;
}

export class DrainSubscriber {
  readonly stats: SubscriberStats = {
    state: 'syncing', messages: 0, ticks: 0, bars: 0, gaps: 0, syncs: 0, conflations: 0, malformed: 0, lagMs: 0, epoch: 0, seq: 0,
  };
  private readonly keys: ScaleKeys;
  private readonly sub: Redis;
  private readonly cmd: Redis;
  private held: Buffer[] = [];
  private scratch = new Float64Array(1024 * N_FIELDS);
  private scratchU8 = new Uint8Array(this.scratch.buffer);
  private readonly head: DrainHead = { epoch: 0, seq: 0, sentMs: 0, ticks: 0, bars: 0, universe: 0 };
  private syncing: Promise<void> | null = null;
  private closed = false;
  private readonly quoteKeys: string[];
  private readonly barKeys: string[];
  /** Latest analytics frames by key (the Feed's snapshot for a new subscriber). */
  readonly analyticsFrames = new Map<string, { records: Uint8Array; plain: Uint8Array }>();
  private analyticsSink: AnalyticsSink | null = null;
  private readyResolve!: () => void;
  /** Resolves when the first sync has put the snapshot in the hub. */
  readonly ready = new Promise<void>((r) => { this.readyResolve = r; });

  constructor(private readonly opts: {
    url: string; prefix: string; hub: FeedHub; universe: number; log: Logger;
    /** A message of another universe: the ingest's instrument list changed (next day); the gateway must restart to load it. */
    onUniverseChange: (id: number) => void;
    flushMs: number;
  }) {
    this.keys = scaleKeys(opts.prefix);
    const tokens = opts.hub.instruments.map((i) => i.instrumentToken);
    this.quoteKeys = tokens.map((t) => `${opts.prefix}q:${t}`);
    this.barKeys = tokens.map((t) => `${opts.prefix}b:${t}`);
    this.cmd = new Redis(opts.url, { connectionName: 'n50-gateway-cmd', maxRetriesPerRequest: 2 });
    this.cmd.on('error', () => {});
    this.sub = new Redis(opts.url, { connectionName: 'n50-gateway-sub', maxRetriesPerRequest: null });
    this.sub.on('error', () => {});
    this.sub.on('messageBuffer', (channel: Buffer, msg: Buffer) => {
      if (channel.length === this.keys.feed.length && channel.toString() === this.keys.feed) this.onDrain(msg);
      else this.onAnalytics(msg);
    });
    // ioredis subscribes again after a reconnect; what was published meanwhile is gone: sync.
    this.sub.on('ready', () => {
      if (this.stats.syncs > 0) this.startSync('reconnected to Redis');
    });
  }

  /** Where analytics frames go as they come (the Feed). */
  setAnalyticsSink(sink: AnalyticsSink): void {
    this.analyticsSink = sink;
  }

  /** Subscribe and sync; resolves when the hub holds the snapshot and live messages flow. */
  async start(): Promise<void> {
    await this.sub.subscribe(this.keys.feed, this.keys.analytics);
    const frames = await this.cmd.hgetallBuffer(this.keys.analyticsFrames);
    for (const v of Object.values(frames)) {
      const a = decodeAnalytics(v);
      if (a) this.analyticsFrames.set(a.key, { records: a.records, plain: a.plain });
    }
    this.startSync('start');
    await this.ready;
  }

  private onAnalytics(msg: Buffer): void {
    const a = decodeAnalytics(msg);
    if (!a) {
      this.stats.malformed++;
      return;
    }
    this.analyticsFrames.set(a.key, { records: a.records, plain: a.plain });
    this.analyticsSink?.publishAnalytics(a.key, a.records, a.plain);
  }

  private onDrain(msg: Buffer): void {
    if (this.stats.state === 'syncing') {
      this.held.push(msg);
      if (this.held.length > MAX_HELD) this.held.shift();
      return;
    }
    const h = this.head;
    if (!readDrainHead(msg, h)) {
      this.stats.malformed++;
      return;
    }
    if (h.universe !== this.opts.universe) {
      this.opts.onUniverseChange(h.universe);
      return;
    }
    if (h.epoch !== this.stats.epoch || h.seq !== this.stats.seq + 1) {
      this.stats.gaps++;
      this.held.push(msg);
      this.startSync(h.epoch !== this.stats.epoch ? 'a new ingest owner' : `messages ${this.stats.seq + 1}..${h.seq - 1} missed`);
      return;
    }
    this.apply(msg, h);
  }

  /** Apply one message (its head already in `h`) to the hub: a batch, or quiet records while lagging. */
  private apply(msg: Buffer, h: DrainHead): void {
    const hub = this.opts.hub;
    const lag = Date.now() - h.sentMs;
    this.stats.lagMs = lag;
    this.stats.messages++;
    this.stats.seq = h.seq;
    this.stats.epoch = h.epoch;
    const behind = lag > CONFLATE_LAG_MS;
    if (behind && !hub.isQuiet()) hub.setQuiet();
    this.feed(msg, h);
    if (hub.isQuiet()) {
      if (!behind) {
        hub.flushQuiet();
        this.stats.conflations++;
      }
    } else hub.endBatch();
  }

  /** The records of a message to the hub (copied once into aligned memory: a Buffer's offset may be odd). */
  private feed(msg: Buffer, h: DrainHead): void {
    const body = msg.byteLength - DRAIN_HEAD_BYTES;
    if (this.scratchU8.byteLength < body) {
      this.scratch = new Float64Array(Math.ceil(body / 8) * 2);
      this.scratchU8 = new Uint8Array(this.scratch.buffer);
    }
    this.scratchU8.set(msg.subarray(DRAIN_HEAD_BYTES));
    const f = this.scratch;
    const hub = this.opts.hub;
    for (let k = 0; k < h.ticks; k++) hub.applyTick(f, k * N_FIELDS);
    const b0 = (h.ticks * TICK_BYTES) / 8;
    for (let k = 0; k < h.bars; k++) hub.applyBar(f, b0 + k * BAR_FIELDS);
    this.stats.ticks += h.ticks;
    this.stats.bars += h.bars;
  }

  private startSync(why: string): void {
    if (this.closed) return;
    if (this.stats.state === 'live') this.opts.log.info({ why }, 'gateway feed: syncing from the cache');
    this.stats.state = 'syncing';
    this.syncing ??= this.sync().finally(() => {
      this.syncing = null;
    });
  }

  private async sync(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      let snap;
      try {
        snap = await this.readSnapshot();
      } catch (err) {
        this.opts.log.warn({ err: (err as Error).message }, 'gateway feed: cache unreadable; retrying');
        await waitMs(1000);
        continue;
      }
      // The first kept message tells which epoch and sequence the snapshot must reach.
      const h = this.head;
      let first: { epoch: number; seq: number } | null = null;
      for (const m of this.held) {
        if (readDrainHead(m, h)) {
          first = { epoch: h.epoch, seq: h.seq };
          break;
        }
      }
      const reaches = first === null
        ? snap.stamp !== null
        : snap.stamp !== null && snap.stamp.epoch === first.epoch && snap.stamp.seq >= first.seq - 1;
      // No stamp and no message yet: an ingest has not started publishing; take what the cache has.
      const nothingYet = first === null && snap.stamp === null;
      if (!reaches && !nothingYet && attempt < 100) {
        await waitMs(this.opts.flushMs);
        continue;
      }
      if (!reaches && !nothingYet) this.opts.log.warn({ stamp: snap.stamp, first }, 'gateway feed: the cache did not catch up with the feed; some instruments may show an older value until their next tick');
      this.applySnapshot(snap);
      this.stats.syncs++;
      this.stats.state = 'live';
      const stampEpoch = snap.stamp?.epoch ?? first?.epoch ?? 0;
      const stampSeq = snap.stamp?.seq ?? (first ? first.seq - 1 : 0);
      this.stats.epoch = stampEpoch;
      this.stats.seq = stampSeq;
      // Kept messages after the stamp, in order; those it already holds are dropped.
      const held = this.held;
      this.held = [];
      const hub = this.opts.hub;
      hub.setQuiet();
      for (const m of held) {
        if (!readDrainHead(m, h)) {
          this.stats.malformed++;
          continue;
        }
        if (h.epoch !== this.stats.epoch) {
          if (h.seq !== 1) continue;
          this.stats.epoch = h.epoch;
          this.stats.seq = 0;
        }
        if (h.seq <= this.stats.seq) continue;
        if (h.seq !== this.stats.seq + 1) this.stats.gaps++;
        this.stats.seq = h.seq;
        this.stats.messages++;
        this.feed(m, h);
      }
      hub.flushQuiet();
      this.readyResolve();
      return;
    }
  }

  private async readSnapshot(): Promise<{ stamp: { epoch: number; seq: number } | null; quotes: (Buffer | null)[]; bars: [Error | null, unknown][] }> {
    const m = this.cmd.multi();
    m.get(this.keys.stamp);
    m.mgetBuffer(this.quoteKeys);
    for (const k of this.barKeys) m.hgetallBuffer(k);
    const res = await m.exec();
    if (res === null) throw new Error('transaction aborted');
    const [stampErr, stampRaw] = res[0];
    if (stampErr) throw stampErr;
    const [qErr, quotes] = res[1];
    if (qErr) throw qErr;
    let stamp = null;
    if (typeof stampRaw === 'string') {
      const [e, s] = stampRaw.split(':').map(Number);
      if (Number.isFinite(e) && Number.isFinite(s)) stamp = { epoch: e, seq: s };
    }
    return { stamp, quotes: quotes as (Buffer | null)[], bars: res.slice(2) };
  }

  /** The cache's values into the hub, quietly (the caller flushes them as one batch). */
  private applySnapshot(snap: { quotes: (Buffer | null)[]; bars: [Error | null, unknown][] }): void {
    const hub = this.opts.hub;
    hub.setQuiet();
    const rec = new Float64Array(N_FIELDS);
    const recU8 = new Uint8Array(rec.buffer);
    for (let row = 0; row < snap.quotes.length; row++) {
      const q = snap.quotes[row];
      if (q === null || q.byteLength !== TICK_BYTES) continue;
      recU8.set(q);
      // The row is this hub's, whatever process or universe wrote the value.
      rec[N.INSTR] = row;
      hub.applyTick(rec, 0);
    }
    const bar = new Float64Array(BAR_FIELDS);
    const barU8 = new Uint8Array(bar.buffer);
    for (const [err, v] of snap.bars) {
      if (err || v === null || typeof v !== 'object') continue;
      for (const b of Object.values(v as Record<string, Buffer>)) {
        if (b.byteLength !== BAR_BYTES) continue;
        barU8.set(b);
        hub.applyBar(bar, 0);
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.sub.disconnect();
    await this.cmd.quit().catch(() => this.cmd.disconnect());
  }
}

function waitMs(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
