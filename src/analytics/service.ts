/**
 * The analytics service: every ANALYTICS_REFRESH_MS it snapshots the quotes the option chains and
 * breadth need (snapshot.ts), posts the snapshot to a piscina pool (workers/analytics/main.ts:
 * implied volatility, greeks, chain and breadth figures, each encoded for the cache, REST and
 * `/ws`), and takes the answer: the bytes go to the cache and to the `/ws` subscribers, the
 * summary into the IV/PCR history (series.ts). The main thread computes nothing: per refresh it
 * copies the snapshot and publishes bytes (bench/analytics.bench.ts measures what that costs).
 *
 * One refresh at a time: when the previous is still running at the next tick of the timer, that
 * tick is skipped and counted (`skipped`), never queued, so a slow pool cannot build a backlog.
 * The snapshot and the answers live in SharedArrayBuffers shared with the pool once
 * (src/core/chain-snapshot.ts PoolShared): a task and its result are a few numbers.
 *
 * The published bytes are views into an output region, valid until the refresh after next: the
 * next refresh writes the other region, and the region being written is always the unpublished
 * one (a failed refresh leaves the published region alone). Readers turn them into strings or copy
 * them synchronously (uWS's publish and send copy; the Redis cache copies on put).
 */
import { Piscina } from 'piscina';
import { performance } from 'node:perf_hooks';
import type { Instrument } from '../core/instrument.ts';
import {
  PART, PARTS_PER_ITEM, SNAP_HEADER, SUMMARY, SUMMARY_FIELDS, snapshotLength,
  type AnalyticsResult, type AnalyticsTask, type ChainLayout, type PoolShared,
} from '../core/chain-snapshot.ts';
import type { Db } from '../core/db.ts';
import type { Logger } from '../log.ts';
import { buildLayout } from './layout.ts';
import { SnapshotBuilder } from './snapshot.ts';
import { ChainSeries } from './series.ts';

/** The pool's worker module (a file name for piscina, not an import: src/ never imports workers/). */
const WORKER = new URL('../../workers/analytics/entry.mjs', import.meta.url);

/** The latest analytics of one chain (or of breadth), in each encoding. */
export interface AnalyticsBytes {
  readonly json: Uint8Array;
  readonly records: Uint8Array;
  readonly plain: Uint8Array;
}

export interface AnalyticsSettings {
  readonly refreshMs: number;
  readonly threads: number;
  readonly rate: number;
  readonly staleMs: number;
  readonly oiIntervalMs: number;
}

export interface AnalyticsOptions {
  settings: AnalyticsSettings;
  /** The hub's rows, its latest ticks and which rows have one (FeedHub). */
  instruments: readonly Instrument[];
  latestTicks: Float64Array;
  hasTick: Uint8Array;
  /** Where each refresh's bytes go: the cache and the `/ws` subscribers. */
  publish?: (key: string, bytes: AnalyticsBytes) => void;
  /** The database of the IV history; null: none kept. */
  db?: () => Db | null;
  log: Logger;
  now?: () => number;
  /** Bytes of each output region at start (default: room for the layout's options); they grow when outgrown. */
  regionBytes?: number;
}

export interface AnalyticsStats {
  refreshes: number;
  /** Timer ticks that found the previous refresh still running. */
  skipped: number;
  failures: number;
  /** The last refresh: posting to answer (ms), the pool thread's work (µs), the main thread's share (µs). */
  lastLatencyMs: number;
  lastWorkUs: number;
  lastMainUs: number;
  chains: number;
  series: { barsWritten: number; writeErrors: number; queued: number };
}

/** The key of breadth's analytics, beside the chains' `NAME:YYYY-MM-DD`. */
export const BREADTH_KEY = 'breadth';

export class AnalyticsService {
  readonly layout: ChainLayout;
  private readonly builder: SnapshotBuilder;
  private readonly pool: Piscina;
  private readonly series: ChainSeries;
  private readonly snap: Float64Array;
  private regions: [SharedArrayBuffer, SharedArrayBuffer];
  /** Regions to hand the pool with the next task (after an answer outgrew the current ones). */
  private grown: [SharedArrayBuffer, SharedArrayBuffer] | null = null;
  /** The region whose bytes are published (-1: none yet); the next task writes the other. */
  private published = -1;
  private readonly latestByKey = new Map<string, AnalyticsBytes>();
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private seq = 0;
  private closed = false;
  private readonly now: () => number;
  private readonly counters = { refreshes: 0, skipped: 0, failures: 0, lastLatencyMs: 0, lastWorkUs: 0, lastMainUs: 0 };

