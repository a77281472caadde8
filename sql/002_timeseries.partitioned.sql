-- 002 time series, PostgreSQL without TimescaleDB: native declarative range partitioning by IST day.
--
-- market_data holds every tick that passed validation exactly once; bars holds closed bars, one per
-- (token, timeframe, bucket start). The columns are the same on every path (a test compares them),
-- so the same queries run on all three: see 002_timeseries.plain.sql and 002_timeseries.timescale.sql.
--
-- One partition per IST calendar day ([00:00 IST, next 00:00 IST)), named <table>_pYYYYMMDD, so a
-- trading day lives in one partition. storage_ensure_partitions creates them: the writer calls it
-- ahead of time (today .. today + STORAGE_PARTITIONS_AHEAD) and for any day a batch touches that
-- has none yet (a spill replayed days later). There is deliberately no DEFAULT partition: a row with
-- no partition fails loudly instead of piling up where retention never reaches it.
-- The retention job (workers/writer/maintenance.ts) lists expired partitions with
-- storage_expired_partitions, then DETACH ... CONCURRENTLY (no lock that blocks the writer) and drops them.

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
) PARTITION BY RANGE (time);
CREATE INDEX market_data_token_time ON market_data (token, time);

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
) PARTITION BY RANGE (bucket_start);

-- IST is UTC+05:30 all year, so a fixed offset is exact and needs no time zone data.
CREATE FUNCTION storage_ist_day(t timestamptz) RETURNS date
LANGUAGE sql IMMUTABLE AS $$ SELECT ((t AT TIME ZONE 'UTC') + interval '5 hours 30 minutes')::date $$;

CREATE FUNCTION storage_ist_midnight(d date) RETURNS timestamptz
LANGUAGE sql IMMUTABLE AS $$ SELECT (d::timestamp - interval '5 hours 30 minutes') AT TIME ZONE 'UTC' $$;

-- Create the day partitions of market_data and bars covering [p_from, p_to]; returns how many it
-- created. Serialised by an advisory lock so two writers never race on one name.
CREATE FUNCTION storage_ensure_partitions(p_from timestamptz, p_to timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  d date;
  t text;
  part text;
  created integer := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('storage_ensure_partitions'));
  d := storage_ist_day(p_from);
  WHILE d <= storage_ist_day(p_to) LOOP
    FOREACH t IN ARRAY ARRAY['market_data', 'bars'] LOOP
      part := t || '_p' || to_char(d, 'YYYYMMDD');
      IF to_regclass(quote_ident(part)) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
          part, t, storage_ist_midnight(d), storage_ist_midnight(d + 1));
        created := created + 1;
      END IF;
    END LOOP;
    d := d + 1;
  END LOOP;
  RETURN created;
END
$$;

-- Partitions of p_table whose whole day ended more than p_keep_days ago.
CREATE FUNCTION storage_expired_partitions(p_table text, p_keep_days integer)
RETURNS TABLE (partition_name text, day date)
LANGUAGE sql STABLE AS $$
  SELECT c.relname::text, to_date(substring(c.relname from '_p([0-9]{8})$'), 'YYYYMMDD')
  FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
  JOIN pg_class p ON p.oid = i.inhparent
  WHERE p.relname = p_table
    AND c.relname ~ '_p[0-9]{8}$'
    AND to_date(substring(c.relname from '_p([0-9]{8})$'), 'YYYYMMDD') < storage_ist_day(now()) - p_keep_days
  ORDER BY 2
$$;
