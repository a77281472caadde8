/**
 * The order path's persistence: orders, their events, trades, positions and idempotency answers,
 * in the tables of sql/003_orders.sql. The service (service.ts) holds everything in memory; this
 * store makes each change durable and gives it all back at start-up (load()).
 *
 * It speaks to the database through two functions, what Storage gives (src/storage/supervisor.ts):
 * `transact(statements)`, all in one transaction, and `query(text, params)`. Storage runs both off
 * the main thread (the reader thread on PostgreSQL, the writer thread on the embedded PGlite);
 * `dbStore(db)` makes them of a direct Db for tools and tests.
 *
 * ## Writes
 * - Each write()'s change commits in one transaction, or not at all.
 * - Writes commit in the order they were made: one transaction at a time. Writes made while one is
 *   in flight are grouped into the next transaction (up to MAX_GROUP), one statement per table for
 *   the lot: a burst of fills costs a few transactions, not one each.
 * - A group the database refuses as bad data (SQLSTATE class 22 or 23: a repeated trade id, a
 *   non-integer amount) is written again call by call, in order, so that only the bad write fails;
 *   any other failure fails every caller of the group (nothing of it committed).
 * - Storage restarting or still opening the database (STORAGE_RESTARTING, STORAGE_STARTING: nothing
 *   was written) is waited out for up to `retryMs`, holding the writes behind it, so order holds.
 *   A transaction whose outcome is unknown (STORAGE_TX_OUTCOME_UNKNOWN) is not retried: it fails.
 *
 * Orders and positions are upserted (the newest state; within a group the last write of a row
 * wins); events, trades and idempotency answers are inserted, and a repeated one is refused:
 * DUPLICATE_TRADE, DUPLICATE_ORDER_EVENT, DUPLICATE_IDEMPOTENCY_KEY.
 *
 * Rows go as one JSON text parameter per table, expanded by jsonb_to_recordset: the same on both
 * drivers and through a thread's message port, no per-row parameters (PostgreSQL allows 65,535 a
 * statement), and integers stay exact (a JSON integer into a bigint column; a fraction of a paisa
 * is refused by the column's type, never rounded). Times go as ISO strings, exact to the ms, and
 * come back as epoch ms computed in numeric.
 *
 * | Order field       | orders column        | Trade field | trades column    |
 * |-------------------|----------------------|-------------|------------------|
 * | id                | order_id             | tradeId     | trade_id         |
 * | key               | api_key              | key         | api_key          |
 * | parentId          | parent_order_id      | symbol      | tradingsymbol    |
 * | symbol            | tradingsymbol        | token       | instrument_token |
 * | token             | instrument_token     | side        | transaction_type |
 * | side              | transaction_type     | pricePaise  | price_paise      |
 * | triggerPaise      | trigger_price_paise  | timeMs      | time             |
 * | createdMs, updatedMs, exchangeMs | created_at, updated_at, exchange_at | | |
 * (the others: the same name in snake case)
 */
import type { Db } from '../core/db.ts';
import { AppError } from '../core/errors.ts';
import type { BrokerMode, Order, OrderStatus, OrderType, Product, Side, Trade, Validity, Variety } from './model.ts';

/** One statement of a transaction, `$1`-style parameters. */
export interface Statement {
  readonly text: string;
  readonly params: readonly unknown[];
}

/** What the store needs of the database: Storage, or dbStore() of a direct Db. */
export interface OrderStoreDb {
  /** All `statements` in one transaction; rejects with the database's error (`code`, `constraint`). */
  transact(statements: readonly Statement[]): Promise<void>;
  query<T extends object = Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<T[]>;
}

/** One state of an order: a row of Kite's order history. */
export interface OrderEventRecord {
  orderId: string;
  seq: number;
  status: string;
  atMs: number;
  key: string;
  mode: BrokerMode;
  /** The order row as Kite shows it at this event (model.ts kiteOrderRow). */
  row: Record<string, unknown>;
}

