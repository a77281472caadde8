/**
 * `npm run tail -- SYMBOL [SYMBOL…] [--mode ltp|quote|full] [--bars 1m]`: print the live feed.
 *
 * Connects to FEED_URL (default ws://127.0.0.1:$PORT/ws) with FEED_KEY (an API key; see
 * `npm run keys -- create NAME`). Symbols as on Kite: INFY, 'NIFTY 50', NFO:NIFTY25DEC26000CE,
 * or instrument tokens.
 */
import { FeedClient, type FeedTick } from '../client/index.ts';
import { loadTailConfig } from '../config.ts';
import { IST_OFFSET_MS } from '../core/ist.ts';

function usage(msg: string): never {
  process.stderr.write(`${msg}\nusage: FEED_KEY=<api key> npm run tail -- SYMBOL [SYMBOL…] [--mode ltp|quote|full] [--bars 1m,5m]\n`);
  process.exit(2);
}

const args = process.argv.slice(2);
const symbols: string[] = [];
let mode: 'ltp' | 'quote' | 'full' = 'quote';
let bars: string[] = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--mode') mode = args[++i] as typeof mode;
  else if (args[i] === '--bars') bars = (args[++i] ?? '').split(',').filter(Boolean);
  else symbols.push(args[i]);
}
if (symbols.length === 0) usage('name at least one symbol or token');
if (!['ltp', 'quote', 'full'].includes(mode)) usage(`--mode must be ltp, quote or full, not "${mode}"`);
let url: string;
let key: string;
try {
  ({ url, key } = loadTailConfig());
} catch (e) {
  usage((e as Error).message);
}

/** Exchange time as IST wall clock, as traders read it. */
const ist = (ms: number, len = 23) => new Date(ms + IST_OFFSET_MS).toISOString().slice(11, len);

const fmt = (t: FeedTick) => {
  const time = ist(t.ts);
  const extra = 'v' in t ? `  vol ${t.v}  chg ${t.ch.toFixed(2)}%` : '';
  const depth = 'bid' in t && t.bid[0][1] > 0 ? `  bid ${t.bid[0][0]} x ${t.bid[0][1]}  ask ${t.ask[0][0]} x ${t.ask[0][1]}  oi ${t.oi}` : '';
  return `${time}  ${t.s.padEnd(22)} ${t.p.toFixed(2).padStart(10)}${extra}${depth}`;
};

const client = new FeedClient({ url, key });
client.on('ticks', (ticks) => { for (const t of ticks) console.log(fmt(t)); });
client.on('snapshot', (s) => { for (const t of s.ticks) console.log(`${fmt(t)}  (snapshot)`); });
client.on('bars', (bs) => {
  for (const b of bs) console.log(`${ist(b.st, 19)}  ${b.s.padEnd(22)} ${b.tf} bar O ${b.o} H ${b.h} L ${b.l} C ${b.c} V ${b.v}${b.x ? ' closed' : ''}`);
});
client.on('error', (e) => console.error(`error: ${e.message}`));
try {
  await client.connect();
} catch (e) {
  usage(`could not connect to ${url}: ${(e as Error).message}`);
}
const ack = await client.subscribe(symbols, { mode, bars });
for (const r of ack.rejected) console.error(`not followed: ${String(r.instrument)} (${r.reason})`);
process.on('SIGINT', () => { client.close(); process.exit(0); });
