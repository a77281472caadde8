/**
 * The feed's per-tick cost on the server's main thread, in one run: our tick record encoder
 * (src/gateway/msgpack-encoder.ts) writing straight from canonical ticks and the fan-out (fanout.ts) copying
 * them into one frame per subscription set, against what the feed did before (a tickFor object per
 * tick, msgpackr's pack per frame) and against JSON.stringify per tick (what the `ws` baseline of
 * bench/feed.bench.ts pays). Same ticks, same frames: the bytes are checked equal before timing.
 *
 * Input: one drain of DRAIN canonical full-mode ticks built from the simulator's market model (a
 * tick for every instrument of universe(40, 2), in random order). Two fan-out shapes:
 * - "one set": every client follows everything (bench/feed case 1): one frame of all the ticks.
 * - "100 sets": each client follows its own 1 % (case 2): 100 frames of ~4 ticks.
 *
 * Clock: process CPU time (bench/support.ts CPU_CLOCK). After the table, a long run of ours with
 * GC events counted shows that the hot path allocates nothing per tick.
 */
import { Bench } from 'tinybench';
import { Fanout, FRAME_HEAD } from '../src/gateway/fanout.ts';
import { createPackr, FEED_MODES, tickFor } from '../src/gateway/messages.ts';
import { encodeSymbol, RECORD_FRAMES, RecordWriter } from '../src/gateway/msgpack-encoder.ts';
import { Market } from '../src/kite/sim/market.ts';
import { N_FIELDS } from '../src/core/tick.ts';
import { universe } from '../test/pipeline/harness.ts';
import { QUICK, record } from './report.ts';
import { canonicalFromWire, CPU_CLOCK, forceGc, GcCounter, loadLine } from './support.ts';

const DRAIN = 376;
const SETS = 100;
const LONG_RUN_TICKS = QUICK ? 500_000 : 5_000_000;

/** Canonical full ticks from the market model's wire ticks (prices to rupees, times to ms). */
function drain(): { f: Float64Array; rows: number[]; symbols: string[] } {
  const instruments = universe(40, 2);
  const market = new Market({ instruments, seed: 21 });
  const tokens = instruments.map((i) => i.instrumentToken);
  const rowOf = new Map(tokens.map((t, r) => [t, r]));
  // Warm the model so volumes, OI and depth are mid-session values, not zeros.
  for (let i = 0; i < 20; i++) market.nextTicks(DRAIN, tokens, 'full');
  const wire = market.nextTicks(DRAIN, tokens, 'full');
  const f = new Float64Array(wire.length * N_FIELDS);
  const rows: number[] = [];
  wire.forEach((t, k) => {
    canonicalFromWire(t, f, k * N_FIELDS);
    rows.push(rowOf.get(t.token)!);
  });
  return { f, rows, symbols: instruments.map((i) => i.tradingsymbol) };
}

