-- 005 chain analytics: the option chain's ATM implied volatility and put-call ratios as a time
-- series, one bar per minute per (underlying, expiry), like price bars (src/analytics/series.ts
-- writes them when a minute closes).
--
-- A plain table on every path: two followed expiries make 750 rows a trading day, so neither day
-- partitions nor a hypertable would pay for themselves; the primary key serves every query.
-- expiry_rank makes the constant-rank series ("the nearest expiry's IV", whatever the date) that
-- an IV percentile is measured against.
CREATE TABLE chain_bars (
  name          text NOT NULL,              -- underlying as in the instrument master: 'NIFTY'
  expiry        date NOT NULL,
  timeframe     text NOT NULL,              -- '1m'
  bucket_start  timestamptz NOT NULL,       -- inclusive, on the IST session grid (src/core/ist.ts)
  bucket_end    timestamptz NOT NULL,       -- exclusive
  expiry_rank   smallint NOT NULL,          -- 0: the underlying's nearest followed expiry then; 1: the next
  atm_iv_open   double precision NOT NULL,  -- ATM implied volatility, an annualised fraction (0.125)
  atm_iv_high   double precision NOT NULL,
  atm_iv_low    double precision NOT NULL,
  atm_iv_close  double precision NOT NULL,
  pcr_oi        double precision,           -- at the bar's close; NULL when no call OI
  pcr_volume    double precision,           -- at the bar's close; NULL when no call volume
  forward       double precision NOT NULL,  -- the expiry's forward at the bar's close, rupees
  samples       integer NOT NULL,           -- refreshes that made the bar
  PRIMARY KEY (name, expiry, timeframe, bucket_start)
);
CREATE INDEX chain_bars_rank ON chain_bars (name, expiry_rank, timeframe, bucket_start);
