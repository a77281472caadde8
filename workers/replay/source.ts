/**
 * The replay source: stored ticks (market_data) read back as canonical tick records
 * (src/core/tick.ts layout) in exchange-time order, a batch at a time, in bounded memory. Replay
 * sessions (pacing, /ws and /kite delivery) stand on it; it knows no sockets and no clock.
 *
 *   const src = await openTickSource({ kind: 'postgres', url }, { fromMs, toMs, tokens, instruments: hub });
 *   for (let n; (n = await src.next()) > 0; ) for (let i = 0; i < n; i++) hub.applyTick(src.batch, i * N_FIELDS);
 *   await src.close();
 *
 * `batch` is one Float64Array of `batchTicks` records, allocated at open and overwritten by every
 * next(): a consumer copies what it keeps before it asks again. Nothing is allocated per tick.
 *
 * ## Order
 *
 * (time, recv_time, token, conn, seq): exchange time first, so instruments interleave as the
 * exchange stamped them; within one exchange second (Kite stamps whole seconds) in the order the
 * ticks arrived live, which is also what the replay's pacing follows (workers/replay/replayer.ts);
 * token, conn and seq make the order total and the same on every read.
 * For one token this is the order the pipeline stored: its ticks go through one shard in arrival
 * order, exchange time never decreases (validate.ts), and recv_time (one per frame, rising) orders
 * ticks stamped in the same exchange second; conn and seq only settle exact duplicates of both.
 * A ReplayPosition is that key of the last tick handed out: reopened with `after: position`, a
 * source continues with the next tick in this order, which is how a session resumes or a client
 * reconnects. Seeking to a time is opening with `fromMs` at it.
 *
 * ## Records
 *
 * Every stored column goes to its field (workers/writer/copy.ts is the inverse), plus:
 * TYPE = TICK; INSTR, INSTR_TYPE, STRIKE, EXPIRY_MS from the instrument list passed in (as
 * normalize.ts does: INSTR -1, INSTR_TYPE -1 for a token not in it); DEPTH_LEVELS 5 and the depth
 * when stored, else 0 and zeros; LAST_TRADE_MS 0 when NULL. Not stored, so not replayed:
 * CONSUMERS (live consumer filters) 0, PROC_TIME_US 0, SHARD -1, DAY_VWAP NaN (the shard's running
 * day VWAP; encoders send NaN as null). bid/ask columns are not read: they are depth[1] and depth[6].
 *
 * ## How it reads
 *
 * PostgreSQL: one `COPY (SELECT ... ORDER BY ...) TO STDOUT (FORMAT binary)` on a connection of
 * its own (a `postgres` client with max 1, ended at close), read from the driver's readable
 * stream. Each chunk is copied into one staging buffer (grown only for a tuple larger than it) and
 * parsed from there with one DataView, so tuples split across chunks need no special case. When
 * the batch is full the stream is paused: the driver then pauses the socket once its readable
 * holds 16 KiB, TCP pushes back on the server, and the server's COPY waits. Memory held is the
 * batch, the staging buffer and the driver's and kernel's socket buffers, whatever the range.
 * COPY takes no bind parameters, so the statement is built from numbers checked at open only.
 *
 * PGlite (embedded): a `DECLARE ... NO SCROLL CURSOR WITH HOLD` and `FETCH pageTicks` pages, each
 * its own short statement, so the writer's commits (same single connection) go between pages
 * rather than wait for a whole replay. WITH HOLD materialises the sorted result at DECLARE, into
 * PGlite's temp files past work_mem, not into JS memory. PGlite's own result parsing allocates per
 * row (its JS protocol reader); the records are then written into the same batch.
 *
 * ## Measured (npm run bench -- replay; 2M stored ticks, a third with depth; 2-core machine, load 3.5-5.9)
 *
 * | method (same SELECT, same ORDER BY)                         | ticks/s     | of psql  |
 * |-------------------------------------------------------------|-------------|----------|
 * | psql \copy binary to /dev/null (baseline)                   | 207k-344k   | 100%     |
 * | this source, binary COPY, parsed into records (kept)        | 206k-261k   | 68-100%  |
 * | psql \copy text                                             | 164k-189k   | 62-68%   |
 * | driver text COPY, bytes only counted (before any parsing)   | 172k-177k   | 62-67%   |
 * | driver cursor, FETCH 4096 rows as objects, only counted     | 32k-40k     | 12-15%   |
 * | PGlite: rows as JS values (SELECT or cursor FETCH)          | 11k-20k     |          |
 * | PGlite: sorted temp table + binary COPY pages to a blob     | 47k         |          |
 *
 * The embedded path is the cursor one although a binary COPY to PGlite's blob was faster: a
 * replay thread cannot open the embedded database (the writer thread holds it), so its queries go
 * through the storage read interface, which answers rows, not blobs.
 *
 * RSS peak 97-98 MB over a 2M-tick read (+1 to +13 MB from open), heap +1-2 MB. The 1M
 * ticks/s is not reached by any reader of these rows, psql included: the server spends ~100 ns per
 * value in its send functions (23 columns, 30 more per depth array) and sorts the range, on one
 * backend. Two psql copies of half the tokens each in parallel took 6.5 s against 8.4-9.6 s for one.
 */
