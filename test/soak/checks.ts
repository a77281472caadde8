/**
 * The soak's checks, each against what the simulator sent (the ledger) and what the database holds:
 *
 * - exactly once: each sent tick's key (ledger.ts tickKey) counted in market_data; a key stored more
 *   often than sent is a duplicate, less often a lost tick. A lost tick has a reason when the
 *   service recorded a feed gap (feed_gaps, GET /api/gaps) for its token around the moment it was
 *   sent; any other lost tick is a failure.
 * - bars: every stored closed bar whose bucket lies in a quiet window (no fault, no restart) equals
 *   the one test/support/aggregate-reference.ts computes from the sent ticks.
 * - paper orders: each order's fills, events and the positions agree.
 */
import type postgres from 'postgres';
import type { CanonicalBar } from '../../src/core/bar.ts';
import { referenceAggregate, type RefEvent } from '../support/aggregate-reference.ts';
import type { SoakLedger } from './ledger.ts';

/**
 * Frames the simulator had sent when the connection was lost, still in the sockets, die with it:
 * a tick sent this long before a gap's start is counted in that gap. (The gap starts when the
 * service noticed the loss; the sim's last batch before a drop is at most one batch, 50 ms, older.)
 */
export const GAP_EDGE_MS = 250;

export interface Gap { startMs: number; endMs: number; conn: number | null; cause: string; tokens: Set<number> }

export async function readGaps(sql: postgres.Sql<any>): Promise<Gap[]> {
  const rows = await sql`SELECT extract(epoch FROM started_at)::float8 * 1000 AS s, extract(epoch FROM ended_at)::float8 * 1000 AS e,
    conn, cause, instruments::text AS tokens FROM feed_gaps ORDER BY started_at`;
  return rows.map((r) => ({
    startMs: r.s as number, endMs: r.e as number, conn: r.conn as number | null, cause: r.cause as string,
    tokens: new Set(String(r.tokens).replace(/[{}]/g, '').split(',').filter((x) => x !== '').map(Number)),
  }));
}

export function gapOf(gaps: readonly Gap[], token: number, ms: number): Gap | undefined {
  return gaps.find((g) => g.tokens.has(token) && ms >= g.startMs - GAP_EDGE_MS && ms <= g.endMs);
}

/** Where a moment lies against the nearest recorded gap, for the report of an unexplained loss. */
function nearest(gaps: readonly Gap[], ms: number): string {
  let best: Gap | undefined;
  for (const g of gaps) if (best === undefined || Math.abs(g.startMs - ms) < Math.abs(best.startMs - ms)) best = g;
  if (best === undefined) return ', no gap recorded';
  const where = ms < best.startMs ? `${Math.round(best.startMs - ms)} ms before the start of`
    : ms > best.endMs ? `${Math.round(ms - best.endMs)} ms after the end of`
      : 'inside, but its token is not among the instruments of,';
  return ` (${where} the nearest gap, "${best.cause}" ${new Date(best.startMs).toISOString()}..${new Date(best.endMs).toISOString()})`;
}

export interface Window { name: string; fromMs: number; toMs: number }

export interface OnceRow {
  produced: number;
  stored: number;
  duplicates: number;
  lostWithReason: number;
  lostWithout: number;
  /** Of `stored`: full ticks lost with a process whose quote-mode head the next one stored (its subscribe snapshot). */
  storedAsHead: number;
  reasons: Map<string, number>;
  /** A few lost ticks without a reason, for the report. */
  unexplained: string[];
}

/**
 * market_data against the ledger, split by the windows the ticks were sent in. Cumulative: every
 * call reads the whole table and every tick sent so far.
 */
