/**
 * The WebSocket clients of the end-to-end bench (bench/e2e.bench.ts), in a process of their own
 * (forked with `node --import tsx`): typed FeedClients (src/client/index.ts) as a downstream app
 * runs them, each following the instruments it is given in full mode.
 *
 * Unlike bench/scale-clients.ts (timed windows, one histogram), this process keeps what the loss
 * check needs: ticks per client over a step that the bench opens before the simulator speeds up
 * and closes only after the service has drained, so a client that got every tick of its
 * instruments shows exactly the pipeline's output for them. Latency per tick is this process's
 * clock at the 'ticks' event minus the tick's `rt` (epoch µs at which the Kite-reading front
 * stamped it; the simulator's own exchange time is Kite's whole seconds, too coarse for this).
 *
 * Commands (IPC), each answered with `{ type: 'answer', id, v }`:
 * - open { urls, perUrl, key, tokens }: perUrl clients on each URL; resolves once every
 *   subscribe is acknowledged.
 * - start / stop: one step; stop answers with E2eClientStats.
 * - close: close every client.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { FeedClient, type FeedTick } from '../src/client/index.ts';
import { wallMs } from './engines-frames.ts';
import { Histogram } from './support.ts';

export type E2eClientCommand =
  | { id: number; cmd: 'open'; urls: string[]; perUrl: number; key: string; tokens: number[] }
  | { id: number; cmd: 'start' }
  | { id: number; cmd: 'stop' }
  | { id: number; cmd: 'close' };

export interface E2eClientStats {
  clients: number;
  /** Ticks each client received over the step, in the order opened. */
  perClient: number[];
  frames: number;
  conflatedFrames: number;
  conflatedTicks: number;
  /** Ticks without `rt` (not full mode): none expected. */
  noRt: number;
  /** Tick → client latency, µs. */
  p50: number;
  p99: number;
  p999: number;
  max: number;
  /** This process's event-loop delay p99 over the step, ms: how long a frame could wait to be read here. */
  loopP99: number;
  closes: number;
}

const hist = new Histogram();
const loop = monitorEventLoopDelay({ resolution: 5 });
let clients: FeedClient[] = [];
let perClient: number[] = [];
let measuring = false;
let frames = 0;
let conflatedFrames = 0;
let conflatedTicks = 0;
let noRt = 0;
let closes = 0;

function onTicks(i: number, list: FeedTick[], conflated: boolean): void {
  if (!measuring) return;
  const nowUs = wallMs() * 1000;
  frames++;
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
  frames = conflatedFrames = conflatedTicks = noRt = closes = 0;
  perClient = perClient.map(() => 0);
  measuring = true;
}

function stop(): E2eClientStats {
  measuring = false;
  loop.disable();
  return {
    clients: clients.length, perClient: perClient.slice(), frames, conflatedFrames, conflatedTicks, noRt,
    p50: hist.quantile(0.5), p99: hist.quantile(0.99), p999: hist.quantile(0.999), max: hist.max,
    loopP99: loop.percentile(99) / 1e6,
    closes,
  };
}

process.on('message', (c: E2eClientCommand) => {
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
