/**
 * Gap repair: the minute bars of every feed gap (sql/007_feed_gaps.sql), fetched from Kite's
 * historical API and stored flagged BACKFILLED (src/core/bar.ts), so charts and `/kite` history
 * have no hole. Ticks inside a gap stay lost: Kite serves no tick history (ticks_recoverable).
 *
 * Which gaps: those of today (IST, on the service's clock) with bars_backfilled_at NULL, read from
 * feed_gaps when a gap is recorded (`poke`) and at start-up, so a gap recorded before a restart
 * is repaired after it. One gap at a time, oldest first.
 *
 * When: once the gap's last minute is over, plus `graceMs` (default 15 s). The grace is for the
 * live side: the shard closes the minute's bar 0.5 s after its end (its bar clock) and the writer
 * commits it within a batch (WRITER_BATCH_MS). That bar must be stored before we merge into it:
 * the writer merges a bar whose row already exists by ADDING its volume (workers/writer/sink.ts
 * MERGE_BARS_SQL), so a live edge bar stored after ours would count the minute's volume twice.
 *
 * What, per instrument of the gap, for minutes from the one holding the gap's start to the one
 * holding its end (both edges included), with Kite's candles as the truth because each covers its
 * whole minute while the live part saw only some of it:
 *
 * | field                   | stored                                                                 |
 * |-------------------------|------------------------------------------------------------------------|
 * | open, high, low, close  | Kite's: the live part's prices are trades Kite's candle already holds  |
 * | volume                  | Kite's, replacing the live part's: after a reconnect the first tick's  |
 * |                         | volume delta holds all the volume traded while the feed was down, and  |
 * |                         | lands in one minute; adding would count it twice. A live row Kite has  |
 * |                         | no candle for (a snapshot stamped inside the gap) gets volume 0        |
 * | vwap                    | (high + low + close) / 3, the typical price: Kite's candles carry no   |
 * |                         | turnover, so it is an estimate, which the flag says; NULL at volume 0  |
 * | oi                      | Kite's (the open interest at the minute's end)                         |
 * | trades, ticks, partial  | the live part's (0 for a minute wholly inside the gap): counts of what |
 * |                         | the feed delivered, which Kite cannot tell                             |
 * | flags                   | the live part's, with CLOSED and BACKFILLED                            |
 *
 * Higher timeframes (stored ones that are whole minutes, 5m, 15m, 1d, ...): each bucket that
 * overlaps the gap is rebuilt from its 1m rows (open of the first, close of the last, extremes,
 * sums, volume-weighted VWAP, OI of the last) and flagged BACKFILLED, replacing the live bar, so its
 * volume is the sum of its minutes, never live plus Kite. Only once the live bar is stored (its end
 * plus the grace has passed); a bucket still open (the day bar, always) is rebuilt when it is over,
 * again at start-up for today's repaired gaps (rebuilding is idempotent). Sub-minute timeframes
 * (1s) are left as the live feed made them: Kite has no candles shorter than a minute.
 *
 * The 1m rows, the rebuilt buckets and bars_backfilled_at go in ONE transaction per gap
 * (storage.transact: PostgreSQL and the embedded PGlite alike). Kite's answers and the database are
 * retried with back-off (1 s doubling to 60 s, jittered): a 429 (Kite's 3 requests a second per
 * api_key), a 5xx, no answer, or a database away delay a gap and never lose it. Kite refusing one
 * instrument's request (InputException: a token it does not know) skips that instrument, logged.
 */
import type { Db } from '../core/db.ts';
import { BarFlag } from '../core/bar.ts';
import { bucketEnd, bucketStart, istDayStart, MINUTE_MS, timeframeName } from '../core/ist.ts';
import type { TxStatement } from '../core/reader-protocol.ts';
import type { KiteCandle } from '../kite/historical.ts';
import type { Logger } from '../log.ts';

