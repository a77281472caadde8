/**
 * The analytics pool's task (a piscina worker; started through entry.mjs): one snapshot in
 * (src/core/chain-snapshot.ts), every chain's analytics and the market breadth out, each already
 * encoded three ways (JSON for the cache and REST, the /ws frame as msgpack records and as plain
 * maps) into the shared output region the task names, so that the main thread only stores and
 * publishes bytes. The layout, the snapshot buffer and the regions arrive once, as the pool's
 * workerData (src/core/chain-snapshot.ts PoolShared).
 */
import Piscina from 'piscina';
import { performance } from 'node:perf_hooks';
import { createPackr } from '../../src/core/feed-structures.ts';
import { PARTS_PER_ITEM, PART, type AnalyticsResult, type AnalyticsTask, type PoolShared } from '../../src/core/chain-snapshot.ts';
import { computeAnalytics } from './chain.ts';

const shared = Piscina.workerData as PoolShared;
const layout = shared.layout;
const snap = new Float64Array(shared.snap);
let regions = shared.regions.map((r) => new Uint8Array(r));
const records = createPackr(true);
const plain = createPackr(false);
const utf8 = new TextEncoder();

/** Encode `d` three ways into `chunks`, noting the ranges at `parts[at..at+6)`. */
function encode(type: 'chain' | 'breadth', d: unknown, chunks: Uint8Array[], parts: Int32Array, at: number, pos: number): number {
  const frame = { type, d };
  // msgpackr returns a view of its reused buffer: each is copied out before the next pack.
  const encoded = [utf8.encode(JSON.stringify(d)), records.pack(frame).slice(), plain.pack(frame).slice()];
  const offs = [PART.JSON, PART.RECORDS, PART.PLAIN];
  for (let k = 0; k < 3; k++) {
    parts[at + offs[k]] = pos;
    pos += encoded[k].length;
    parts[at + offs[k] + 1] = pos;
    chunks.push(encoded[k]);
  }
  return pos;
}

export default function run(task: AnalyticsTask): unknown {
  const t0 = performance.now();
  if (task.regions) regions = task.regions.map((r) => new Uint8Array(r));
  const a = computeAnalytics(layout, snap);
  const items = a.groups.length + 1;
  const parts = new Int32Array(items * PARTS_PER_ITEM);
  const chunks: Uint8Array[] = [];
  let pos = 0;
  for (let i = 0; i < a.groups.length; i++) pos = encode('chain', a.groups[i], chunks, parts, i * PARTS_PER_ITEM, pos);
  pos = encode('breadth', a.breadth, chunks, parts, a.groups.length * PARTS_PER_ITEM, pos);
  const region = regions[task.out];
  // Into the shared region when it fits; else in a buffer of its own, moved to the main thread,
  // which then grows the regions for the next tasks.
  const fits = pos <= region.length;
  const target = fits ? region : new Uint8Array(pos);
  let o = 0;
  for (const c of chunks) {
    target.set(c, o);
    o += c.length;
  }
  const result: AnalyticsResult = {
    seq: task.seq, out: task.out, parts, summary: a.summary, bytes: fits ? null : target, used: pos,
    workUs: Math.round((performance.now() - t0) * 1000),
  };
  const moved = [parts.buffer, a.summary.buffer];
  if (!fits) moved.push(target.buffer);
  return Piscina.move({ [Piscina.transferableSymbol]: moved, [Piscina.valueSymbol]: result } as never);
}
