-- 003 orders: the order path's tables (src/orders/store.ts writes and loads them), on every path.
--
-- They replace the placeholders orders, order_events and positions of 001_core.sql, which nothing
-- ever wrote: dropped here (001 is applied as it is; its checksum is recorded).
--
-- Money is integer paise in bigint columns named *_paise, as the order path holds it
-- (src/orders/model.ts): never double precision, so 1,000 fills of 5 paise sum to 5,000 paise
-- exactly. An average price is never stored: it is a value over a quantity, divided when shown.
-- Kite's words are kept for the columns a Kite client reads (tradingsymbol, transaction_type, ...).
-- No foreign keys between these tables: each write commits its rows together (one transaction),
-- and a live broker's trade or event may be known before its order's row.
-- Plain tables on every path: a day's orders are thousands of rows, not a time series.

DROP TABLE order_events;
DROP TABLE positions;
DROP TABLE orders;

-- The newest state of every order, upserted at each change.
CREATE TABLE orders (
  order_id             text PRIMARY KEY,             -- Kite-style numeric id (src/orders/model.ts IdSource)
  api_key              text NOT NULL,                -- the key name that placed it: only that key sees it
  mode                 text NOT NULL CHECK (mode IN ('paper', 'live')),
  parent_order_id      text,                         -- iceberg legs: the first leg's id
  variety              text NOT NULL,
  exchange             text NOT NULL,
  tradingsymbol        text NOT NULL,
  instrument_token     bigint NOT NULL,
  transaction_type     text NOT NULL CHECK (transaction_type IN ('BUY', 'SELL')),
  product              text NOT NULL,
  order_type           text NOT NULL,
  validity             text NOT NULL,
  validity_ttl         integer NOT NULL DEFAULT 0,   -- minutes, for TTL
  quantity             integer NOT NULL,
  disclosed_quantity   integer NOT NULL DEFAULT 0,
  price_paise          bigint NOT NULL DEFAULT 0,
  trigger_price_paise  bigint NOT NULL DEFAULT 0,
  market_protection    integer,                      -- NULL when not sent (LIMIT and SL)
  tag                  text,
  guid                 text,
  status               text NOT NULL,                -- Kite's status words (src/orders/model.ts Status)
  status_message       text,
  filled_quantity      integer NOT NULL DEFAULT 0,
  filled_value_paise   bigint NOT NULL DEFAULT 0,    -- Σ fill quantity × fill price
  cancelled_quantity   integer NOT NULL DEFAULT 0,
  modifications        integer NOT NULL DEFAULT 0,
  created_at           timestamptz NOT NULL,
  updated_at           timestamptz NOT NULL,
  exchange_at          timestamptz,                  -- when the exchange accepted it; NULL before
  meta                 jsonb                         -- Kite's meta (iceberg leg details)
);
CREATE INDEX orders_api_key_created ON orders (api_key, created_at);
-- The orders still working, which the service rests again at start-up: few, whatever the history.
CREATE INDEX orders_open ON orders (status) WHERE status NOT IN ('COMPLETE', 'CANCELLED', 'REJECTED');

-- Every state an order went through, numbered per order: Kite's order history.
CREATE TABLE order_events (
  order_id  text NOT NULL,
  seq       integer NOT NULL,                        -- 0, 1, 2, ... per order
  status    text NOT NULL,
  time      timestamptz NOT NULL,
  api_key   text NOT NULL,
  mode      text NOT NULL CHECK (mode IN ('paper', 'live')),
  payload   jsonb NOT NULL,                          -- the order row as Kite shows it at this event
  PRIMARY KEY (order_id, seq)
);

-- Fills. A trade id stored twice is refused by the key: a fill is never counted twice.
CREATE TABLE trades (
  trade_id          text PRIMARY KEY,
  order_id          text NOT NULL,
  api_key           text NOT NULL,
  mode              text NOT NULL CHECK (mode IN ('paper', 'live')),
  exchange          text NOT NULL,
  tradingsymbol     text NOT NULL,
  instrument_token  bigint NOT NULL,
  product           text NOT NULL,
  transaction_type  text NOT NULL CHECK (transaction_type IN ('BUY', 'SELL')),
  quantity          integer NOT NULL CHECK (quantity > 0),
  price_paise       bigint NOT NULL,
  time              timestamptz NOT NULL
);
CREATE INDEX trades_order ON trades (order_id);
CREATE INDEX trades_api_key_time ON trades (api_key, time);

-- Net and day totals per key, instrument and product, upserted at each fill. Quantities are
-- bigint: they are sums over every fill since the position opened.
CREATE TABLE positions (
  api_key               text NOT NULL,
  mode                  text NOT NULL CHECK (mode IN ('paper', 'live')),
  instrument_token      bigint NOT NULL,
  product               text NOT NULL,
  exchange              text NOT NULL,
  tradingsymbol         text NOT NULL,
  buy_quantity          bigint NOT NULL DEFAULT 0,
  buy_value_paise       bigint NOT NULL DEFAULT 0,
  sell_quantity         bigint NOT NULL DEFAULT 0,
  sell_value_paise      bigint NOT NULL DEFAULT 0,
  day_buy_quantity      bigint NOT NULL DEFAULT 0,
  day_buy_value_paise   bigint NOT NULL DEFAULT 0,
  day_sell_quantity     bigint NOT NULL DEFAULT 0,
  day_sell_value_paise  bigint NOT NULL DEFAULT 0,
  updated_at            timestamptz NOT NULL,
  PRIMARY KEY (api_key, instrument_token, product)
);

-- The answer given to each (key, Idempotency-Key), so a request sent again gets the same answer
-- and places nothing twice; a different body under the same key is refused (body_sha256).
CREATE TABLE idempotency_keys (
  api_key      text NOT NULL,
  idem_key     text NOT NULL,
  body_sha256  text NOT NULL,                        -- hex
  order_id     text,                                 -- the order it placed, if any
  status       integer NOT NULL,                     -- the HTTP status answered
  response     jsonb,                                -- the body answered
  created_at   timestamptz NOT NULL,
  PRIMARY KEY (api_key, idem_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
