/** Batches on a clock the test moves, over a real market and sockets that keep what they get. */
import { describe, expect, it } from 'vitest';
import { decodeToTicks } from '../codec.ts';
import { buildNifty50Universe } from './universe.ts';
import { FrameBuilder, type FrameSocket, type FrameTarget } from './frames.ts';
import { Market } from './market.ts';
import { Followers, Subscriptions } from './subscriptions.ts';
import { MAX_TRADES_PER_BATCH, TickLoop, type TickLoopOptions } from './tick-loop.ts';

const T0 = Date.parse('2025-12-01T05:00:00Z');
const INSTRUMENTS = buildNifty50Universe({ today: new Date(T0) });

class KeepingSocket implements FrameSocket {
  frames: Uint8Array[] = [];
  heartbeats = 0;
  buffered = 0;
  getBufferedAmount(): number {
    return this.buffered;
  }
  send(message: Uint8Array): number {
    if (message.byteLength === 1) this.heartbeats++;
    else this.frames.push(message.slice());
    return 1;
  }
}

function setup(opts: Partial<TickLoopOptions> = {}) {
  let now = 1000;
  const market = new Market({ instruments: INSTRUMENTS, seed: 9, clock: () => T0 });
  const followers = new Followers(market.size);
  const stats = { frames: 0, packets: 0, bytes: 0, skippedFrames: 0, coalescedPackets: 0, droppedByUws: 0, heartbeats: 0, trades: 0, rounds: 0 };
  const frames = new FrameBuilder(market, stats, { maxBuffered: 1000 });
  const loop = new TickLoop(market, followers, frames, stats, { rate: 1000, batchMs: 50, heartbeatMs: 1000, maxBuffered: 1000, now: () => now, ...opts });
  const conns: FrameTarget[] = [];
  const connect = (rows: readonly number[]) => {
    const subs = new Subscriptions(market.size, 3000, followers);
    for (const r of rows) subs.add(r);
    const c = { id: conns.length + 1, ws: new KeepingSocket(), subs, lastSendMs: now };
    conns.push(c);
    return c;
  };
  /** Moves the clock by `ms` and runs a batch; returns the trades it made. */
  const batch = (ms: number) => {
    const before = market.trades;
    now += ms;
    loop.run(conns);
    return market.trades - before;
  };
  return { market, followers, stats, loop, connect, batch, conns };
}

const rowsOf = (n: number) => Array.from({ length: n }, (_, i) => i);

describe('TickLoop', () => {
  it('makes rate × elapsed trades a batch, carrying fractions to the next', () => {
    const { batch, connect, loop } = setup({ rate: 1000 });
    connect(rowsOf(60));
    expect(batch(50)).toBe(50);
    expect(batch(20)).toBe(20);
    loop.rate = 30; // 1.5 trades a 50 ms batch
    const made = Array.from({ length: 10 }, () => batch(50));
    expect(made.every((n) => n === 1 || n === 2)).toBe(true);
    expect(made.reduce((a, b) => a + b, 0)).toBe(15);
  });

  it('trades nothing while nobody follows, and banks nothing for later', () => {
    const { batch, connect, stats } = setup({ rate: 1000 });
    expect(batch(50)).toBe(0);
    expect(batch(500)).toBe(0);
    connect(rowsOf(60));
    expect(batch(50)).toBe(50);
    expect(stats.trades).toBe(50);
  });

  it('counts at most 4 × max(batchMs, heartbeatMs) of a stalled loop', () => {
    const { batch, connect } = setup({ rate: 10, batchMs: 50, heartbeatMs: 1000 });
    connect(rowsOf(60));
    expect(batch(60_000)).toBe(40);
  });

  it('makes at most MAX_TRADES_PER_BATCH trades a batch, in rounds of distinct rows, each sent', () => {
    const { batch, connect, stats, market } = setup({ rate: 1e9 });
    const c = connect(rowsOf(market.size));
    expect(batch(1000)).toBe(MAX_TRADES_PER_BATCH);
    expect(stats.rounds).toBe(Math.ceil(MAX_TRADES_PER_BATCH / market.size));
    expect(stats.packets).toBe(MAX_TRADES_PER_BATCH);
    for (const f of c.ws.frames) {
      const tokens = decodeToTicks(f).map((t) => t.token);
      expect(new Set(tokens).size).toBe(tokens.length);
    }
  });

  it('sends owed snapshots in a batch that trades nothing', () => {
    const { batch, connect } = setup({ rate: 0 });
    const c = connect([3, 4]);
    expect(batch(50)).toBe(0);
    expect(c.ws.frames.flatMap((f) => decodeToTicks(f))).toHaveLength(2);
  });

  it('sends a heartbeat to a connection sent nothing for heartbeatMs, unless it is behind', () => {
    const { batch, connect, stats } = setup({ rate: 0, heartbeatMs: 200 });
    const idle = connect([]);
    const behind = connect([]);
    behind.ws.buffered = 1001;
    const busy = connect([]);
    batch(150);
    busy.lastSendMs += 150;
    expect(stats.heartbeats).toBe(0);
    batch(50);
    expect([idle.ws.heartbeats, behind.ws.heartbeats, busy.ws.heartbeats]).toEqual([1, 0, 0]);
    batch(150);
    expect([idle.ws.heartbeats, behind.ws.heartbeats, busy.ws.heartbeats]).toEqual([1, 0, 1]);
    expect(stats.heartbeats).toBe(2);
  });

  it('hands each round to onRound, and ends the batch when a round leaves no row followed', () => {
    let hook = (_updated: Int32Array, _k: number) => {};
    const { batch, followers } = setup({ rate: 1000, onRound: (u, k) => hook(u, k) });
    // Followed by no connection, as the order book follows a row while an order works on it.
    followers.follow(3);
    const rounds: number[][] = [];
    hook = (u, k) => {
      rounds.push([...u.subarray(0, k)]);
      followers.unfollow(3); // the round filled the row's last working order
    };
    expect(batch(50)).toBe(1);
    expect(rounds).toEqual([[3]]);
    expect(batch(50)).toBe(0);
    expect(rounds).toHaveLength(1);
  });

  it('sends nothing to a closed connection', () => {
    const { batch, connect, conns } = setup({ rate: 1000 });
    const c = connect(rowsOf(10));
    const ws = c.ws;
    conns[0] = { id: c.id, ws: null, subs: c.subs, lastSendMs: 0 };
    batch(5000);
    expect(ws.frames).toHaveLength(0);
    expect(ws.heartbeats).toBe(0);
  });
});