export interface BackfillOptions {
  /** Statements in one transaction (Storage.transact). */
  transact: (statements: readonly TxStatement[]) => Promise<void>;
  /** Reads (Storage.db()). */
  db: () => Db;
  /** Kite's minute candles of `token` starting in [fromMs, toMs): KiteHistorical.minutes. */
  minutes: (token: number, fromMs: number, toMs: number) => Promise<KiteCandle[]>;
  /** The stored timeframes (config timeframesMs). */
  timeframesMs: readonly number[];
  /** Epoch ms: the service's clock (gap times are on it). */
  clock: () => number;
  /** After a bucket's end, how long until its live bar is surely stored (module header). Default 15 s, on the clock. */
  graceMs?: number;
  /** How often the schedule is looked at, real ms. Default 250. */
  pollMs?: number;
  log: Logger;
}

/** A gap as read from feed_gaps. */
interface PendingGap {
  id: number;
  startMs: number;
  endMs: number;
  tokens: number[];
}

/** A higher-timeframe bucket to rebuild from its 1m rows once `dueMs` is reached. */
interface Rebuild {
  tfMs: number;
  start: number;
  end: number;
  tokens: Set<number>;
  dueMs: number;
}

const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 60_000;
const DEFAULT_GRACE_MS = 15_000;

const SELECT_GAPS = `SELECT id::text AS id, (extract(epoch FROM started_at) * 1000)::float8 AS s, (extract(epoch FROM ended_at) * 1000)::float8 AS e,
  instruments::text AS instruments, bars_backfilled_at IS NOT NULL AS done
  FROM feed_gaps WHERE ended_at >= to_timestamp($1::double precision / 1000) ORDER BY started_at`;

/**
 * Kite's candles into 1m rows ($1: JSON array of {token, st, o, h, l, c, v, oi}): the merge of the
 * module header's table. bucket_end is a minute on: the session grid cuts at 15:30 and midnight,
 * both whole minutes.
 */
export const UPSERT_MINUTES_SQL = `INSERT INTO bars AS b (token, timeframe, bucket_start, bucket_end, open, high, low, close, volume, vwap, trades, oi, ticks, partial, flags)
SELECT x.token, '1m', to_timestamp(x.st / 1000), to_timestamp((x.st + ${MINUTE_MS}) / 1000), x.o, x.h, x.l, x.c, x.v,
  CASE WHEN x.v > 0 THEN (x.h + x.l + x.c) / 3 END, 0, x.oi, 0, false, ${BarFlag.CLOSED | BarFlag.BACKFILLED}
FROM json_to_recordset($1::text::json) AS x(token bigint, st double precision, o double precision, h double precision, l double precision,
  c double precision, v bigint, oi bigint)
ON CONFLICT (token, timeframe, bucket_start) DO UPDATE SET
  open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
  volume = excluded.volume, vwap = excluded.vwap, oi = excluded.oi,
  flags = b.flags | ${BarFlag.CLOSED | BarFlag.BACKFILLED}`;

/**
 * Live 1m rows in the gap's minutes that Kite has no candle for: no trade there, so no volume
 * ($1 tokens, $2/$3 the range in epoch ms, $4 the candles' JSON as above).
 */
export const ZERO_UNTRADED_SQL = `UPDATE bars AS b SET volume = 0, vwap = NULL, flags = b.flags | ${BarFlag.BACKFILLED}
WHERE b.timeframe = '1m' AND b.token = ANY($1::bigint[])
  AND b.bucket_start >= to_timestamp($2::double precision / 1000) AND b.bucket_start < to_timestamp($3::double precision / 1000)
  AND NOT EXISTS (SELECT 1 FROM json_to_recordset($4::text::json) AS x(token bigint, st double precision)
                   WHERE x.token = b.token AND to_timestamp(x.st / 1000) = b.bucket_start)`;

/**
 * Rebuild `timeframe` ($1) buckets [$2[i], $3[i]) (epoch ms arrays) of tokens $4 from their 1m rows,
 * replacing what is stored (module header).
 */
