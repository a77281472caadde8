-- 006 idempotency claims: the gateways (ROLE=gateway, any number) share Idempotency-Keys through
-- idempotency_keys (src/orders/shared-idempotency.ts), so that one (api_key, idem_key) sent to two
-- gateways at once, or retried on another, places its order once and gets one answer.
--
-- A gateway claims the key by inserting its row before it places anything (INSERT ... ON CONFLICT
-- DO NOTHING: the primary key lets one insert win); status stays NULL while the request is worked
-- (the claim), then the answer fills status, response and order_id. Another gateway finding the
-- row waits for the answer and gives the same one, or 409 when the body differs. A request that
-- fails with no answer to remember (5xx) deletes its claim, so a retry runs again. created_at is
-- when the claim was taken.
--
-- The order store loads answered rows only (status IS NOT NULL): a claim is not an answer.
ALTER TABLE idempotency_keys ALTER COLUMN status DROP NOT NULL;
-- The gateway holding a claim (host:pid), for an operator looking at one that was never answered
-- (its gateway stopped mid-request: the order may or may not have been placed).
ALTER TABLE idempotency_keys ADD COLUMN claimed_by text;
