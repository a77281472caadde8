-- 001 core: the tables every storage path shares (PostgreSQL, TimescaleDB, embedded PGlite).
--
-- Prices are rupees as double precision: the value the pipeline holds (Kite's integer paise over
-- the segment's divisor), round-tripped exactly by binary COPY. Quantities, volumes and OI are
-- bigint: Kite sends them as uint32 and day volume passes 2^31. Times are timestamptz.

-- The instrument master, upserted from Kite's /instruments at every start-up.
CREATE TABLE instruments (
  token          bigint PRIMARY KEY,              -- Kite instrument_token
  exchange_token bigint NOT NULL,
  symbol         text NOT NULL,                   -- Kite tradingsymbol
  name           text NOT NULL,
  type           text NOT NULL,                   -- EQ, FUT, CE, PE (indices are EQ in segment INDICES)
  segment        text NOT NULL,                   -- NSE, NFO-FUT, NFO-OPT, INDICES, ...
  exchange       text NOT NULL,                   -- NSE, NFO, ...
  strike         double precision NOT NULL DEFAULT 0,
  expiry         date,                            -- NULL for instruments that do not expire
  tick_size      double precision NOT NULL DEFAULT 0,
  lot_size       integer NOT NULL DEFAULT 0,
  freeze_qty     integer,                         -- NSE's quantity freeze; not in Kite's master, NULL until known
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instruments_exchange_symbol ON instruments (exchange, symbol);
CREATE INDEX instruments_symbol ON instruments (symbol);

-- Ticks that failed validation, with the reason (src/core/tick.ts QUARANTINE_REASON_NAMES, checked by
-- workers/stages/validate.ts).
-- Not partitioned: a healthy feed quarantines almost nothing; on a server the retention job
-- (maintenance in workers/writer/sink-pg.ts) deletes old rows.
CREATE TABLE quarantined_ticks (
  token      bigint NOT NULL,
  time       timestamptz NOT NULL,                -- exchange time, or the receive time when the packet had none
  recv_time  timestamptz NOT NULL,
  reason     text NOT NULL,
  kind       smallint NOT NULL,                   -- Kite packet kind (src/core/packet-slot.ts Kind)
  price      double precision NOT NULL,
  volume     bigint NOT NULL,
  oi         bigint NOT NULL,
  conn       smallint NOT NULL,
  seq        bigint NOT NULL
);
CREATE INDEX quarantined_ticks_time ON quarantined_ticks (time);
CREATE INDEX quarantined_ticks_token_time ON quarantined_ticks (token, time);

-- Orders as placed through the gateway. Nothing writes orders, order_events or positions yet: the
-- orders service to come fills them (REST order -> validation -> rate limit -> broker, Kite or paper).
CREATE TABLE orders (
  order_id         text PRIMARY KEY,              -- the broker's id (Kite's order_id, or the paper broker's)
  client_order_id  text UNIQUE,                   -- the caller's idempotency key, if it sent one
  broker           text NOT NULL,                 -- 'kite' or 'paper'
  account          text NOT NULL DEFAULT 'default',
  token            bigint NOT NULL,
  symbol           text NOT NULL,
  exchange         text NOT NULL,
  side             text NOT NULL CHECK (side IN ('BUY', 'SELL')),
  order_type       text NOT NULL CHECK (order_type IN ('MARKET', 'LIMIT', 'SL', 'SL-M')),
  product          text NOT NULL,                 -- CNC, MIS, NRML
  variety          text NOT NULL DEFAULT 'regular',
  validity         text NOT NULL DEFAULT 'DAY',
  quantity         integer NOT NULL CHECK (quantity > 0),
  price            double precision,
  trigger_price    double precision,
  status           text NOT NULL,                 -- Kite's status words: OPEN, COMPLETE, CANCELLED, REJECTED, ...
  filled_quantity  integer NOT NULL DEFAULT 0,
  average_price    double precision,
  tag              text,
  placed_by        text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_account_created ON orders (account, created_at);

-- Every state change of an order, in order (postbacks, fills, cancels), with the raw payload.
CREATE TABLE order_events (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  order_id         text NOT NULL REFERENCES orders (order_id),
  time             timestamptz NOT NULL DEFAULT now(),
  status           text NOT NULL,
  filled_quantity  integer,
  average_price    double precision,
  message          text,
  payload          jsonb
);
CREATE INDEX order_events_order ON order_events (order_id, id);

-- Net position per account, instrument and product.
CREATE TABLE positions (
  account          text NOT NULL DEFAULT 'default',
  token            bigint NOT NULL,
  product          text NOT NULL,
  quantity         integer NOT NULL,
  average_price    double precision NOT NULL,
  realised_pnl     double precision NOT NULL DEFAULT 0,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account, token, product)
);

-- The batch writer's exactly-once bookkeeping (the batch transaction in workers/writer/sink.ts).
-- A stream is one output ring: shard × {ticks, bars}. Positions count the ring's records from 0 at
-- each service start (the epoch). high_water = the ring position up to which every record of the
-- stream is committed; a batch whose range lies below it is skipped, never inserted twice.
CREATE TABLE writer_progress (
  epoch       uuid NOT NULL,
  stream      integer NOT NULL,
  high_water  bigint NOT NULL,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (epoch, stream)
);

-- One row per committed batch, written in the same transaction as its rows: the batch id is
-- (epoch, stream, first_pos); end_pos is exclusive.
CREATE TABLE writer_batches (
  epoch         uuid NOT NULL,
  stream        integer NOT NULL,
  first_pos     bigint NOT NULL,
  end_pos       bigint NOT NULL,
  rows          integer NOT NULL,
  via           text NOT NULL,                    -- 'direct' or 'spill' (replayed from the on-disk spill)
  committed_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (epoch, stream, first_pos)
);
CREATE INDEX writer_batches_committed ON writer_batches (committed_at);