export default async function run(): Promise<void> {
  console.log(`clock: process CPU time; ${loadLine()}`);
  const { f, rows, symbols } = drain();
  const n = rows.length;
  const symbolBytes = symbols.map(encodeSymbol);
  const packr = createPackr(true);
  const FULL = 2;

  // Ours: encode each tick once into the arena, hand the span to the fan-out, publish at the end.
  const published: Uint8Array[] = [];
  let keep = false;
  let sink = 0;
  const ours = (sets: number) => {
    const w = new RecordWriter(1 << 18, FRAME_HEAD);
    const fan = new Fanout({
      topicPrefix: '', rows: symbols.length, encodings: 3,
      publish: (_t, frame) => {
        sink += frame.length;
        if (keep) published.push(frame.slice());
      },
    });
    for (let s = 0; s < sets; s++) {
      const pairs = sets === 1 ? symbols.map((_, r) => r * 3 + FULL) : symbols.map((_, r) => r).filter((r) => r % sets === s).map((r) => r * 3 + FULL);
      fan.join('r', pairs, RECORD_FRAMES);
    }
    return () => {
      for (let k = 0; k < n; k++) {
        const row = rows[k];
        const start = w.pos;
        w.tick(f, k * N_FIELDS, FULL, symbolBytes[row]);
        fan.add(w, row * 3 + FULL, start, w.pos);
      }
      fan.flush(w);
      w.reset();
    };
  };
  // Before: a tickFor object per tick, msgpackr's pack per frame (one per set, the same frames).
  const before = (sets: number) => () => {
    const d: unknown[][] = Array.from({ length: sets }, () => []);
    for (let k = 0; k < n; k++) d[rows[k] % sets].push(tickFor(f, k * N_FIELDS, FEED_MODES[FULL], symbols[rows[k]]));
    for (let s = 0; s < sets; s++) {
      if (d[s].length === 0) continue;
      const frame = packr.pack({ type: 'ticks', d: d[s] });
      sink += frame.length;
      if (keep) published.push(Uint8Array.from(frame));
    }
  };
  // The ws baseline's server: the official client's tick object (here ours) stringified, once per tick.
  const json = () => {
    for (let k = 0; k < n; k++) sink += JSON.stringify(tickFor(f, k * N_FIELDS, FEED_MODES[FULL], symbols[rows[k]])).length;
  };

  // Same bytes, frame for frame, before timing anything. Frames follow the order sets first
  // gathered a tick; sort both lists to compare sets regardless of that order.
  for (const sets of [1, SETS]) {
    const hex = (fn: () => void): string[] => {
      published.length = 0;
      keep = true;
      fn();
      keep = false;
      return published.map((b) => Buffer.from(b).toString('hex')).sort();
    };
    const a = hex(ours(sets));
    const b = hex(before(sets));
    if (a.length !== b.length || a.some((x, i) => x !== b[i])) throw new Error(`${sets} set(s): our frames differ from msgpackr's`);
  }
  console.log(`one drain: ${n} full ticks of ${symbols.length} instruments; frames byte-identical to msgpackr's in both shapes`);

  const bench = new Bench({ name: 'wire', time: QUICK ? 150 : 1500, warmupTime: QUICK ? 50 : 300, timestampProvider: CPU_CLOCK });
  const tasks: [string, () => void][] = [
    ['ours: encode once + fan-out, one set', ours(1)],
    ['before: tickFor + msgpackr, one set', before(1)],
    [`ours: encode once + fan-out, ${SETS} sets`, ours(SETS)],
    [`before: tickFor + msgpackr, ${SETS} sets`, before(SETS)],
    ['ws baseline: JSON.stringify per tick', json],
  ];
  for (const [name, fn] of tasks) bench.add(name, fn);
  await bench.run();
  const nsPerTick = (name: string): number => (bench.getTask(name)!.result as { latency: { mean: number } }).latency.mean * 1e6 / n;
  const rowsOut = tasks.map(([name]) => ({ task: name, 'ns per tick (CPU)': nsPerTick(name).toFixed(0), 'M ticks/s on one core': (1e3 / nsPerTick(name)).toFixed(2) }));
  console.table(rowsOut);
  const r1 = nsPerTick(tasks[1][0]) / nsPerTick(tasks[0][0]);
  const r100 = nsPerTick(tasks[3][0]) / nsPerTick(tasks[2][0]);
  const rj = nsPerTick(tasks[4][0]) / nsPerTick(tasks[0][0]);
  console.log(`ours vs before: ${r1.toFixed(1)}x (one set), ${r100.toFixed(1)}x (${SETS} sets); vs JSON.stringify per tick: ${rj.toFixed(1)}x`);
  record({
    bench: 'wire', name: 'encode + fan-out, one set', unit: 'ns/tick CPU', better: 'lower', value: nsPerTick(tasks[0][0]),
    baseline: { name: 'tickFor + msgpackr pack', value: nsPerTick(tasks[1][0]) },
  });
  record({
    bench: 'wire', name: `encode + fan-out, ${SETS} sets`, unit: 'ns/tick CPU', better: 'lower', value: nsPerTick(tasks[2][0]),
    baseline: { name: 'tickFor + msgpackr pack', value: nsPerTick(tasks[3][0]) },
  });

  // Long run: GC events while ours encodes LONG_RUN_TICKS ticks (100 sets, the shape with most frames).
  const op = ours(SETS);
  forceGc();
  const gc = new GcCounter();
  gc.start();
  const t0 = process.cpuUsage();
  for (let done = 0; done < LONG_RUN_TICKS; done += n) op();
  const cpu = process.cpuUsage(t0);
  await gc.stop();
  record({ bench: 'wire', name: `GCs per 1M ticks, ${SETS} sets, long run`, unit: 'GCs', better: 'lower', value: (gc.total() / LONG_RUN_TICKS) * 1e6 });
  console.log(`long run: ${(LONG_RUN_TICKS / 1e6).toFixed(0)}M ticks in ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s CPU, ` +
    `${gc.total()} GCs (${gc.minor} minor, ${gc.major} major) = ${((gc.total() / LONG_RUN_TICKS) * 1e6).toFixed(2)} per 1M ticks; sink ${sink > 0 ? 'ok' : 'empty'}`);
}