export const REBUILD_SQL = `INSERT INTO bars AS b (token, timeframe, bucket_start, bucket_end, open, high, low, close, volume, vwap, trades, oi, ticks, partial, flags)
SELECT m.token, $1::text, to_timestamp(k.st / 1000), to_timestamp(k.en / 1000),
  (array_agg(m.open ORDER BY m.bucket_start))[1], max(m.high), min(m.low), (array_agg(m.close ORDER BY m.bucket_start DESC))[1],
  sum(m.volume),
  sum(m.vwap * m.volume) FILTER (WHERE m.vwap IS NOT NULL) / nullif(sum(m.volume) FILTER (WHERE m.vwap IS NOT NULL), 0),
  sum(m.trades), (array_agg(m.oi ORDER BY m.bucket_start DESC))[1], sum(m.ticks), bool_or(m.partial),
  (${BarFlag.CLOSED | BarFlag.BACKFILLED} | bit_or(m.flags::int & ${BarFlag.PARTIAL | BarFlag.LATE}))::smallint
FROM bars m
JOIN (SELECT unnest($2::double precision[]) AS st, unnest($3::double precision[]) AS en) k
  ON m.bucket_start >= to_timestamp(k.st / 1000) AND m.bucket_start < to_timestamp(k.en / 1000)
WHERE m.timeframe = '1m' AND m.token = ANY($4::bigint[])
GROUP BY m.token, k.st, k.en
ON CONFLICT (token, timeframe, bucket_start) DO UPDATE SET
  bucket_end = excluded.bucket_end, open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
  volume = excluded.volume, vwap = excluded.vwap, trades = excluded.trades, oi = excluded.oi, ticks = excluded.ticks,
  partial = excluded.partial, flags = b.flags | excluded.flags`;

const MARK_DONE_SQL = 'UPDATE feed_gaps SET bars_backfilled_at = to_timestamp($2::double precision / 1000) WHERE id = $1::bigint';

/** The minutes a gap touches: [first, end), from the minute holding its start to the one holding its end. */
export function gapMinutes(startMs: number, endMs: number): [number, number] {
  return [bucketStart(startMs, MINUTE_MS), bucketStart(endMs, MINUTE_MS) + MINUTE_MS];
}

/** Buckets of `tfMs` overlapping [fromMs, toMs), as [start, end) pairs. */
export function bucketsOver(tfMs: number, fromMs: number, toMs: number): [number, number][] {
  const out: [number, number][] = [];
  for (let s = bucketStart(fromMs, tfMs); s < toMs; s = bucketEnd(s, tfMs)) out.push([s, bucketEnd(s, tfMs)]);
  return out;
}

/** The 1m rows and rebuilds of one gap as statements (exported for the merge tests). */
export function gapStatements(g: { tokens: readonly number[]; fromMs: number; toMs: number }, candles: readonly (KiteCandle & { token: number })[]): TxStatement[] {
  const json = JSON.stringify(candles.map((c) => ({ token: c.token, st: c.startMs, o: c.open, h: c.high, l: c.low, c: c.close, v: c.volume, oi: c.oi })));
  return [
    { text: ZERO_UNTRADED_SQL, params: [`{${g.tokens.join(',')}}`, g.fromMs, g.toMs, json] },
    { text: UPSERT_MINUTES_SQL, params: [json] },
  ];
}

/** Rebuild statement for buckets of one timeframe. */
export function rebuildStatement(tfMs: number, buckets: readonly [number, number][], tokens: readonly number[]): TxStatement {
  return {
    text: REBUILD_SQL,
    params: [timeframeName(tfMs), `{${buckets.map((b) => b[0]).join(',')}}`, `{${buckets.map((b) => b[1]).join(',')}}`, `{${tokens.join(',')}}`],
  };
}

