/**
 * The chain analytics' history: ATM IV and put-call ratios of each (underlying, expiry) as
 * one-minute bars in `chain_bars` (sql/005_chain_analytics.sql), and the reads REST serves.
 *
 * Bars are built on the main thread from each refresh's summary (a few numbers per chain) on the
 * IST session grid of the price bars (src/core/ist.ts bucketStart). A bar is written when a refresh
 * falls in a later minute; `write()` also stores the open minutes as they stand (a checkpoint), and
 * so does shutdown. Writes that fail (the database cut) stay queued and go with the next write, in
 * order: an outage delays the history, never loses it. A write is an upsert that merges with what
 * is stored for the minute (a checkpoint, or another run of the service within the minute): open
 * kept, high and low widened, close and ratios replaced, and only the samples not stored before
 * added, so writing a bar twice never counts its samples twice.
 */
import { bucketEnd, bucketStart, MINUTE_MS } from '../core/ist.ts';
import type { Db } from '../core/db.ts';

export interface ChainBar {
  name: string;
  expiry: string;
  rank: number;
  startMs: number;
  endMs: number;
  open: number;
  high: number;
  low: number;
  close: number;
  pcrOi: number;
  pcrVolume: number;
  forward: number;
  samples: number;
  /** Samples of this bar already stored (by a checkpoint). */
  stored: number;
}

const UPSERT = `
INSERT INTO chain_bars (name, expiry, timeframe, bucket_start, bucket_end, expiry_rank, atm_iv_open, atm_iv_high,
  atm_iv_low, atm_iv_close, pcr_oi, pcr_volume, forward, samples)
SELECT * FROM unnest($1::text[], $2::date[], $3::text[], $4::timestamptz[], $5::timestamptz[], $6::smallint[],
  $7::float8[], $8::float8[], $9::float8[], $10::float8[], $11::float8[], $12::float8[], $13::float8[], $14::int[])
ON CONFLICT (name, expiry, timeframe, bucket_start) DO UPDATE SET
  atm_iv_high = greatest(chain_bars.atm_iv_high, excluded.atm_iv_high),
  atm_iv_low = least(chain_bars.atm_iv_low, excluded.atm_iv_low),
  atm_iv_close = excluded.atm_iv_close,
  pcr_oi = excluded.pcr_oi,
  pcr_volume = excluded.pcr_volume,
  forward = excluded.forward,
  samples = chain_bars.samples + excluded.samples`;

/** The open minute of each chain, and the closed ones not yet stored. */
export class ChainSeries {
  private readonly open = new Map<string, ChainBar>();
  private readonly queue: ChainBar[] = [];
  private writing: Promise<void> | null = null;
  readonly stats = { barsWritten: 0, writeErrors: 0 };

  constructor(private readonly db: () => Db | null, private readonly onError: (err: unknown) => void = () => {}) {}

  /** One refresh's ATM IV (a fraction), ratios and forward for a chain at `nowMs`. NaN IV: no sample. */
  sample(key: string, name: string, expiry: string, rank: number, nowMs: number, atmIv: number, pcrOi: number, pcrVolume: number, forward: number): void {
    if (!(atmIv > 0) || !(forward > 0)) return;
    const start = bucketStart(nowMs, MINUTE_MS);
    let bar = this.open.get(key);
    if (bar !== undefined && bar.startMs !== start) {
      this.queue.push(bar);
      bar = undefined;
      void this.write();
    }
    if (bar === undefined) {
      bar = {
        name, expiry, rank, startMs: start, endMs: bucketEnd(start, MINUTE_MS),
        open: atmIv, high: atmIv, low: atmIv, close: atmIv, pcrOi, pcrVolume, forward, samples: 0, stored: 0,
      };
      this.open.set(key, bar);
    }
    if (atmIv > bar.high) bar.high = atmIv;
    if (atmIv < bar.low) bar.low = atmIv;
    bar.close = atmIv;
    bar.pcrOi = pcrOi;
    bar.pcrVolume = pcrVolume;
    bar.forward = forward;
    bar.samples++;
  }

  /** Store every closed bar, and the open ones as they stand; resolves when done or failed (failed bars stay queued). */
  write(): Promise<void> {
    this.writing ??= this.drain().finally(() => {
      this.writing = null;
    });
    return this.writing;
  }

