/**
 * The per-key risk counters of checks.ts that a single process used to keep in memory, held in
 * Redis so that a key's orders spread over several gateways are counted together:
 *
 * | rule (checks.ts)     | counter here, per API key                      | moved by                          |
 * |----------------------|------------------------------------------------|-----------------------------------|
 * | max_orders_per_day   | orders placed this IST day (Redis's TIME day)  | reserve (+n), settle (what was    |
 * |                      |                                                | not placed given back), iceberg   |
 * |                      |                                                | legs placed later (adjust)        |
 * | max_open_qty         | per instrument: pending quantity of its open   | reserve (+qty), settle, and every |
 * |                      | orders, and its net position (signed), so open | change of an order's pending      |
 * |                      | = |net| + pending, as checks.ts defines it     | quantity or a fill (adjust)       |
 *
 * Why Redis and not derived from PostgreSQL: the check and the count must be one atomic step
 * across gateways (two gateways checking "4 of 5 orders today" at once must not both pass). In
 * Redis that is one Lua script (reserve: check every limit, then count, or refuse and count
 * nothing); in PostgreSQL it would need a per-key lock held from the check to the order's insert,
 * which goes through the storage threads' transactions, and the open quantity would be re-summed
 * from orders and positions at every order. Redis answers in one round trip; its price is that
 * these counters are a second copy of what PostgreSQL holds, kept by deltas: see seed() for how
 * they are rebuilt, and the drift below.
 *
 * What stays per process: order value (a property of the order alone) and funds. A paper key's
 * funds are its capital plus realised and unrealised P&L at the marks, minus margins: sums over
 * positions and prices, not counters; each gateway checks them against the orders and positions
 * it holds. With orders spread over gateways a paper key can thus block more margin than its
 * capital (never more than capital per gateway); live keys' funds are Kite's own.
 *
 * Deltas (adjust, settle) are queued per key and sent in order by one script call per key at a
 * time; a failed send is kept and retried (100 ms doubling to 2 s), so Redis being away briefly
 * loses nothing. reserve() and read() fail with SharedStateUnavailable instead: an order is not
 * placed uncounted.
 *
 * Drift: a process that dies between reserve and settle leaves its reservation counted (stricter,
 * until the IST day ends for orders; until seed() for quantities); a Redis that loses its data
 * starts from zero until the next seed. Pending quantities are floored at 0.
 *
 * Keys (P = prefix, REDIS_PREFIX):
 *
 * | key                       | type   | fields                                                     |
 * |---------------------------|--------|------------------------------------------------------------|
 * | P{orders}:risk:<api key>  | hash   | day (00:00 IST, epoch ms), orders (that day), p:<token>    |
 * |                           |        | (pending quantity), n:<token> (net position, signed)       |
 * | P{orders}:risk:seeded     | string | set by the first seed(): the counters were built from the  |
 * |                           |        | order store, later starts leave them alone                 |
 */
import type { Redis } from 'ioredis';
import type { OrdersConfig } from '../config.ts';
import type { Logger } from '../log.ts';
import { OrderRejection } from './errors.ts';
import { LuaScript } from './lua.ts';

export type RiskLimits = Pick<OrdersConfig, 'maxOrdersPerDay' | 'maxOpenQty'>;

/** What a key has counted now: orders this IST day, and open quantity in one instrument. */
export interface RiskCounts {
  ordersToday: number;
  openQty: number;
}

/** Counted by reserve(): given back in part by settle() when fewer orders were placed. */
export interface RiskTicket {
  readonly key: string;
  /** The IST day (epoch ms of its 00:00) the orders were counted in. */
  readonly day: number;
  readonly orders: number;
  /** Quantity reserved per instrument token. */
  readonly qty: ReadonlyMap<number, number>;
}

export type RiskDecision =
  | { ok: true; ticket: RiskTicket }
  | { ok: false; rule: 'max_orders_per_day' | 'max_open_qty'; token: number; counts: RiskCounts };

/** A change of one instrument's counters for a key. */
export interface RiskDelta {
  /** Pending quantity of open orders. */
  pending?: number;
  /** Net position, signed (a BUY fill of q: +q). */
  net?: number;
}

