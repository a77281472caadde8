/**
 * A gateway stand-in for the engines bench (bench/engines.bench.ts), forked with
 * `node --import tsx`: it subscribes to the engine it is told, reads each message's 16-byte head
 * (bench/engines-frames.ts) and nothing else, as a gateway re-publishing the frames would, and
 * keeps counts, sequence gaps and publish → receive latency (µs, one sample per message, clocks
 * being performance.timeOrigin + now() in both processes).
 *
 * Commands (IPC, parent → here): connect, reset, stats, progress, trace, snapshot, disconnect,
 * clock. Every answer carries the command's `id`. While `progress` is on, it reports its counts and
 * the highest sequence seen every 2 ms, which is the publisher's credit at the maximum rate.
 */
import { Redis } from 'ioredis';
import { connect } from '@nats-io/transport-node';
import { DeliverPolicy, jetstream } from '@nats-io/jetstream';
import { HEAD, wallMs } from './engines-frames.ts';
import { JS_LAST_STREAM, LAST_SUBJECTS, NATS, REDIS, SNAPSHOT_PREFIX, subscribe, type Endpoint, type Subscription } from './engines-transport.ts';
import { Histogram } from './support.ts';

export type SubCommand =
  | { id: number; cmd: 'connect'; ep: Endpoint }
  | { id: number; cmd: 'reset' }
  | { id: number; cmd: 'stats' }
  | { id: number; cmd: 'progress'; on: boolean }
  | { id: number; cmd: 'trace'; on: boolean }
  | { id: number; cmd: 'snapshot'; engine: 'redis' | 'jetstream-last'; tokens: number[] }
  | { id: number; cmd: 'disconnect' }
  | { id: number; cmd: 'clock' };

export interface SubStats {
  msgs: number;
  ticks: number;
  bytes: number;
  /** Messages missing by sequence (dropped, trimmed or conflated away). */
  gaps: number;
  /** Messages whose sequence was not above the highest seen. */
  behind: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
  /** CPU of this process since reset, ms. */
  cpuMs: number;
  wallMs: number;
  events: string[];
}

export interface Progress {
  type: 'progress';
  msgs: number;
  ticks: number;
  bytes: number;
  lastSeq: number;
  at: number;
}

const hist = new Histogram();
let msgs = 0;
let ticks = 0;
let bytes = 0;
let gaps = 0;
let behind = 0;
let lastSeq = -1;
let cpu0 = process.cpuUsage();
let wall0 = wallMs();
let events: string[] = [];
let sub: Subscription | null = null;
let progressTimer: NodeJS.Timeout | null = null;
let lastReported = -2;
/** arrival wall ms, latency µs, sequence: per message while tracing. */
let trace: Float64Array | null = null;
let traced = 0;

function onMessage(m: Uint8Array): void {
  const dv = new DataView(m.buffer, m.byteOffset, HEAD.BYTES);
  const now = wallMs();
  const sent = dv.getFloat64(HEAD.SENT_MS, true);
  const seq = dv.getUint32(HEAD.SEQ, true);
  const lat = (now - sent) * 1000;
  msgs++;
  ticks += dv.getUint16(HEAD.TICKS, true);
  bytes += m.byteLength;
  hist.record(lat);
  if (lastSeq >= 0) {
    if (seq > lastSeq + 1) gaps += seq - lastSeq - 1;
    else if (seq <= lastSeq) behind++;
  }
  if (seq > lastSeq) lastSeq = seq;
  if (trace !== null) {
    if (traced * 3 + 3 > trace.length) {
      const t = new Float64Array(trace.length * 2);
      t.set(trace);
      trace = t;
    }
    trace[traced * 3] = now;
    trace[traced * 3 + 1] = lat;
    trace[traced * 3 + 2] = seq;
    traced++;
  }
}

function onEvent(kind: string, detail: string): void {
  if (events.length < 50) events.push(`${new Date().toISOString().slice(11, 23)} ${kind}: ${detail.slice(0, 160)}`);
}

/** Counters to zero; the highest sequence seen only on connect (it is the publisher's credit). */
function reset(connecting = false): void {
  hist.reset();
  msgs = ticks = bytes = gaps = behind = 0;
  if (connecting) lastSeq = -1;
  events = [];
  cpu0 = process.cpuUsage();
  wall0 = wallMs();
}

function stats(): SubStats {
  const c = process.cpuUsage(cpu0);
  return {
    msgs, ticks, bytes, gaps, behind,
    p50: hist.quantile(0.5), p99: hist.quantile(0.99), p999: hist.quantile(0.999), max: hist.max,
    cpuMs: (c.user + c.system) / 1000, wallMs: wallMs() - wall0, events,
  };
}

function report(): void {
  if (lastSeq === lastReported) return;
  lastReported = lastSeq;
  const p: Progress = { type: 'progress', msgs, ticks, bytes, lastSeq, at: wallMs() };
  process.send!(p);
}

/** Time to read the latest value of every instrument, as a gateway (re)connecting would, ms. */
async function snapshot(engine: 'redis' | 'jetstream-last', tokens: number[]): Promise<{ ms: number; values: number; bytes: number }> {
  if (engine === 'redis') {
    const r = new Redis({ ...REDIS, lazyConnect: true });
    await r.connect();
    const t = wallMs();
    const vals = await r.mgetBuffer(...tokens.map((k) => SNAPSHOT_PREFIX + k));
    const ms = wallMs() - t;
    await r.quit();
    const got = vals.filter((v): v is Buffer => v !== null);
    return { ms, values: got.length, bytes: got.reduce((a, v) => a + v.length, 0) };
  }
  const nc = await connect({ servers: NATS });
  try {
    const t = wallMs();
    const js = jetstream(nc);
    const c = await js.consumers.get(JS_LAST_STREAM, { filter_subjects: LAST_SUBJECTS, deliver_policy: DeliverPolicy.LastPerSubject });
    const want = (await c.info(true)).num_pending;
    let values = 0;
    let got = 0;
    const iter = await c.fetch({ max_messages: want, expires: 5000 });
    for await (const m of iter) {
      values++;
      got += m.data.byteLength;
      if (values >= want) break;
    }
    return { ms: wallMs() - t, values, bytes: got };
  } finally {
    await nc.close();
  }
}

process.on('message', (c: SubCommand) => {
  const answer = (v: unknown): void => void process.send!({ type: 'answer', id: c.id, v });
  const fail = (e: unknown): void => void process.send!({ type: 'answer', id: c.id, error: (e as Error).stack ?? String(e) });
  switch (c.cmd) {
    case 'connect':
      reset(true);
      subscribe(c.ep, onMessage, onEvent).then((s) => {
        sub = s;
        answer(true);
      }, fail);
      return;
    case 'reset':
      reset();
      return answer(true);
    case 'stats':
      return answer(stats());
    case 'progress':
      if (progressTimer) clearInterval(progressTimer);
      progressTimer = c.on ? setInterval(report, 2) : null;
      lastReported = -2;
      return answer(true);
    case 'trace':
      if (c.on) {
        trace = new Float64Array(3 * 16384);
        traced = 0;
        return answer(true);
      }
      answer(trace ? Array.from(trace.subarray(0, traced * 3)) : []);
      trace = null;
      return;
    case 'snapshot':
      snapshot(c.engine, c.tokens).then(answer, fail);
      return;
    case 'disconnect': {
      const s = sub;
      sub = null;
      (s ? s.close() : Promise.resolve()).then(() => answer(true), fail);
      return;
    }
    case 'clock':
      return answer(wallMs());
  }
});

process.on('disconnect', () => process.exit(0));
process.send!({ type: 'up' });
