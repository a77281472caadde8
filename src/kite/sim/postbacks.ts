/**
 * Kite's postbacks from the simulator: the order update (orders.ts) as JSON, POSTed to the app's
 * postback URL on COMPLETE, CANCELLED, REJECTED and UPDATE, with Kite's `checksum`: the hex
 * SHA-256 of order_id + order_timestamp + api_secret, which the receiver recomputes to know the
 * post came from Kite.
 *
 * One post at a time, in the order the updates happened (a receiver that is slow delays the rest,
 * it does not reorder them); each is given `timeoutMs`. A failed post is counted, not retried.
 */
import { createHash } from 'node:crypto';
import type { OrderUpdate } from './orders.ts';

/** Kite's postback checksum: hex SHA-256 of order_id + order_timestamp + api_secret. */
export function postbackChecksum(orderId: string, orderTimestamp: string, apiSecret: string): string {
  return createHash('sha256').update(orderId + orderTimestamp + apiSecret).digest('hex');
}

export interface PostbackStats {
  /** Posts the receiver answered with 2xx. */
  postbacks: number;
  /** Posts that failed: no answer, an error status, or a timeout. */
  postbackFailures: number;
}

export class Postbacks {
  private chain: Promise<void> = Promise.resolve();
  private readonly abort = new AbortController();

  constructor(
    private readonly url: string,
    private readonly apiSecret: string,
    private readonly stats: PostbackStats,
    private readonly timeoutMs = 5000,
  ) {}

  /** Queues the post of one update. */
  send(update: OrderUpdate): void {
    if (this.abort.signal.aborted) return;
    const body = JSON.stringify({ ...update, checksum: postbackChecksum(update.order_id, update.order_timestamp, this.apiSecret) });
    this.chain = this.chain.then(() => this.post(body));
  }

  /** Stops posting; a post under way is abandoned. */
  async close(): Promise<void> {
    this.abort.abort();
    await this.chain;
  }

  private async post(body: string): Promise<void> {
    if (this.abort.signal.aborted) return;
    try {
      const r = await fetch(this.url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body,
        signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(this.timeoutMs)]),
      });
      await r.arrayBuffer();
      if (r.ok) this.stats.postbacks++;
      else this.stats.postbackFailures++;
    } catch {
      this.stats.postbackFailures++;
    }
  }
}