import type { Readable } from 'node:stream';
import { threadId } from 'node:worker_threads';
import postgres from 'postgres';
import type { PGlite } from '@electric-sql/pglite';
import { pgOptions } from '../../src/core/db.ts';
import { expiryMsOf, instrumentKindOf, type Instrument } from '../../src/core/instrument.ts';
import { N, N_FIELDS, NType } from '../../src/core/tick.ts';

/** Where stored ticks are read from: a PostgreSQL URL (the source opens its own connection) or the embedded PGlite. */
export type TickStore = { readonly kind: 'postgres'; readonly url: string } | { readonly kind: 'pglite'; readonly db: PGlite };

/** The instruments INSTR indexes: FeedHub (src/gateway/hub.ts) is one. */
export interface ReplayInstruments {
  readonly instruments: readonly Instrument[];
  readonly rowOfToken: ReadonlyMap<number, number>;
}

/** The order key of one stored tick (see Order above). Times are epoch microseconds, as stored. */
export interface ReplayPosition {
  readonly timeUs: number;
  readonly token: number;
  readonly recvUs: number;
  readonly conn: number;
  readonly seq: number;
}

export interface TickSourceOptions {
  /** Exchange time range [fromMs, toMs), epoch ms. */
  readonly fromMs: number;
  readonly toMs: number;
  /** Instrument tokens to replay; null or absent: every stored token. */
  readonly tokens?: readonly number[] | null;
  readonly instruments: ReplayInstruments;
  /** Start strictly after this tick (a position() of an earlier source over the same range). */
  readonly after?: ReplayPosition | null;
  /** Records per batch (the most next() returns). Default 1024. */
  readonly batchTicks?: number;
  /** Rows per FETCH on PGlite. Default 4096. */
  readonly pageTicks?: number;
}

export interface TickSource {
  /** `batchTicks` records of N_FIELDS f64; next() overwrites the first n. */
  readonly batch: Float64Array;
  readonly batchTicks: number;
  /** Fill `batch` with the next ticks; resolves their count, 0 at the end of the range (then always 0). */
  next(): Promise<number>;
  /** Key of the last tick handed out, null before the first. */
  position(): ReplayPosition | null;
  /** Ticks handed out so far. */
  readonly delivered: number;
  /** Stop reading (at any point) and let go of the connection or cursor. Safe to call twice. */
  close(): Promise<void>;
}

/** The columns read, in the order the tuple parser expects them. */
export const REPLAY_COLUMNS = [
  'token', 'time', 'recv_time', 'kind', 'price', 'last_qty', 'avg_price', 'volume', 'volume_delta', 'buy_qty', 'sell_qty',
  'open', 'high', 'low', 'close', 'change_pct', 'oi', 'oi_high', 'oi_low', 'last_trade_time', 'depth', 'conn', 'seq',
] as const;
export const REPLAY_ORDER = 'time, recv_time, token, conn, seq';

const DEFAULT_BATCH = 1024;
const DEFAULT_PAGE = 4096;
/** Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z). */
const PG_EPOCH_US = 946_684_800_000_000;
const TWO32 = 4_294_967_296;
const DEPTH_VALUES = 30;
const STAGE_BYTES = 64 * 1024;
/** Binary COPY signature, flags and header-extension length. */
const COPY_SIGNATURE = [0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00];

