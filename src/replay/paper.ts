/**
 * A replay session's paper order service (session.ts `paperOrders`): the live paper broker's
 * rules on the session's hub (the replayed ticks and depth) and clock (the replayed exchange
 * time), its orders kept in the session (memoryOnlyStore) apart from live ones. Every key trades
 * on paper in a replay, whatever its live mode. Both compositions (src/service.ts,
 * src/gateway-service.ts) give their sessions this.
 */
import type { Instrument } from '../core/instrument.ts';
import type { OrdersConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { OrderService } from '../orders/service.ts';
import { memoryOnlyStore, OrderStore } from '../orders/store.ts';
import type { ReplayDeps } from './session.ts';

export function replayPaperOrders(o: {
  config: OrdersConfig;
  instrument: (exchange: string, symbol: string) => Instrument | null;
  instrumentByToken: (token: number) => Instrument | null;
  log: Logger;
}): NonNullable<ReplayDeps['paperOrders']> {
  return ({ market, push, now }) => new OrderService({
    config: o.config,
    store: new OrderStore(memoryOnlyStore()),
    instrument: o.instrument,
    instrumentByToken: o.instrumentByToken,
    market,
    rows: market.rows,
    modeOf: () => 'paper',
    push,
    now,
    log: o.log,
  });
}
