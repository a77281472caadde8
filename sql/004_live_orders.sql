-- 004 live orders: what the live broker (src/orders/live/) needs beside 003's tables.
--
-- broker_order_id: Kite's order_id of a live order (ours is order_id, made before the order is
-- sent, so that an order is recorded before it leaves and a lost answer can be looked up by our
-- mark, the tag or guid). NULL for paper orders and for a live order Kite has not acknowledged yet.
ALTER TABLE orders ADD COLUMN broker_order_id text;
CREATE UNIQUE INDEX orders_broker_order_id ON orders (broker_order_id) WHERE broker_order_id IS NOT NULL;
