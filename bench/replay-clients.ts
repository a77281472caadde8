/**
 * The WebSocket clients of the replay bench's delivery case (bench/replay.bench.ts), in a process of
 * their own (forked with `node --import tsx`), so that reading the frames does not run on the loop
 * that serves them. Each client is a `ws` socket on one replay session, following every token in
 * ltp mode, and counts ticks until it has `expect` of them:
 *
 * - `ws`: `/ws/replay/ID?key=`, the msgpack feed. A `ticks` frame's count is read from its header
 *   (`{ type: 'ticks', d: [` then the array's length, msgpack-encoder.ts RECORD_FRAMES), the ticks
 *   not decoded; any other frame is decoded, and a conflated `ticks` frame (the server judged the
 *   client slow) is counted apart: a replay must never send one.
 * - `kite`: `/kite/replay/ID?api_key=`, Kite's binary protocol. A binary frame of 2 bytes or more
 *   holds its packet count in its first 2 bytes (1-byte frames are heartbeats; text frames are
 *   order updates).
 *
 * Counting, not decoding, keeps the clients' own CPU out of the figure as far as it can be: what is
 * measured is what the service and the transport deliver.
 *
 * Commands (IPC), each answered with `{ type: 'answer', id, v | error }`:
 * - open { url, n, proto, tokens }: n clients on `url`, each subscribed to `tokens` in ltp mode;
 *   resolves (`ws`) once each has its ack and snapshot, (`kite`) once each has sent its subscribe
 *   and mode (Kite's protocol acknowledges neither: the parent watches the session's `following`).
 * - wait { expect, timeoutMs }: resolves once every client has `expect` ticks (or at the timeout)
 *   with ReplayClientStats: per client its ticks and the wall time (epoch ms) of its last tick.
 * - close: close every client.
 */
import WebSocket from 'ws';
import { createUnpackr } from '../src/gateway/messages.ts';
import { RECORD_FRAMES } from '../src/gateway/msgpack-encoder.ts';
import { wallMs } from './engines-frames.ts';

export type ReplayProto = 'ws' | 'kite';

export type ReplayClientCommand =
  | { id: number; cmd: 'open'; url: string; n: number; proto: ReplayProto; tokens: number[] }
  | { id: number; cmd: 'wait'; expect: number; timeoutMs: number }
  | { id: number; cmd: 'close' };

export interface ReplayClientStats {
  /** Per client: ticks received, and the epoch ms of the last one. */
  ticks: number[];
  lastTickAt: number[];
  /** Epoch ms of the first tick any client here received. */
  firstTickAt: number;
  /** Data frames (ticks frames, Kite binary frames with packets) over every client. */
  frames: number;
  /** Payload bytes of those frames. */
  bytes: number;
  conflatedFrames: number;
  /** CPU of this process from `open`'s answer to the last tick, ms. */
  cpuMs: number;
  timedOut: boolean;
}

const unpackr = createUnpackr();
/** `{ type: 'ticks', d: [` as the feed writes it, less the array's count. */
const TICKS_PREFIX = ((): Uint8Array => {
  const h = new Uint8Array(16);
  return h.slice(0, RECORD_FRAMES.writeHeader(h, 0, 0) - 1);
})();

function ticksInFeedFrame(data: Buffer): number {
  const p = TICKS_PREFIX.length;
  if (data.length <= p) return -1;
  for (let k = 0; k < p; k++) if (data[k] !== TICKS_PREFIX[k]) return -1;
  const h = data[p];
  return (h & 0xf0) === 0x90 ? h & 0x0f : h === 0xdc ? data.readUInt16BE(p + 1) : data.readUInt32BE(p + 1);
}

let sockets: WebSocket[] = [];
let ticks: number[] = [];
let lastTickAt: number[] = [];
let firstTickAt = 0;
let frames = 0;
let bytes = 0;
let conflatedFrames = 0;
let cpu0 = process.cpuUsage();
/** Called after every counted frame while a `wait` is pending. */
let onProgress: (() => void) | null = null;