/** The answer given to one (key, Idempotency-Key). */
export interface IdempotencyRecord {
  key: string;
  idemKey: string;
  bodySha256: string;
  orderId: string | null;
  /** HTTP status answered. */
  status: number;
  /** Body answered (JSON). */
  response: unknown;
  createdMs: number;
}

/** A position's totals, as positions.ts records and restores them. */
export interface PositionRecord {
  key: string;
  mode: BrokerMode;
  token: number;
  product: Product;
  exchange: string;
  symbol: string;
  buyQty: number;
  buyValuePaise: number;
  sellQty: number;
  sellValuePaise: number;
  dayBuyQty: number;
  dayBuyValuePaise: number;
  daySellQty: number;
  daySellValuePaise: number;
  updatedMs: number;
}

/** What one write() makes durable, in one transaction. */
export interface OrderChange {
  orders?: readonly Order[];
  events?: readonly OrderEventRecord[];
  trades?: readonly Trade[];
  positions?: readonly PositionRecord[];
  idempotency?: readonly IdempotencyRecord[];
}

export interface StoredOrders {
  orders: Order[];
  events: OrderEventRecord[];
  trades: Trade[];
  positions: PositionRecord[];
  idempotency: IdempotencyRecord[];
}

export interface OrderStoreOptions {
  /** How long a write waits out storage restarting or opening before it fails, ms. */
  retryMs?: number;
  /** How long load() waits for the storage to open and the schema to be migrated, ms. */
  loadWaitMs?: number;
}

/** Writes grouped into one transaction at most. */
const MAX_GROUP = 500;
const RETRY_MS_DEFAULT = 30_000;
const LOAD_WAIT_MS_DEFAULT = 60_000;
const BACKOFF_MIN_MS = 50;
const BACKOFF_MAX_MS = 1000;

// --- tables --------------------------------------------------------------------------------------

/** A table's columns as jsonb_to_recordset reads them: name and type, in insert order. */
type Columns = readonly (readonly [string, string])[];

const ORDER_COLUMNS: Columns = [
  ['order_id', 'text'], ['api_key', 'text'], ['mode', 'text'], ['parent_order_id', 'text'], ['variety', 'text'],
  ['exchange', 'text'], ['tradingsymbol', 'text'], ['instrument_token', 'bigint'], ['transaction_type', 'text'],
  ['product', 'text'], ['order_type', 'text'], ['validity', 'text'], ['validity_ttl', 'integer'], ['quantity', 'integer'],
  ['disclosed_quantity', 'integer'], ['price_paise', 'bigint'], ['trigger_price_paise', 'bigint'], ['market_protection', 'integer'],
  ['tag', 'text'], ['guid', 'text'], ['status', 'text'], ['status_message', 'text'], ['filled_quantity', 'integer'],
  ['filled_value_paise', 'bigint'], ['cancelled_quantity', 'integer'], ['modifications', 'integer'],
  ['created_at', 'timestamptz'], ['updated_at', 'timestamptz'], ['exchange_at', 'timestamptz'], ['meta', 'jsonb'],
  ['broker_order_id', 'text'],
];
const EVENT_COLUMNS: Columns = [
  ['order_id', 'text'], ['seq', 'integer'], ['status', 'text'], ['time', 'timestamptz'], ['api_key', 'text'], ['mode', 'text'], ['payload', 'jsonb'],
];
const TRADE_COLUMNS: Columns = [
  ['trade_id', 'text'], ['order_id', 'text'], ['api_key', 'text'], ['mode', 'text'], ['exchange', 'text'], ['tradingsymbol', 'text'],
  ['instrument_token', 'bigint'], ['product', 'text'], ['transaction_type', 'text'], ['quantity', 'integer'], ['price_paise', 'bigint'],
  ['time', 'timestamptz'],
];
const POSITION_COLUMNS: Columns = [
  ['api_key', 'text'], ['mode', 'text'], ['instrument_token', 'bigint'], ['product', 'text'], ['exchange', 'text'], ['tradingsymbol', 'text'],
  ['buy_quantity', 'bigint'], ['buy_value_paise', 'bigint'], ['sell_quantity', 'bigint'], ['sell_value_paise', 'bigint'],
  ['day_buy_quantity', 'bigint'], ['day_buy_value_paise', 'bigint'], ['day_sell_quantity', 'bigint'], ['day_sell_value_paise', 'bigint'],
  ['updated_at', 'timestamptz'],
];
const IDEMPOTENCY_COLUMNS: Columns = [
  ['api_key', 'text'], ['idem_key', 'text'], ['body_sha256', 'text'], ['order_id', 'text'], ['status', 'integer'], ['response', 'jsonb'],
  ['created_at', 'timestamptz'],
];