  private async drain(): Promise<void> {
    const db = this.db();
    let checkpoint = true;
    while (db !== null && (this.queue.length > 0 || checkpoint)) {
      // The closed bars first, oldest first; then, once, the open minutes.
      const batch = this.queue.length > 0 ? this.queue.slice(0, 500) : [...this.open.values()].filter((b) => b.samples > b.stored);
      const closed = this.queue.length > 0;
      if (!closed) checkpoint = false;
      if (batch.length === 0) continue;
      const counts = batch.map((b) => b.samples);
      try {
        await db.query(UPSERT, [
          batch.map((b) => b.name), batch.map((b) => b.expiry), batch.map(() => '1m'),
          batch.map((b) => new Date(b.startMs).toISOString()), batch.map((b) => new Date(b.endMs).toISOString()),
          batch.map((b) => b.rank), batch.map((b) => b.open), batch.map((b) => b.high), batch.map((b) => b.low),
          batch.map((b) => b.close), batch.map((b) => nullable(b.pcrOi)), batch.map((b) => nullable(b.pcrVolume)),
          batch.map((b) => b.forward), batch.map((b, i) => counts[i] - b.stored),
        ]);
      } catch (e) {
        this.stats.writeErrors++;
        this.onError(e);
        break;
      }
      batch.forEach((b, i) => { b.stored = counts[i]; });
      if (closed) {
        this.queue.splice(0, batch.length);
        this.stats.barsWritten += batch.length;
      }
    }
  }

  /** Queue the open bars (partial minutes) and store everything: at shutdown. */
  async close(): Promise<void> {
    for (const bar of this.open.values()) this.queue.push(bar);
    this.open.clear();
    await this.writing;
    await this.write();
  }

  /** Bars not yet stored (open ones excluded). */
  pending(): number {
    return this.queue.length;
  }
}

function nullable(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}

export interface IvSeriesRow {
  /** Bucket start, epoch ms. */
  t: number;
  open: number;
  high: number;
  low: number;
  close: number;
  pcrOi: number | null;
  pcrVolume: number | null;
  forward: number;
  samples: number;
}

/** Stored one-minute bars of one chain in [fromMs, toMs), oldest first, at most `limit`. */
export async function readIvSeries(db: Db, name: string, expiry: string, fromMs: number, toMs: number, limit: number): Promise<{ rows: IvSeriesRow[]; rank: number | null; truncated: boolean }> {
  const rows = await db.query<{ t: Date; o: number; h: number; l: number; c: number; po: number | null; pv: number | null; f: number; n: number; rank: number }>(
    `SELECT bucket_start AS t, atm_iv_open AS o, atm_iv_high AS h, atm_iv_low AS l, atm_iv_close AS c, pcr_oi AS po,
            pcr_volume AS pv, forward AS f, samples AS n, expiry_rank AS rank
       FROM chain_bars
      WHERE name = $1 AND expiry = $2 AND timeframe = '1m' AND bucket_start >= $3 AND bucket_start < $4
      ORDER BY bucket_start LIMIT $5`,
    [name, expiry, new Date(fromMs).toISOString(), new Date(toMs).toISOString(), limit + 1],
  );
  const truncated = rows.length > limit;
  const out = rows.slice(0, limit).map((r) => ({
    t: new Date(r.t).getTime(), open: r.o, high: r.h, low: r.l, close: r.c, pcrOi: r.po, pcrVolume: r.pv, forward: r.f, samples: r.n,
  }));
  return { rows: out, rank: rows.length > 0 ? rows[rows.length - 1].rank : null, truncated };
}

/**
 * IV percentile: the share (0-100) of the stored minutes of the same constant-rank series (the
 * nearest expiry's ATM IV when rank is 0, whatever its date) in the `days` before `atMs` whose
 * closing ATM IV was below `iv`. Null when none are stored.
 */
export async function ivPercentile(db: Db, name: string, rank: number, iv: number, atMs: number, days: number): Promise<{ percentile: number | null; minutes: number }> {
  const [r] = await db.query<{ below: number; n: number }>(
    `SELECT count(*) FILTER (WHERE atm_iv_close < $3)::int AS below, count(*)::int AS n
       FROM chain_bars
      WHERE name = $1 AND expiry_rank = $2 AND timeframe = '1m' AND bucket_start >= $4 AND bucket_start < $5`,
    [name, rank, iv, new Date(atMs - days * 86_400_000).toISOString(), new Date(atMs).toISOString()],
  );
  return { percentile: r.n > 0 ? (100 * r.below) / r.n : null, minutes: r.n };
}
