/**
 * A replay session, the main thread's side: its thread (workers/replay/, protocol in
 * src/core/replay-protocol.ts) sends stored ticks and rebuilt bars through two output rings; here
 * they are drained into the session's own FeedHub, whose listeners are the session's own msgpack
 * feed and Kite endpoint (the live ones' classes, on topics of their own). A client at
 * `/ws/replay/ID` or `/kite/replay/ID` therefore speaks the live protocols unchanged and sees only
 * this session; the live feed and other sessions never see its ticks.
 *
 * Flow control: the rings are drained only while every client of the session has less than
 * MAX_CLIENT_BUFFER unsent. A session at full speed thus runs at its slowest client's pace, the
 * thread waiting on the full rings; nothing is conflated or dropped (the live feed's slow-client
 * rules never trigger below their 1 MiB limit). Memory per session: the two rings (RING_SLOTS
 * slots each), the hub's latest tick and bar per instrument, the thread's source batch.
 */
import { randomBytes } from 'node:crypto';
import type { Worker } from 'node:worker_threads';
import type { TemplatedApp } from 'uWebSockets.js';
import { startWorker } from '../threads.ts';
import { createRingBuffer } from '../core/ring.ts';
import { N_SLOT_WORDS } from '../core/tick.ts';
import { BAR_SLOT_WORDS, DOORBELL_STRIDE } from '../core/shard-protocol.ts';
import {
  REPLAY_STATE_NAMES, REPLAY_STATUS_WORDS, ReplayState, RS,
  type ReplayControl, type ReplayData, type ReplayMessage, type ReplaySourceSpec,
} from '../core/replay-protocol.ts';
import type { Instrument } from '../core/instrument.ts';
import type { SlotViews } from '../core/packet-slot.ts';
import type { Logger } from '../log.ts';
import { OutputReader } from '../pipeline.ts';
import { FeedHub } from '../gateway/hub.ts';
import { Feed, type Authenticator } from '../gateway/feed.ts';
import { KiteWs } from '../gateway/kite-ws.ts';
import type { OrderPush, OrderService } from '../orders/service.ts';

const REPLAY_MODULE = new URL('../../workers/replay/main.ts', import.meta.url);
/** Slots in each of a session's rings. */
const RING_SLOTS = 1 << 14;
/** Records per ring between two hub batch ends, as the live hub (hub.ts MAX_PER_DRAIN). */
const MAX_PER_DRAIN = 4096;
/** A client with more than this unsent holds the session's drain (below the feed's 1 MiB conflation). */
const MAX_CLIENT_BUFFER = 512 * 1024;

export type ReplayStart = 'running' | 'paused' | 'subscribe';

export interface ReplaySpec {
  fromMs: number;
  /** Exclusive. */
  toMs: number;
  /** Tokens replayed; null: every stored one. */
  tokens: number[] | null;
  /** × real time; 0: as fast as the clients take it. */
  speed: number;
  /** Start sending at once, when resumed, or when a client first subscribes. */
  start: ReplayStart;
  /** Pauses longer than this (exchange time) are skipped at any speed. */
  idleSkipMs: number;
}

export interface ReplayDeps {
  app: TemplatedApp;
  instruments: readonly Instrument[];
  timeframesMs: readonly number[];
  graceMs: number;
  auth: Authenticator;
  log: Logger;
  source: ReplaySourceSpec;
  /** Runs the thread's queries when `source` is 'proxy' (the embedded database). */
  query: (text: string, params: readonly unknown[]) => Promise<Record<string, unknown>[]>;
  /**
   * A paper order service for a session: it matches on the session's hub (the replayed depth),
   * keeps time by `now` (the replayed exchange time) and pushes updates to the session's clients.
   * Absent: a session takes no orders.
   */
  paperOrders?: (o: { market: FeedHub; push: OrderPush; now: () => number }) => OrderService;
}

/** What GET /api/replays/{id} answers. */
export interface ReplayInfo {
  id: string;
  state: (typeof REPLAY_STATE_NAMES)[number];
  from: string;
  to: string;
  instruments: number[] | null;
  speed: number;
  start: ReplayStart;
  idleSkipMs: number;
  /** Exchange time of the last tick sent (the range's start before any). */
  position: string;
  ticks: number;
  barsClosed: number;
  clients: number;
  /** Instruments its clients follow in each mode (both protocols), e.g. to wait for a subscription before resuming. */
  following: { ltp: number; quote: number; full: number };
  /** Paths on this server: KiteTicker's `root` (ws://HOST:PORT + kite), and the msgpack feed's. */
  kite: string;
  ws: string;
  createdAt: string;
  error: string | null;
}