/** INSERT of a JSON array of rows ($1); with `key`, an upsert on it that takes every other column. */
function insertSql(table: string, cols: Columns, key?: readonly string[]): string {
  const names = cols.map(([n]) => n).join(', ');
  const record = cols.map(([n, t]) => `${n} ${t}`).join(', ');
  const upsert = key === undefined ? '' : `\nON CONFLICT (${key.join(', ')}) DO UPDATE SET ${
    cols.filter(([n]) => !key.includes(n)).map(([n]) => `${n} = excluded.${n}`).join(', ')}`;
  return `INSERT INTO ${table} (${names})\nSELECT ${names} FROM jsonb_to_recordset($1::text::jsonb) AS x(${record})${upsert}`;
}

const UPSERT_ORDERS = insertSql('orders', ORDER_COLUMNS, ['order_id']);
const INSERT_EVENTS = insertSql('order_events', EVENT_COLUMNS);
const INSERT_TRADES = insertSql('trades', TRADE_COLUMNS);
const UPSERT_POSITIONS = insertSql('positions', POSITION_COLUMNS, ['api_key', 'instrument_token', 'product']);
const INSERT_IDEMPOTENCY = insertSql('idempotency_keys', IDEMPOTENCY_COLUMNS);

/** Epoch ms of a timestamptz column, exact (extract gives numeric). */
const ms = (col: string, as: string = col): string => `(extract(epoch from ${col}) * 1000)::bigint AS ${as}`;

const LOAD_ORDERS = `SELECT order_id, api_key, mode, parent_order_id, variety, exchange, tradingsymbol, instrument_token, transaction_type,
  product, order_type, validity, validity_ttl, quantity, disclosed_quantity, price_paise, trigger_price_paise, market_protection,
  tag, guid, status, status_message, filled_quantity, filled_value_paise, cancelled_quantity, modifications,
  ${ms('created_at', 'created_ms')}, ${ms('updated_at', 'updated_ms')}, ${ms('exchange_at', 'exchange_ms')}, meta::text AS meta, broker_order_id
FROM orders ORDER BY created_at, order_id`;
const LOAD_EVENTS = `SELECT order_id, seq, status, ${ms('time', 'at_ms')}, api_key, mode, payload::text AS payload
FROM order_events ORDER BY order_id, seq`;
const LOAD_TRADES = `SELECT trade_id, order_id, api_key, mode, exchange, tradingsymbol, instrument_token, product, transaction_type,
  quantity, price_paise, ${ms('time', 'time_ms')}
FROM trades ORDER BY time, trade_id`;
const LOAD_POSITIONS = `SELECT api_key, mode, instrument_token, product, exchange, tradingsymbol, buy_quantity, buy_value_paise,
  sell_quantity, sell_value_paise, day_buy_quantity, day_buy_value_paise, day_sell_quantity, day_sell_value_paise,
  ${ms('updated_at', 'updated_ms')}
FROM positions ORDER BY api_key, instrument_token, product`;
const LOAD_IDEMPOTENCY = `SELECT api_key, idem_key, body_sha256, order_id, status, response::text AS response, ${ms('created_at', 'created_ms')}
FROM idempotency_keys WHERE status IS NOT NULL ORDER BY created_at, api_key, idem_key`;

