/**
 * Typed access to the official `kiteconnect` KiteTicker, for the differential test and the bench.
 * The package's own types omit `root` and `parseBinary`, both of which exist in dist/lib/ticker.js.
 */

import { KiteTicker } from 'kiteconnect';

export interface OfficialDepth {
  quantity: number;
  price: number;
  orders: number;
}

/** The union of every shape the official parser emits; fields a mode lacks are absent. */
export interface OfficialTick {
  tradable: boolean;
  mode: 'ltp' | 'quote' | 'full';
  instrument_token: number;
  last_price: number;
  last_traded_quantity?: number;
  average_traded_price?: number;
  volume_traded?: number;
  total_buy_quantity?: number;
  total_sell_quantity?: number;
  ohlc?: { open: number; high: number; low: number; close: number };
  change?: number;
  last_trade_time?: Date | null;
  exchange_timestamp?: Date | null;
  oi?: number;
  oi_day_high?: number;
  oi_day_low?: number;
  depth?: { buy: OfficialDepth[]; sell: OfficialDepth[] };
}

export interface OfficialTicker {
  connect(): void;
  disconnect(): void;
  connected(): boolean;
  on(event: 'ticks', cb: (ticks: OfficialTick[]) => void): void;
  on(event: 'connect' | 'noreconnect', cb: () => void): void;
  on(event: 'error' | 'disconnect' | 'close', cb: (e: unknown) => void): void;
  on(event: 'message', cb: (data: ArrayBuffer) => void): void;
  on(event: 'order_update', cb: (order: Record<string, unknown>) => void): void;
  parseBinary(binpacks: ArrayBuffer): OfficialTick[];
}

export interface OfficialTickerParams {
  api_key: string;
  access_token: string;
  root?: string;
  reconnect?: boolean;
}

/**
 * A KiteTicker. Note: the official client keeps its socket, handlers and retry state in
 * module-level variables, so there is effectively one per process.
 */
export function officialTicker(params: OfficialTickerParams): OfficialTicker {
  const Ctor = KiteTicker as unknown as new (p: OfficialTickerParams) => OfficialTicker;
  return new Ctor(params);
}

/** An ArrayBuffer holding exactly `bytes` (what the official client receives from ws). */
export function exactArrayBuffer(bytes: Uint8Array): ArrayBuffer {
  const ab = new ArrayBuffer(bytes.byteLength);
  new Uint8Array(ab).set(bytes);
  return ab;
}
