/**
 * The frame builder on its own: a real market, and a socket that keeps copies of what it is sent
 * (the sim's server tests cover the real uWS socket).
 */
import { describe, expect, it } from 'vitest';
import { decodeToTicks, encodeFrame, type WireTick } from '../codec.ts';
import { PacketLength } from '../packet-layout.ts';
import { buildNifty50Universe } from './universe.ts';
import { FRAME_CAP_BYTES, FrameBuilder, type FrameSocket, type FrameStats, type FrameTarget } from './frames.ts';
import { Market, ModeCode } from './market.ts';
import { Followers, Subscriptions } from './subscriptions.ts';

const T0 = Date.parse('2025-12-01T05:00:00Z');
const SMALL = buildNifty50Universe({ today: new Date(T0) });
const BIG = buildNifty50Universe({ today: new Date(T0), strikesEachSide: 250 });

class KeepingSocket implements FrameSocket {
  readonly frames: Uint8Array[] = [];
  buffered = 0;
  /** What send returns: 1 sent, 2 dropped. */
  result = 1;
  getBufferedAmount(): number {
    return this.buffered;
  }
  send(message: Uint8Array, isBinary: boolean): number {
    expect(isBinary).toBe(true);
    this.frames.push(message.slice());
    return this.result;
  }
}

function setup(instruments = SMALL, maxBuffered = 1 << 20) {
  const market = new Market({ instruments, seed: 5, clock: () => T0 });
  const stats: FrameStats = { frames: 0, packets: 0, bytes: 0, skippedFrames: 0, coalescedPackets: 0, droppedByUws: 0 };
  const seen: { conn: number; frame: Uint8Array }[] = [];
  const builder = new FrameBuilder(market, stats, { maxBuffered, onFrame: (conn, frame) => seen.push({ conn, frame: frame.slice() }) });
  const ws = new KeepingSocket();
  const subs = new Subscriptions(market.size, 1_000_000, new Followers(market.size));
  const target: FrameTarget = { id: 7, ws, subs, lastSendMs: 0 };
  const updated = new Int32Array(market.size);
  /** One round over `rows`, all of them updated, as Market.advance reports it. */
  const round = (rows: readonly number[]) => {
    const active = Int32Array.from(rows);
    const k = market.advance(rows.length, active, rows.length, updated);
    builder.emit(target, updated, k);
    return [...updated.subarray(0, k)];
  };
  const ticks = () => ws.frames.flatMap((f) => decodeToTicks(f));
  return { market, stats, seen, builder, ws, subs, target, updated, round, ticks };
}

