/**
 * The WebSocket clients of the scale bench (bench/scale.bench.ts), in a process of their own
 * (forked with `node --import tsx`), so that decoding tens of thousands of ticks a second does not
 * run on the loop that drives the bench. Each client is the typed FeedClient (src/client/index.ts)
 * as a downstream app uses it: every instrument, full mode, its 'ticks' event.
 *
 * Latency per tick: this process's clock when the 'ticks' event fires (performance.timeOrigin +
 * now, µs) minus the tick's `rt`, the epoch µs at which the front that took it from Kite stamped
 * it (the ROLE=all or ROLE=ingest process, another process on the same machine: one clock). A
 * frame marked conflated (the server judged the client slow and sent latest values) is counted,
 * its ticks too, and its ticks' latencies are recorded with the rest.
 *
 * Commands (IPC), each answered with `{ type: 'answer', id, v }`:
 * - open { urls, perUrl, key, tokens }: perUrl clients on each URL, each subscribed to `tokens`
 *   in full mode; resolves once every subscribe is acknowledged.
 * - start / stop: the measurement window; stop answers with ClientStats.
 * - clock: this process's clock (epoch ms), for the offset check.
 * - close: close every client.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { FeedClient, type FeedTick } from '../src/client/index.ts';
import { wallMs } from './engines-frames.ts';
import { Histogram } from './support.ts';

export type ClientCommand =
  | { id: number; cmd: 'open'; urls: string[]; perUrl: number; key: string; tokens: number[] }
  | { id: number; cmd: 'start' }
  | { id: number; cmd: 'stop' }
  | { id: number; cmd: 'clock' }
  | { id: number; cmd: 'close' };

export interface ClientStats {
  clients: number;
  windowMs: number;
  ticks: number;
  frames: number;
  conflatedFrames: number;
  conflatedTicks: number;
  /** Ticks of the client that received the fewest / the most. */
  minClientTicks: number;
  maxClientTicks: number;
  /** Ticks without `rt` (not full mode): none expected. */
  noRt: number;
  p50: number;
  p99: number;
  max: number;
  /** CPU of this process over the window, % of one core. */
  cpu: number;
  /** This process's event-loop delay over the window, ms: how long a frame could wait to be read here. */
  loopP99: number;
  closes: number;
}

const hist = new Histogram();
const loop = monitorEventLoopDelay({ resolution: 5 });
let clients: FeedClient[] = [];
let perClient: number[] = [];
let measuring = false;
let ticks = 0;
let frames = 0;
let conflatedFrames = 0;
let conflatedTicks = 0;
let noRt = 0;
let closes = 0;
let t0 = 0;
let cpu0 = process.cpuUsage();

function onTicks(i: number, list: FeedTick[], conflated: boolean): void {
  if (!measuring) return;
  const nowUs = wallMs() * 1000;
  frames++;
  ticks += list.length;
  perClient[i] += list.length;
  if (conflated) {
    conflatedFrames++;
    conflatedTicks += list.length;
  }
  for (const t of list) {
    const rt = (t as { rt?: number }).rt;
    if (rt === undefined) noRt++;
    else hist.record(nowUs - rt);
  }
}

async function open(urls: string[], perUrl: number, key: string, tokens: number[]): Promise<number> {
  for (const url of urls) {
    for (let k = 0; k < perUrl; k++) {
      const i = clients.length;
      const c = new FeedClient({ url, key, reconnect: false });
      c.on('ticks', (list, meta) => onTicks(i, list, meta.conflated));
      c.on('close', () => void closes++);
      c.on('error', () => {});
      clients.push(c);
      perClient.push(0);
      await c.connect();
      await c.subscribe(tokens, { mode: 'full' });
    }
  }
  return clients.length;
}

function start(): void {
  hist.reset();
  loop.reset();
  loop.enable();
  ticks = frames = conflatedFrames = conflatedTicks = noRt = closes = 0;
  perClient = perClient.map(() => 0);
  cpu0 = process.cpuUsage();
  t0 = wallMs();
  measuring = true;
}

function stop(): ClientStats {
  measuring = false;
  loop.disable();
  const windowMs = wallMs() - t0;
  const c = process.cpuUsage(cpu0);
  return {
    clients: clients.length, windowMs, ticks, frames, conflatedFrames, conflatedTicks,
    minClientTicks: Math.min(...perClient), maxClientTicks: Math.max(...perClient), noRt,
    p50: hist.quantile(0.5), p99: hist.quantile(0.99), max: hist.max,
    cpu: ((c.user + c.system) / 1000 / windowMs) * 100,
    loopP99: loop.percentile(99) / 1e6,
    closes,
  };
}

process.on('message', (c: ClientCommand) => {
  const answer = (v: unknown): void => void process.send!({ type: 'answer', id: c.id, v });
  const fail = (e: unknown): void => void process.send!({ type: 'answer', id: c.id, error: (e as Error).stack ?? String(e) });
  switch (c.cmd) {
    case 'open':
      open(c.urls, c.perUrl, c.key, c.tokens).then(answer, fail);
      return;
    case 'start':
      start();
      return answer(true);
    case 'stop':
      return answer(stop());
    case 'clock':
      return answer(wallMs());
    case 'close':
      measuring = false;
      for (const cl of clients) cl.close();
      clients = [];
      perClient = [];
      return answer(true);
  }
});

process.on('disconnect', () => process.exit(0));
process.send!({ type: 'up' });