export class Backfill {
  private readonly graceMs: number;
  /** Stored timeframes rebuilt from 1m rows. */
  private readonly higher: number[];
  private readonly enabled: boolean;
  private readonly known = new Map<number, PendingGap>();
  private readonly rebuilds = new Map<string, Rebuild>();
  /** feed_gaps is read again at the next look (a gap was recorded, or the last read failed). */
  private dirty = true;
  /** The first read of feed_gaps also queues the rebuilds of gaps repaired before a restart. */
  private firstRead = true;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private closed = false;
  private readonly sleeps = new Set<{ t: NodeJS.Timeout; wake: () => void }>();
  /**
   * Gaps repaired, Kite requests made and retried, rebuilds run, and the last failure since the
   * last successful read of feed_gaps (the first read can precede the writer's migration): /health.
   */
  readonly stats = { gaps: 0, requests: 0, retries: 0, rebuilds: 0, lastError: null as string | null };

  constructor(private readonly opts: BackfillOptions) {
    this.graceMs = opts.graceMs ?? DEFAULT_GRACE_MS;
    this.enabled = opts.timeframesMs.includes(MINUTE_MS);
    this.higher = opts.timeframesMs.filter((t) => t > MINUTE_MS && t % MINUTE_MS === 0);
    if (!this.enabled) opts.log.warn({ timeframes: opts.timeframesMs.map(timeframeName) }, 'gap repair is off: it stores minute bars, and 1m is not in BAR_TIMEFRAMES');
  }

  /** Start looking (reads today's gaps at once: those a previous run left are resumed). */
  start(): void {
    if (!this.enabled || this.timer !== null || this.closed) return;
    this.timer = setInterval(() => void this.look(), this.opts.pollMs ?? 250);
    this.timer.unref();
    void this.look();
  }