export async function checkOnce(sql: postgres.Sql<any>, ledger: SoakLedger, windows: readonly Window[]): Promise<{ rows: Map<string, OnceRow>; total: OnceRow; storedRows: number; quarantined: number; gaps: Gap[] }> {
  const stored = new Map<string, number>();
  let storedRows = 0;
  // A packet without exchange time (ltp, quote, index quote) is stored at its receive time: the
  // ledger keys it with 0 (ledger.ts), and so does this.
  await sql`SELECT token::int AS t, CASE WHEN kind IN (3, 5) THEN extract(epoch FROM time)::bigint::int ELSE 0 END AS s, round(price * 100)::int AS p, volume::float8 AS v, oi::float8 AS oi,
      round(high * 100)::int AS h, round(low * 100)::int AS l FROM market_data`.cursor(20_000, (rows) => {
    for (const r of rows) {
      const k = `${r.t}|${r.s}|${r.p}|${r.v}|${r.oi}|${r.h}|${r.l}`;
      stored.set(k, (stored.get(k) ?? 0) + 1);
      storedRows++;
    }
  });
  // Quarantined ticks are stored with their reason (quarantined_ticks has no high and low: matched
  // on the rest of the key). Each row is listed under two keys; q counts rows.
  const quarantined = new Map<string, string[]>();
  let q = 0;
  for (const r of await sql`SELECT token::int AS t, extract(epoch FROM time)::bigint::int AS s, round(price * 100)::int AS p, volume::float8 AS v, oi::float8 AS oi, reason FROM quarantined_ticks`) {
    // A packet without exchange time (quote mode) is stored at its receive time: matched without it.
    for (const k of [`${r.t}|${r.s}|${r.p}|${r.v}|${r.oi}`, `${r.t}|0|${r.p}|${r.v}|${r.oi}`]) {
      if (!quarantined.has(k)) quarantined.set(k, []);
      quarantined.get(k)!.push(String(r.reason));
    }
    q++;
  }
  const gaps = await readGaps(sql);
  const blank = (): OnceRow => ({ produced: 0, stored: 0, duplicates: 0, lostWithReason: 0, lostWithout: 0, storedAsHead: 0, reasons: new Map(), unexplained: [] });
  const rows = new Map(windows.map((w) => [w.name, blank()]));
  const total = blank();
  const windowOf = (ms: number) => windows.find((w) => ms >= w.fromMs && ms < w.toMs)?.name ?? 'between phases';
  // Sent occurrences of each key, so a key sent twice (an index back at the same values within a
  // second) is matched by count, and its surplus or shortfall is put on its last occurrences.
  const sentCount = new Map<string, number>();
  for (let i = 0; i < ledger.n; i++) sentCount.set(ledger.keys[i], (sentCount.get(ledger.keys[i]) ?? 0) + 1);
  // A full tick that was lost with a process (a SIGKILL, an ingest hand-over) comes again as the
  // next process's subscribe snapshot: in quote mode first (Kite's mode message takes effect late),
  // stored at its receive time, with no OI. Its row carries the quote-mode key (time and OI 0), is
  // a repeat in the ledger (the head of the lost packet), and stands for the lost tick.
  const headOf = (k: string) => {
    const [t, s, p, v, , h, l] = k.split('|');
    return s === '0' ? null : `${t}|0|${p}|${v}|0|${h}|${l}`;
  };
  const usedHeads = new Map<string, number>();
  const byHead = new Uint8Array(ledger.n);
  {
    const nthOf = new Map<string, number>();
    for (let i = 0; i < ledger.n; i++) {
      const k = ledger.keys[i];
      const nth = (nthOf.get(k) ?? 0) + 1;
      nthOf.set(k, nth);
      if (nth <= (stored.get(k) ?? 0)) continue;
      const hk = headOf(k);
      if (hk === null) continue;
      const spare = (stored.get(hk) ?? 0) - (sentCount.get(hk) ?? 0) - (usedHeads.get(hk) ?? 0);
      if (spare > 0) {
        usedHeads.set(hk, (usedHeads.get(hk) ?? 0) + 1);
        byHead[i] = 1;
      }
    }
  }
  const seen = new Map<string, number>();
  for (let i = 0; i < ledger.n; i++) {
    const k = ledger.keys[i];
    const nth = (seen.get(k) ?? 0) + 1;
    seen.set(k, nth);
    const w = windowOf(ledger.sentMs[i]);
    if (!rows.has(w)) rows.set(w, blank());
    const row = rows.get(w)!;
    const have = (stored.get(k) ?? 0) - (usedHeads.get(k) ?? 0);
    const sent = sentCount.get(k)!;
    for (const r of [row, total]) r.produced++;
    if (byHead[i] === 1) {
      for (const r of [row, total]) {
        r.stored++;
        r.storedAsHead++;
      }
      continue;
    }
    if (nth <= have) {
      for (const r of [row, total]) r.stored++;
      if (nth === sent && have > sent) {
        for (const r of [row, total]) {
          r.duplicates += have - sent;
          if (r.unexplained.length < 5) r.unexplained.push(`token ${ledger.token[i]} price ${ledger.price[i]} sent ${sent}x ${new Date(ledger.sentMs[i]).toISOString()}, stored ${have}x (key ${k})`);
        }
      }
      continue;
    }
    const qk = k.split('|').slice(0, 5).join('|');
    const qr = quarantined.get(qk)?.pop();
    if (qr !== undefined) {
      for (const r of [row, total]) {
        r.lostWithReason++;
        r.reasons.set(`quarantined ${qr}`, (r.reasons.get(`quarantined ${qr}`) ?? 0) + 1);
      }
      continue;
    }
    const g = gapOf(gaps, ledger.token[i], ledger.sentMs[i]);
    if (g) {
      for (const r of [row, total]) {
        r.lostWithReason++;
        r.reasons.set(g.cause, (r.reasons.get(g.cause) ?? 0) + 1);
      }
    } else {
      for (const r of [row, total]) {
        r.lostWithout++;
        if (r.unexplained.length < 5) r.unexplained.push(`token ${ledger.token[i]} price ${ledger.price[i]} sent ${new Date(ledger.sentMs[i]).toISOString()}${nearest(gaps, ledger.sentMs[i])}`);
      }
    }
  }
  // Rows that match no sent tick at all: duplicates of nothing (a corrupted or invented row).
  for (const [k, all] of stored) {
    const have = all - (usedHeads.get(k) ?? 0);
    if (!sentCount.has(k) && have > 0) {
      total.duplicates += have;
      if (total.unexplained.length < 10) total.unexplained.push(`stored row matching no sent tick: ${k}`);
    }
  }
  return { rows, total, storedRows, quarantined: q, gaps };
}