/** One key's counters as the order store has them (seed()). */
export interface RiskSeed {
  key: string;
  ordersToday: number;
  tokens: { token: number; pending: number; net: number }[];
}

/** What the order service needs of shared per-key risk counters. */
export interface SharedRisk {
  read(key: string, token: number): Promise<RiskCounts>;
  /**
   * Counts `orders` orders and each leg's quantity for `key` if every limit still holds with them,
   * atomically across gateways; else counts nothing and says which limit.
   */
  reserve(key: string, orders: number, legs: readonly { token: number; qty: number }[]): Promise<RiskDecision>;
  /** After placing: gives back what the ticket counted beyond what was placed. */
  settle(ticket: RiskTicket, placedOrders: number, placedQty: ReadonlyMap<number, number>): void;
  /** Orders placed without a reservation (an iceberg's later legs); changes of pending and net. */
  adjust(key: string, token: number, delta: RiskDelta, orders?: number): void;
  /** Builds the counters from the order store, once per Redis data set; true when this call did. */
  seed(keys: readonly RiskSeed[]): Promise<boolean>;
  /** Resolves when every queued delta is in Redis. */
  flush(): Promise<void>;
}

export interface RedisRiskOptions {
  redis: Redis;
  limits: RiskLimits;
  /** REDIS_PREFIX. */
  prefix: string;
  log?: Pick<Logger, 'warn' | 'info'>;
  /** Tests only: the time (epoch ms) to use instead of Redis's TIME. */
  clock?: () => number;
}

const DAY_LUA = `
local t
if ARGV[1] ~= '' then t = tonumber(ARGV[1]) else
  local now = redis.call('TIME')
  t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
local DAY, IST = 86400000, 19800000
local dayStart = math.floor((t + IST) / DAY) * DAY - IST
if tonumber(redis.call('HGET', KEYS[1], 'day')) ~= dayStart then
  redis.call('HSET', KEYS[1], 'day', dayStart, 'orders', 0)
end
local function num(f) return tonumber(redis.call('HGET', KEYS[1], f) or '0') end
`;

/** KEYS: hash. ARGV: clock, token. Returns {orders today, open quantity}. */
const READ = new LuaScript('the per-key risk counters', `${DAY_LUA}
local token = ARGV[2]
return {num('orders'), math.abs(num('n:' .. token)) + num('p:' .. token)}
`);

/**
 * KEYS: hash. ARGV: clock, orders, maxOrders, maxOpen, then token, qty pairs (a token once).
 * Returns {1, day} counted; {0, rule (1 orders per day, 2 open quantity), token, orders, open}.
 */
const RESERVE = new LuaScript('the per-key risk counters', `${DAY_LUA}
local n, maxOrders, maxOpen = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local orders = num('orders')
if n > 0 and orders + n > maxOrders then return {0, 1, 0, orders, 0} end
for i = 5, #ARGV, 2 do
  local token, qty = ARGV[i], tonumber(ARGV[i + 1])
  local open = math.abs(num('n:' .. token)) + num('p:' .. token)
  if qty > 0 and open + qty > maxOpen then return {0, 2, tonumber(token), orders, open} end
end
redis.call('HINCRBY', KEYS[1], 'orders', n)
for i = 5, #ARGV, 2 do redis.call('HINCRBY', KEYS[1], 'p:' .. ARGV[i], ARGV[i + 1]) end
return {1, dayStart}
`);

/**
 * KEYS: hash. ARGV: clock, day ('' = today) the orders delta belongs to, orders delta, then
 * token, pending delta, net delta triples. Orders of a day gone are not moved; pending is floored
 * at 0; fields at 0 are removed.
 */
const ADJUST = new LuaScript('the per-key risk counters', `${DAY_LUA}
if ARGV[2] == '' or tonumber(ARGV[2]) == dayStart then
  local o = num('orders') + tonumber(ARGV[3])
  if o < 0 then o = 0 end
  redis.call('HSET', KEYS[1], 'orders', o)
end
for i = 4, #ARGV, 3 do
  local p, nt = 'p:' .. ARGV[i], 'n:' .. ARGV[i]
  local pv = num(p) + tonumber(ARGV[i + 1])
  if pv <= 0 then redis.call('HDEL', KEYS[1], p) else redis.call('HSET', KEYS[1], p, pv) end
  local nv = num(nt) + tonumber(ARGV[i + 2])
  if nv == 0 then redis.call('HDEL', KEYS[1], nt) else redis.call('HSET', KEYS[1], nt, nv) end
end
return 1
`);

