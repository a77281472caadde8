/**
 * `npm run replay -- --from TIME [--to TIME] [--speed N|max] [--mode ltp|quote|full] [--bars 1m] [SYMBOL…]`:
 * replay stored ticks in the terminal. Opens a replay session on the running service
 * (POST /api/replays), follows it on `/ws/replay/ID` and prints each tick (and bar) as `npm run
 * tail` does, then closes the session when it has sent everything (or on Ctrl-C).
 *
 * The service is FEED_URL's (default ws://127.0.0.1:$PORT/ws) and the key FEED_KEY, as for tail.
 * TIME: epoch ms, ISO 8601 with a zone, or India time 'YYYY-MM-DD HH:mm[:ss]'; --to defaults to
 * the end of --from's day. No symbols: every instrument the service follows.
 */
import { FeedClient, type FeedTick } from '../client/index.ts';
import { loadTailConfig } from '../config.ts';
import { IST_OFFSET_MS } from '../core/ist.ts';

function usage(msg: string): never {
  process.stderr.write(`${msg}\nusage: FEED_KEY=<api key> npm run replay -- --from TIME [--to TIME] [--speed N|max] [--mode ltp|quote|full] [--bars 1m] [SYMBOL…]\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
const symbols: string[] = [];
let from: string | undefined;
let to: string | undefined;
let speed: number | 'max' = 1;
let mode: 'ltp' | 'quote' | 'full' = 'quote';
let bars: string[] = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--from') from = args[++i];
  else if (a === '--to') to = args[++i];
  else if (a === '--speed') {
    const v = args[++i] ?? '';
    speed = v === 'max' ? 'max' : Number(v);
    if (speed !== 'max' && !(speed > 0)) usage(`--speed must be a positive number or max, not "${v}"`);
  } else if (a === '--mode') mode = args[++i] as typeof mode;
  else if (a === '--bars') bars = (args[++i] ?? '').split(',').filter(Boolean);
  else symbols.push(a);
}
if (from === undefined) usage('--from is required');
if (!['ltp', 'quote', 'full'].includes(mode)) usage(`--mode must be ltp, quote or full, not "${mode}"`);
if (to === undefined) {
  const day = /^(\d{4}-\d{2}-\d{2})/.exec(from);
  if (day === null) usage('--to is required when --from is not an India date-time (YYYY-MM-DD ...)');
  to = day[1];
}
let url: string;
let key: string;
try {
  ({ url, key } = loadTailConfig());
} catch (e) {
  usage((e as Error).message);
}
const http = url.replace(/^ws/, 'http').replace(/\/ws\/?$/, '');
const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };

async function call(method: string, path: string, body?: unknown): Promise<any> {
  const res = await fetch(`${http}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = (await res.json().catch(() => ({}))) as any;
  if (!res.ok) usage(`${method} ${path}: ${res.status} ${json.message ?? JSON.stringify(json)}`);
  return json;
}

const ist = (ms: number, len = 23) => new Date(ms + IST_OFFSET_MS).toISOString().slice(0, len).replace('T', ' ');
const fmt = (t: FeedTick) => {
  const extra = 'v' in t ? `  vol ${t.v}  chg ${t.ch.toFixed(2)}%` : '';
  return `${ist(t.ts, 19)}  ${t.s.padEnd(22)} ${t.p.toFixed(2).padStart(10)}${extra}`;
};

const session = await call('POST', '/api/replays', { from, to, speed, start: 'subscribe' });
const follow = symbols.length > 0 ? symbols : ((await call('GET', '/api/instruments')).instruments as { token: number }[]).map((i) => i.token);
const client = new FeedClient({ url: `${url.replace(/\/ws\/?$/, '')}${session.ws}`, key, reconnect: false });
client.on('ticks', (ticks) => { for (const t of ticks) console.log(fmt(t)); });
client.on('bars', (bs) => {
  for (const b of bs) if (b.x) console.log(`${ist(b.st, 19)}  ${b.s.padEnd(22)} ${b.tf} bar O ${b.o} H ${b.h} L ${b.l} C ${b.c} V ${b.v}`);
});
client.on('error', (e) => console.error(`error: ${e.message}`));
const stop = async (code: number) => {
  client.close();
  await call('DELETE', `/api/replays/${session.id}`).catch(() => {});
  process.exit(code);
};
process.on('SIGINT', () => void stop(0));
await client.connect();
const ack = await client.subscribe(follow, { mode, bars });
for (const r of ack.rejected) console.error(`not followed: ${String(r.instrument)} (${r.reason})`);
console.error(`replay ${session.id}: ${from} to ${to} at ${speed === 'max' ? 'full speed' : `${speed}×`}`);
for (;;) {
  await new Promise((r) => setTimeout(r, 500));
  const s = await call('GET', `/api/replays/${session.id}`);
  if (s.state === 'ended' || s.state === 'failed') {
    console.error(`replay ${s.state}: ${s.ticks} ticks${s.error ? ` (${s.error})` : ''}`);
    await stop(s.state === 'ended' ? 0 : 1);
  }
}
