/**
 * The ingest lease's fence (src/scale/lease.ts), here in the shared layer because the batch writer
 * thread checks it in each commit's transaction (workers/writer/sink.ts commitBatch).
 *
 * With $1 = the lease name and $2 = the owner's token: no row means a later owner holds the lease,
 * so the transaction must roll back. FOR SHARE makes the next owner's token bump wait for this
 * transaction, so once a new token exists no transaction checked against an older one can still
 * commit.
 */
export const LEASE_FENCE_SQL = 'SELECT 1 FROM ingest_lease WHERE name = $1 AND token = $2::bigint FOR SHARE';

/** The lease a process's writes are fenced by: its name and the token this process took. */
export interface LeaseFence {
  name: string;
  token: string;
}
