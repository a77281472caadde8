/**
 * The client side of bench/feed.bench.ts, run as its own process (`node --import tsx`, forked
 * with an IPC channel): it opens N WebSocket clients with the `ws` package, subscribes each, and
 * decodes every frame it receives, as a downstream app would:
 *
 * - `feed`: our /ws msgpack feed, decoded with msgpackr and the shared record structures
 *   (createUnpackr, the typed client's decoder). A `ticks` frame counts its `d.length` ticks.
 * - `json`: the baseline server, one JSON text message per tick, JSON.parse'd.
 * - `feed-count`, `json-count`: the same, but ticks are counted and not decoded (a ticks frame's
 *   count from its header; one JSON message per tick): what the server and the transport deliver,
 *   with the clients' decoding out of the way.
 *
 * Latency per tick = this process's clock at decode (performance.timeOrigin + now, µs) minus the
 * tick's `rt`, the receive time the front stamped when the frame arrived (the other process's
 * clock: both read the same system clock; the parent checks the offset over IPC and prints it).
 *
 * Commands arrive over IPC, each answered with `{ id, ...result }`:
 * - open { url, n, proto, mode, subs }: connect n clients (subs[i % subs.length] each), subscribe,
 *   wait for every ack (and snapshot). Meanwhile, every PROGRESS_MS, it posts
 *   `{ type: 'progress', min }`: the fewest ticks any client has received so far, which the parent
 *   uses as flow control at the maximum rate.
 * - start / stop: the measurement window. stop answers with counts, latency percentiles and this
 *   process's CPU time (process.cpuUsage) over the window.
 * - clock: this process's clock, for the offset check.
 * - close: close every client and wait (bounded) for the closes.
 *
 * Latencies are kept in one preallocated Float64Array (MAX_SAMPLES), sorted once at stop.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import { createUnpackr } from '../src/gateway/messages.ts';
import { RECORD_FRAMES } from '../src/gateway/msgpack-encoder.ts';
import { nowMicros } from '../src/core/clock.ts';
import { GcCounter } from './support.ts';

const PROGRESS_MS = 2;
const MAX_SAMPLES = 4_000_000;
const OPEN_BATCH = 100;
const CLOSE_WAIT_MS = 3000;

export type Proto = 'feed' | 'json' | 'feed-count' | 'json-count';

export type ClientCommand =
  | { cmd: 'open'; url: string; n: number; proto: Proto; mode: string; subs: number[][] }
  | { cmd: 'start'; latency: boolean }
  | { cmd: 'stop' }
  | { cmd: 'clock' }
  | { cmd: 'close' };

export interface ClientStats {
  clients: number;
  windowMs: number;
  ticks: number;
  /** Ticks in frames marked conflated (the server judged this client slow). */
  conflatedTicks: number;
  /** Data messages (frames with ticks; for json, one per tick). */
  frames: number;
  /** Payload bytes of those messages, plus the WebSocket frame header of each. */
  wireBytes: number;
  minClientTicks: number;
  maxClientTicks: number;
  cpuUserMs: number;
  cpuSystemMs: number;
  samples: number;
  droppedSamples: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  /** GC pauses in this process over the window. */
  gcs: number;
  gcMaxMs: number;
  /** This process's event-loop delay over the window (ms): how long a frame could wait to be read. */
  loopP99: number;
  loopMax: number;
}