/** Constraint broken → the error a repeated row gets. */
const DUPLICATES: Readonly<Record<string, { code: string; what: string }>> = {
  trades_pkey: { code: 'DUPLICATE_TRADE', what: 'a trade id of this write is already stored (or given twice in it): a fill is stored once. Give each fill a new trade id (model.ts IdSource)' },
  order_events_pkey: { code: 'DUPLICATE_ORDER_EVENT', what: "an order event's (order_id, seq) of this write is already stored: number each order's events 1, 2, 3, ... once" },
  idempotency_keys_pkey: { code: 'DUPLICATE_IDEMPOTENCY_KEY', what: 'an Idempotency-Key of this write is already stored for its API key: look the stored answer up instead of storing another' },
};

// --- rows ----------------------------------------------------------------------------------------

const iso = (t: number): string => new Date(t).toISOString();
const json = (text: unknown): unknown => (text === null || text === undefined ? null : JSON.parse(text as string));

function orderRow(o: Order): Record<string, unknown> {
  return {
    order_id: o.id, api_key: o.key, mode: o.mode, parent_order_id: o.parentId, variety: o.variety, exchange: o.exchange,
    tradingsymbol: o.symbol, instrument_token: o.token, transaction_type: o.side, product: o.product, order_type: o.orderType,
    validity: o.validity, validity_ttl: o.validityTtl, quantity: o.quantity, disclosed_quantity: o.disclosedQuantity,
    price_paise: o.pricePaise, trigger_price_paise: o.triggerPaise, market_protection: o.marketProtection, tag: o.tag, guid: o.guid,
    status: o.status, status_message: o.statusMessage, filled_quantity: o.filledQuantity, filled_value_paise: o.filledValuePaise,
    cancelled_quantity: o.cancelledQuantity, modifications: o.modifications, created_at: iso(o.createdMs), updated_at: iso(o.updatedMs),
    exchange_at: o.exchangeMs === null ? null : iso(o.exchangeMs), meta: o.meta, broker_order_id: o.brokerOrderId ?? null,
  };
}

function orderOf(r: Record<string, unknown>): Order {
  return {
    id: r.order_id as string, key: r.api_key as string, mode: r.mode as BrokerMode, parentId: r.parent_order_id as string | null,
    variety: r.variety as Variety, exchange: r.exchange as string, symbol: r.tradingsymbol as string, token: Number(r.instrument_token),
    side: r.transaction_type as Side, product: r.product as Product, orderType: r.order_type as OrderType, validity: r.validity as Validity,
    validityTtl: Number(r.validity_ttl), quantity: Number(r.quantity), disclosedQuantity: Number(r.disclosed_quantity),
    pricePaise: Number(r.price_paise), triggerPaise: Number(r.trigger_price_paise),
    marketProtection: r.market_protection === null ? null : Number(r.market_protection),
    tag: r.tag as string | null, guid: r.guid as string | null, status: r.status as OrderStatus, statusMessage: r.status_message as string | null,
    filledQuantity: Number(r.filled_quantity), filledValuePaise: Number(r.filled_value_paise), cancelledQuantity: Number(r.cancelled_quantity),
    modifications: Number(r.modifications), createdMs: Number(r.created_ms), updatedMs: Number(r.updated_ms),
    exchangeMs: r.exchange_ms === null ? null : Number(r.exchange_ms), meta: json(r.meta) as Record<string, unknown> | null,
    // Only live orders carry one: a paper order loads exactly as it was written.
    ...(typeof r.broker_order_id === 'string' ? { brokerOrderId: r.broker_order_id } : {}),
  };
}

function eventRow(e: OrderEventRecord): Record<string, unknown> {
  return { order_id: e.orderId, seq: e.seq, status: e.status, time: iso(e.atMs), api_key: e.key, mode: e.mode, payload: e.row };
}

function eventOf(r: Record<string, unknown>): OrderEventRecord {
  return {
    orderId: r.order_id as string, seq: Number(r.seq), status: r.status as string, atMs: Number(r.at_ms), key: r.api_key as string,
    mode: r.mode as BrokerMode, row: json(r.payload) as Record<string, unknown>,
  };
}

