/**
 * What the order service asks of a broker, and what a broker tells it. Two implement it: the paper
 * broker (paper/broker.ts: fills against the live feed) and the live broker (Kite, through the
 * official client). The service owns every order's state; a broker only acts and reports, one
 * event per state change, through `BrokerEvents`. The service decides which broker an order goes
 * to from its `mode`, which the API key's mode set when the order was placed.
 */
import type { Order } from './model.ts';

/** What a broker tells the order service. Each call is one state change. */
export interface BrokerEvents {
  /** The order reached the exchange: OPEN (or TRIGGER PENDING for SL / SL-M). */
  opened(order: Order, status: 'OPEN' | 'TRIGGER PENDING'): void;
  /** A fill of `qty` at `pricePaise`. The service updates the order and records the trade. */
  filled(order: Order, qty: number, pricePaise: number): void;
  /** A stop order's trigger was crossed; it now works. */
  triggered(order: Order): void;
  /** The rest of the order is cancelled (IOC remainder, cancel request, TTL expiry). */
  cancelled(order: Order, message: string | null): void;
  /** The exchange (or broker) refused it. */
  rejected(order: Order, message: string): void;
  /** A modification the broker could not make: the order stays as it was, working. */
  modifyRejected(order: Order, message: string): void;
  /** The broker's own id for the order is known (Kite's order_id of a live order): recorded with it. */
  acknowledged(order: Order, brokerOrderId: string): void;
}

/** The fields a modification changes, as checked (checks.ts checkModify). */
export interface ModifyFields {
  quantity: number;
  pricePaise: number;
  triggerPaise: number;
  orderType: Order['orderType'];
  validity: Order['validity'];
  disclosedQuantity: number;
  marketProtection: number | null;
}

export interface Broker {
  /** Send an accepted (recorded) order on. Its outcome comes back through BrokerEvents. */
  place(order: Order): void;
  /**
   * Send a modification; when the broker has made it, `apply` changes the order's fields and
   * status (the service records that). A broker that is refused reports `modifyRejected`
   * instead of calling `apply`.
   */
  modify(order: Order, change: ModifyFields, apply: () => void): void;
  /** Cancel what is left; a fill that lands first wins. */
  cancel(order: Order, message?: string | null): void;
  /** Put an order that was working before a restart back to work, without placing it again. */
  restore(order: Order, status: string): void;
  /** Orders this broker is working now (for /health). */
  readonly working: number;
  /** Why the broker cannot take orders now (the live broker: Kite refused the access token), or null. */
  readonly tokenProblem?: string | null;
  /**
   * An order update from outside (the live broker: Kite's ticker, a postback, a poll), as Kite's
   * order row. Idempotent: late, repeated and out-of-order rows change nothing.
   */
  update?(row: Record<string, unknown>, source: 'ticker' | 'postback' | 'poll'): void;
  /** The broker's own day order book as Kite's rows (the live broker), for reconciliation. */
  orders?(): Promise<Record<string, unknown>[]>;
  /** The broker's own funds and margins by segment, as Kite's `/user/margins` (the live broker). */
  margins?(): Promise<Record<string, unknown>>;
  /** The broker's own positions `{ net, day }` as Kite's rows (the live broker), for reconciliation. */
  positions?(): Promise<{ net: Record<string, unknown>[]; day: Record<string, unknown>[] }>;
  close(): void;
}