const rowsOf = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('FrameBuilder', () => {
  it('sends the snapshots a connection is owed, in the order they were owed, when nothing trades', () => {
    const { builder, subs, target, updated, market, ticks } = setup();
    for (const row of [9, 2, 30]) subs.add(row);
    builder.emit(target, updated, 0);
    expect(ticks().map((t) => t.token)).toEqual([9, 2, 30].map((r) => market.instruments[r].instrumentToken));
    builder.emit(target, updated, 0);
    expect(ticks()).toHaveLength(3);
  });

  it('sends each packet in the mode its connection chose, and nothing for rows it does not follow', () => {
    const { subs, round, ws, market } = setup();
    const stock = market.instruments.findIndex((t) => t.segment === 'NSE');
    const rows = [stock, stock + 1, stock + 2];
    for (const r of rows) subs.add(r);
    subs.setMode(stock, ModeCode.LTP);
    subs.setMode(stock + 2, ModeCode.FULL);
    round([...rows, stock + 3]);
    const lengths = new Map<number, number[]>();
    const f = ws.frames[0];
    const dv = new DataView(f.buffer);
    let p = 2;
    for (const t of decodeToTicks(f)) {
      lengths.set(t.token, [...(lengths.get(t.token) ?? []), dv.getUint16(p)]);
      p += 2 + dv.getUint16(p);
    }
    const token = (r: number) => market.instruments[r].instrumentToken;
    expect(lengths.get(token(stock))).toEqual([PacketLength.LTP]);
    expect(lengths.get(token(stock + 1))).toEqual([PacketLength.QUOTE]);
    expect(lengths.get(token(stock + 2))).toEqual([PacketLength.FULL]);
    expect(lengths.has(token(stock + 3))).toBe(false);
  });

  it('sends a row both traded and owed once, in the round\'s place', () => {
    const { subs, round, ticks, market } = setup();
    const rows = rowsOf(20);
    for (const r of rows) subs.add(r);
    const order = round(rows);
    expect(ticks().map((t) => t.token)).toEqual(order.map((r) => market.instruments[r].instrumentToken));
  });

  it('splits a round into frames within FRAME_CAP_BYTES, each as full as the next packet allows, every packet once in order', () => {
    const { subs, round, ws, ticks, market, stats } = setup(BIG);
    const rows = rowsOf(3000);
    for (const r of rows) {
      subs.add(r);
      subs.setMode(r, ModeCode.FULL);
    }
    const order = round(rows);
    expect(ws.frames.length).toBeGreaterThan(5);
    ws.frames.forEach((f, n) => {
      expect(f.byteLength).toBeLessThanOrEqual(FRAME_CAP_BYTES);
      if (n < ws.frames.length - 1) expect(f.byteLength + 2 + PacketLength.FULL).toBeGreaterThan(FRAME_CAP_BYTES);
    });
    expect(ticks().map((t) => t.token)).toEqual(order.map((r) => market.instruments[r].instrumentToken));
    expect(stats.frames).toBe(ws.frames.length);
    expect(stats.packets).toBe(3000);
    expect(stats.bytes).toBe(ws.frames.reduce((n, f) => n + f.byteLength, 0));
  });

  it('writes the bytes the codec\'s encoder writes for the same packets', () => {
    const { subs, round, ws, market } = setup(BIG);
    const rows = rowsOf(1200);
    rows.forEach((r, n) => {
      subs.add(r);
      subs.setMode(r, [ModeCode.LTP, ModeCode.QUOTE, ModeCode.FULL][n % 3]);
    });
    const order = round(rows);
    const packets: WireTick[] = order.map((r) => market.tickOf(r, subs.modes[r]));
    let at = 0;
    for (const f of ws.frames) {
      const n = new DataView(f.buffer).getUint16(0);
      expect(f).toEqual(encodeFrame(packets.slice(at, at + n)));
      at += n;
    }
    expect(at).toBe(packets.length);
  });

  it('skips a connection that is behind, owes it what it missed, and sends one snapshot each once it drains', () => {
    const { subs, round, ws, stats, builder, target, updated, market, ticks } = setup(SMALL, 1000);
    const rows = rowsOf(30);
    for (const r of rows) subs.add(r);
    builder.emit(target, updated, 0);
    ws.frames.length = 0;
    ws.buffered = 1001;
    round(rows.slice(0, 10));
    round(rows.slice(5, 15));
    expect(ws.frames).toHaveLength(0);
    expect(stats.skippedFrames).toBe(2);
    expect(stats.coalescedPackets).toBe(20);
    ws.buffered = 1000;
    builder.emit(target, updated, 0);
    const tokens = ticks().map((t) => t.token);
    expect(tokens).toHaveLength(15);
    expect(new Set(tokens)).toEqual(new Set(rows.slice(0, 15).map((r) => market.instruments[r].instrumentToken)));
  });

  it('passes each frame uWS took to onFrame with its connection, and counts one it dropped instead', () => {
    const { subs, builder, target, updated, ws, seen, stats } = setup();
    subs.add(1);
    builder.emit(target, updated, 0);
    expect(seen).toEqual([{ conn: 7, frame: ws.frames[0] }]);
    ws.result = 2;
    subs.add(2);
    builder.emit(target, updated, 0);
    expect(seen).toHaveLength(1);
    expect(stats.droppedByUws).toBe(1);
    expect(stats.frames).toBe(2);
  });

  it('sends nothing to a closed connection', () => {
    const { subs, builder, updated, stats } = setup();
    subs.add(1);
    builder.emit({ id: 1, ws: null, subs, lastSendMs: 0 }, updated, 0);
    expect(stats.frames).toBe(0);
    expect(subs.owedCount).toBe(1);
  });
});