/** KEYS: marker, then one hash per seeded key. ARGV: clock, JSON [[orders, [[token, pending, net], ...]], ...] in KEYS order. */
const SEED = new LuaScript('the per-key risk counters (seed)', `
if redis.call('SET', KEYS[1], '1', 'NX') == false then return 0 end
local t
if ARGV[1] ~= '' then t = tonumber(ARGV[1]) else
  local now = redis.call('TIME')
  t = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end
local dayStart = math.floor((t + 19800000) / 86400000) * 86400000 - 19800000
local seeds = cjson.decode(ARGV[2])
for i, s in ipairs(seeds) do
  local h = KEYS[i + 1]
  redis.call('DEL', h)
  redis.call('HSET', h, 'day', dayStart, 'orders', s[1])
  for _, tk in ipairs(s[2]) do
    if tk[2] > 0 then redis.call('HSET', h, 'p:' .. tk[1], tk[2]) end
    if tk[3] ~= 0 then redis.call('HSET', h, 'n:' .. tk[1], tk[3]) end
  end
end
return 1
`);

/** Deltas of one key not yet in Redis. */
interface Queued {
  /** Orders delta by the day it belongs to ('' = today's). */
  orders: Map<string, number>;
  tokens: Map<number, { pending: number; net: number }>;
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 2000;

export class RedisRisk implements SharedRisk {
  private readonly base: string;
  private readonly queue = new Map<string, Queued>();
  private sending: Promise<void> | null = null;
  private retryMs = RETRY_MIN_MS;
  private failing = false;

  constructor(private readonly opts: RedisRiskOptions) {
    this.base = `${opts.prefix}{orders}:risk:`;
  }

  private hash(key: string): string {
    return `${this.base}k:${key}`;
  }

  private clockArg(): string {
    return this.opts.clock === undefined ? '' : String(Math.floor(this.opts.clock()));
  }

  async read(key: string, token: number): Promise<RiskCounts> {
    const r = (await READ.run(this.opts.redis, [this.hash(key)], [this.clockArg(), token])) as number[];
    return { ordersToday: r[0], openQty: r[1] };
  }

  async reserve(key: string, orders: number, legs: readonly { token: number; qty: number }[]): Promise<RiskDecision> {
    const qty = new Map<number, number>();
    for (const l of legs) qty.set(l.token, (qty.get(l.token) ?? 0) + l.qty);
    const args: (string | number)[] = [this.clockArg(), orders, this.opts.limits.maxOrdersPerDay, this.opts.limits.maxOpenQty];
    for (const [token, q] of qty) args.push(token, q);
    const r = (await RESERVE.run(this.opts.redis, [this.hash(key)], args)) as number[];
    if (r[0] === 1) return { ok: true, ticket: { key, day: r[1], orders, qty } };
    return { ok: false, rule: r[1] === 1 ? 'max_orders_per_day' : 'max_open_qty', token: r[2], counts: { ordersToday: r[3], openQty: r[4] } };
  }

  settle(ticket: RiskTicket, placedOrders: number, placedQty: ReadonlyMap<number, number>): void {
    const q = this.queued(ticket.key);
    const day = String(ticket.day);
    if (placedOrders !== ticket.orders) q.orders.set(day, (q.orders.get(day) ?? 0) + placedOrders - ticket.orders);
    for (const [token, reserved] of ticket.qty) this.add(q, token, (placedQty.get(token) ?? 0) - reserved, 0);
    this.kick();
  }

  adjust(key: string, token: number, delta: RiskDelta, orders = 0): void {
    const q = this.queued(key);
    if (orders !== 0) q.orders.set('', (q.orders.get('') ?? 0) + orders);
    this.add(q, token, delta.pending ?? 0, delta.net ?? 0);
    this.kick();
  }

  async seed(keys: readonly RiskSeed[]): Promise<boolean> {
    const data = keys.map((s) => [s.ordersToday, s.tokens.map((t) => [t.token, t.pending, t.net])]);
    const r = await SEED.run(this.opts.redis, [`${this.base}seeded`, ...keys.map((s) => this.hash(s.key))], [this.clockArg(), JSON.stringify(data)]);
    return r === 1;
  }