  constructor(private readonly opts: AnalyticsOptions) {
    const s = opts.settings;
    const built = buildLayout(opts.instruments, { rate: s.rate, staleMs: s.staleMs, oiIntervalMs: s.oiIntervalMs });
    this.layout = built.layout;
    this.builder = new SnapshotBuilder(built.hubRows, s.oiIntervalMs, s.refreshMs);
    const snapBuffer = new SharedArrayBuffer(snapshotLength(this.layout.rows) * 8);
    this.snap = new Float64Array(snapBuffer);
    // About 1 KB per option for its three encodings (bench/analytics.bench.ts), with room to spare.
    const regionBytes = opts.regionBytes ?? 64 * 1024 + 2048 * this.layout.groups.reduce((a, g) => a + g.options.length, 0);
    this.regions = [new SharedArrayBuffer(regionBytes), new SharedArrayBuffer(regionBytes)];
    this.now = opts.now ?? Date.now;
    const shared: PoolShared = { layout: this.layout, snap: snapBuffer, regions: this.regions };
    this.pool = new Piscina({
      filename: WORKER.href,
      minThreads: s.threads,
      maxThreads: s.threads,
      workerData: shared,
      // One refresh at a time (refresh() skips instead of queueing), so the queue never holds more.
      maxQueue: 1,
    });
    this.series = new ChainSeries(opts.db ?? (() => null), (err) => opts.log.warn({ err }, 'chain analytics history: write failed; kept and retried with the next minute'));
  }

  /** Start the refresh timer. */
  start(): void {
    if (this.timer !== null || this.closed) return;
    this.timer = setInterval(() => { void this.refresh(); }, this.opts.settings.refreshMs);
    this.timer.unref();
  }

  /**
   * One refresh now, unless one is running (then counted as skipped). Resolves when its answer
   * has been published; never rejects (a failure is counted and logged).
   */
  refresh(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.inFlight !== null) {
      this.counters.skipped++;
      return this.inFlight;
    }
    this.inFlight = this.run().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  private async run(): Promise<void> {
    const t0 = performance.now();
    this.builder.fill(this.snap, this.opts.latestTicks, this.opts.hasTick, this.now(), ++this.seq);
    const grown = this.grown;
    const task: AnalyticsTask = grown === null
      ? { seq: this.seq, out: this.published === 0 ? 1 : 0 }
      : { seq: this.seq, out: this.published === 0 ? 1 : 0, regions: grown };
    let result: AnalyticsResult;
    let mainUs = 0;
    try {
      const posted = this.pool.run(task);
      mainUs += (performance.now() - t0) * 1000;
      result = await posted;
    } catch (err) {
      this.counters.failures++;
      this.opts.log.warn({ err }, 'analytics refresh failed');
      return;
    }
    if (grown !== null) {
      this.regions = grown;
      this.grown = null;
    }
    const t1 = performance.now();
    this.take(result);
    const t2 = performance.now();
    mainUs += (t2 - t1) * 1000;
    this.counters.refreshes++;
    this.counters.lastLatencyMs = t2 - t0;
    this.counters.lastWorkUs = result.workUs;
    this.counters.lastMainUs = mainUs;
  }

  /** Store and publish one answer. */
  private take(r: AnalyticsResult): void {
    const groups = this.layout.groups;
    let b: Uint8Array;
    if (r.bytes === null) {
      b = new Uint8Array(this.regions[r.out]);
      this.published = r.out;
    } else {
      // It outgrew the regions: these bytes are its own (published from them, the regions left as
      // they are), and the next task brings regions with room to spare.
      b = r.bytes;
      const size = 2 * r.used;
      this.grown = [new SharedArrayBuffer(size), new SharedArrayBuffer(size)];
      this.published = -1;
    }
    const at = (item: number): AnalyticsBytes => {
      const p = item * PARTS_PER_ITEM;
      return {
        json: b.subarray(r.parts[p + PART.JSON], r.parts[p + PART.JSON + 1]),
        records: b.subarray(r.parts[p + PART.RECORDS], r.parts[p + PART.RECORDS + 1]),
        plain: b.subarray(r.parts[p + PART.PLAIN], r.parts[p + PART.PLAIN + 1]),
      };
    };
    const now = this.snap[SNAP_HEADER.NOW_MS];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      const bytes = at(i);
      this.latestByKey.set(g.key, bytes);
      this.opts.publish?.(g.key, bytes);
      const s = i * SUMMARY_FIELDS;
      this.series.sample(g.key, g.name, g.expiry, g.rank, now, r.summary[s + SUMMARY.ATM_IV], r.summary[s + SUMMARY.PCR_OI], r.summary[s + SUMMARY.PCR_VOL], r.summary[s + SUMMARY.FORWARD]);
    }
    const breadth = at(groups.length);
    this.latestByKey.set(BREADTH_KEY, breadth);
    this.opts.publish?.(BREADTH_KEY, breadth);
  }

  /** The latest analytics of a chain key (`NIFTY:2026-12-08`) or `breadth`; null before the first refresh. */
  latest(key: string): AnalyticsBytes | null {
    return this.latestByKey.get(key) ?? null;
  }

  /** Chain keys, in layout order. */
  keys(): string[] {
    return this.layout.groups.map((g) => g.key);
  }

  /** Store the history written so far (tests, shutdown). */
  flushHistory(): Promise<void> {
    return this.series.write();
  }

  stats(): AnalyticsStats {
    return { ...this.counters, chains: this.layout.groups.length, series: { ...this.series.stats, queued: this.series.pending() } };
  }

  /** Stop the timer, let the refresh in flight finish, store the open minutes, end the pool. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    await this.inFlight;
    await this.series.close();
    await this.pool.destroy();
  }
}