const unpackr = createUnpackr();
/** `{ type: 'ticks', d: [` as the feed writes it (the header msgpack-encoder.ts writes, less the count). */
const TICKS_PREFIX = ((): Uint8Array => {
  const h = new Uint8Array(16);
  return h.slice(0, RECORD_FRAMES.writeHeader(h, 0, 0) - 1);
})();
function startsWithTicks(data: Buffer): boolean {
  if (data.length <= TICKS_PREFIX.length) return false;
  for (let k = 0; k < TICKS_PREFIX.length; k++) if (data[k] !== TICKS_PREFIX[k]) return false;
  return true;
}
/** Stands for a frame's ticks when they are counted, not decoded (its length is set per frame). */
const counted: { rt?: number }[] = [];
let sockets: WebSocket[] = [];
let counts = new Float64Array(0);
let measuring = false;
let latency = false;
let wTicks = 0;
let wConflated = 0;
let wFrames = 0;
let wBytes = 0;
const lat = new Float64Array(MAX_SAMPLES);
let nLat = 0;
let dropped = 0;
let t0 = 0;
let cpu0 = process.cpuUsage();
let count0 = new Float64Array(0);
const gc = new GcCounter();
const loop = monitorEventLoopDelay({ resolution: 1 });

/** Server-to-client WebSocket header: 2 bytes, 4 past 125 bytes of payload, 10 past 64 KiB. */
const wsHeader = (len: number): number => (len < 126 ? 2 : len < 65536 ? 4 : 10);

function onTicks(i: number, d: { rt?: number }[], conflated: boolean, bytes: number): void {
  counts[i] += d.length;
  if (!measuring) return;
  wTicks += d.length;
  if (conflated) wConflated += d.length;
  wFrames++;
  wBytes += bytes + wsHeader(bytes);
  if (!latency) return;
  const now = nowMicros();
  for (let k = 0; k < d.length; k++) {
    if (nLat < MAX_SAMPLES) lat[nLat++] = now - (d[k].rt ?? NaN);
    else dropped++;
  }
}

function openOne(url: string, i: number, proto: Proto, mode: string, tokens: number[]): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    const timer = setTimeout(() => reject(new Error(`client ${i}: no ack within 20 s`)), 20_000);
    let acked = false;
    const ready = (): void => {
      clearTimeout(timer);
      resolve(ws);
    };
    if (proto === 'feed' || proto === 'feed-count') {
      const count = proto === 'feed-count';
      ws.on('message', (data: Buffer) => {
        // feed-count: a ticks frame's count read from its header, the ticks not decoded.
        if (count && acked && startsWithTicks(data)) {
          const p = TICKS_PREFIX.length;
          const h = data[p];
          counted.length = (h & 0xf0) === 0x90 ? h & 0x0f : h === 0xdc ? data.readUInt16BE(p + 1) : data.readUInt32BE(p + 1);
          onTicks(i, counted, false, data.length);
          return;
        }
        const m = unpackr.unpack(data) as { type: string; d?: { rt?: number }[]; conflated?: boolean };
        if (m.type === 'ticks') onTicks(i, m.d!, m.conflated === true, data.length);
        else if (m.type === 'ack') acked = true;
        // The snapshot follows the ack: ready once both are in, so no snapshot lands in a window.
        else if (m.type === 'snapshot' && acked) ready();
      });
    } else {
      const one: { rt?: number }[] = [{}];
      const count = proto === 'json-count';
      let ackedJson = false;
      ws.on('message', (data: Buffer) => {
        // json-count: after the ack every message is one tick; counted, not parsed.
        if (count && ackedJson) {
          onTicks(i, one, false, data.length);
          return;
        }
        const m = JSON.parse(data.toString('utf8')) as { type?: string; rt?: number };
        if (m.type === 'ack') {
          ackedJson = true;
          ready();
          return;
        }
        one[0] = m;
        onTicks(i, one, false, data.length);
      });
    }
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    ws.on('open', () => ws.send(JSON.stringify({ op: 'subscribe', id: 1, instruments: tokens, mode })));
  });
}

async function open(c: Extract<ClientCommand, { cmd: 'open' }>): Promise<Record<string, unknown>> {
  sockets = [];
  counts = new Float64Array(c.n);
  const t = performance.now();
  for (let b = 0; b < c.n; b += OPEN_BATCH) {
    const batch: Promise<WebSocket>[] = [];
    for (let i = b; i < Math.min(c.n, b + OPEN_BATCH); i++) batch.push(openOne(c.url, i, c.proto, c.mode, c.subs[i % c.subs.length]));
    sockets.push(...(await Promise.all(batch)));
  }
  return { clients: sockets.length, openMs: Math.round(performance.now() - t) };
}