function counted(i: number, n: number, len: number): void {
  if (n <= 0) return;
  const now = wallMs();
  if (firstTickAt === 0) firstTickAt = now;
  ticks[i] += n;
  lastTickAt[i] = now;
  frames++;
  bytes += len;
  onProgress?.();
}

function openOne(url: string, i: number, proto: ReplayProto, tokens: number[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => reject(new Error(`client ${i}: not subscribed within 20 s`)), 20_000);
    const ready = (): void => {
      clearTimeout(timer);
      resolve(ws);
    };
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    if (proto === 'ws') {
      let acked = false;
      ws.on('message', (data: Buffer) => {
        const n = ticksInFeedFrame(data);
        if (n >= 0) return counted(i, n, data.length);
        const m = unpackr.unpack(data) as { type: string; d?: unknown[]; conflated?: boolean };
        if (m.type === 'ticks') {
          if (m.conflated === true) conflatedFrames++;
          counted(i, m.d!.length, data.length);
        } else if (m.type === 'ack') acked = true;
        else if (m.type === 'snapshot' && acked) ready();
        else if (m.type === 'error') reject(new Error(`client ${i}: ${JSON.stringify(m)}`));
      });
      ws.on('open', () => ws.send(JSON.stringify({ op: 'subscribe', id: 1, instruments: tokens, mode: 'ltp' })));
    } else {
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        if (isBinary && data.length >= 2) counted(i, data.readUInt16BE(0), data.length);
      });
      ws.on('open', () => {
        ws.send(JSON.stringify({ a: 'subscribe', v: tokens }));
        ws.send(JSON.stringify({ a: 'mode', v: ['ltp', tokens] }));
        ready();
      });
    }
  });
}

async function open(c: Extract<ReplayClientCommand, { cmd: 'open' }>): Promise<number> {
  sockets = [];
  ticks = [];
  lastTickAt = [];
  firstTickAt = frames = bytes = conflatedFrames = 0;
  for (let i = 0; i < c.n; i++) {
    ticks.push(0);
    lastTickAt.push(0);
  }
  sockets = await Promise.all(Array.from({ length: c.n }, (_, i) => openOne(c.url, i, c.proto, c.tokens)));
  cpu0 = process.cpuUsage();
  return sockets.length;
}

function stats(timedOut: boolean): ReplayClientStats {
  const c = process.cpuUsage(cpu0);
  return { ticks: [...ticks], lastTickAt: [...lastTickAt], firstTickAt, frames, bytes, conflatedFrames, cpuMs: (c.user + c.system) / 1000, timedOut };
}

function wait(expect: number, timeoutMs: number): Promise<ReplayClientStats> {
  return new Promise((resolve) => {
    const done = (timedOut: boolean): void => {
      onProgress = null;
      clearTimeout(timer);
      resolve(stats(timedOut));
    };
    const timer = setTimeout(() => done(true), timeoutMs);
    // Checked after every frame: a loop over this process's few clients.
    onProgress = () => {
      for (let i = 0; i < ticks.length; i++) if (ticks[i] < expect) return;
      done(false);
    };
    onProgress();
  });
}

function close(): Promise<void> {
  const all = sockets.map((ws) => new Promise<void>((r) => {
    if (ws.readyState === WebSocket.CLOSED) return r();
    ws.once('close', () => r());
    ws.close();
  }));
  sockets = [];
  return Promise.race([Promise.all(all).then(() => {}), new Promise<void>((r) => setTimeout(r, 3000).unref())]);
}

process.on('message', (c: ReplayClientCommand) => {
  const answer = (v: unknown): void => void process.send!({ type: 'answer', id: c.id, v });
  const fail = (e: unknown): void => void process.send!({ type: 'answer', id: c.id, error: (e as Error).stack ?? String(e) });
  switch (c.cmd) {
    case 'open':
      open(c).then(answer, fail);
      return;
    case 'wait':
      wait(c.expect, c.timeoutMs).then(answer, fail);
      return;
    case 'close':
      close().then(answer, fail);
      return;
  }
});

process.on('disconnect', () => process.exit(0));
process.send!({ type: 'up' });
