/**
 * Runs encoded Kite frames through the real pipeline (front → rings → shard workers → output
 * rings → readers) and collects everything that comes out, per consumer.
 */
import { encodeFrame, type WireTick } from '../../src/kite/codec.ts';
import type { Instrument } from '../../src/core/instrument.ts';
import { selectUniverse } from '../../src/kite/selection.ts';
import { buildNifty50Universe } from '../../src/kite/sim/universe.ts';
import { Market } from '../../src/kite/sim/market.ts';
import { Front } from '../../src/front.ts';
import { OutputPump, Pipeline } from '../../src/pipeline.ts';
import { N, N_FIELDS, TickConsumer } from '../../src/core/tick.ts';
import { B, BAR_FIELDS, BarFlag } from '../../src/core/bar.ts';
import { DEFAULT_TIMEFRAMES, parseTimeframe } from '../../src/core/ist.ts';

export const TODAY = new Date('2025-12-03T04:00:00Z'); // a Wednesday, 09:30 IST
export const T0 = Date.parse('2025-12-03T03:45:00Z'); // 09:15 IST

export function universe(strikes = 3, expiries = 1): Instrument[] {
  const all = buildNifty50Universe({ today: TODAY });
  const tokens = selectUniverse(all, { strikes, expiries, indexLevel: 26000, today: TODAY });
  const byToken = new Map(all.map((i) => [i.instrumentToken, i]));
  return tokens.map((t) => byToken.get(t)!);
}

export interface Frame {
  bytes: Uint8Array;
  recvUs: number;
}

/**
 * A reproducible stream: `frames` Kite frames of full packets from the simulator's market model,
 * time moving forward in random steps (silent gaps included), recv time = exchange time.
 */
export function stream(instruments: Instrument[], frames: number, seed = 1, perFrame = 40): Frame[] {
  let now = T0;
  const market = new Market({ instruments, seed, clock: () => now });
  const tokens = instruments.map((i) => i.instrumentToken);
  const out: Frame[] = [];
  let x = seed;
  const rnd = () => {
    x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    return x / 2 ** 32;
  };
  for (let f = 0; f < frames; f++) {
    const r = rnd();
    now += r < 0.02 ? 90_000 + Math.floor(rnd() * 600_000) : Math.floor(rnd() * 400);
    const ticks: WireTick[] = market.nextTicks(1 + Math.floor(rnd() * perFrame), tokens, 'full');
    out.push({ bytes: encodeFrame(ticks), recvUs: now * 1000 + 500 });
  }
  return out;
}

export interface Collected {
  /** Canonical ticks per token, in arrival order, without per-run fields (processing time, shard). */
  ticks: Map<number, number[][]>;
  quarantined: number[][];
  /** Closed bars per `${token}:${tf}`, in order. */
  bars: Map<string, number[][]>;
  updates: number;
  records: number;
}

function collector() {
  const c: Collected = { ticks: new Map(), quarantined: [], bars: new Map(), updates: 0, records: 0 };
  return {
    c,
    tick(v: { f64: Float64Array }, b: number) {
      c.records++;
      const o = b >> 1;
      const rec = Array.from(v.f64.subarray(o, o + N_FIELDS));
      rec[N.PROC_TIME_US] = 0;
      rec[N.SHARD] = 0;
      if (rec[N.TYPE] === 2) {
        c.quarantined.push(rec);
        return;
      }
      const t = rec[N.TOKEN];
      if (!c.ticks.has(t)) c.ticks.set(t, []);
      c.ticks.get(t)!.push(rec);
    },
    bar(v: { f64: Float64Array }, b: number) {
      c.records++;
      const o = b >> 1;
      const rec = Array.from(v.f64.subarray(o, o + BAR_FIELDS));
      if ((rec[B.FLAGS] & BarFlag.CLOSED) === 0) {
        c.updates++;
        return;
      }
      const key = `${rec[B.TOKEN]}:${rec[B.TF_MS]}`;
      if (!c.bars.has(key)) c.bars.set(key, []);
      c.bars.get(key)!.push(rec);
    },
  };
}

export interface RunOptions {
  workers: number;
  instruments: Instrument[];
  frames: readonly Frame[];
  ringCapacity?: number;
  outCapacity?: number;
  /** Delay per drain of the FEED consumer, ms: a slow consumer. */
  slowFeedMs?: number;
  /** Called between frames (e.g. to inject duplicates). */
  timeframes?: readonly string[];
  /** Handed the live parts once started (diagnostics). */
  inspect?: (front: Front, pipeline: Pipeline) => void;
}

export interface RunResult {
  store: Collected;
  feed: Collected;
  pipeline: ReturnType<Pipeline['counters']>;
  front: Front;
  /** The stopped pipeline: its shared stats (chain PCR) stay readable. */
  stopped: Pipeline;
}

export async function run(opts: RunOptions): Promise<RunResult> {
  const clock = new SharedArrayBuffer(8); // manual clock held at 0: bars close by ticks and at the end
  const front = new Front({ shards: opts.workers, ringCapacity: opts.ringCapacity ?? 1 << 12 });
  const pipeline = new Pipeline({
    rings: front.rings,
    instruments: opts.instruments,
    mode: 'full',
    timeframesMs: (opts.timeframes ?? DEFAULT_TIMEFRAMES).map(parseTimeframe),
    outCapacity: opts.outCapacity ?? 1 << 12,
    clock,
    onError: (shard, err) => { throw new Error(`shard ${shard}: ${err.message}`); },
  });
  opts.inspect?.(front, pipeline);
  const store = collector();
  const feed = collector();
  const storePump = new OutputPump(pipeline.reader(TickConsumer.STORE), store);
  const slow = opts.slowFeedMs ?? 0;
  let feedDone: Promise<void>;
  if (slow > 0) {
    const reader = pipeline.reader(TickConsumer.FEED);
    feedDone = (async () => {
      for (;;) {
        const n = reader.drain(feed.tick, feed.bar, 16);
        if (n === 0) {
          if (reader.done()) return;
          await reader.waitForData(50);
        } else {
          await new Promise((r) => setTimeout(r, slow));
        }
      }
    })();
  } else {
    feedDone = new OutputPump(pipeline.reader(TickConsumer.FEED), feed).done;
  }
  let seq = 0;
  for (const f of opts.frames) {
    front.onBinary(f.bytes, 0, ++seq, f.recvUs);
    // Yield now and then so readers and the front's retry timer run, as the event loop would.
    if (seq % 50 === 0) await new Promise((r) => setImmediate(r));
  }
  await front.close(60_000);
  await pipeline.stop(60_000);
  await Promise.all([storePump.done, feedDone]);
  return { store: store.c, feed: feed.c, pipeline: pipeline.counters(), front, stopped: pipeline };
}
