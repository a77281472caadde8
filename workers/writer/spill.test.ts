import { appendFileSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { N, N_FIELDS, NType } from '../../src/core/tick.ts';
import { BatchBuilder, batchRows, tickStream, type BatchData } from './batch.ts';
import { decodeRecord, encodeRecord, recordBytes, Spill } from './spill.ts';

const EPOCH = '0b5c3e9a-6a7d-4f1e-9c2b-1d2e3f405162';
const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'spill-test-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A batch of `n` ticks of shard `shard`'s tick stream starting at `first`; every 7th is quarantined. */
function batch(first: number, n: number, shard = 0): BatchData {
  const b = new BatchBuilder(EPOCH, tickStream(shard));
  b.begin(first);
  const f = new Float64Array(N_FIELDS);
  for (let i = 0; i < n; i++) {
    f.fill(0);
    f[N.TYPE] = (first + i) % 7 === 0 ? NType.QUARANTINE : NType.TICK;
    f[N.TOKEN] = 256265;
    f[N.REASON] = f[N.TYPE] === NType.QUARANTINE ? 3 : 0;
    f[N.EXCH_TIME_MS] = 1_764_733_500_000 + first + i;
    f[N.RECV_TIME_US] = (1_764_733_500_000 + first + i) * 1000;
    f[N.PRICE] = 26000.05 + i;
    f[N.DEPTH_LEVELS] = i % 2 === 0 ? 5 : 0;
    b.addTick(f, 0);
  }
  // Copy out: the builder's buffers are reused by the next begin().
  return {
    epoch: b.epoch, stream: b.stream, first: b.first, end: b.end, minMs: b.minMs, maxMs: b.maxMs,
    sections: b.sections.map((s) => ({ rows: s.rows, bytes: s.bytes.slice(), rel: s.rel.slice(0, s.rows), off: s.off.slice(0, s.rows) })),
  };
}

function same(a: BatchData, b: BatchData): void {
  expect({ epoch: b.epoch, stream: b.stream, first: b.first, end: b.end, minMs: b.minMs, maxMs: b.maxMs })
    .toEqual({ epoch: a.epoch, stream: a.stream, first: a.first, end: a.end, minMs: a.minMs, maxMs: a.maxMs });
  for (let i = 0; i < 3; i++) {
    expect(b.sections[i].rows).toBe(a.sections[i].rows);
    expect(Buffer.from(b.sections[i].bytes).equals(Buffer.from(a.sections[i].bytes))).toBe(true);
    expect(Array.from(b.sections[i].rel)).toEqual(Array.from(a.sections[i].rel).slice(0, a.sections[i].rows));
    expect(Array.from(b.sections[i].off)).toEqual(Array.from(a.sections[i].off).slice(0, a.sections[i].rows));
  }
}

describe('spill', () => {
  it('round-trips a batch byte for byte: id, range, rows, positions and offsets', () => {
    const a = batch(100, 50);
    const buf = new Uint8Array(recordBytes(a));
    encodeRecord(a, buf);
    same(a, decodeRecord(buf));
    expect(batchRows(a)).toBe(50);
  });

  it('replays in append order across segments and deletes each segment once it is spent', () => {
    const dir = tempDir();
    const s = new Spill({ dir, maxBytes: 1 << 30, segmentBytes: 64 * 1024 });
    const batches = Array.from({ length: 20 }, (_, i) => batch(i * 40, 40));
    for (const b of batches) expect(s.append(b)).toBe(true);
    expect(readdirSync(dir).length).toBeGreaterThan(1);
    for (const b of batches) {
      same(b, s.peek(0)!);
      s.ack(0);
    }
    expect(s.peek(0)).toBeNull();
    expect(s.bytes()).toBe(0);
    expect(readdirSync(dir).filter((f) => f.endsWith('.spill'))).toEqual([]);
  });

  it('keeps each stream in order and the streams independent of each other', () => {
    const dir = tempDir();
    const s = new Spill({ dir, maxBytes: 1 << 30, segmentBytes: 1 << 20 });
    s.append(batch(0, 10, 0));
    s.append(batch(0, 10, 1));
    s.append(batch(10, 10, 0));
    s.append(batch(10, 10, 1));
    expect(s.streams().sort()).toEqual([tickStream(0), tickStream(1)]);
    expect(s.pendingFor(tickStream(1))).toBe(2);
    // Stream 1 can be replayed while stream 0's older record waits.
    s.ack(tickStream(1));
    expect(s.peek(tickStream(1))!.first).toBe(10);
    expect(s.peek(tickStream(0))!.first).toBe(0);
    s.ack(tickStream(1));
    expect(s.streams()).toEqual([tickStream(0)]);
    s.ack(tickStream(0));
    s.ack(tickStream(0));
    expect(s.pending()).toBe(0);
    expect(readdirSync(dir).filter((f) => f.endsWith('.spill'))).toEqual([]);
  });

  it('replays what was not acknowledged after a reopen (a restarted writer)', () => {
    const dir = tempDir();
    const s = new Spill({ dir, maxBytes: 1 << 30, segmentBytes: 1 << 20 });
    for (let i = 0; i < 5; i++) s.append(batch(i * 10, 10));
    s.ack(0);
    s.ack(0);
    s.close();
    // Acks live in memory only: a reopened spill starts again at its oldest record, and the
    // database's high water makes the replay of the two already written a no-op (writer.ts).
    const again = new Spill({ dir, maxBytes: 1 << 30, segmentBytes: 1 << 20 });
    expect(again.pending()).toBe(5);
    expect(again.peek(0)!.first).toBe(0);
  });

  it('cuts off a torn tail left by kill -9 and keeps every whole record before it', () => {
    const dir = tempDir();
    const s = new Spill({ dir, maxBytes: 1 << 30, segmentBytes: 1 << 20 });
    for (let i = 0; i < 3; i++) s.append(batch(i * 10, 10));
    s.close();
    const file = join(dir, readdirSync(dir)[0]);
    const whole = statSync(file).size;
    // Half a record: a write that a kill -9 interrupted before its fsync.
    const torn = Buffer.alloc(recordBytes(batch(30, 10)));
    encodeRecord(batch(30, 10), torn);
    appendFileSync(file, torn.subarray(0, 200));
    const damage: { tail: boolean; bytes: number }[] = [];
    const again = new Spill({ dir, maxBytes: 1 << 30, segmentBytes: 1 << 20, onDamage: (d) => damage.push(d) });
    expect(again.pending()).toBe(3);
    expect(damage).toEqual([expect.objectContaining({ tail: true, bytes: 200 })]);
    expect(statSync(file).size).toBe(whole);
    expect(again.append(batch(30, 10))).toBe(true);
    for (const first of [0, 10, 20, 30]) {
      expect(again.peek(0)!.first).toBe(first);
      again.ack(0);
    }
  });

  it('detects a record whose bytes were corrupted (checksum), not just a short one', () => {
    const dir = tempDir();
    const s = new Spill({ dir, maxBytes: 1 << 30, segmentBytes: 1 << 20 });
    s.append(batch(0, 10));
    s.append(batch(10, 10));
    s.close();
    const file = join(dir, readdirSync(dir)[0]);
    const size = statSync(file).size;
    truncateSync(file, size - 4);
    appendFileSync(file, Buffer.from([1, 2, 3, 4]));
    const again = new Spill({ dir, maxBytes: 1 << 30, segmentBytes: 1 << 20 });
    expect(again.pending()).toBe(1);
  });

  it('refuses an append past SPILL_MAX_BYTES (the caller holds the batch) and takes it once replay frees room', () => {
    const dir = tempDir();
    const one = recordBytes(batch(0, 10));
    const s = new Spill({ dir, maxBytes: one + recordBytes(batch(10, 10)), segmentBytes: one });
    expect(s.append(batch(0, 10))).toBe(true);
    expect(s.append(batch(10, 10))).toBe(true);
    expect(s.append(batch(20, 10))).toBe(false);
    expect(s.refusals).toBe(1);
    s.ack(0); // the first segment is spent and deleted
    expect(s.append(batch(20, 10))).toBe(true);
    expect(s.pending()).toBe(2);
  });

  it('sets a batch the database keeps refusing aside in rejected/, kept on disk', () => {
    const dir = tempDir();
    const s = new Spill({ dir, maxBytes: 1 << 30, segmentBytes: 1 << 20 });
    s.append(batch(0, 10));
    s.append(batch(10, 10));
    const file = s.setAside(0);
    expect(existsSync(file)).toBe(true);
    expect(file).toContain(`${EPOCH}-0-0-10`);
    expect(s.peek(0)!.first).toBe(10);
  });
});
