/**
 * The last tick stored per token, read at start-up so that the shards drop the snapshot Kite sends
 * on subscribe when the store already has it (workers/stages/filter.ts seed). Kite answers every
 * subscribe with the instrument's current state; a process that takes over from another (the
 * standby ingest after the owner died, or a restart) would otherwise store each instrument's last
 * tick a second time.
 *
 * One indexed lookup per token (market_data_token_time), newest first within the IST day's
 * partitions: a day of rows is never scanned. Read on a connection of its own, closed at once,
 * before the writer starts; on the embedded database (no DATABASE_URL) the service starts with no
 * seed, as the embedded store belongs to one process and a restart re-reads no socket state.
 */
import postgres from 'postgres';
import { pgOptions } from '../core/db.ts';
import { priceDivisor } from '../core/packet-slot.ts';
import type { LastStored } from '../core/shard-protocol.ts';
import type { Logger } from '../log.ts';

const QUERY = `
SELECT t.token::bigint AS token, m.kind, m.price, m.last_qty, m.avg_price, m.volume, m.buy_qty, m.sell_qty, m.oi,
       m.time, m.recv_time, m.last_trade_time
FROM unnest($1::bigint[]) AS t(token)
CROSS JOIN LATERAL (
  SELECT kind, price, last_qty, avg_price, volume, buy_qty, sell_qty, oi, time, recv_time, last_trade_time
  FROM market_data
  WHERE token = t.token AND time > now() - interval '1 day'
  ORDER BY time DESC, recv_time DESC, seq DESC
  LIMIT 1
) m`;

/** Kite packet kinds that carry an exchange time (src/core/packet-slot.ts Kind): index full, full. */
const HAS_EXCHANGE_TIME = new Set([3, 5]);

/**
 * The instruments followed by the processes that fed the store since the one that stored its last
 * tick started (sql/008_feed_sessions.sql): a restart's gap names them, as the strikes a new process
 * chooses around the index level can differ from those of the process it replaces.
 */
const SESSIONS = `
SELECT DISTINCT unnest(instruments)::bigint AS token FROM feed_sessions
WHERE started_at >= coalesce((SELECT max(started_at) FROM feed_sessions WHERE started_at <= to_timestamp($1::double precision / 1000)), '-infinity')`;

/** The last stored tick per token, and the latest receive time among them (when the store last took data). */
export interface LastStoredRead {
  ticks: LastStored[];
  lastRecvMs: number | null;
  /** The tokens the earlier processes followed (empty before any was recorded). */
  earlierTokens: number[];
}

export async function lastStoredTicks(url: string, tokens: readonly number[], log: Logger): Promise<LastStoredRead> {
  if (tokens.length === 0) return { ticks: [], lastRecvMs: null, earlierTokens: [] };
  const sql = postgres(url, pgOptions({ max: 1 }));
  try {
    // The tables are made by the writer's migrations: a first start has nothing stored; a store
    // migrated before feed_sessions (008) has no sessions yet.
    const [{ exists, sessions }] = await sql<{ exists: boolean; sessions: boolean }[]>`
      SELECT to_regclass('market_data') IS NOT NULL AS exists, to_regclass('feed_sessions') IS NOT NULL AS sessions`;
    if (!exists) return { ticks: [], lastRecvMs: null, earlierTokens: [] };
    const rows = await sql.unsafe(QUERY, [tokens.map(String)]);
    let lastRecvMs: number | null = null;
    for (const r of rows) lastRecvMs = Math.max(lastRecvMs ?? 0, (r.recv_time as Date).getTime());
    const ticks = rows.map((r) => {
      const token = Number(r.token);
      const d = priceDivisor(token);
      const kind = Number(r.kind);
      return {
        token,
        kind,
        price: Math.round(Number(r.price) * d),
        lastQty: Number(r.last_qty),
        avgPrice: Math.round(Number(r.avg_price) * d),
        volume: Number(r.volume),
        buyQty: Number(r.buy_qty),
        sellQty: Number(r.sell_qty),
        oi: Number(r.oi),
        // A packet without an exchange time is stored at its receive time: the record has 0.
        exchangeTime: HAS_EXCHANGE_TIME.has(kind) ? Math.floor((r.time as Date).getTime() / 1000) : 0,
        lastTradeTime: r.last_trade_time ? Math.floor((r.last_trade_time as Date).getTime() / 1000) : 0,
      };
    });
    const earlierTokens = sessions && lastRecvMs !== null ? (await sql.unsafe(SESSIONS, [lastRecvMs])).map((r) => Number(r.token)) : [];
    return { ticks, lastRecvMs, earlierTokens };
  } catch (e) {
    // A seed is an optimisation of exactly-once, not a condition of start: say what it costs.
    log.warn({ err: (e as Error).message }, 'could not read the last stored ticks: the first tick of each instrument may be stored twice if the previous process stored it');
    return { ticks: [], lastRecvMs: null, earlierTokens: [] };
  } finally {
    await sql.end({ timeout: 1 });
  }
}