function check(opts: TickSourceOptions): void {
  const { fromMs, toMs, tokens, after } = opts;
  if (!Number.isFinite(fromMs) || !Number.isFinite(toMs)) throw new TypeError(`fromMs and toMs must be finite epoch ms, got ${fromMs} and ${toMs}`);
  if (toMs < fromMs) throw new RangeError(`toMs (${toMs}) must not be before fromMs (${fromMs})`);
  if (tokens != null) {
    for (const t of tokens) if (!Number.isSafeInteger(t) || t < 0) throw new TypeError(`tokens must be non-negative integers, got ${String(t)}`);
  }
  if (after != null) {
    for (const k of ['timeUs', 'token', 'recvUs', 'conn', 'seq'] as const) {
      if (!Number.isSafeInteger(after[k])) throw new TypeError(`after.${k} must be an integer, got ${String(after[k])}`);
    }
  }
  for (const k of ['batchTicks', 'pageTicks'] as const) {
    const v = opts[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 1 || v > 1 << 20)) throw new RangeError(`${k} must be an integer in 1..${1 << 20}, got ${v}`);
  }
}

/** A timestamptz literal of epoch microseconds, exact (a Date holds only ms). */
export function timestampLiteral(us: number): string {
  const ms = Math.floor(us / 1000);
  const iso = new Date(ms).toISOString(); // 2026-12-02T03:45:00.123Z
  return `'${iso.slice(0, 23)}${String(us - ms * 1000).padStart(3, '0')}+00'::timestamptz`;
}

/** The WHERE and ORDER BY shared by every method (and by the bench's psql baseline). */
export function replayWhere(opts: Pick<TickSourceOptions, 'fromMs' | 'toMs' | 'tokens' | 'after'>): string {
  const w = [`time >= ${timestampLiteral(opts.fromMs * 1000)}`, `time < ${timestampLiteral(opts.toMs * 1000)}`];
  if (opts.tokens != null) w.push(`token = ANY('{${opts.tokens.join(',')}}'::bigint[])`);
  const a = opts.after;
  if (a != null) w.push(`(${REPLAY_ORDER}) > (${timestampLiteral(a.timeUs)}, ${timestampLiteral(a.recvUs)}, ${a.token}, ${a.conn}, ${a.seq})`);
  return `WHERE ${w.join(' AND ')} ORDER BY ${REPLAY_ORDER}`;
}

/** The SELECT the PostgreSQL source copies out. */
export function replaySelect(opts: Pick<TickSourceOptions, 'fromMs' | 'toMs' | 'tokens' | 'after'>): string {
  return `SELECT ${REPLAY_COLUMNS.join(', ')} FROM market_data ${replayWhere(opts)}`;
}

/** Per-row instrument attributes, indexed by INSTR, made once at open. */
class Attributes {
  readonly kind: Float64Array;
  readonly strike: Float64Array;
  readonly expiryMs: Float64Array;
  readonly rowOf: ReadonlyMap<number, number>;
  constructor(t: ReplayInstruments) {
    const n = t.instruments.length;
    this.kind = new Float64Array(n);
    this.strike = new Float64Array(n);
    this.expiryMs = new Float64Array(n);
    t.instruments.forEach((i, r) => {
      this.kind[r] = instrumentKindOf(i);
      this.strike[r] = i.strike;
      this.expiryMs[r] = expiryMsOf(i);
    });
    this.rowOf = t.rowOfToken;
  }

  /** Fill INSTR, INSTR_TYPE, STRIKE, EXPIRY_MS of the record at `o`. */
  fill(f: Float64Array, o: number, token: number): void {
    const r = this.rowOf.get(token);
    if (r === undefined) {
      f[o + N.INSTR] = -1;
      f[o + N.INSTR_TYPE] = -1;
      f[o + N.STRIKE] = 0;
      f[o + N.EXPIRY_MS] = 0;
    } else {
      f[o + N.INSTR] = r;
      f[o + N.INSTR_TYPE] = this.kind[r];
      f[o + N.STRIKE] = this.strike[r];
      f[o + N.EXPIRY_MS] = this.expiryMs[r];
    }
  }
}

/** The fields the stored row does not set (see Records above). */
function fillConstant(f: Float64Array, o: number): void {
  f[o + N.TYPE] = NType.TICK;
  f[o + N.CONSUMERS] = 0;
  f[o + N.REASON] = 0;
  f[o + N.PROC_TIME_US] = 0;
  f[o + N.SHARD] = -1;
  f[o + N.DAY_VWAP] = NaN;
  f[o + 63] = 0;
}

