/**
 * A sample order row as Kite's order book shows it (nulls, a nested meta, a tags array), for the
 * feed tests that push order updates.
 */
import { kiteOrderRow, type Order } from '../../src/orders/model.ts';

/** An order of `key` as Kite's order book shows it: nulls, a nested meta, a tags array. */
export function orderRow(key: string, id: string, status: Order['status']): Record<string, unknown> {
  const o: Order = {
    id, key, mode: 'paper', parentId: null, variety: 'regular', exchange: 'NSE', symbol: 'INFY', token: 408065,
    side: 'BUY', product: 'CNC', orderType: 'LIMIT', validity: 'DAY', validityTtl: 0, quantity: 10, disclosedQuantity: 0,
    pricePaise: 150_005, triggerPaise: 0, marketProtection: null, tag: 'strat1', guid: null, status,
    statusMessage: null, filledQuantity: status === 'COMPLETE' ? 10 : 0, filledValuePaise: status === 'COMPLETE' ? 1_500_050 : 0,
    cancelledQuantity: 0, modifications: 0, createdMs: 1_750_000_000_000, updatedMs: 1_750_000_001_000,
    exchangeMs: 1_750_000_000_500, meta: { iceberg: { leg: 1 } },
  };
  return kiteOrderRow(o);
}
