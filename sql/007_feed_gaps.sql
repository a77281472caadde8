-- 007 feed gaps: every upstream outage, recorded when data flows again (src/storage/gaps.ts), and
-- listed at GET /api/gaps. Ticks inside a gap cannot be recovered: Kite serves no tick history,
-- only minute bars (KiteConnect.getHistoricalData), which gap repair fetches for bars_backfilled_at.
--
-- | column             | meaning                                                                  |
-- |--------------------|--------------------------------------------------------------------------|
-- | started_at         | when the connection was lost (or the previous ingest owner's last stored tick) |
-- | ended_at           | when data came again                                                     |
-- | conn               | the upstream connection slot; NULL for an ingest hand-over (all slots)   |
-- | cause              | the close code and reason, 'silence', or 'ingest hand-over (token N)'   |
-- | instruments        | the tokens that slot carried: those with no ticks for the gap           |
-- | ticks_recoverable  | always false (Kite has no tick history): said, not implied              |
-- | bars_backfilled_at | when the gap's minute bars came from Kite's historical API; NULL before |
CREATE TABLE feed_gaps (
  id                 bigserial PRIMARY KEY,
  started_at         timestamptz NOT NULL,
  ended_at           timestamptz NOT NULL,
  conn               smallint,
  cause              text NOT NULL,
  instruments        bigint[] NOT NULL,
  ticks_recoverable  boolean NOT NULL DEFAULT false,
  bars_backfilled_at timestamptz,
  CHECK (ended_at >= started_at)
);
CREATE INDEX feed_gaps_started ON feed_gaps (started_at);