function tradeRow(t: Trade): Record<string, unknown> {
  return {
    trade_id: t.tradeId, order_id: t.orderId, api_key: t.key, mode: t.mode, exchange: t.exchange, tradingsymbol: t.symbol,
    instrument_token: t.token, product: t.product, transaction_type: t.side, quantity: t.quantity, price_paise: t.pricePaise, time: iso(t.timeMs),
  };
}

function tradeOf(r: Record<string, unknown>): Trade {
  return {
    tradeId: r.trade_id as string, orderId: r.order_id as string, key: r.api_key as string, mode: r.mode as BrokerMode,
    exchange: r.exchange as string, symbol: r.tradingsymbol as string, token: Number(r.instrument_token), product: r.product as Product,
    side: r.transaction_type as Side, quantity: Number(r.quantity), pricePaise: Number(r.price_paise), timeMs: Number(r.time_ms),
  };
}

function positionRow(p: PositionRecord): Record<string, unknown> {
  return {
    api_key: p.key, mode: p.mode, instrument_token: p.token, product: p.product, exchange: p.exchange, tradingsymbol: p.symbol,
    buy_quantity: p.buyQty, buy_value_paise: p.buyValuePaise, sell_quantity: p.sellQty, sell_value_paise: p.sellValuePaise,
    day_buy_quantity: p.dayBuyQty, day_buy_value_paise: p.dayBuyValuePaise, day_sell_quantity: p.daySellQty,
    day_sell_value_paise: p.daySellValuePaise, updated_at: iso(p.updatedMs),
  };
}

function positionOf(r: Record<string, unknown>): PositionRecord {
  return {
    key: r.api_key as string, mode: r.mode as BrokerMode, token: Number(r.instrument_token), product: r.product as Product,
    exchange: r.exchange as string, symbol: r.tradingsymbol as string, buyQty: Number(r.buy_quantity), buyValuePaise: Number(r.buy_value_paise),
    sellQty: Number(r.sell_quantity), sellValuePaise: Number(r.sell_value_paise), dayBuyQty: Number(r.day_buy_quantity),
    dayBuyValuePaise: Number(r.day_buy_value_paise), daySellQty: Number(r.day_sell_quantity), daySellValuePaise: Number(r.day_sell_value_paise),
    updatedMs: Number(r.updated_ms),
  };
}

function idempotencyRow(i: IdempotencyRecord): Record<string, unknown> {
  return {
    api_key: i.key, idem_key: i.idemKey, body_sha256: i.bodySha256, order_id: i.orderId, status: i.status,
    response: i.response === undefined ? null : i.response, created_at: iso(i.createdMs),
  };
}

function idempotencyOf(r: Record<string, unknown>): IdempotencyRecord {
  return {
    key: r.api_key as string, idemKey: r.idem_key as string, bodySha256: r.body_sha256 as string, orderId: r.order_id as string | null,
    status: Number(r.status), response: json(r.response), createdMs: Number(r.created_ms),
  };
}

/** The statements of some changes, in one transaction: one per table that has rows. */
export function changeStatements(changes: readonly OrderChange[]): Statement[] {
  // Upserts keep the last state of a row given twice (ON CONFLICT cannot touch a row twice in one statement).
  const orders = new Map<string, Order>();
  const positions = new Map<string, PositionRecord>();
  const events: OrderEventRecord[] = [];
  const trades: Trade[] = [];
  const idempotency: IdempotencyRecord[] = [];
  for (const c of changes) {
    for (const o of c.orders ?? []) orders.set(o.id, o);
    for (const p of c.positions ?? []) positions.set(`${p.key}\n${p.token}\n${p.product}`, p);
    if (c.events) events.push(...c.events);
    if (c.trades) trades.push(...c.trades);
    if (c.idempotency) idempotency.push(...c.idempotency);
  }
  const out: Statement[] = [];
  const add = <T>(text: string, rows: Iterable<T>, row: (x: T) => Record<string, unknown>) => {
    const list = [...rows];
    if (list.length > 0) out.push({ text, params: [JSON.stringify(list.map(row))] });
  };
  add(UPSERT_ORDERS, orders.values(), orderRow);
  add(INSERT_EVENTS, events, eventRow);
  add(INSERT_TRADES, trades, tradeRow);
  add(UPSERT_POSITIONS, positions.values(), positionRow);
  add(INSERT_IDEMPOTENCY, idempotency, idempotencyRow);
  return out;
}