/**
 * Binary COPY tuples (the REPLAY_COLUMNS row) into canonical records. Bytes are appended with
 * push() and parsed from one staging buffer; a tuple is parsed only once all of it is there.
 */
export class TupleParser {
  private stage = new Uint8Array(STAGE_BYTES);
  private view = new DataView(this.stage.buffer);
  /** Parsed up to `at`, filled up to `end`. */
  private at = 0;
  private end = 0;
  private header = false;
  /** The trailer (field count -1) was read. */
  done = false;
  // The last tick parsed: its order key, kept as numbers so position() allocates only when asked.
  lastTimeUs = 0;
  lastToken = 0;
  lastRecvUs = 0;
  lastConn = 0;
  lastSeq = 0;

  constructor(private readonly attrs: Attributes) {}

  /** Bytes received and not yet parsed. */
  get pending(): number {
    return this.end - this.at;
  }

  push(chunk: Uint8Array): void {
    const n = chunk.length;
    if (this.end + n > this.stage.length) {
      // Move the unparsed tail to the front; grow only when one tuple is larger than the buffer.
      const rest = this.end - this.at;
      if (rest + n > this.stage.length) {
        let cap = this.stage.length;
        while (cap < rest + n) cap *= 2;
        const next = new Uint8Array(cap);
        next.set(this.stage.subarray(this.at, this.end));
        this.stage = next;
        this.view = new DataView(next.buffer);
      } else {
        this.stage.copyWithin(0, this.at, this.end);
      }
      this.at = 0;
      this.end = rest;
    }
    this.stage.set(chunk, this.end);
    this.end += n;
  }

  /**
   * Parse whole tuples into `f` from record `k` while k < `max`; returns the new k. Sets `done`
   * at the trailer.
   */
  parse(f: Float64Array, k: number, max: number): number {
    const d = this.view;
    if (!this.header) {
      if (this.end - this.at < 19) return k;
      for (let i = 0; i < COPY_SIGNATURE.length; i++) {
        if (this.stage[this.at + i] !== COPY_SIGNATURE[i]) throw replayError('REPLAY_BAD_COPY', 'the COPY stream does not start with the binary signature');
      }
      const ext = d.getInt32(this.at + 15);
      if (this.end - this.at < 19 + ext) return k;
      this.at += 19 + ext;
      this.header = true;
    }
    const cols = REPLAY_COLUMNS.length;
    while (k < max && !this.done) {
      let p = this.at;
      const avail = this.end;
      if (avail - p < 2) break;
      const count = d.getInt16(p);
      if (count === -1) {
        this.at = p + 2;
        this.done = true;
        break;
      }
      if (count !== cols) throw replayError('REPLAY_BAD_COPY', `a COPY tuple has ${count} fields, expected ${cols}`);
      // Is the whole tuple here? Walk the lengths first.
      let q = p + 2;
      let whole = true;
      for (let c = 0; c < cols; c++) {
        if (q + 4 > avail) {
          whole = false;
          break;
        }
        const len = d.getInt32(q);
        q += 4 + (len > 0 ? len : 0);
      }
      if (!whole || q > avail) break;
      p += 2;
      const o = k * N_FIELDS;
      // token, time, recv_time
      const token = int8(d, p + 4);
      const timeUs = int8(d, p + 16) + PG_EPOCH_US;
      const recvUs = int8(d, p + 28) + PG_EPOCH_US;
      f[o + N.TOKEN] = token;
      f[o + N.EXCH_TIME_MS] = timeUs / 1000;
      f[o + N.RECV_TIME_US] = recvUs;
      p += 36;
      f[o + N.KIND] = d.getInt16(p + 4);
      p += 6;
      f[o + N.PRICE] = d.getFloat64(p + 4);
      f[o + N.LAST_QTY] = int8(d, p + 16);
      f[o + N.AVG_PRICE] = d.getFloat64(p + 28);
      f[o + N.VOLUME] = int8(d, p + 40);
      f[o + N.VOLUME_DELTA] = int8(d, p + 52);
      f[o + N.BUY_QTY] = int8(d, p + 64);
      f[o + N.SELL_QTY] = int8(d, p + 76);
      f[o + N.OPEN] = d.getFloat64(p + 88);
      f[o + N.HIGH] = d.getFloat64(p + 100);
      f[o + N.LOW] = d.getFloat64(p + 112);
      f[o + N.CLOSE] = d.getFloat64(p + 124);
      f[o + N.CHANGE_PCT] = d.getFloat64(p + 136);
      f[o + N.OI] = int8(d, p + 148);
      f[o + N.OI_HIGH] = int8(d, p + 160);
      f[o + N.OI_LOW] = int8(d, p + 172);
      p += 180;
      // last_trade_time, NULL when the packet had none
      if (d.getInt32(p) < 0) {
        f[o + N.LAST_TRADE_MS] = 0;
        p += 4;
      } else {
        f[o + N.LAST_TRADE_MS] = (int8(d, p + 4) + PG_EPOCH_US) / 1000;
        p += 12;
      }
      // depth float8[10][3]: int32 ndim, has-nulls, element oid, (length, lower bound) per dimension, then elements
      const dl = d.getInt32(p);
      const base = o + N.DEPTH;
      if (dl < 0) {
        f[o + N.DEPTH_LEVELS] = 0;
        for (let i = 0; i < DEPTH_VALUES; i++) f[base + i] = 0;
        p += 4;
      } else {
        const ndim = d.getInt32(p + 4);
        let e = p + 16;
        let n = ndim > 0 ? 1 : 0;
        for (let i = 0; i < ndim; i++) {
          n *= d.getInt32(e);
          e += 8;
        }
        let i = 0;
        for (; i < n; i++) {
          const el = d.getInt32(e);
          const v = el < 0 ? 0 : d.getFloat64(e + 4);
          if (i < DEPTH_VALUES) f[base + i] = v;
          e += 4 + (el > 0 ? el : 0);
        }
        for (; i < DEPTH_VALUES; i++) f[base + i] = 0;
        f[o + N.DEPTH_LEVELS] = 5;
        p += 4 + dl;
      }
      const conn = d.getInt16(p + 4);
      const seq = int8(d, p + 10);
      f[o + N.CONN] = conn;
      f[o + N.SEQ] = seq;
      this.attrs.fill(f, o, token);
      fillConstant(f, o);
      this.lastTimeUs = timeUs;
      this.lastToken = token;
      this.lastRecvUs = recvUs;
      this.lastConn = conn;
      this.lastSeq = seq;
      this.at = q;
      k++;
    }
    if (this.at === this.end) this.at = this.end = 0;
    return k;
  }
}

