-- 002 time series, TimescaleDB: hypertables with compression and retention, 1-minute continuous aggregate.
--
-- market_data holds every tick that passed validation exactly once; bars holds closed bars, one per
-- (token, timeframe, bucket start). The columns are the same on every path (a test compares them),
-- so the same queries run on all three: see 002_timeseries.plain.sql and 002_timeseries.partitioned.sql.
--
-- Written for the official TimescaleDB 2.x image (timescale/timescaledb:latest-pg15 and later),
-- where the extension is preloaded. Only parsed in this project's tests (TimescaleDB is not
-- installed on the machines here); the migrator picks this file only when pg_available_extensions
-- lists timescaledb and it is in shared_preload_libraries or already created.
-- Chunks are one day, like the partitioned path's partitions. Compression and retention are
-- TimescaleDB background jobs; the writer re-sets the retention windows from its config at
-- start-up (src/core/migrate.ts timescalePolicySql).

CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE market_data (
  token            bigint NOT NULL,
  time             timestamptz NOT NULL,          -- exchange time; the receive time when the packet had none
  recv_time        timestamptz NOT NULL,          -- when the front process received the frame
  kind             smallint NOT NULL,             -- Kite packet kind (src/core/packet-slot.ts Kind): 1 ltp ... 5 full
  price            double precision NOT NULL,     -- last traded price, rupees
  last_qty         bigint NOT NULL,
  avg_price        double precision NOT NULL,     -- Kite's day VWAP
  volume           bigint NOT NULL,               -- cumulative day volume
  volume_delta     bigint NOT NULL,               -- since the token's previous stored tick (0 on the first of a session)
  buy_qty          bigint NOT NULL,
  sell_qty         bigint NOT NULL,
  open             double precision NOT NULL,     -- day open
  high             double precision NOT NULL,
  low              double precision NOT NULL,
  close            double precision NOT NULL,     -- previous day's close
  change_pct       double precision NOT NULL,
  oi               bigint NOT NULL,
  oi_high          bigint NOT NULL,
  oi_low           bigint NOT NULL,
  last_trade_time  timestamptz,                   -- NULL when the packet had none
  bid_price        double precision,              -- best bid/ask: NULL when the tick carried no depth
  bid_qty          bigint,
  ask_price        double precision,
  ask_qty          bigint,
  depth            double precision[],            -- [10][3]: rows 1-5 bids, 6-10 asks; columns qty, price, orders. NULL without depth
  conn             smallint NOT NULL,             -- upstream connection slot
  seq              bigint NOT NULL                -- upstream frame sequence on that connection
);
SELECT create_hypertable('market_data', 'time', chunk_time_interval => INTERVAL '1 day');
CREATE INDEX market_data_token_time ON market_data (token, time);
ALTER TABLE market_data SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'token',
  timescaledb.compress_orderby = 'time'
);
SELECT add_compression_policy('market_data', INTERVAL '2 days');
SELECT add_retention_policy('market_data', INTERVAL '30 days');

CREATE TABLE bars (
  token         bigint NOT NULL,
  timeframe     text NOT NULL,                    -- '1s', '1m', '5m', '15m', '1d' (ist.ts timeframeName)
  bucket_start  timestamptz NOT NULL,             -- inclusive; IST session grid (src/core/ist.ts)
  bucket_end    timestamptz NOT NULL,             -- exclusive
  open          double precision NOT NULL,
  high          double precision NOT NULL,
  low           double precision NOT NULL,
  close         double precision NOT NULL,
  volume        bigint NOT NULL,
  vwap          double precision,                 -- NULL when the bar has no volume (indices)
  trades        integer NOT NULL,
  oi            bigint NOT NULL,
  ticks         integer NOT NULL,
  partial       boolean NOT NULL,                 -- covers only part of its bucket (cut by a shutdown, or merged across a restart)
  flags         smallint NOT NULL,                -- src/core/bar.ts BarFlag bits
  PRIMARY KEY (token, timeframe, bucket_start)
);
SELECT create_hypertable('bars', 'bucket_start', chunk_time_interval => INTERVAL '1 day');
ALTER TABLE bars SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'token, timeframe',
  timescaledb.compress_orderby = 'bucket_start'
);
SELECT add_compression_policy('bars', INTERVAL '7 days');
SELECT add_retention_policy('bars', INTERVAL '365 days');

-- 1-minute bars straight from the ticks, kept up to date by TimescaleDB. Clock-aligned minutes
-- (09:15, 09:16, ...), which on the 1m grid match the aggregator's IST session grid exactly.
CREATE MATERIALIZED VIEW bars_1m_agg WITH (timescaledb.continuous) AS
SELECT
  token,
  time_bucket(INTERVAL '1 minute', time) AS bucket_start,
  first(price, time) AS open,
  max(price) AS high,
  min(price) AS low,
  last(price, time) AS close,
  sum(volume_delta) AS volume,
  sum(price * volume_delta) / NULLIF(sum(volume_delta), 0) AS vwap,
  count(*) FILTER (WHERE volume_delta > 0) AS trades,
  last(oi, time) AS oi,
  count(*) AS ticks
FROM market_data
GROUP BY token, time_bucket(INTERVAL '1 minute', time)
WITH NO DATA;
SELECT add_continuous_aggregate_policy('bars_1m_agg',
  start_offset => INTERVAL '1 hour',
  end_offset => INTERVAL '1 minute',
  schedule_interval => INTERVAL '1 minute');
