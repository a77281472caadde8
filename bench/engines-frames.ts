/**
 * The messages the engines bench (bench/engines.bench.ts) sends: what one hub drain of the ingest
 * would hand a message engine, built once with the project's own encoders, then replayed.
 *
 * Per tick, the bytes a gateway re-publishes without decoding: the full-mode msgpack tick record
 * as `/ws` sends it (RecordWriter#tick, records on, src/gateway/msgpack-encoder.ts) and the full
 * Kite packet as `/kite` sends it (writeWirePacket, src/kite/codec.ts), each behind a u16 length
 * (a Kite frame's own packet layout). Per drain, one in-progress bar update per timeframe
 * (DEFAULT_TIMEFRAMES, 5) for each instrument the drain touched, as a shard emits them once per
 * drain (emitUpdates in workers/shard.ts), each the msgpack bar record the feed's packr writes.
 * Ticks come from the simulator's market model over the service's default universe
 * (bench/pipeline-frames.ts, 136 instruments), converted as the pipeline would (canonicalFromWire).
 *
 * A message:
 *
 * | offset | type   | field                                                                 |
 * |--------|--------|-----------------------------------------------------------------------|
 * | 0      | f64 LE | publish time, ms since the epoch: performance.timeOrigin + now()      |
 * | 8      | u32 LE | sequence number, per publisher run                                    |
 * | 12     | u16 LE | ticks in the message                                                  |
 * | 14     | u16 LE | bars in the message                                                   |
 * | 16     |        | per tick: u16 BE length + tick record, u16 BE length + Kite packet    |
 * |        |        | then per bar: u16 BE length + bar record                              |
 *
 * Subscribers read the 16-byte head only (the gateway forwards the rest as it is).
 * `perInstrument` messages carry one tick and that instrument's 5 bars: the conflating JetStream
 * variant's one subject per instrument.
 */
import { performance } from 'node:perf_hooks';
import type { Instrument } from '../src/core/instrument.ts';
import { B, BAR_FIELDS } from '../src/core/bar.ts';
import { DEFAULT_TIMEFRAMES, parseTimeframe, bucketStart } from '../src/core/ist.ts';
import { KIND_LENGTH } from '../src/core/packet-slot.ts';
import { N, N_FIELDS } from '../src/core/tick.ts';
import { barFor, createPackr } from '../src/gateway/messages.ts';
import { encodeSymbol, RecordWriter } from '../src/gateway/msgpack-encoder.ts';
import { writeWirePacket } from '../src/kite/codec.ts';
import { Market } from '../src/kite/sim/market.ts';
import { canonicalFromWire } from './support.ts';

export const HEAD = { SENT_MS: 0, SEQ: 8, TICKS: 12, BARS: 14, BYTES: 16 } as const;

/** Wall-clock ms with sub-µs resolution, comparable across processes on one machine. */
export const wallMs = (): number => performance.timeOrigin + performance.now();

export interface Template {
  bytes: Buffer;
  ticks: number;
  bars: number;
  /** Instrument token (per-instrument messages only; 0 otherwise). */
  token: number;
}

/** Where a bench run takes its messages: EngineFrames, or messages of a set size (sizedTemplate). */
export interface FrameSource {
  /** Messages of `size` ticks each. */
  batches(size: number): Template[];
  /** One message per tick, for the per-instrument subjects. */
  perInstrument(): Template[];
}

/**
 * A message of `bytes` bytes with this layout's head (`ticks`, `bars`) and zeros after it: the
 * size of a message from another layout (the service's drain message, src/scale/drain-message.ts),
 * for engines that only carry bytes. Neither Redis nor NATS looks at (or compresses) the payload.
 */
export function sizedTemplate(bytes: number, ticks: number, bars: number): Template {
  if (bytes < HEAD.BYTES) throw new RangeError(`sizedTemplate: bytes must be at least ${HEAD.BYTES}, got ${bytes}`);
  const b = Buffer.alloc(bytes);
  b.writeUInt16LE(Math.min(ticks, 0xffff), HEAD.TICKS);
  b.writeUInt16LE(Math.min(bars, 0xffff), HEAD.BARS);
  return { bytes: b, ticks, bars, token: 0 };
}

export class EngineFrames implements FrameSource {
  readonly instruments: readonly Instrument[];
  /** Tick i's bytes: u16 length + record, u16 length + Kite packet. */
  private readonly tickBytes: Buffer[] = [];
  private readonly tickToken: number[] = [];
  /** Tick i's instrument's 5 bar records as of tick i, each behind a u16 length. */
  private readonly barBytes: Buffer[] = [];
  private readonly cache = new Map<number, Template[]>();
  private perInst: Template[] | null = null;
  readonly recordBytes: number;
  readonly packetBytes: number;
  readonly barRecordBytes: number;