  async flush(): Promise<void> {
    while (this.sending !== null) await this.sending;
  }

  private queued(key: string): Queued {
    let q = this.queue.get(key);
    if (q === undefined) this.queue.set(key, (q = { orders: new Map(), tokens: new Map() }));
    return q;
  }

  private add(q: Queued, token: number, pending: number, net: number): void {
    if (pending === 0 && net === 0) return;
    const t = q.tokens.get(token) ?? { pending: 0, net: 0 };
    t.pending += pending;
    t.net += net;
    q.tokens.set(token, t);
  }

  /** Start sending unless a send runs (it takes what is queued meanwhile before it ends). */
  private kick(): void {
    if (this.sending !== null) return;
    this.sending = this.send().finally(() => { this.sending = null; });
  }

  private async send(): Promise<void> {
    // A turn later: deltas made in the same turn (a fill's net and pending) go as one call.
    await Promise.resolve();
    while (this.queue.size > 0) {
      const [key, q] = this.queue.entries().next().value as [string, Queued];
      this.queue.delete(key);
      const calls: (string | number)[][] = [];
      const tokenArgs: (string | number)[] = [];
      for (const [token, d] of q.tokens) if (d.pending !== 0 || d.net !== 0) tokenArgs.push(token, d.pending, d.net);
      const days = [...q.orders].filter(([, n]) => n !== 0);
      if (days.length === 0) days.push(['', 0]);
      days.forEach(([day, n], i) => calls.push([this.clockArg(), day, n, ...(i === 0 ? tokenArgs : [])]));
      try {
        for (let i = 0; i < calls.length; i++) {
          if (calls[i].length === 3 && calls[i][2] === 0) continue;
          await ADJUST.run(this.opts.redis, [this.hash(key)], calls[i]);
          // Sent: not to be sent again if a later call of this key fails.
          if (i === 0) q.tokens.clear();
          q.orders.delete(String(calls[i][1]));
        }
        if (this.failing) this.opts.log?.info({}, 'per-key risk counters: Redis answers again; queued changes sent');
        this.failing = false;
        this.retryMs = RETRY_MIN_MS;
      } catch (err) {
        // Put back what was not sent, ahead of anything queued meanwhile, and retry later.
        const later = this.queue.get(key);
        this.queue.delete(key);
        const back = this.queued(key);
        for (const [day, n] of q.orders) back.orders.set(day, (back.orders.get(day) ?? 0) + n);
        for (const [token, d] of q.tokens) this.add(back, token, d.pending, d.net);
        if (later !== undefined) {
          for (const [day, n] of later.orders) back.orders.set(day, (back.orders.get(day) ?? 0) + n);
          for (const [token, d] of later.tokens) this.add(back, token, d.pending, d.net);
        }
        if (!this.failing) this.opts.log?.warn({ err: (err as Error).message }, 'per-key risk counters: Redis refused a change; keeping it and retrying');
        this.failing = true;
        await new Promise((r) => setTimeout(r, this.retryMs).unref());
        this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
      }
    }
  }
}

/**
 * The refusal of a reservation, in checks.ts's words: counted over every gateway, so it can refuse
 * an order the checks of one gateway passed (another gateway counted first).
 */
export function riskRejection(d: Extract<RiskDecision, { ok: false }>, limits: RiskLimits, symbol: string, orders: number, qty: number): OrderRejection {
  if (d.rule === 'max_orders_per_day') {
    return new OrderRejection('order', 'order', 'max_orders_per_day',
      `order: this key has placed ${d.counts.ordersToday} orders today${orders > 1 ? ` and this one places ${orders}` : ''}; the limit is ${limits.maxOrdersPerDay} per IST day, counted afresh after midnight IST`);
  }
  return new OrderRejection('order', 'quantity', 'max_open_qty',
    `quantity: ${d.counts.openQty} units of ${symbol} are already open for this key (positions and open orders); with ${qty} more that passes the limit of ${limits.maxOpenQty}; send at most ${Math.max(0, limits.maxOpenQty - d.counts.openQty)}`);
}
