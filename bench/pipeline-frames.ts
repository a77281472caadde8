/**
 * Frames for the pipeline bench: realistic full-mode Kite frames from the simulator's market
 * model (src/kite/sim/market.ts), encoded once, then replayed for as long as a run lasts.
 *
 * Replaying the same bytes would not be realistic input: on the second pass every token's volume
 * and OI high would fall (quarantined as volume_decreased / oi_range) and its exchange time would
 * drift minutes behind the receive time (time_past). So before a frame is pushed, `prepare`
 * rewrites, in place, the fields a real feed moves forward: exchange and last-trade time become
 * the push time's second, and volume, OI and OI day high are lifted by `pass` × the token's span
 * over the whole set, so they keep growing across passes. That is 3-5 stores per packet at known
 * offsets; the bench prints what it costs next to the pipeline's own figures.
 */
import { encodeFrame, PacketLength } from '../src/kite/codec.ts';
import type { Instrument } from '../src/core/instrument.ts';
import { selectUniverse } from '../src/kite/selection.ts';
import { buildNifty50Universe } from '../src/kite/sim/universe.ts';
import { Market } from '../src/kite/sim/market.ts';

/** Byte offsets inside a full (184) packet and an index full (32) packet; see codec.ts. */
const FULL = { VOLUME: 16, LAST_TRADE_TIME: 44, OI: 48, OI_HIGH: 52, EXCHANGE_TIME: 60 } as const;
const INDEX_FULL_EXCHANGE_TIME = 28;

/** The service's default universe (OPTION_STRIKES=10, OPTION_EXPIRIES=2) as of `today`. */
export function defaultUniverse(today = new Date()): Instrument[] {
  const all = buildNifty50Universe({ today });
  const tokens = selectUniverse(all, { strikes: 10, expiries: 2, indexLevel: 26_000, today });
  const byToken = new Map(all.map((i) => [i.instrumentToken, i]));
  return tokens.map((t) => byToken.get(t)!);
}

export class FrameSet {
  readonly frames: Uint8Array[] = [];
  /** Packets per frame. */
  readonly counts: Int32Array;
  readonly ticks: number;
  readonly bytes: number;
  private readonly views: DataView[] = [];
  /** Packet k of the set lives in frame f for pktStart[f] <= k < pktStart[f + 1]. */
  private readonly pktStart: Int32Array;
  private readonly pos: Int32Array;
  private readonly isFull: Uint8Array;
  private readonly tok: Int32Array;
  private readonly vol0: Float64Array;
  private readonly oi0: Float64Array;
  private readonly oiHigh0: Float64Array;
  private readonly volSpan: Float64Array;
  private readonly oiSpan: Float64Array;
  private readonly maxVol: number;
  private readonly maxOiSpan: number;
  private readonly maxVolSpan: number;

