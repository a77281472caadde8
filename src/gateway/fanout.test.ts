import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Fanout, FRAME_HEAD, type FrameFormat } from './fanout.ts';
import { RecordWriter } from './msgpack-encoder.ts';

/** Header: one byte, the item count; items are single bytes naming (row, encoding). */
const COUNT: FrameFormat = {
  headerBytes: () => 1,
  writeHeader(out, pos, count) {
    out[pos] = count;
    return pos + 1;
  },
};

function setup(opts: { maxFrameBytes?: number; maxFrameItems?: number } = {}) {
  const frames: { topic: string; items: number[] }[] = [];
  const fan = new Fanout({
    topicPrefix: '', rows: 8, encodings: 2, ...opts,
    publish(topic, frame, items) {
      expect(frame[0]).toBe(items);
      frames.push({ topic, items: [...frame.subarray(1)] });
    },
  });
  const arena = new RecordWriter(16, FRAME_HEAD);
  /** One tick of `row` arriving: encoded once per encoding anyone wants. */
  const tick = (row: number): void => {
    for (let e = 0; e < 2; e++) {
      const p = fan.pair(row, e);
      if (!fan.wants(p)) continue;
      arena.ensure(1);
      arena.buf[arena.pos] = p;
      fan.add(arena, p, arena.pos, arena.pos + 1);
      arena.pos++;
    }
  };
  const flush = (): void => {
    fan.flush(arena);
    arena.reset();
  };
  return { fan, frames, tick, flush };
}

describe('fan-out by subscription set', () => {
  it('gives clients following the same pairs one shared set, and one frame per drain with every tick in arrival order', () => {
    const { fan, frames, tick, flush } = setup();
    const a = fan.join('r', [fan.pair(1, 0), fan.pair(2, 0)], COUNT);
    const b = fan.join('r', [fan.pair(2, 0), fan.pair(1, 0), fan.pair(1, 0)], COUNT);
    expect(b).toBe(a);
    expect(a.refs).toBe(2);
    expect(fan.size).toBe(1);
    for (const row of [1, 3, 2, 1, 2]) tick(row);
    flush();
    expect(frames).toEqual([{ topic: a.topic, items: [fan.pair(1, 0), fan.pair(2, 0), fan.pair(1, 0), fan.pair(2, 0)] }]);
  });

  it('keeps sets of other pairs, encodings or families apart, each frame holding only its own pairs', () => {
    const { fan, frames, tick, flush } = setup();
    const a = fan.join('r', [fan.pair(1, 0)], COUNT);
    const b = fan.join('r', [fan.pair(1, 1)], COUNT);
    const c = fan.join('r', [fan.pair(1, 0), fan.pair(5, 0)], COUNT);
    const d = fan.join('p', [fan.pair(1, 0)], COUNT);
    expect(new Set([a, b, c, d]).size).toBe(4);
    tick(5);
    tick(1);
    tick(6);
    flush();
    const byTopic = Object.fromEntries(frames.map((f) => [f.topic, f.items]));
    expect(byTopic).toEqual({
      [c.topic]: [fan.pair(5, 0), fan.pair(1, 0)],
      [a.topic]: [fan.pair(1, 0)],
      [b.topic]: [fan.pair(1, 1)],
      [d.topic]: [fan.pair(1, 0)],
    });
    expect(frames).toHaveLength(4);
  });

  it('publishes nothing for a set none of whose pairs ticked, and nothing twice', () => {
    const { fan, frames, tick, flush } = setup();
    fan.join('r', [fan.pair(7, 0)], COUNT);
    tick(1);
    flush();
    flush();
    expect(frames).toEqual([]);
    expect(fan.wants(fan.pair(1, 0))).toBe(false);
  });

  it('splits a frame at the item and byte bounds without losing or reordering a tick', () => {
    for (const bound of [{ maxFrameItems: 3 }, { maxFrameBytes: 2 }]) {
      const { fan, frames, tick, flush } = setup(bound);
      const s = fan.join('r', [fan.pair(0, 0), fan.pair(0, 1)], COUNT);
      for (let i = 0; i < 4; i++) tick(0);
      flush();
      const limit = bound.maxFrameItems ?? bound.maxFrameBytes!;
      expect(frames.every((f) => f.topic === s.topic && f.items.length <= limit)).toBe(true);
      expect(frames.flatMap((f) => f.items)).toEqual(Array.from({ length: 8 }, (_, i) => fan.pair(0, i % 2)));
    }
  });

  it('builds a frame larger than the arena frame head past the items, byte for byte', () => {
    const frames: Uint8Array[] = [];
    const fan = new Fanout({ topicPrefix: '', rows: 1, encodings: 1, maxFrameItems: 1 << 20, maxFrameBytes: 1 << 20, publish: (_t, f) => frames.push(f.slice()) });
    const set = fan.join('r', [0], { headerBytes: () => 4, writeHeader: (out, pos, n) => { new DataView(out.buffer, out.byteOffset).setUint32(pos, n); return pos + 4; } });
    const arena = new RecordWriter(16, FRAME_HEAD);
    const items = Math.ceil((3 * FRAME_HEAD) / 100);
    for (let i = 0; i < items; i++) {
      arena.ensure(100);
      arena.buf.fill(i & 0xff, arena.pos, arena.pos + 100);
      fan.add(arena, 0, arena.pos, arena.pos + 100);
      arena.pos += 100;
    }
    fan.flush(arena);
    expect(frames).toHaveLength(1);
    expect(set.count).toBe(0);
    const f = frames[0];
    expect(f.length).toBe(4 + items * 100);
    expect(new DataView(f.buffer).getUint32(0)).toBe(items);
    for (let i = 0; i < items; i += 97) expect(f[4 + i * 100 + 99]).toBe(i & 0xff);
  });

  it('drops a set with its last client, after publishing what it had gathered', () => {
    const { fan, frames, tick } = setup();
    const a = fan.join('r', [fan.pair(3, 0)], COUNT);
    fan.join('r', [fan.pair(3, 0)], COUNT);
    fan.leave(a);
    expect(fan.size).toBe(1);
    tick(3);
    fan.leave(a);
    expect(fan.size).toBe(0);
    expect(fan.wants(fan.pair(3, 0))).toBe(false);
    expect(frames).toEqual([{ topic: a.topic, items: [fan.pair(3, 0)] }]);
    // A new set for the same pairs is a new topic: a client still subscribed to the old one gets nothing stale.
    expect(fan.join('r', [fan.pair(3, 0)], COUNT).topic).not.toBe(a.topic);
  });
});

