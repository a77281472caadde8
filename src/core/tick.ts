/**
 * The canonical tick: what a shard emits for every tick it accepts (and, flagged, for every tick
 * it quarantines). One layout for index, equity, future and option ticks, as N_FIELDS f64 values
 * in an output-ring slot. The batch writer, the broadcaster and the cache read it through `N`.
 *
 * Prices are rupees (Kite's integer divided by the segment's divisor); times are epoch ms, except
 * RECV_TIME_US (epoch µs, for latency). Instrument attributes are joined from the master: INSTR is
 * the row index in the table every consumer builds from the same master, for the symbol string.
 *
 * | off | field           | unit / meaning                                                      |
 * |-----|-----------------|---------------------------------------------------------------------|
 * | 0   | TYPE            | NType: TICK or QUARANTINE                                           |
 * | 1   | TOKEN           | instrument token                                                    |
 * | 2   | KIND            | Kite packet kind (packet-slot.ts Kind)                                   |
 * | 3   | CONSUMERS       | bit k set: consumer filter k wants this tick (TICK only)            |
 * | 4   | REASON          | QuarantineReason (QUARANTINE only), else 0                          |
 * | 5   | EXCH_TIME_MS    | exchange time; the receive time when the packet has none            |
 * | 6   | RECV_TIME_US    | front-process receive time                                          |
 * | 7   | PRICE           | last traded price                                                   |
 * | 8   | LAST_QTY        | last traded quantity                                                |
 * | 9   | AVG_PRICE       | average traded price today (Kite's day VWAP)                        |
 * | 10  | VOLUME          | cumulative volume today                                             |
 * | 11  | VOLUME_DELTA    | volume since the previous accepted tick of the token (0 on the first of a session) |
 * | 12  | BUY_QTY         | total pending buy quantity                                          |
 * | 13  | SELL_QTY        | total pending sell quantity                                         |
 * | 14  | OPEN            | day open                                                            |
 * | 15  | HIGH            | day high                                                            |
 * | 16  | LOW             | day low                                                             |
 * | 17  | CLOSE           | previous day's close                                                |
 * | 18  | CHANGE_PCT      | (PRICE - CLOSE) × 100 / CLOSE; 0 when CLOSE is 0                    |
 * | 19  | OI              | open interest                                                       |
 * | 20  | OI_HIGH         | OI day high                                                         |
 * | 21  | OI_LOW          | OI day low                                                          |
 * | 22  | LAST_TRADE_MS   | last trade time, 0 when absent                                      |
 * | 23  | INSTR           | row index in the instrument table                                   |
 * | 24  | INSTR_TYPE      | InstrumentKind: INDEX, EQ, FUT, CE, PE                              |
 * | 25  | STRIKE          | rupees, 0 when not an option                                        |
 * | 26  | EXPIRY_MS       | 00:00 IST of the expiry day, 0 when none                            |
 * | 27  | SEQ             | upstream frame sequence (per connection)                            |
 * | 28  | CONN            | upstream connection slot                                            |
 * | 29  | DEPTH_LEVELS    | 5 when the tick carried depth, else 0                               |
 * | 30  | DEPTH           | 10 × [qty, price, orders]: 5 bids then 5 asks (30 values)           |
 * | 60  | PROC_TIME_US    | when the shard took the tick's batch from its input ring, epoch µs  |
 * | 61  | SHARD           | shard that emitted it                                               |
 * | 62  | —               | reserved                                                            |
 * | 63  | —               | reserved                                                            |
 */

export const N = {
  TYPE: 0,
  TOKEN: 1,
  KIND: 2,
  CONSUMERS: 3,
  REASON: 4,
  EXCH_TIME_MS: 5,
  RECV_TIME_US: 6,
  PRICE: 7,
  LAST_QTY: 8,
  AVG_PRICE: 9,
  VOLUME: 10,
  VOLUME_DELTA: 11,
  BUY_QTY: 12,
  SELL_QTY: 13,
  OPEN: 14,
  HIGH: 15,
  LOW: 16,
  CLOSE: 17,
  CHANGE_PCT: 18,
  OI: 19,
  OI_HIGH: 20,
  OI_LOW: 21,
  LAST_TRADE_MS: 22,
  INSTR: 23,
  INSTR_TYPE: 24,
  STRIKE: 25,
  EXPIRY_MS: 26,
  SEQ: 27,
  CONN: 28,
  DEPTH_LEVELS: 29,
  DEPTH: 30,
  PROC_TIME_US: 60,
  SHARD: 61,
  DAY_VWAP: 62,
} as const;

export const N_FIELDS = 64;
/** 32-bit words per slot in an output ring of canonical ticks. */
export const N_SLOT_WORDS = N_FIELDS * 2;

export const NType = { TICK: 1, QUARANTINE: 2 } as const;

/** Output-ring consumers of the tick ring, by index (ring consumer k). */
export const TickConsumer = { STORE: 0, FEED: 1 } as const;
export const TICK_CONSUMERS = 2;

/** Why a tick was quarantined (N.REASON); the checks are described in workers/stages/validate.ts. */
export const QuarantineReason = {
  UNKNOWN_TOKEN: 1,
  KIND_MISMATCH: 2,
  BAD_PRICE: 3,
  PRICE_JUMP: 4,
  OUT_OF_DAY_BAND: 5,
  TIME_FUTURE: 6,
  TIME_PAST: 7,
  VOLUME_DECREASED: 8,
  OI_RANGE: 9,
} as const;
export const QUARANTINE_REASON_NAMES = [
  'none', 'unknown_token', 'kind_mismatch', 'bad_price', 'price_jump', 'out_of_day_band',
  'time_future', 'time_past', 'volume_decreased', 'oi_range',
] as const;
