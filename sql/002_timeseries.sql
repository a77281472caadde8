-- 002 time series: market_data and bars, defined once for every schema path.
--
-- market_data holds every tick that passed validation exactly once; bars holds closed bars, one per
-- (token, timeframe, bucket start). Their columns, types, keys and indexes are written here only,
-- so the same queries and the same binary COPY rows (workers/writer/copy.ts) serve every path.
-- src/core/migrate.ts runs this file and then the path's own file as one migration:
--
--   partitioned  002_timeseries.partitioned.sql: fills the storage slots below with PARTITION BY
--                RANGE, one partition per IST day, and the functions that create and retire them
--   timescale    002_timeseries.timescale.sql: turns both tables into hypertables, with
--                compression, retention and a 1-minute continuous aggregate
--   plain        (the embedded PGlite) nothing: the slots stay empty and the tables plain
--
-- The comment after each column list is that table's storage slot: a path's file may fill it
-- with a clause (a line "-- @storage <table>: <clause>"), but never declares or alters a column
-- (src/core/migrate.test.ts holds every path to the same columns).

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
) /* @storage market_data */;
CREATE INDEX market_data_token_time ON market_data (token, time);

CREATE TABLE bars (
  token         bigint NOT NULL,
  timeframe     text NOT NULL,                    -- '1s', '1m', '5m', '15m', '1d' (src/core/ist.ts timeframeName)
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
) /* @storage bars */;