/** int8 at `p`, exact below 2^53 in magnitude, without BigInt. */
function int8(d: DataView, p: number): number {
  return d.getInt32(p) * TWO32 + d.getUint32(p + 4);
}

function replayError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Open a stream of stored ticks; see the module header. */
export async function openTickSource(store: TickStore, opts: TickSourceOptions): Promise<TickSource> {
  check(opts);
  const attrs = new Attributes(opts.instruments);
  const batchTicks = opts.batchTicks ?? DEFAULT_BATCH;
  return store.kind === 'postgres'
    ? openPg(store.url, opts, attrs, batchTicks)
    : openPglite(store.db, opts, attrs, batchTicks);
}

abstract class SourceBase implements TickSource {
  readonly batch: Float64Array;
  delivered = 0;
  protected ended = false;
  protected closed = false;

  constructor(readonly batchTicks: number, protected readonly attrs: Attributes) {
    this.batch = new Float64Array(batchTicks * N_FIELDS);
  }

  abstract next(): Promise<number>;
  abstract close(): Promise<void>;
  protected abstract last(): ReplayPosition | null;

  position(): ReplayPosition | null {
    return this.delivered === 0 ? null : this.last();
  }
}

/** PostgreSQL: binary COPY out on a connection of its own. */
class PgSource extends SourceBase {
  private readonly parser: TupleParser;
  private stream: Readable | null = null;
  private failure: Error | null = null;
  private streamEnded = false;
  /** Records in the batch being filled by onData. */
  private filling = 0;
  private wake: (() => void) | null = null;

  constructor(private readonly sql: postgres.Sql<Record<string, never>>, batchTicks: number, attrs: Attributes) {
    super(batchTicks, attrs);
    this.parser = new TupleParser(attrs);
  }