function minCount(): number {
  let m = Infinity;
  for (let i = 0; i < counts.length; i++) if (counts[i] < m) m = counts[i];
  return m === Infinity ? 0 : m;
}

function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}

async function stop(): Promise<ClientStats> {
  measuring = false;
  loop.disable();
  const windowMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await gc.stop(); // before sorting the samples, whose copy is not the window's garbage
  const sorted = lat.slice(0, nLat).sort();
  let minC = Infinity;
  let maxC = 0;
  for (let i = 0; i < counts.length; i++) {
    const d = counts[i] - count0[i];
    if (d < minC) minC = d;
    if (d > maxC) maxC = d;
  }
  return {
    clients: sockets.length, windowMs, ticks: wTicks, conflatedTicks: wConflated, frames: wFrames, wireBytes: wBytes,
    minClientTicks: minC === Infinity ? 0 : minC, maxClientTicks: maxC,
    cpuUserMs: cpu.user / 1000, cpuSystemMs: cpu.system / 1000,
    samples: nLat, droppedSamples: dropped,
    p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), p999: quantile(sorted, 0.999), max: sorted.length ? sorted[sorted.length - 1] : NaN,
    gcs: gc.total(), gcMaxMs: gc.maxMs,
    loopP99: loop.percentile(99) / 1e6, loopMax: loop.max / 1e6,
  };
}

async function close(): Promise<Record<string, unknown>> {
  const all = sockets.map((ws) => new Promise<void>((r) => {
    if (ws.readyState === WebSocket.CLOSED) return r();
    ws.once('close', () => r());
    ws.close();
  }));
  const deadline = new Promise<void>((r) => setTimeout(r, CLOSE_WAIT_MS).unref());
  await Promise.race([Promise.all(all), deadline]);
  let forced = 0;
  for (const ws of sockets) {
    if (ws.readyState !== WebSocket.CLOSED) {
      ws.terminate();
      forced++;
    }
  }
  sockets = [];
  counts = new Float64Array(0);
  return { forced };
}

async function handle(c: ClientCommand): Promise<Record<string, unknown>> {
  switch (c.cmd) {
    case 'open': return open(c);
    case 'start':
      // Start each window from a collected heap (the parent does the same in its process): the
      // garbage of earlier runs (a thousand sockets opened and closed) is not this run's pause.
      globalThis.gc?.();
      gc.start();
      loop.reset();
      loop.enable();
      measuring = true;
      latency = c.latency;
      wTicks = wConflated = wFrames = wBytes = 0;
      nLat = dropped = 0;
      count0 = counts.slice();
      cpu0 = process.cpuUsage();
      t0 = performance.now();
      return {};
    case 'stop': return { ...(await stop()) };
    case 'clock': return { us: nowMicros() };
    case 'close': return close();
  }
}

/** To the parent, unless it has gone (then the 'disconnect' handler ends this process). */
function reply(m: Record<string, unknown>): void {
  if (process.connected) process.send!(m, undefined, {}, () => {});
}

let lastSent = -1;
const progress = setInterval(() => {
  const m = minCount();
  if (m !== lastSent && process.connected) {
    lastSent = m;
    reply({ type: 'progress', min: m });
  }
}, PROGRESS_MS);

process.on('message', (msg: { id: number } & ClientCommand) => {
  handle(msg).then(
    (r) => reply({ id: msg.id, ok: true, ...r }),
    (err: Error) => reply({ id: msg.id, ok: false, error: err.message }),
  );
});
// The parent owns this process: when it goes (or closes the channel), so do we.
process.on('disconnect', () => {
  clearInterval(progress);
  for (const ws of sockets) ws.terminate();
  process.exit(0);
});
