/**
 * Stored ticks for the replay source's tests and bench, made by PostgreSQL itself (INSERT ...
 * SELECT generate_series): 2M rows take about 17 s on this machine, against minutes for canonical
 * ticks encoded in JS and copied in. Rows have the writer's exact stored shape (workers/writer/copy.ts):
 * every third token is full mode with depth (kind 5, bid/ask, a 10×3 depth), the others quote mode
 * (kind 4, no depth, OI 0). Tokens take turns, so each exchange millisecond holds ticks of several
 * tokens, which exercises the order's tie-break.
 */
/** One statement with `$n` parameters, resolving its rows: `sql.unsafe` of the postgres driver, or PGlite's `query(...).rows`. */
export type Query = (text: string, params?: unknown[]) => Promise<readonly unknown[]>;

/** The depth arrays rows cycle through: 64 distinct ones, so depth is not one constant. */
const DEPTHS = 64;

export interface FillOptions {
  rows: number;
  /** Exchange time of the first row, epoch ms; rows spread evenly over `spanMs`. */
  fromMs: number;
  spanMs: number;
  tokens: readonly number[];
}

/**
 * Insert `rows` ticks into market_data through `query` (PostgreSQL or PGlite; the day partitions
 * are made first on the partitioned path).
 */
export async function fillMarketData(query: Query, o: FillOptions): Promise<void> {
  const partitioned = await query(`SELECT 1 FROM pg_proc WHERE proname = 'storage_ensure_partitions'`);
  if (partitioned.length > 0) await query('SELECT storage_ensure_partitions($1, $2)', [new Date(o.fromMs), new Date(o.fromMs + o.spanMs)]);
  const depths: string[] = [];
  for (let k = 0; k < DEPTHS; k++) {
    const rows: string[] = [];
    for (let i = 0; i < 10; i++) rows.push(`{${75 * (i + 1 + k)},${(i < 5 ? 100 - 0.05 * (i + 1) : 100 + 0.05 * (i - 4)) + k},${i + 1}}`);
    depths.push(`{${rows.join(',')}}`);
  }
  const nTok = o.tokens.length;
  await query(`
    WITH depths AS (SELECT k - 1 AS k, d::float8[] AS depth FROM unnest($5::text[]) WITH ORDINALITY AS u(d, k))
    INSERT INTO market_data (token, time, recv_time, kind, price, last_qty, avg_price, volume, volume_delta, buy_qty, sell_qty,
      open, high, low, close, change_pct, oi, oi_high, oi_low, last_trade_time, bid_price, bid_qty, ask_price, ask_qty, depth, conn, seq)
    SELECT tok, ts, ts + interval '850 microseconds', CASE WHEN full_ THEN 5 ELSE 4 END,
      px, 75 * (1 + g % 7), px - 0.35, 1000000 + g, 75, 120000 + g % 1000, 98000 + g % 1000,
      100.05, 130.1, 95.45, 100, px - 100,
      CASE WHEN full_ THEN 1500000 + g % 5000 ELSE 0 END, CASE WHEN full_ THEN 1600000 ELSE 0 END, CASE WHEN full_ THEN 1400000 ELSE 0 END,
      CASE WHEN g % 11 = 0 THEN NULL ELSE ts - interval '7 milliseconds' END,
      CASE WHEN full_ THEN d.depth[1][2] END, CASE WHEN full_ THEN d.depth[1][1]::bigint END,
      CASE WHEN full_ THEN d.depth[6][2] END, CASE WHEN full_ THEN d.depth[6][1]::bigint END,
      CASE WHEN full_ THEN d.depth END, (g % 3)::smallint, g / 3
    FROM (SELECT g, ($1::bigint[])[1 + g % $2::int] AS tok, (g % $2::int) % 3 = 0 AS full_,
            to_timestamp(($3::float8 + floor(g * $4::float8 / $6::float8)) / 1000) AS ts,
            100 + (g % 997) * 0.05 AS px
          FROM generate_series(0, $6::bigint - 1) g) s
    JOIN depths d ON d.k = s.g % ${DEPTHS}`,
  [o.tokens as number[], nTok, o.fromMs, o.spanMs, depths, o.rows]);
  await query('ANALYZE market_data');
}