  /**
   * About `ticks` packets in frames of 1..`maxPerFrame` (one packet per token at most, as in one
   * Kite snapshot), drawn by the market model with its clock held still.
   */
  constructor(instruments: readonly Instrument[], ticks: number, maxPerFrame: number, seed = 7) {
    const now = Date.now();
    const market = new Market({ instruments, seed, clock: () => now });
    const tokens = instruments.map((i) => i.instrumentToken);
    const tokIndex = new Map(tokens.map((t, i) => [t, i]));
    let x = seed;
    const rnd = (): number => {
      x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
      return x / 2 ** 32;
    };
    const per = Math.min(maxPerFrame, tokens.length);
    const pos: number[] = [];
    const isFull: number[] = [];
    const tok: number[] = [];
    const vol0: number[] = [];
    const oi0: number[] = [];
    const oiHigh0: number[] = [];
    const starts: number[] = [0];
    const firstVol = new Float64Array(tokens.length).fill(-1);
    const lastVol = new Float64Array(tokens.length);
    const firstOiHigh = new Float64Array(tokens.length).fill(-1);
    const lastOiHigh = new Float64Array(tokens.length);
    let total = 0;
    let bytes = 0;
    while (total < ticks) {
      const n = 1 + Math.floor(rnd() * per);
      const frameTicks = market.nextTicks(n, tokens, 'full');
      const frame = encodeFrame(frameTicks);
      let p = 2;
      for (const t of frameTicks) {
        const len = (frame[p] << 8) | frame[p + 1];
        p += 2;
        const i = tokIndex.get(t.token)!;
        pos.push(p);
        isFull.push(len === PacketLength.FULL ? 1 : 0);
        tok.push(i);
        vol0.push(t.volume);
        oi0.push(t.oi);
        oiHigh0.push(t.oiHigh);
        if (firstVol[i] < 0) {
          firstVol[i] = t.volume;
          firstOiHigh[i] = t.oiHigh;
        }
        lastVol[i] = t.volume;
        lastOiHigh[i] = t.oiHigh;
        p += len;
      }
      this.frames.push(frame);
      this.views.push(new DataView(frame.buffer, frame.byteOffset, frame.byteLength));
      total += frameTicks.length;
      bytes += frame.byteLength;
      starts.push(total);
    }
    this.ticks = total;
    this.bytes = bytes;
    this.counts = new Int32Array(this.frames.length);
    for (let f = 0; f < this.frames.length; f++) this.counts[f] = starts[f + 1] - starts[f];
    this.pktStart = Int32Array.from(starts);
    this.pos = Int32Array.from(pos);
    this.isFull = Uint8Array.from(isFull);
    this.tok = Int32Array.from(tok);
    this.vol0 = Float64Array.from(vol0);
    this.oi0 = Float64Array.from(oi0);
    this.oiHigh0 = Float64Array.from(oiHigh0);
    this.volSpan = new Float64Array(tokens.length);
    this.oiSpan = new Float64Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      // +1: the first packet of the next pass then carries a volume delta of 1, not 0.
      this.volSpan[i] = firstVol[i] < 0 ? 0 : lastVol[i] - firstVol[i] + 1;
      this.oiSpan[i] = firstOiHigh[i] < 0 ? 0 : lastOiHigh[i] - firstOiHigh[i];
    }
    const max = (a: ArrayLike<number>): number => {
      let m = 0;
      for (let i = 0; i < a.length; i++) if (a[i] > m) m = a[i];
      return m;
    };
    this.maxVol = Math.max(max(this.vol0), max(this.oiHigh0));
    this.maxVolSpan = max(this.volSpan);
    this.maxOiSpan = max(this.oiSpan);
  }

  get length(): number {
    return this.frames.length;
  }

  /** Passes before volume or OI would pass 2^32 (where the wire field wraps). */
  maxPasses(): number {
    return Math.floor((0xffff_ffff - this.maxVol) / Math.max(1, this.maxVolSpan, this.maxOiSpan));
  }

  /** Rewrite frame `f` for replay pass `pass`, pushed at epoch second `nowSec` (see the header). */
  prepare(f: number, pass: number, nowSec: number): void {
    const dv = this.views[f];
    const end = this.pktStart[f + 1];
    for (let k = this.pktStart[f]; k < end; k++) {
      const p = this.pos[k];
      if (this.isFull[k] === 1) {
        const t = this.tok[k];
        dv.setUint32(p + FULL.VOLUME, this.vol0[k] + pass * this.volSpan[t]);
        dv.setUint32(p + FULL.OI, this.oi0[k] + pass * this.oiSpan[t]);
        dv.setUint32(p + FULL.OI_HIGH, this.oiHigh0[k] + pass * this.oiSpan[t]);
        dv.setInt32(p + FULL.LAST_TRADE_TIME, nowSec);
        dv.setInt32(p + FULL.EXCHANGE_TIME, nowSec);
      } else {
        dv.setInt32(p + INDEX_FULL_EXCHANGE_TIME, nowSec);
      }
    }
  }
}
