-- 002 time series, TimescaleDB: what this path adds to 002_timeseries.sql, which defines
-- market_data and bars for every path. Hypertables with compression and retention, and a 1-minute
-- continuous aggregate.
--
-- Written for the official TimescaleDB 2.x image (timescale/timescaledb:latest-pg15 and later),
-- where the extension is preloaded. Only parsed in this project's tests (TimescaleDB is not
-- installed on the machines here); the migrator picks this path only when pg_available_extensions
-- lists timescaledb and it is in shared_preload_libraries or already created.
-- create_hypertable converts the tables the shared file just created (empty, so no data moves;
-- bars' primary key holds bucket_start, as a hypertable's unique keys must hold its time column),
-- so this path fills no storage slot. Chunks are one day, like the partitioned path's partitions.
-- Compression and retention are TimescaleDB background jobs; the writer re-sets the retention
-- windows from its config at start-up (src/core/migrate.ts timescalePolicySql, run by
-- workers/writer/sink-pg.ts).

CREATE EXTENSION IF NOT EXISTS timescaledb;

SELECT create_hypertable('market_data', 'time', chunk_time_interval => INTERVAL '1 day');
ALTER TABLE market_data SET (
  timescaledb.compress,
  timescaledb.compress_segmentby = 'token',
  timescaledb.compress_orderby = 'time'
);
SELECT add_compression_policy('market_data', INTERVAL '2 days');
SELECT add_retention_policy('market_data', INTERVAL '30 days');

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