  async start(text: string): Promise<void> {
    const q = this.sql.unsafe(text);
    // The query settles when the COPY ends; a failure (the server's or the connection's) is kept for next().
    q.then(() => {}, (e: Error) => {
      if (this.failure === null) this.failure = e;
      this.signal();
    });
    const s = (await q.readable()) as Readable;
    this.stream = s;
    s.pause();
    s.on('data', (chunk: Buffer) => this.onData(chunk));
    s.on('end', () => {
      this.streamEnded = true;
      this.signal();
    });
    s.on('error', (e: Error) => {
      if (this.failure === null) this.failure = e;
      this.signal();
    });
  }

  private signal(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private onData(chunk: Buffer): void {
    const p = this.parser;
    p.push(chunk);
    try {
      this.filling = p.parse(this.batch, this.filling, this.batchTicks);
    } catch (e) {
      this.failure = e as Error;
      this.stream?.pause();
      this.signal();
      return;
    }
    if (this.filling === this.batchTicks || p.done) {
      this.stream?.pause();
      this.signal();
    }
  }

  async next(): Promise<number> {
    if (this.ended || this.closed) return 0;
    const p = this.parser;
    this.filling = p.parse(this.batch, 0, this.batchTicks);
    while (this.filling < this.batchTicks && !p.done) {
      if (this.failure !== null) throw this.failure;
      if (this.streamEnded) {
        if (p.pending > 0 || !p.done) throw replayError('REPLAY_BAD_COPY', 'the COPY stream ended inside a tuple or before its trailer');
        break;
      }
      const woken = new Promise<void>((r) => (this.wake = r));
      this.stream!.resume();
      await woken;
    }
    if (this.failure !== null && !p.done) throw this.failure;
    const n = this.filling;
    this.filling = 0;
    this.delivered += n;
    if (n === 0 && p.done) {
      this.ended = true;
      await this.release(false);
    }
    return n;
  }

  protected last(): ReplayPosition {
    const p = this.parser;
    return { timeUs: p.lastTimeUs, token: p.lastToken, recvUs: p.lastRecvUs, conn: p.lastConn, seq: p.lastSeq };
  }

  /** End the client: at once when the COPY is cut short (the server sees the socket close), else politely. */
  private async release(cut: boolean): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stream?.removeAllListeners('data');
    this.stream?.on('error', () => {});
    await this.sql.end({ timeout: cut ? 0 : 1 }).catch(() => {});
  }

  async close(): Promise<void> {
    const cut = !this.parser.done || !this.streamEnded;
    this.ended = true;
    await this.release(cut);
  }
}

async function openPg(url: string, opts: TickSourceOptions, attrs: Attributes, batchTicks: number): Promise<TickSource> {
  const sql = postgres(url, pgOptions({ max: 1, idle_timeout: 0, max_lifetime: null, connect_timeout: 10 })) as unknown as postgres.Sql<Record<string, never>>;
  const src = new PgSource(sql, batchTicks, attrs);
  try {
    await src.start(`COPY (${replaySelect(opts)}) TO STDOUT (FORMAT binary)`);
  } catch (e) {
    await sql.end({ timeout: 0 }).catch(() => {});
    throw e;
  }
  return src;
}

/** PGlite: a WITH HOLD cursor, FETCHed a page at a time (see the module header). */
class PgliteSource extends SourceBase {
  private rows: unknown[][] = [];
  private at = 0;
  private lastKey: ReplayPosition | null = null;
  private cursorOpen = true;

  constructor(private readonly db: PGlite, private readonly cursor: string, private readonly pageTicks: number, batchTicks: number, attrs: Attributes) {
    super(batchTicks, attrs);
  }

  async next(): Promise<number> {
    if (this.ended || this.closed) return 0;
    const f = this.batch;
    let k = 0;
    while (k < this.batchTicks) {
      if (this.at === this.rows.length) {
        if (!this.cursorOpen) break;
        const r = await this.db.query<unknown[]>(`FETCH ${this.pageTicks} FROM ${this.cursor}`, [], { rowMode: 'array' });
        this.rows = r.rows;
        this.at = 0;
        if (this.rows.length < this.pageTicks) await this.closeCursor();
        if (this.rows.length === 0) break;
      }
      this.record(this.rows[this.at++], f, k * N_FIELDS);
      k++;
    }
    this.delivered += k;
    if (k === 0) this.ended = true;
    return k;
  }