/**
 * The statements of a change as ONE statement: each a data-modifying CTE with its own parameter.
 * A single statement is atomic on its own (its implicit transaction), so the write needs one
 * round trip to the server instead of BEGIN, the statements and COMMIT: the order's acknowledgement
 * waits for one round trip and one commit. Equivalent here because no statement reads what another
 * writes (no foreign keys, one statement per table, rows deduplicated per table above).
 */
export function asOneStatement(statements: readonly Statement[]): Statement[] {
  if (statements.length <= 1 || statements.some((st) => st.params.length !== 1)) return [...statements];
  const parts = statements.map((st, i) => `w${i} AS (${st.text.replace(/\$1(?!\d)/g, `$${i + 1}`)})`);
  return [{ text: `WITH ${parts.join(',\n')}\nSELECT 1`, params: statements.map((st) => st.params[0]) }];
}

// --- errors --------------------------------------------------------------------------------------

type DbError = { message?: unknown; code?: unknown; constraint?: unknown; constraint_name?: unknown };

const codeOf = (e: unknown): string | undefined => {
  const c = (e as DbError | null)?.code;
  return typeof c === 'string' ? c : undefined;
};

/** Nothing was written and storage will answer again shortly: safe to send the same again. */
const transient = (e: unknown): boolean => codeOf(e) === 'STORAGE_RESTARTING' || codeOf(e) === 'STORAGE_STARTING';

/** The database refused the data (class 22 data exception, 23 integrity): the rest of a group may be fine. */
const dataError = (e: unknown): boolean => /^(22|23)[0-9A-Z]{3}$/.test(codeOf(e) ?? '');

/** The error a write's caller gets. */
function writeError(e: unknown): Error {
  if (e instanceof AppError) return e;
  const x = e as DbError | null;
  const message = typeof x?.message === 'string' ? x.message : String(e);
  const c = x?.constraint ?? x?.constraint_name;
  const constraint = typeof c === 'string' ? c : undefined;
  const sqlstate = codeOf(e);
  const dup = sqlstate === '23505' && constraint !== undefined ? DUPLICATES[constraint] : undefined;
  if (dup !== undefined) return new AppError(dup.code, `${dup.what}. Nothing of this write was stored.`, { sqlstate, constraint, cause: message });
  return new AppError('ORDER_STORE_WRITE_FAILED', `the order store could not write (${message}); nothing of this write was stored. ${
    sqlstate !== undefined && dataError(e) ? 'The database refused the data: fix the caller.' : 'Check that the database is reachable.'}`,
  { sqlstate, constraint, cause: message });
}

// --- the store -----------------------------------------------------------------------------------