  /** A gap was recorded: read feed_gaps at the next look. */
  poke(): void {
    this.dirty = true;
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const s of this.sleeps) {
      clearTimeout(s.t);
      s.wake();
    }
    this.sleeps.clear();
  }

  private async look(): Promise<void> {
    if (this.busy || this.closed) return;
    this.busy = true;
    try {
      if (this.dirty) await this.readGaps();
      const now = this.opts.clock();
      for (const g of [...this.known.values()].sort((a, b) => a.startMs - b.startMs)) {
        if (this.closed) return;
        if (now < gapMinutes(g.startMs, g.endMs)[1] + this.graceMs) continue;
        await this.repair(g);
      }
      await this.runRebuilds();
    } catch (e) {
      // A failure of the database read: looked at again next time.
      this.dirty = true;
      this.stats.lastError = (e as Error).message;
    } finally {
      this.busy = false;
    }
  }

  private async readGaps(): Promise<void> {
    const today = istDayStart(this.opts.clock());
    const rows = await this.opts.db().query<{ id: string; s: number; e: number; instruments: string; done: boolean }>(SELECT_GAPS, [today]);
    this.dirty = false;
    this.stats.lastError = null;
    const first = this.firstRead;
    this.firstRead = false;
    for (const r of rows) {
      const id = Number(r.id);
      const list = String(r.instruments).replace(/[{}]/g, '');
      const g: PendingGap = { id, startMs: Number(r.s), endMs: Number(r.e), tokens: list === '' ? [] : list.split(',').map(Number) };
      if (r.done) {
        if (first) this.planRebuilds(g, true);
      } else if (!this.known.has(id)) {
        this.known.set(id, g);
        this.opts.log.info({ gap: id, start: new Date(g.startMs).toISOString(), end: new Date(g.endMs).toISOString(), instruments: g.tokens.length },
          'gap repair: minute bars of this gap will be fetched from Kite once its last minute is over');
      }
    }
  }

  /** One gap: Kite's candles for each instrument, then one transaction. Returns when stored (or closing). */
  private async repair(g: PendingGap): Promise<void> {
    const [fromMs, toMs] = gapMinutes(g.startMs, g.endMs);
    const candles: (KiteCandle & { token: number })[] = [];
    const tokens: number[] = [];
    for (const token of g.tokens) {
      const got = await this.retry(`Kite historical minutes of ${token}`, async () => {
        this.stats.requests++;
        return this.opts.minutes(token, fromMs, toMs);
      }, (e) => (e as { error_type?: string })?.error_type === 'InputException');
      if (this.closed) return;
      if (got === null) continue;
      tokens.push(token);
      for (const c of got.v) candles.push({ ...c, token });
    }
    const statements = gapStatements({ tokens, fromMs, toMs }, candles);
    // Higher timeframes whose live bar is stored by now are rebuilt in this transaction; the
    // others wait for their end (planRebuilds).
    const now = this.opts.clock();
    for (const tf of this.higher) {
      const due = bucketsOver(tf, fromMs, toMs).filter(([, end]) => end + this.graceMs <= now);
      if (due.length > 0 && tokens.length > 0) statements.push(rebuildStatement(tf, due, tokens));
    }
    statements.push({ text: MARK_DONE_SQL, params: [g.id, now] });
    const ok = await this.retry(`storing the bars of gap ${g.id}`, () => this.opts.transact(statements), () => false);
    if (ok === null || this.closed) return;
    this.known.delete(g.id);
    this.stats.gaps++;
    this.planRebuilds({ ...g, tokens }, false);
    this.opts.log.info({ gap: g.id, instruments: tokens.length, minutes: (toMs - fromMs) / MINUTE_MS, candles: candles.length },
      'gap repaired: minute bars from Kite\'s historical API stored, flagged backfilled');
  }

  /** Queue the higher-timeframe buckets of `g`: all of them (`all`, at start-up) or those not yet over. */
  private planRebuilds(g: PendingGap, all: boolean): void {
    const [fromMs, toMs] = gapMinutes(g.startMs, g.endMs);
    const now = this.opts.clock();
    for (const tf of this.higher) {
      for (const [start, end] of bucketsOver(tf, fromMs, toMs)) {
        const dueMs = end + this.graceMs;
        if (!all && dueMs <= now) continue; // rebuilt with the gap
        const key = `${tf}:${start}`;
        const r = this.rebuilds.get(key) ?? { tfMs: tf, start, end, tokens: new Set<number>(), dueMs };
        for (const t of g.tokens) r.tokens.add(t);
        this.rebuilds.set(key, r);
      }
    }
  }

  private async runRebuilds(): Promise<void> {
    const now = this.opts.clock();
    for (const [key, r] of this.rebuilds) {
      if (this.closed) return;
      if (r.dueMs > now || r.tokens.size === 0) continue;
      const ok = await this.retry(`rebuilding ${timeframeName(r.tfMs)} bars from 1m`, () => this.opts.transact([rebuildStatement(r.tfMs, [[r.start, r.end]], [...r.tokens])]), () => false);
      if (ok === null) return;
      this.rebuilds.delete(key);
      this.stats.rebuilds++;
    }
  }

  /**
   * `fn` until it succeeds, with back-off; null when `permanent(e)` (logged, skipped) or closing.
   * A 429, a 5xx, no answer and a database away are all retried: a gap is delayed, never lost.
   */
  private async retry<T>(what: string, fn: () => Promise<T>, permanent: (e: unknown) => boolean): Promise<{ v: T } | null> {
    for (let attempt = 0; !this.closed; attempt++) {
      try {
        return { v: await fn() };
      } catch (e) {
        const err = e as { message?: string; error_type?: string };
        this.stats.lastError = `${what}: ${err?.message ?? String(e)}`;
        if (permanent(e)) {
          this.opts.log.warn({ err: err?.message, errorType: err?.error_type }, `gap repair: ${what} refused; skipped`);
          return null;
        }
        const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(attempt, 16));
        const delay = Math.round(cap / 2 + Math.random() * (cap / 2));
        this.stats.retries++;
        this.opts.log.warn({ err: err?.message, errorType: err?.error_type, attempt: attempt + 1, retryInMs: delay }, `gap repair: ${what} failed; retrying`);
        await this.sleep(delay);
      }
    }
    return null;
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const s = { t: setTimeout(() => { this.sleeps.delete(s); resolve(); }, ms), wake: resolve };
      this.sleeps.add(s);
    });
  }
}
