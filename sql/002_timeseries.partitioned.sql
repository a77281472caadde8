-- 002 time series, PostgreSQL without TimescaleDB: what this path adds to 002_timeseries.sql,
-- which defines market_data and bars for every path. Native declarative range partitioning by IST day.
--
-- One partition per IST calendar day ([00:00 IST, next 00:00 IST)), named <table>_pYYYYMMDD, so a
-- trading day lives in one partition. storage_ensure_partitions creates them: the writer
-- (workers/writer/sink-pg.ts) calls it ahead of time (yesterday .. today + PARTITIONS_AHEAD_DAYS)
-- and for any day a batch touches that has none yet (a spill replayed days later). There is
-- deliberately no DEFAULT partition: a row with no partition fails loudly instead of piling up
-- where retention never reaches it. The retention job (maintenance in workers/writer/sink-pg.ts)
-- lists expired partitions with storage_expired_partitions, then DETACH ... CONCURRENTLY (no lock
-- that blocks the writer) and drops them.
--
-- Partitioning is declared by CREATE TABLE alone, so it goes into the shared definition's storage
-- slots (src/core/migrate.ts puts each clause after that table's column list):
-- @storage market_data: PARTITION BY RANGE (time)
-- @storage bars: PARTITION BY RANGE (bucket_start)

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