describe('fan-out against a model', () => {
  it('publishes to each set exactly the items of its pairs, in order, whatever the joins, leaves and bounds', () => {
    type Op = { k: 'join'; pairs: number[] } | { k: 'leave'; i: number } | { k: 'tick'; row: number } | { k: 'flush' };
    const ROWS = 6;
    const opArb: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ k: fc.constant('join' as const), pairs: fc.array(fc.integer({ min: 0, max: ROWS * 2 - 1 }), { minLength: 1, maxLength: 6 }) }),
      fc.record({ k: fc.constant('leave' as const), i: fc.nat() }),
      fc.record({ k: fc.constant('tick' as const), row: fc.integer({ min: 0, max: ROWS - 1 }) }),
      fc.record({ k: fc.constant('tick' as const), row: fc.integer({ min: 0, max: ROWS - 1 }) }),
      fc.constant({ k: 'flush' as const }),
    );
    fc.assert(fc.property(fc.array(opArb, { maxLength: 80 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 12 }), (ops, maxItems, maxBytes) => {
      const got = new Map<string, number[]>();
      const fan = new Fanout({
        topicPrefix: '', rows: ROWS, encodings: 2, maxFrameItems: maxItems, maxFrameBytes: maxBytes,
        publish(topic, frame, items) {
          expect(frame[0]).toBe(items);
          expect(items).toBeLessThanOrEqual(maxItems);
          // Items are 2 bytes each here: pair, then a sequence byte.
          const list = got.get(topic) ?? [];
          for (let k = 1; k < frame.length; k += 2) list.push(frame[k] * 256 + frame[k + 1]);
          got.set(topic, list);
        },
      });
      const arena = new RecordWriter(16, FRAME_HEAD);
      const handles: { set: ReturnType<Fanout['join']>; pairs: Set<number> }[] = [];
      const expected = new Map<string, number[]>();
      let seq = 0;
      for (const op of ops) {
        if (op.k === 'join') {
          const set = fan.join('r', op.pairs, COUNT);
          handles.push({ set, pairs: new Set(op.pairs) });
          if (!expected.has(set.topic)) expected.set(set.topic, []);
        } else if (op.k === 'leave' && handles.length > 0) {
          const [h] = handles.splice(op.i % handles.length, 1);
          fan.leave(h.set);
        } else if (op.k === 'tick') {
          for (let e = 0; e < 2; e++) {
            const p = fan.pair(op.row, e);
            if (!fan.wants(p)) continue;
            seq = (seq + 1) & 0xff;
            arena.ensure(2);
            arena.buf[arena.pos] = p;
            arena.buf[arena.pos + 1] = seq;
            fan.add(arena, p, arena.pos, arena.pos + 2);
            arena.pos += 2;
            // Every live set containing the pair is owed it (a set shared by several handles once).
            const owed = new Set(handles.filter((h) => h.pairs.has(p)).map((h) => h.set.topic));
            for (const t of owed) expected.get(t)!.push(p * 256 + seq);
          }
        } else if (op.k === 'flush') {
          fan.flush(arena);
          arena.reset();
        }
      }
      fan.flush(arena);
      for (const [topic, items] of expected) expect(got.get(topic) ?? []).toEqual(items);
      for (const topic of got.keys()) expect(expected.has(topic)).toBe(true);
    }), { numRuns: 1500 });
  });
});

describe('moving a client between sets', () => {
  it('keeps the set and its references when the pairs are the same, and swaps them when not', () => {
    const { fan } = setup();
    const a = fan.move(null, 'r', [fan.pair(1, 0)], COUNT)!;
    expect(a.refs).toBe(1);
    expect(fan.move(a, 'r', [fan.pair(1, 0)], COUNT)).toBe(a);
    expect(a.refs).toBe(1);
    const b = fan.move(a, 'r', [fan.pair(1, 0), fan.pair(2, 0)], COUNT)!;
    expect(b).not.toBe(a);
    expect([a.refs, b.refs, fan.size]).toEqual([0, 1, 1]);
    expect(fan.move(b, 'r', [], COUNT)).toBeNull();
    expect(fan.size).toBe(0);
  });
});