  constructor(instruments: readonly Instrument[], ticks: number, seed = 5) {
    this.instruments = instruments;
    const now = Date.now();
    const market = new Market({ instruments, seed, clock: () => now });
    const tokens = instruments.map((i) => i.instrumentToken);
    const symbols = new Map(instruments.map((i) => [i.instrumentToken, encodeSymbol(i.tradingsymbol)]));
    const names = new Map(instruments.map((i) => [i.instrumentToken, i.tradingsymbol]));
    const w = new RecordWriter(1 << 12);
    const f = new Float64Array(N_FIELDS);
    const bar = new Float64Array(BAR_FIELDS);
    const packr = createPackr(true);
    const tfs = DEFAULT_TIMEFRAMES.map(parseTimeframe);
    let rec = 0;
    let pkt = 0;
    let barRec = 0;
    while (this.tickBytes.length < ticks) {
      for (const t of market.nextTicks(Math.min(tokens.length, ticks - this.tickBytes.length), tokens, 'full')) {
        canonicalFromWire(t, f, 0);
        w.reset();
        w.tick(f, 0, 2, symbols.get(t.token)!, true);
        const plen = KIND_LENGTH[t.kind];
        const out = Buffer.alloc(2 + w.pos + 2 + plen);
        out.writeUInt16BE(w.pos, 0);
        out.set(w.buf.subarray(0, w.pos), 2);
        out.writeUInt16BE(plen, 2 + w.pos);
        writeWirePacket(new DataView(out.buffer, out.byteOffset, out.byteLength), 4 + w.pos, t);
        rec += w.pos;
        pkt += plen;
        this.tickBytes.push(out);
        this.tickToken.push(t.token);
        const bars: Buffer[] = [];
        for (const tf of tfs) {
          bar[B.TOKEN] = t.token;
          bar[B.TF_MS] = tf;
          bar[B.START_MS] = bucketStart(f[N.EXCH_TIME_MS], tf);
          bar[B.END_MS] = bar[B.START_MS] + tf;
          bar[B.OPEN] = f[N.OPEN];
          bar[B.HIGH] = f[N.HIGH];
          bar[B.LOW] = f[N.LOW];
          bar[B.CLOSE] = f[N.PRICE];
          bar[B.VOLUME] = f[N.VOLUME];
          bar[B.VWAP] = f[N.DAY_VWAP];
          bar[B.TRADES] = 17;
          bar[B.OI] = f[N.OI];
          bar[B.TICKS] = 17;
          bar[B.FLAGS] = 0;
          const r = packr.pack(barFor(bar, 0, names.get(t.token)!));
          const b = Buffer.alloc(2 + r.length);
          b.writeUInt16BE(r.length, 0);
          b.set(r, 2);
          barRec += r.length;
          bars.push(b);
        }
        this.barBytes.push(Buffer.concat(bars));
      }
    }
    const n = this.tickBytes.length;
    this.recordBytes = rec / n;
    this.packetBytes = pkt / n;
    this.barRecordBytes = barRec / (n * tfs.length);
  }

  get ticks(): number {
    return this.tickBytes.length;
  }

  /** Messages of `size` consecutive ticks (with their drain's bars), as many as the set holds. */
  batches(size: number): Template[] {
    let list = this.cache.get(size);
    if (list) return list;
    list = [];
    const n = this.tickBytes.length;
    const count = Math.max(1, Math.floor(n / size));
    for (let m = 0; m < count; m++) {
      const parts: Buffer[] = [];
      const lastOf = new Map<number, number>();
      for (let k = 0; k < size; k++) {
        const i = (m * size + k) % n;
        parts.push(this.tickBytes[i]);
        lastOf.set(this.tickToken[i], i);
      }
      for (const i of lastOf.values()) parts.push(this.barBytes[i]);
      list.push(this.make(parts, size, lastOf.size * DEFAULT_TIMEFRAMES.length, 0));
    }
    this.cache.set(size, list);
    return list;
  }

  /** One message per tick: the tick and its instrument's bars (the per-instrument subjects). */
  perInstrument(): Template[] {
    if (this.perInst) return this.perInst;
    this.perInst = this.tickBytes.map((t, i) => this.make([t, this.barBytes[i]], 1, DEFAULT_TIMEFRAMES.length, this.tickToken[i]));
    return this.perInst;
  }

  private make(parts: Buffer[], ticks: number, bars: number, token: number): Template {
    const head = Buffer.alloc(HEAD.BYTES);
    head.writeUInt16LE(ticks, HEAD.TICKS);
    head.writeUInt16LE(bars, HEAD.BARS);
    return { bytes: Buffer.concat([head, ...parts]), ticks, bars, token };
  }
}

/**
 * A copy of `t` stamped with `seq` and the time now: a fresh buffer per publish, since a client
 * library may still hold the previous one in its write queue (the ingest would copy its arena
 * likewise).
 */
export function stamp(t: Template, seq: number): Buffer {
  const b = Buffer.allocUnsafe(t.bytes.length);
  t.bytes.copy(b);
  b.writeUInt32LE(seq >>> 0, HEAD.SEQ);
  b.writeDoubleLE(wallMs(), HEAD.SENT_MS);
  return b;
}