  /**
   * One row (REPLAY_PGLITE_SELECT's columns) into the record at `o`. Times arrive as epoch µs
   * (int8), so no Date is made.
   */
  private record(r: unknown[], f: Float64Array, o: number): void {
    const token = r[0] as number;
    const timeUs = r[1] as number;
    const recvUs = r[2] as number;
    f[o + N.TOKEN] = token;
    f[o + N.EXCH_TIME_MS] = timeUs / 1000;
    f[o + N.RECV_TIME_US] = recvUs;
    f[o + N.KIND] = r[3] as number;
    f[o + N.PRICE] = r[4] as number;
    f[o + N.LAST_QTY] = r[5] as number;
    f[o + N.AVG_PRICE] = r[6] as number;
    f[o + N.VOLUME] = r[7] as number;
    f[o + N.VOLUME_DELTA] = r[8] as number;
    f[o + N.BUY_QTY] = r[9] as number;
    f[o + N.SELL_QTY] = r[10] as number;
    f[o + N.OPEN] = r[11] as number;
    f[o + N.HIGH] = r[12] as number;
    f[o + N.LOW] = r[13] as number;
    f[o + N.CLOSE] = r[14] as number;
    f[o + N.CHANGE_PCT] = r[15] as number;
    f[o + N.OI] = r[16] as number;
    f[o + N.OI_HIGH] = r[17] as number;
    f[o + N.OI_LOW] = r[18] as number;
    const ltt = r[19] as number | null;
    f[o + N.LAST_TRADE_MS] = ltt === null ? 0 : ltt / 1000;
    const depth = r[20] as number[][] | null;
    const base = o + N.DEPTH;
    if (depth === null) {
      f[o + N.DEPTH_LEVELS] = 0;
      for (let i = 0; i < DEPTH_VALUES; i++) f[base + i] = 0;
    } else {
      f[o + N.DEPTH_LEVELS] = 5;
      let i = 0;
      for (let a = 0; a < depth.length; a++) {
        const row = depth[a];
        for (let b = 0; b < row.length && i < DEPTH_VALUES; b++) f[base + i++] = row[b] ?? 0;
      }
      for (; i < DEPTH_VALUES; i++) f[base + i] = 0;
    }
    const conn = r[21] as number;
    const seq = r[22] as number;
    f[o + N.CONN] = conn;
    f[o + N.SEQ] = seq;
    this.attrs.fill(f, o, token);
    fillConstant(f, o);
    this.lastKey = null;
    this.lastTimeUs = timeUs;
    this.lastToken = token;
    this.lastRecvUs = recvUs;
    this.lastConn = conn;
    this.lastSeq = seq;
  }

  private lastTimeUs = 0;
  private lastToken = 0;
  private lastRecvUs = 0;
  private lastConn = 0;
  private lastSeq = 0;

  protected last(): ReplayPosition {
    return (this.lastKey ??= { timeUs: this.lastTimeUs, token: this.lastToken, recvUs: this.lastRecvUs, conn: this.lastConn, seq: this.lastSeq });
  }

  private async closeCursor(): Promise<void> {
    if (!this.cursorOpen) return;
    this.cursorOpen = false;
    await this.db.exec(`CLOSE ${this.cursor}`);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.ended = true;
    this.rows = [];
    await this.closeCursor();
  }
}

/** Epoch microseconds of a timestamptz column, as int8: exact, and no Date per row. */
const epochUs = (col: string): string => `((extract(epoch from ${col}) * 1000000)::int8)`;

/** The SELECT the PGlite source's cursor runs: REPLAY_COLUMNS with times as epoch µs. */
export function replayPgliteSelect(opts: Pick<TickSourceOptions, 'fromMs' | 'toMs' | 'tokens' | 'after'>): string {
  const cols = REPLAY_COLUMNS.map((c) => (c === 'time' || c === 'recv_time' || c === 'last_trade_time' ? `${epochUs(c)} AS ${c}` : c));
  return `SELECT ${cols.join(', ')} FROM market_data ${replayWhere(opts)}`;
}

let cursors = 0;

async function openPglite(db: PGlite, opts: TickSourceOptions, attrs: Attributes, batchTicks: number): Promise<TickSource> {
  // Unique across the process's threads (each replay session's thread has its own counter).
  const cursor = `replay_${process.pid}_${threadId}_${++cursors}`;
  await db.exec(`DECLARE ${cursor} NO SCROLL CURSOR WITH HOLD FOR ${replayPgliteSelect(opts)}`);
  return new PgliteSource(db, cursor, opts.pageTicks ?? DEFAULT_PAGE, batchTicks, attrs);
}