let topicSeq = 1;

export class ReplaySession {
  readonly id = randomBytes(9).toString('base64url');
  readonly hub: FeedHub;
  readonly feed: Feed;
  readonly kite: KiteWs;
  /** The session's paper orders (null: none taken), apart from live ones. */
  readonly orders: OrderService | null;
  readonly createdAt = Date.now();
  private readonly worker: Worker;
  private readonly status: Float64Array;
  private readonly reader: OutputReader;
  private error: string | null = null;
  /** The pump, waiting for a client's socket to drain. */
  private drainWaiter: (() => void) | null = null;
  private stopped = false;
  private exited = false;
  readonly done: Promise<void>;
  private readonly pumped: Promise<void>;

  constructor(private readonly deps: ReplayDeps, readonly owner: string, readonly spec: ReplaySpec) {
    const { app, instruments, timeframesMs, log } = deps;
    this.hub = new FeedHub(instruments, timeframesMs);
    // Only the key that made the session may attach to it.
    const auth: Authenticator = {
      verify: (secret) => {
        const who = deps.auth.verify(secret);
        return who !== null && who.name === owner ? who : null;
      },
      modeOf: deps.auth.modeOf ? (name) => deps.auth.modeOf!(name) : undefined,
    };
    const px = `r${topicSeq++}`;
    const onSubscribe = () => {
      if (this.spec.start === 'subscribe' && this.state() === ReplayState.WAITING) this.resume();
    };
    const onDrain = () => {
      const w = this.drainWaiter;
      this.drainWaiter = null;
      w?.();
    };
    this.feed = new Feed(app, { hub: this.hub, auth, log, topicPrefix: `${px}/`, routes: [], onSubscribe, onDrain });
    this.kite = new KiteWs(app, this.hub, auth, log, { topicPrefix: `${px}k`, routes: [] });
    this.kite.onSubscribe = onSubscribe;
    this.kite.onDrain = onDrain;
    this.hub.add(this.feed);
    this.hub.add(this.kite);
    const statusBuf = new SharedArrayBuffer(REPLAY_STATUS_WORDS * 8);
    this.status = new Float64Array(statusBuf);
    const status = this.status;
    this.orders = deps.paperOrders?.({
      market: this.hub,
      now: () => status[RS.POSITION_MS],
      push: {
        order: (key, row) => {
          this.kite.orderUpdate(key, row);
          this.feed.orderUpdate(key, row);
        },
        positions: (key, rows) => this.feed.positionUpdate(key, rows),
      },
    }) ?? null;
    const orders = this.orders;
    if (orders !== null) {
      // After the endpoints: a fill answers a tick the clients have been sent.
      this.hub.add({ tick: (f, o, row) => orders.tick(f, o, row) });
      void orders.start();
    }
    this.hub.bind();

    const data: ReplayData = {
      id: this.id,
      ticksOut: createRingBuffer(RING_SLOTS, N_SLOT_WORDS, 1),
      barsOut: createRingBuffer(RING_SLOTS, BAR_SLOT_WORDS, 1),
      doorbells: new SharedArrayBuffer(DOORBELL_STRIDE * 4),
      status: statusBuf,
      instruments: [...instruments],
      tokens: spec.tokens,
      fromMs: spec.fromMs,
      toMs: spec.toMs,
      timeframesMs: [...timeframesMs],
      graceMs: deps.graceMs,
      speed: spec.speed,
      idleSkipMs: spec.idleSkipMs,
      running: spec.start === 'running',
      source: deps.source,
    };
    this.status[RS.STATE] = data.running ? ReplayState.RUNNING : ReplayState.WAITING;
    this.status[RS.POSITION_MS] = spec.fromMs;
    this.status[RS.SPEED] = spec.speed;
    this.reader = new OutputReader([{ ticksOut: data.ticksOut, barsOut: data.barsOut }], 0, data.doorbells);
    this.worker = startWorker(REPLAY_MODULE, { workerData: data, name: `replay-${this.id}` });
    this.worker.on('message', (m: ReplayMessage) => this.onMessage(m));
    this.worker.on('error', (e) => {
      this.error = e.message;
      this.status[RS.STATE] = ReplayState.FAILED;
      log.error({ replay: this.id, err: e }, 'replay thread failed');
    });
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => {
      this.exited = true;
      resolve();
    }));
    this.pumped = this.pump();
    this.done = Promise.all([exited, this.pumped]).then(() => {
      if (this.status[RS.STATE] !== ReplayState.FAILED) this.status[RS.STATE] = ReplayState.CLOSED;
    });
  }

  private onMessage(m: ReplayMessage): void {
    switch (m.type) {
      case 'reset':
        this.hub.hasTick.fill(0);
        this.hub.hasBar.fill(0);
        this.send({ type: 'reset-done' });
        break;
      case 'failed':
        this.error = m.message;
        this.deps.log.warn({ replay: this.id, err: m.message }, 'replay failed: its stored ticks could not be read');
        break;
      case 'query':
        this.deps.query(m.text, m.params).then(
          (rows) => this.send({ type: 'answer', id: m.id, rows }),
          (e: Error) => this.send({ type: 'answer', id: m.id, error: e.message }),
        );
        break;
      default:
        break;
    }
  }

  /**
   * A command or an answer to the thread, while it lives. After close() only the thread's own
   * business goes (answers to its queries, the reset it waits on): a thread stopping may be in
   * the middle of a query, and would wait for the answer for ever.
   */
  private send(m: ReplayControl): void {
    if (this.exited) return;
    if (this.stopped && (m.type === 'resume' || m.type === 'pause' || m.type === 'seek')) return;
    this.worker.postMessage(m);
  }

  /** Drain the thread's rings into the hub while the clients keep up. */
  private async pump(): Promise<void> {
    const hub = this.hub;
    const tick = (v: SlotViews, b: number) => hub.applyTick(v.f64, b >> 1);
    const bar = (v: SlotViews, b: number) => hub.applyBar(v.f64, b >> 1);
    const r = this.reader;
    for (;;) {
      if (this.feed.maxBuffered() > MAX_CLIENT_BUFFER || this.kite.maxBuffered() > MAX_CLIENT_BUFFER) {
        // Until a socket drains (or a while: a client that closes drains nothing).
        await new Promise<void>((res) => {
          const t = setTimeout(res, 50);
          this.drainWaiter = () => {
            clearTimeout(t);
            res();
          };
        });
        continue;
      }
      const n = r.drain(tick, bar, MAX_PER_DRAIN);
      if (n > 0) {
        hub.endBatch();
        continue;
      }
      if (r.done()) return;
      await r.waitForData(250);
    }
  }

  state(): number {
    return this.status[RS.STATE];
  }

  resume(speed?: number): void {
    if (speed !== undefined) this.status[RS.SPEED] = speed;
    if (this.state() === ReplayState.WAITING || this.state() === ReplayState.PAUSED) this.status[RS.STATE] = ReplayState.RUNNING;
    this.send({ type: 'resume', ...(speed !== undefined ? { speed } : {}) });
  }

  pause(): void {
    if (this.state() === ReplayState.RUNNING || this.state() === ReplayState.WAITING) this.status[RS.STATE] = ReplayState.PAUSED;
    this.send({ type: 'pause' });
  }

  /** Go on from `toMs`; the status says so at once (the thread resets it too once the rings are drained). */
  seek(toMs: number): void {
    const st = this.status;
    if (st[RS.STATE] === ReplayState.ENDED) st[RS.STATE] = ReplayState.PAUSED;
    st[RS.TICKS] = 0;
    st[RS.POSITION_MS] = toMs;
    this.send({ type: 'seek', toMs });
  }

  /** Stop the thread, end the clients' sessions (1000: the replay was closed) and wait for both. */
  async close(): Promise<void> {
    if (!this.stopped) {
      this.send({ type: 'stop' });
      this.stopped = true;
      this.feed.close(1000, 'replay closed');
      this.kite.close(1000, 'replay closed');
    }
    await this.done;
    await this.orders?.close();
  }

  info(): ReplayInfo {
    const s = this.status;
    const iso = (ms: number) => new Date(ms).toISOString();
    return {
      id: this.id,
      state: REPLAY_STATE_NAMES[s[RS.STATE]],
      from: iso(this.spec.fromMs),
      to: iso(this.spec.toMs),
      instruments: this.spec.tokens,
      speed: s[RS.SPEED],
      start: this.spec.start,
      idleSkipMs: this.spec.idleSkipMs,
      position: iso(s[RS.POSITION_MS]),
      ticks: s[RS.TICKS],
      barsClosed: s[RS.BARS_CLOSED],
      clients: this.feed.clients + this.kite.clients,
      following: (() => {
        const k = this.kite.following();
        const f = this.feed.following();
        return { ltp: k[0] + f[0], quote: k[1] + f[1], full: k[2] + f[2] };
      })(),
      kite: `/kite/replay/${this.id}`,
      ws: `/ws/replay/${this.id}`,
      createdAt: iso(this.createdAt),
      error: this.error,
    };
  }
}