const TF_NAME: Record<number, string> = { 1000: '1s', 60_000: '1m', 300_000: '5m', 900_000: '15m', 86_400_000: '1d' };
const FLAG_PARTIAL = 2;
const FLAG_LATE = 4;
const FLAG_CARRIED = 8;
const FLAG_BACKFILLED = 16;

export interface BarCheck { compared: number; mismatched: number; skipped: number; examples: string[] }

/**
 * Stored closed bars against the reference over the sent ticks, for buckets that end before
 * `untilMs` and whose bucket (plus a second either side) touches no window in `noisy` (faults,
 * lost ticks); `resets` are the moments a new service process started, after which each token's
 * first tick has no volume delta (the validator's first tick since start-up).
 */
export async function checkBars(sql: postgres.Sql<any>, ledger: SoakLedger, noisy: readonly { fromMs: number; toMs: number }[], resets: readonly number[], untilMs: number): Promise<BarCheck> {
  const tfs = [1000, 60_000, 300_000, 900_000];
  const byToken = new Map<number, RefEvent[]>();
  const lastVol = new Map<number, number>();
  let r = 0;
  for (let i = 0; i < ledger.n; i++) {
    // A new process's validator knows no earlier volume: its first tick per token carries none.
    while (r < resets.length && ledger.sentMs[i] >= resets[r]) {
      lastVol.clear();
      r++;
    }
    const t = ledger.token[i];
    let evs = byToken.get(t);
    if (evs === undefined) byToken.set(t, (evs = []));
    const prev = lastVol.get(t);
    const v = ledger.volume[i];
    lastVol.set(t, v);
    evs.push({ kind: 'tick', token: t, exchTimeMs: ledger.exchMs[i], price: ledger.price[i], volumeDelta: prev === undefined ? 0 : v - prev, oi: ledger.oi[i], nowMs: ledger.sentMs[i] });
  }
  const quiet = (b: { startMs: number; endMs: number }) => b.endMs + 1000 <= untilMs && !noisy.some((w) => b.startMs - 1000 < w.toMs && b.endMs + 1000 > w.fromMs);
  const ref = new Map<string, CanonicalBar>();
  for (const evs of byToken.values()) {
    // The clock runs on to the check, as the service's did: bars that ended by then are closed.
    evs.push({ kind: 'advance', nowMs: untilMs });
    for (const b of referenceAggregate(evs, tfs, 500).bars) {
      if ((b.flags & (FLAG_PARTIAL | FLAG_LATE | FLAG_CARRIED)) !== 0 || !quiet(b)) continue;
      ref.set(`${b.token}|${TF_NAME[b.tfMs]}|${b.startMs}`, b);
    }
  }
  const out: BarCheck = { compared: 0, mismatched: 0, skipped: 0, examples: [] };
  const rows = await sql`SELECT token::int AS token, timeframe AS tf, extract(epoch FROM bucket_start)::float8 * 1000 AS s, extract(epoch FROM bucket_end)::float8 * 1000 AS e,
    open, high, low, close, volume::float8 AS volume, vwap, trades, oi::float8 AS oi, ticks, flags FROM bars WHERE timeframe IN ('1s', '1m', '5m', '15m')`;
  const seen = new Set<string>();
  const bad = (msg: string) => {
    out.mismatched++;
    if (out.examples.length < 8) out.examples.push(msg);
  };
  for (const r of rows) {
    const key = `${r.token}|${r.tf}|${r.s}`;
    if (!quiet({ startMs: r.s as number, endMs: r.e as number })) continue;
    if ((r.flags & (FLAG_LATE | FLAG_CARRIED | FLAG_BACKFILLED | FLAG_PARTIAL)) !== 0) {
      out.skipped++;
      seen.add(key);
      continue;
    }
    seen.add(key);
    const b = ref.get(key);
    if (b === undefined) {
      bad(`stored bar with no reference: ${key} ${JSON.stringify(r)}`);
      continue;
    }
    out.compared++;
    const same = (x: number, y: number) => Math.abs(x - y) <= 1e-6 * Math.max(1, Math.abs(y));
    const diffs: string[] = [];
    for (const f of ['open', 'high', 'low', 'close', 'volume', 'trades', 'ticks', 'oi'] as const) {
      if (!same(Number(r[f]), b[f] as number)) diffs.push(`${f} ${r[f]} vs ${b[f]}`);
    }
    if ((r.vwap === null) !== (b.vwap === null) || (b.vwap !== null && !same(r.vwap as number, b.vwap))) diffs.push(`vwap ${r.vwap} vs ${b.vwap}`);
    if (diffs.length > 0) bad(`${key}: ${diffs.join(', ')}`);
  }
  for (const k of ref.keys()) if (!seen.has(k)) bad(`reference bar not stored: ${k}`);
  return out;
}

