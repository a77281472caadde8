-- 008 feed sessions: the instruments each process followed from its first connection to Kite
-- (src/storage/gaps.ts). The option strikes are chosen around the index level at start, so a
-- restarted process can follow other strikes than the one it replaces: the gap a restart records
-- (feed_gaps, cause 'service restart') names the instruments of both, read from here
-- (src/storage/last-stored.ts), not only its own.
--
-- | column      | meaning                                                  |
-- |-------------|----------------------------------------------------------|
-- | started_at  | when the process's feed first connected                  |
-- | instruments | the tokens it subscribed                                 |
CREATE TABLE feed_sessions (
  started_at  timestamptz NOT NULL,
  instruments bigint[] NOT NULL
);
CREATE INDEX feed_sessions_started ON feed_sessions (started_at);