interface Queued {
  change: OrderChange;
  resolve: () => void;
  reject: (e: Error) => void;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class OrderStore {
  private readonly queue: Queued[] = [];
  private draining = false;
  private readonly retryMs: number;
  private readonly loadWaitMs: number;

  constructor(private readonly db: OrderStoreDb, opts: OrderStoreOptions = {}) {
    this.retryMs = opts.retryMs ?? RETRY_MS_DEFAULT;
    this.loadWaitMs = opts.loadWaitMs ?? LOAD_WAIT_MS_DEFAULT;
  }

  /** Writes not yet committed (queued or in flight). */
  get pending(): number {
    return this.queue.length;
  }

  /**
   * Make `change` durable: one transaction, committed after every write made before it. With
   * `alone`, the caller vouches that no other write touches its rows until this one resolves (a
   * new order's first write: nothing else knows the order yet), so it commits at once beside the
   * queue instead of waiting behind it: the order's acknowledgement does not wait for other orders'
   * fills and status changes.
   */
  write(change: OrderChange, opts: { alone?: boolean } = {}): Promise<void> {
    if (opts.alone === true) {
      return this.commit(asOneStatement(changeStatements([change]))).catch((e: unknown) => {
        throw writeError(e);
      });
    }
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ change, resolve, reject });
      if (!this.draining) {
        this.draining = true;
        // A turn later: writes made in the same turn (a fill's order, event, trade and position
        // from separate calls) go as one group.
        queueMicrotask(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.queue.slice(0, MAX_GROUP);
        try {
          await this.commit(asOneStatement(changeStatements(group.map((q) => q.change))));
          for (const q of group) q.resolve();
        } catch (e) {
          if (group.length > 1 && dataError(e)) {
            // One bad write must not fail the others: each alone, in order.
            for (const q of group) {
              try {
                await this.commit(asOneStatement(changeStatements([q.change])));
                q.resolve();
              } catch (e1) {
                q.reject(writeError(e1));
              }
            }
          } else {
            const err = writeError(e);
            for (const q of group) q.reject(err);
          }
        }
        this.queue.splice(0, group.length);
      }
    } finally {
      this.draining = false;
    }
  }

  /** One transaction, waiting out storage restarting or opening for up to retryMs. */
  private async commit(statements: readonly Statement[]): Promise<void> {
    if (statements.length === 0) return;
    const deadline = Date.now() + this.retryMs;
    for (let wait = BACKOFF_MIN_MS; ; wait = Math.min(BACKOFF_MAX_MS, wait * 2)) {
      try {
        return await this.db.transact(statements);
      } catch (e) {
        if (!transient(e) || Date.now() + wait > deadline) throw e;
      }
      await sleep(wait);
    }
  }

  /**
   * Everything stored, for the service's start: orders by creation, each order's events by seq,
   * trades by time. Waits up to loadWaitMs for storage to open and the schema to be migrated (the
   * writer thread does both as the service starts); fails with ORDER_STORE_UNAVAILABLE after.
   */
  async load(): Promise<StoredOrders> {
    const deadline = Date.now() + this.loadWaitMs;
    for (let wait = BACKOFF_MIN_MS; ; wait = Math.min(BACKOFF_MAX_MS, wait * 2)) {
      try {
        return await this.loadOnce();
      } catch (e) {
        // 42P01: a table is not there yet (the writer thread has not migrated the schema yet).
        const waiting = transient(e) || codeOf(e) === '42P01';
        if (!waiting) throw e;
        if (Date.now() + wait > deadline) {
          throw new AppError('ORDER_STORE_UNAVAILABLE', `the order store could not load within ${Math.round(this.loadWaitMs / 1000)} s (${(e as Error).message}): check the database and the writer thread's log (migrations), then restart.`,
            { sqlstate: codeOf(e) });
        }
      }
      await sleep(wait);
    }
  }

  private async loadOnce(): Promise<StoredOrders> {
    const q = this.db;
    const [orders, events, trades, positions, idempotency] = await Promise.all([
      q.query(LOAD_ORDERS), q.query(LOAD_EVENTS), q.query(LOAD_TRADES), q.query(LOAD_POSITIONS), q.query(LOAD_IDEMPOTENCY),
    ]);
    return {
      orders: orders.map(orderOf),
      events: events.map(eventOf),
      trades: trades.map(tradeOf),
      positions: positions.map(positionOf),
      idempotency: idempotency.map(idempotencyOf),
    };
  }
}

/** The store's database over a direct Db (tools, tests): transactions by Db.begin. */
export function dbStore(db: Db): OrderStoreDb {
  return {
    transact: (statements) => db.begin(async (tx) => {
      for (const s of statements) await tx.query(s.text, s.params);
    }),
    query: (text, params) => db.query(text, params),
  };
}

/**
 * A store that keeps nothing: a replay session's paper orders (src/replay/session.ts) live in its
 * order service's memory for the session's life, apart from the live tables, and start empty.
 */
export function memoryOnlyStore(): OrderStoreDb {
  return {
    transact: async () => {},
    query: async () => [],
  };
}