export interface OrderCheck { orders: number; byStatus: Record<string, number>; problems: string[] }

/** Each paper order consistent with its fills and events, and the positions with the fills. */
export async function checkOrders(sql: postgres.Sql<any>): Promise<OrderCheck> {
  const problems: string[] = [];
  const orders = await sql`SELECT o.order_id, o.status, o.quantity, o.filled_quantity, o.filled_value_paise::float8 AS fv, o.cancelled_quantity,
      coalesce(t.q, 0)::int AS tq, coalesce(t.v, 0)::float8 AS tv, e.n AS events, e.minseq, e.maxseq, e.last_status
    FROM orders o
    LEFT JOIN (SELECT order_id, sum(quantity) AS q, sum(quantity * price_paise) AS v FROM trades GROUP BY order_id) t USING (order_id)
    LEFT JOIN LATERAL (SELECT count(*)::int AS n, min(seq)::int AS minseq, max(seq)::int AS maxseq,
      (SELECT status FROM order_events x WHERE x.order_id = o.order_id ORDER BY seq DESC LIMIT 1) AS last_status
      FROM order_events y WHERE y.order_id = o.order_id) e ON true`;
  const byStatus: Record<string, number> = {};
  for (const o of orders) {
    byStatus[o.status] = (byStatus[o.status] ?? 0) + 1;
    const id = o.order_id;
    if (o.filled_quantity !== o.tq) problems.push(`${id}: filled_quantity ${o.filled_quantity}, trades sum ${o.tq}`);
    if (o.fv !== o.tv) problems.push(`${id}: filled_value ${o.fv}, trades value ${o.tv}`);
    if (o.filled_quantity > o.quantity) problems.push(`${id}: filled ${o.filled_quantity} of ${o.quantity}`);
    if (o.status === 'COMPLETE' && o.filled_quantity !== o.quantity) problems.push(`${id}: COMPLETE with ${o.filled_quantity} of ${o.quantity}`);
    if (o.status === 'CANCELLED' && o.filled_quantity + o.cancelled_quantity !== o.quantity) problems.push(`${id}: CANCELLED, filled ${o.filled_quantity} + cancelled ${o.cancelled_quantity} != ${o.quantity}`);
    // Events are numbered 1, 2, 3, ... (src/orders/store.ts), with no hole.
    if (o.events === 0 || o.minseq !== 1 || o.maxseq !== o.events) problems.push(`${id}: ${o.events} events, seq ${o.minseq}..${o.maxseq}`);
    else if (o.last_status !== o.status) problems.push(`${id}: status ${o.status}, last event ${o.last_status}`);
  }
  const pos = await sql`SELECT p.api_key, p.instrument_token, p.product, p.buy_quantity::float8 AS b, p.sell_quantity::float8 AS s,
      coalesce(t.b, 0)::float8 AS tb, coalesce(t.s, 0)::float8 AS ts
    FROM positions p LEFT JOIN (SELECT api_key, instrument_token, product,
      sum(quantity) FILTER (WHERE transaction_type = 'BUY') AS b, sum(quantity) FILTER (WHERE transaction_type = 'SELL') AS s
      FROM trades GROUP BY 1, 2, 3) t USING (api_key, instrument_token, product)`;
  for (const p of pos) if (p.b !== p.tb || p.s !== p.ts) problems.push(`position ${p.api_key}/${p.instrument_token}/${p.product}: buy ${p.b} sell ${p.s}, trades ${p.tb} / ${p.ts}`);
  return { orders: orders.length, byStatus, problems };
}

/** Least-squares slope of y over x, per unit of x. */
export function slope(xs: readonly number[], ys: readonly number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}
